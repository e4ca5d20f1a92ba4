use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use contrast_core::{Error, ensure_finite, ensure_positive};

use crate::util::{MASKED, check_same_shape, host_mask, log_sum_exp, maybe_normalize, partner};

/// Configuration of [`HardNegativeLoss`] (HCL).
#[derive(Config, Debug)]
pub struct HardNegativeLossConfig {
    /// Temperature tau (HCL: 0.5).
    #[config(default = 0.5)]
    pub temperature: f64,
    /// Concentration beta on hard negatives: 0 weights all negatives alike.
    #[config(default = 1.0)]
    pub beta: f64,
    /// Class prior tau+ of the debiasing correction: the probability that a random negative
    /// shares the anchor's class. 0 turns the correction off.
    #[config(default = 0.1)]
    pub tau_plus: f64,
}

impl HardNegativeLossConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a non-positive temperature, a negative or non-finite beta,
    /// or `tau_plus` outside `[0, 1)`.
    pub fn validate(&self) -> Result<(), Error> {
        ensure_positive("temperature", self.temperature)?;
        ensure_finite("beta", self.beta)?;
        if self.beta < 0.0 {
            return Err(Error::invalid_config("beta", self.beta, "must be >= 0"));
        }
        if !(self.tau_plus.is_finite() && (0.0..1.0).contains(&self.tau_plus)) {
            return Err(Error::invalid_config(
                "tau_plus",
                self.tau_plus,
                "must be in [0, 1)",
            ));
        }
        Ok(())
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails.
    pub fn init(&self) -> HardNegativeLoss {
        if let Err(e) = self.validate() {
            panic!("HardNegativeLossConfig::init: {e}");
        }
        HardNegativeLoss {
            temperature: self.temperature,
            beta: self.beta,
            tau_plus: self.tau_plus,
        }
    }
}

/// Hard-negative weighted, debiased InfoNCE (HCL), over the `2n` rows of two views.
///
/// Negatives are importance-weighted by `exp(beta s)`, and the expected contribution of false
/// negatives (probability `tau+`) is subtracted, with the floor of the reference code:
///
/// ```text
/// pos_i  = exp(s_{i,p(i)}),   N = 2n - 2,   s = cos / tau
/// R_i    = N * sum_j exp((beta + 1) s_ij) / sum_j exp(beta s_ij)       (j: negatives of i)
/// Ng_i   = max( (R_i - tau+ N pos_i) / (1 - tau+),  N exp(-1/tau) )
/// loss   = mean_i -log( pos_i / (pos_i + Ng_i) )
/// ```
///
/// With `beta = 0, tau+ = 0` this is NT-Xent; with `beta = 0, tau+ > 0` it is the debiased
/// contrastive loss of Chuang et al. (NeurIPS 2020). Every exponential is taken relative to the
/// row's largest logit, so nothing overflows at small temperatures.
///
/// Robinson et al., "Contrastive Learning with Hard Negative Samples", ICLR 2021,
/// <https://arxiv.org/abs/2010.04592>.
///
/// # Shapes
/// - `z1`, `z2`: `[n, d]` -> scalar `[1]`
///
/// # Panics
/// If the two inputs differ in shape or are empty.
#[derive(Debug, Clone)]
pub struct HardNegativeLoss {
    temperature: f64,
    beta: f64,
    tau_plus: f64,
}

