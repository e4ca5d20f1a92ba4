use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use contrast_core::{Error, ensure_positive};

use crate::util::{MASKED, check_same_shape, host_mask, log_sum_exp, maybe_normalize};

/// Configuration of [`DecoupledLoss`] (DCL, and DCLW when `von_mises_sigma` is set).
#[derive(Config, Debug)]
pub struct DecoupledLossConfig {
    /// Temperature tau (DCL: 0.1).
    #[config(default = 0.1)]
    pub temperature: f64,
    /// DCLW: the width sigma of the von Mises-Fisher weighting of positives (paper: 0.5).
    /// `None` is plain DCL.
    #[config(default = "None")]
    pub von_mises_sigma: Option<f64>,
    /// DCLW: treat the von Mises-Fisher weight as a constant (no gradient through it), as
    /// lightly's `DCLWLoss` does (it rebuilds the weight with `torch.tensor`). The default keeps
    /// it in the graph, as the authors' code does; the loss values are the same either way,
    /// the gradients differ.
    #[config(default = false)]
    pub detach_weight: bool,
}

impl DecoupledLossConfig {
    /// Checks both fields.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a non-positive temperature or sigma.
    pub fn validate(&self) -> Result<(), Error> {
        ensure_positive("temperature", self.temperature)?;
        if let Some(sigma) = self.von_mises_sigma {
            ensure_positive("von_mises_sigma", sigma)?;
        }
        Ok(())
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails.
    pub fn init(&self) -> DecoupledLoss {
        if let Err(e) = self.validate() {
            panic!("DecoupledLossConfig::init: {e}");
        }
        DecoupledLoss {
            temperature: self.temperature,
            sigma: self.von_mises_sigma,
            detach_weight: self.detach_weight,
        }
    }
}

/// Decoupled contrastive loss (DCL): NT-Xent with the positive removed from the denominator,
/// which removes the coupling that makes small batches learn slowly; DCLW also weights each
/// positive pair by how hard it is (a von Mises-Fisher weighting).
///
/// For the direction `a -> b` (the loss averages both directions):
///
/// ```text
/// s_ij = cos(a_i, b_j) / tau,  t_ij = cos(a_i, a_j) / tau
/// w_i  = 1                                                   (DCL)
/// w_i  = 2 - n * softmax_k( cos(a_k, b_k) / sigma )_i        (DCLW; a constant for the
///                                                            gradient with `detach_weight`)
/// l_i  = -w_i s_ii + log( sum_{j != i} exp(t_ij) + sum_{j != i} exp(s_ij) )
/// ```
///
/// Yeh et al., "Decoupled Contrastive Learning", ECCV 2022, <https://arxiv.org/abs/2110.06848>.
///
/// # Shapes
/// - `z1`, `z2`: `[n, d]` -> scalar `[1]`
///
/// # Panics
/// If the two inputs differ in shape or are empty.
#[derive(Debug, Clone)]
pub struct DecoupledLoss {
    temperature: f64,
    sigma: Option<f64>,
    detach_weight: bool,
}

impl DecoupledLoss {
    /// The loss averaged over both directions.
    pub fn forward<B: Backend>(&self, z1: Tensor<B, 2>, z2: Tensor<B, 2>) -> Tensor<B, 1> {
        check_same_shape("DecoupledLoss::forward", z1.dims(), z2.dims());
        let a = maybe_normalize(z1, true);
        let b = maybe_normalize(z2, true);
        (self.direction(a.clone(), b.clone()) + self.direction(b, a)) / 2.0
    }

