use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use contrast_core::{Error, ensure_positive};

use crate::util::{
    MASKED, check_labels, check_same_shape, host_mask, log_sum_exp, maybe_normalize,
};

/// Configuration of [`SupConLoss`].
#[derive(Config, Debug)]
pub struct SupConLossConfig {
    /// Temperature tau (SupCon: 0.07; 0.1 on small data).
    #[config(default = 0.07)]
    pub temperature: f64,
    /// The reference temperature of the official code; the loss is scaled by `tau / base`.
    #[config(default = 0.07)]
    pub base_temperature: f64,
}

impl SupConLossConfig {
    /// Checks both temperatures.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a non-positive value.
    pub fn validate(&self) -> Result<(), Error> {
        ensure_positive("temperature", self.temperature)?;
        ensure_positive("base_temperature", self.base_temperature)
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails.
    pub fn init(&self) -> SupConLoss {
        if let Err(e) = self.validate() {
            panic!("SupConLossConfig::init: {e}");
        }
        SupConLoss {
            temperature: self.temperature,
            base: self.base_temperature,
        }
    }
}

/// Supervised contrastive loss: every other row with the anchor's label is a positive.
///
/// Over the `2n` rows of two views, with `P(i)` the rows `j != i` sharing `i`'s label:
///
/// ```text
/// log p_ij = s_ij - log sum_{k != i} exp(s_ik),     s = cos / tau
/// loss     = -(tau / base) * mean_i [ 1/|P(i)| sum_{j in P(i)} log p_ij ]
/// ```
///
/// With all labels distinct, `P(i)` is the other view alone and this is NT-Xent.
///
/// Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020,
/// <https://arxiv.org/abs/2004.11362>.
///
/// # Shapes
/// - `z1`, `z2`: `[n, d]`, `labels`: `n` entries -> scalar `[1]`
///
/// # Panics
/// If the views differ in shape or are empty, or `labels.len() != n`.
#[derive(Debug, Clone)]
pub struct SupConLoss {
    temperature: f64,
    base: f64,
}

impl SupConLoss {
    /// The loss; see the type's documentation.
    pub fn forward<B: Backend>(
        &self,
        z1: Tensor<B, 2>,
        z2: Tensor<B, 2>,
        labels: &[usize],
    ) -> Tensor<B, 1> {
        check_same_shape("SupConLoss::forward", z1.dims(), z2.dims());
        let [n, _] = z1.dims();
        check_labels("SupConLoss::forward", labels, n);
        let m = 2 * n;
        let device = z1.device();
        let z = maybe_normalize(Tensor::cat(vec![z1, z2], 0), true);
        let own = host_mask::<B>(m, m, &device, |i, j| i == j);
        let s = (z.clone().matmul(z.transpose()) / self.temperature).mask_fill(own, MASKED);
        let log_p = s.clone() - log_sum_exp(s).unsqueeze_dim(1);
        let positives = host_mask::<B>(m, m, &device, |i, j| {
            i != j && labels[i % n] == labels[j % n]
        })
        .float();
        let per_anchor = (log_p * positives.clone()).sum_dim(1) / positives.sum_dim(1);
        per_anchor.mean().mul_scalar(-self.temperature / self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nt_xent::NtXentLossConfig;
    use crate::testing::{dot, fd_reference, inputs, two_views, unit_rows};
    use burn::tensor::backend::AutodiffBackend;
    use contrast_core::testing::assert_close;
    use contrast_core::to_vec_f32;

    fn reference(x: &[f64], n: usize, d: usize, t: f64, labels: &[usize]) -> f64 {
        let rows = unit_rows(x, d);
        let m = 2 * n;
        let mut total = 0.0;
        for i in 0..m {
            let s = |j: usize| dot(&rows[i], &rows[j]) / t;
            let lse = (0..m)
                .filter(|&j| j != i)
                .map(|j| s(j).exp())
                .sum::<f64>()
                .ln();
            let pos: Vec<usize> = (0..m)
                .filter(|&j| j != i && labels[j % n] == labels[i % n])
                .collect();
            total += pos.iter().map(|&j| s(j) - lse).sum::<f64>() / pos.len() as f64;
        }
        -total / m as f64
    }

    fn supcon_matches_reference<B: AutodiffBackend>(device: &B::Device) {
        let labels = [1usize, 0, 1, 1, 2];
        fd_reference::<B>(
            device,
            5,
            3,
            81,
            |x| reference(x, 5, 3, 0.5, &labels),
            |a, b| {
                SupConLossConfig::new()
                    .with_temperature(0.5)
                    .with_base_temperature(0.5)
                    .init()
                    .forward(a, b, &labels)
            },
        );
    }

    /// Distinct labels and tau = base reduce SupCon to NT-Xent.
    fn supcon_distinct_labels_is_nt_xent<B: AutodiffBackend>(device: &B::Device) {
        let x = inputs(2 * 4 * 3, 82);
        let (a, b) = two_views::<B>(&x[..12], &x[12..], 4, 3, device);
        let sc = SupConLossConfig::new()
            .with_temperature(0.3)
            .with_base_temperature(0.3)
            .init();
        let nt = NtXentLossConfig::new().with_temperature(0.3).init();
        assert_close(
            &to_vec_f32(sc.forward(a.clone(), b.clone(), &[0, 1, 2, 3])),
            &to_vec_f32(nt.forward(a, b)),
            1e-5,
        );
    }

    contrast_core::backend_tests!(supcon_matches_reference, supcon_distinct_labels_is_nt_xent);
}