impl HardNegativeLoss {
    /// The loss; see the type's documentation.
    pub fn forward<B: Backend>(&self, z1: Tensor<B, 2>, z2: Tensor<B, 2>) -> Tensor<B, 1> {
        check_same_shape("HardNegativeLoss::forward", z1.dims(), z2.dims());
        let [n, _] = z1.dims();
        let m = 2 * n;
        let device = z1.device();
        let z = maybe_normalize(Tensor::cat(vec![z1, z2], 0), true);
        let s = z.clone().matmul(z.clone().transpose()) / self.temperature;
        let not_negative = host_mask::<B>(m, m, &device, |i, j| j == i || j == partner(i, n));
        let swapped = Tensor::cat(vec![z.clone().slice(n..m), z.clone().slice(0..n)], 0);
        let s_pos = (z * swapped).sum_dim(1) / self.temperature; // [m, 1]
        let own = host_mask::<B>(m, m, &device, |i, j| i == j);
        let c = s.clone().mask_fill(own, MASKED).max_dim(1).detach(); // [m, 1]
        let count = (m - 2) as f64;
        let log_r =
            log_sum_exp((s.clone() * (self.beta + 1.0)).mask_fill(not_negative.clone(), MASKED))
                - log_sum_exp((s * self.beta).mask_fill(not_negative, MASKED))
                + count.ln();
        let r = (log_r.unsqueeze_dim(1) - c.clone()).exp();
        let pos = (s_pos.clone() - c.clone()).exp();
        let ng = (r - pos.clone() * (self.tau_plus * count)) / (1.0 - self.tau_plus);
        let floor = (c.clone().neg() - 1.0 / self.temperature).exp() * count;
        let ng = ng.max_pair(floor);
        ((pos + ng).log() - (s_pos - c)).mean()
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

    /// f64 reference transcribing the estimator's formula directly (no log-space tricks).
    fn reference(x: &[f64], n: usize, d: usize, t: f64, beta: f64, tau_plus: f64) -> f64 {
        let rows = unit_rows(x, d);
        let m = 2 * n;
        let big_n = (m - 2) as f64;
        let mut total = 0.0;
        for i in 0..m {
            let s = |j: usize| dot(&rows[i], &rows[j]) / t;
            let p = (i + n) % m;
            let pos = s(p).exp();
            let negs: Vec<f64> = (0..m)
                .filter(|&j| j != i && j != p)
                .map(|j| s(j).exp())
                .collect();
            let imp: Vec<f64> = negs.iter().map(|v| v.powf(beta)).collect();
            let imp_mean = imp.iter().sum::<f64>() / imp.len() as f64;
            let reweight = imp.iter().zip(&negs).map(|(a, b)| a * b).sum::<f64>() / imp_mean;
            let ng = ((-tau_plus * big_n * pos + reweight) / (1.0 - tau_plus))
                .max(big_n * (-1.0 / t).exp());
            total += -(pos / (pos + ng)).ln();
        }
        total / m as f64
    }

    fn hcl_matches_reference<B: AutodiffBackend>(device: &B::Device) {
        for (beta, tau_plus) in [(1.0, 0.1), (0.5, 0.0), (0.0, 0.2)] {
            fd_reference::<B>(
                device,
                4,
                3,
                61,
                |x| reference(x, 4, 3, 0.5, beta, tau_plus),
                |a, b| {
                    HardNegativeLossConfig::new()
                        .with_beta(beta)
                        .with_tau_plus(tau_plus)
                        .init()
                        .forward(a, b)
                },
            );
        }
    }

    /// beta = 0, tau+ = 0 reduces to NT-Xent exactly.
    fn hcl_reduces_to_nt_xent<B: AutodiffBackend>(device: &B::Device) {
        let x = inputs(2 * 5 * 3, 62);
        let (a, b) = two_views::<B>(&x[..15], &x[15..], 5, 3, device);
        let hcl = HardNegativeLossConfig::new()
            .with_beta(0.0)
            .with_tau_plus(0.0)
            .with_temperature(0.2)
            .init();
        let nt = NtXentLossConfig::new().with_temperature(0.2).init();
        assert_close(
            &to_vec_f32(hcl.forward(a.clone(), b.clone())),
            &to_vec_f32(nt.forward(a, b)),
            1e-5,
        );
    }

    /// tau = 0.05, identical views: finite.
    fn hcl_is_stable<B: AutodiffBackend>(device: &B::Device) {
        let x = inputs(4 * 8, 63);
        let (a, b) = two_views::<B>(&x, &x, 4, 8, device);
        let v = HardNegativeLossConfig::new()
            .with_temperature(0.05)
            .with_beta(2.0)
            .init()
            .forward(a, b);
        assert!(to_vec_f32(v)[0].is_finite());
    }

    contrast_core::backend_tests!(hcl_matches_reference, hcl_reduces_to_nt_xent, hcl_is_stable);

    #[test]
    fn validate_rejects_bad_priors() {
        assert!(
            HardNegativeLossConfig::new()
                .with_tau_plus(1.0)
                .validate()
                .is_err()
        );
        assert!(
            HardNegativeLossConfig::new()
                .with_beta(-0.1)
                .validate()
                .is_err()
        );
        assert!(HardNegativeLossConfig::new().validate().is_ok());
    }
}