    fn direction<B: Backend>(&self, a: Tensor<B, 2>, b: Tensor<B, 2>) -> Tensor<B, 1> {
        let [n, _] = a.dims();
        let device = a.device();
        let cross = a.clone().matmul(b.transpose());
        let diag_mask = host_mask::<B>(n, n, &device, |i, j| i == j);
        let cos_pos = (cross.clone() * diag_mask.clone().float())
            .sum_dim(1)
            .squeeze_dim(1);
        let mut positive = cos_pos.clone() / self.temperature;
        if let Some(sigma) = self.sigma {
            let weight = softmax(cos_pos / sigma, 0)
                .mul_scalar(-(n as f64))
                .add_scalar(2.0);
            let weight = if self.detach_weight {
                weight.detach()
            } else {
                weight
            };
            positive = positive * weight;
        }
        let own = host_mask::<B>(n, 2 * n, &device, |i, j| j == i || j == n + i);
        let negatives = (Tensor::cat(vec![a.clone().matmul(a.transpose()), cross], 1)
            / self.temperature)
            .mask_fill(own, MASKED);
        (log_sum_exp(negatives) - positive).mean()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{dot, fd_reference, unit_rows};
    use burn::tensor::backend::AutodiffBackend;

    fn reference(x: &[f64], n: usize, d: usize, t: f64, sigma: Option<f64>) -> f64 {
        let rows = unit_rows(x, d);
        let dot = |i: usize, j: usize| dot(&rows[i], &rows[j]);
        let dir = |off_a: usize, off_b: usize| {
            let pos: Vec<f64> = (0..n).map(|i| dot(off_a + i, off_b + i)).collect();
            let weights: Vec<f64> = match sigma {
                None => vec![1.0; n],
                Some(s) => {
                    let z: f64 = pos.iter().map(|p| (p / s).exp()).sum();
                    pos.iter()
                        .map(|p| 2.0 - n as f64 * (p / s).exp() / z)
                        .collect()
                }
            };
            let mut total = 0.0;
            for i in 0..n {
                let mut denom = 0.0;
                for j in (0..n).filter(|&j| j != i) {
                    denom += (dot(off_a + i, off_a + j) / t).exp()
                        + (dot(off_a + i, off_b + j) / t).exp();
                }
                total += denom.ln() - weights[i] * pos[i] / t;
            }
            total / n as f64
        };
        (dir(0, n) + dir(n, 0)) / 2.0
    }

    fn dcl_matches_reference<B: AutodiffBackend>(device: &B::Device) {
        fd_reference::<B>(
            device,
            4,
            3,
            51,
            |x| reference(x, 4, 3, 0.5, None),
            |a, b| {
                DecoupledLossConfig::new()
                    .with_temperature(0.5)
                    .init()
                    .forward(a, b)
            },
        );
    }

    fn dclw_matches_reference<B: AutodiffBackend>(device: &B::Device) {
        fd_reference::<B>(
            device,
            4,
            3,
            52,
            |x| reference(x, 4, 3, 0.5, Some(0.5)),
            |a, b| {
                DecoupledLossConfig::new()
                    .with_temperature(0.5)
                    .with_von_mises_sigma(Some(0.5))
                    .init()
                    .forward(a, b)
            },
        );
    }

    /// Numbers from a published implementation, lightly 1.6.0 on PyTorch 2.15.0 (same inputs
    /// and snippet as `nt_xent_matches_lightly`, with `DCLLoss(temperature=0.5)` and
    /// `DCLWLoss(temperature=0.5, sigma=0.5)`). lightly builds the DCLW weight with
    /// `torch.tensor(...)`, which detaches it, while the authors' code keeps it in the graph:
    /// the default (the authors') matches lightly's value, `detach_weight` also its gradient.
    fn dcl_matches_lightly<B: AutodiffBackend>(device: &B::Device) {
        use crate::testing::{inputs, two_views};
        use contrast_core::testing::assert_close;
        use contrast_core::to_vec_f32;
        let x = inputs(2 * 4 * 3, 7);
        let (z0, z1) = two_views::<B>(&x[..12], &x[12..], 4, 3, device);
        let z0 = z0.require_grad();
        let v = DecoupledLossConfig::new()
            .with_temperature(0.5)
            .init()
            .forward(z0.clone(), z1.clone());
        let g = to_vec_f32(z0.grad(&v.backward()).unwrap());
        assert_close(&to_vec_f32(v), &[2.233_033_2], 1e-5);
        let lightly = [
            -0.0964742, 0.2779801, 0.3038924, -0.2884384, 0.1243679, 0.2308238, -0.290533,
            -0.1342972, 0.0617432, 0.1613609, 0.2847635, 0.0131384,
        ];
        assert_close(&g, &lightly, 1e-5);
        let w = DecoupledLossConfig::new()
            .with_temperature(0.5)
            .with_von_mises_sigma(Some(0.5))
            .init();
        assert_close(
            &to_vec_f32(w.forward(z0.clone(), z1.clone())),
            &[2.712_826_5],
            1e-5,
        );
        let detached = DecoupledLossConfig::new()
            .with_temperature(0.5)
            .with_von_mises_sigma(Some(0.5))
            .with_detach_weight(true)
            .init()
            .forward(z0.clone(), z1);
        let g = to_vec_f32(z0.grad(&detached.backward()).unwrap());
        assert_close(&to_vec_f32(detached), &[2.712_826_5], 1e-5);
        let lightly = [
            -0.0922798, 0.2615427, 0.2828946, -0.1590121, 0.0684386, 0.1277104, -0.1251151,
            -0.0438596, -0.0054986, 0.1070324, 0.6159953, 0.0912523,
        ];
        assert_close(&g, &lightly, 1e-5);
    }

    contrast_core::backend_tests!(
        dcl_matches_reference,
        dclw_matches_reference,
        dcl_matches_lightly
    );
}
