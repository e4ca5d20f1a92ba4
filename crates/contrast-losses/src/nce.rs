use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use contrast_core::{Error, ensure_finite, ensure_positive, to_vec_f32};
use serde::{Deserialize, Serialize};

use crate::util::{check_same_dim, check_same_shape, maybe_normalize, softplus};

/// Configuration of [`NceLoss`].
#[derive(Config, Debug)]
pub struct NceLossConfig {
    /// Number of instances in the dataset (rows of the memory bank), `n` in the formula.
    pub num_instances: usize,
    /// Noise samples per step, `m` (paper: 4096).
    #[config(default = 4096)]
    pub noise_samples: usize,
    /// Temperature tau (paper: 0.07).
    #[config(default = 0.07)]
    pub temperature: f64,
    /// Weight lambda of the proximal term `||f_i - v_i||^2` (0 turns it off).
    #[config(default = 0.0)]
    pub proximal_weight: f64,
    /// L2-normalise the features (the bank rows are stored normalised).
    #[config(default = true)]
    pub normalize: bool,
}

impl NceLossConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field: `num_instances` or `noise_samples` of 0,
    /// `noise_samples >= num_instances`, a non-positive temperature, a negative or non-finite
    /// proximal weight.
    pub fn validate(&self) -> Result<(), Error> {
        ensure_positive("temperature", self.temperature)?;
        ensure_finite("proximal_weight", self.proximal_weight)?;
        if self.proximal_weight < 0.0 {
            return Err(Error::invalid_config(
                "proximal_weight",
                self.proximal_weight,
                "must be >= 0",
            ));
        }
        if self.num_instances < 2 {
            return Err(Error::invalid_config(
                "num_instances",
                self.num_instances,
                "must be at least 2",
            ));
        }
        if self.noise_samples == 0 || self.noise_samples >= self.num_instances {
            return Err(Error::invalid_config(
                "noise_samples",
                self.noise_samples,
                format!(
                    "must be in 1..{} (the number of instances)",
                    self.num_instances
                ),
            ));
        }
        Ok(())
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails.
    pub fn init(&self) -> NceLoss {
        if let Err(e) = self.validate() {
            panic!("NceLossConfig::init: {e}");
        }
        NceLoss {
            n: self.num_instances,
            m: self.noise_samples,
            temperature: self.temperature,
            proximal: self.proximal_weight,
            normalize: self.normalize,
        }
    }
}

/// Noise-contrastive estimation of the non-parametric softmax of InstDisc.
///
/// Every instance `i` is its own class, represented by its memory-bank row `v_i`. The softmax
/// `P(i|f) = exp(v_i . f / tau) / Z` over all `n` instances is too costly, so NCE trains a
/// binary classifier between the data and `m` noise samples drawn uniformly (`P_n = 1/n`):
///
/// ```text
/// h(i, f)   = P(i|f) / (P(i|f) + m P_n)
/// loss      = -mean_batch [ log h(i, f_i) + sum_{j in noise} log(1 - h(j, f_i)) ]
///           + lambda * mean_batch ||f_i - v_i||^2          (proximal term, optional)
/// Z        ~= n * mean_j exp(v_j . f / tau)                (estimated, then frozen)
/// ```
///
/// Both log terms are computed as `-softplus(.)` of log-ratios, so nothing overflows at
/// `tau = 0.07`. The noise rows are shared by the whole batch (`[m, d]`), which keeps the
/// step at `O(b m)` memory instead of the reference code's `O(b m d)`; each row's loss is
/// still an unbiased NCE estimate.
///
/// Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance Discrimination",
/// CVPR 2018, <https://arxiv.org/abs/1805.01978>.
///
/// # Shapes
/// - `features`: `[b, d]`, `positives` (bank rows of the batch): `[b, d]`, `noise`: `[m, d]`
///   -> scalar `[1]`
///
/// # Panics
/// If the shapes disagree, or `noise` does not have the configured `m` rows.
#[derive(Debug, Clone)]
pub struct NceLoss {
    n: usize,
    m: usize,
    temperature: f64,
    proximal: f64,
    normalize: bool,
}

impl NceLoss {
    /// The configured number of noise samples `m`.
    pub fn noise_samples(&self) -> usize {
        self.m
    }

    /// The loss for partition-function estimate `z`; see the type's documentation.
    /// `positives` and `noise` are detached.
    pub fn forward<B: Backend>(
        &self,
        features: Tensor<B, 2>,
        positives: Tensor<B, 2>,
        noise: Tensor<B, 2>,
        z: f64,
    ) -> Tensor<B, 1> {
        check_same_shape("NceLoss::forward", features.dims(), positives.dims());
        check_same_dim("NceLoss::forward (noise)", features.dims(), noise.dims());
        assert!(
            noise.dims()[0] == self.m,
            "NceLoss::forward: noise has {} rows, the loss was configured for m = {}",
            noise.dims()[0],
            self.m
        );
        assert!(
            z.is_finite() && z > 0.0,
            "NceLoss::forward: partition estimate Z = {z} must be > 0"
        );
        let f = maybe_normalize(features, self.normalize);
        let v = positives.detach();
        // log(m P_n) + log Z: the offset of both log-ratios.
        let offset = (self.m as f64 / self.n as f64).ln() + z.ln();
        let pos_logit = (f.clone() * v.clone()).sum_dim(1) / self.temperature;
        let noise_logit = f.clone().matmul(noise.detach().transpose()) / self.temperature;
        // log h = -softplus(offset - s);  log(1 - h) = -softplus(s - offset)
        let data_term = softplus(pos_logit.neg() + offset).sum();
        let noise_term = softplus(noise_logit - offset).sum();
        let [b, _] = f.dims();
        let mut loss = (data_term + noise_term) / b as f64;
        if self.proximal > 0.0 {
            loss = loss + (f - v).square().sum() * (self.proximal / b as f64);
        }
        loss
    }

    /// One batch's estimate of the partition function, `n * mean exp(v_j . f / tau)` over the
    /// noise rows; feed it to a [`PartitionEstimate`].
    pub fn partition_estimate<B: Backend>(
        &self,
        features: Tensor<B, 2>,
        noise: Tensor<B, 2>,
    ) -> f64 {
        check_same_dim("NceLoss::partition_estimate", features.dims(), noise.dims());
        let f = maybe_normalize(features.detach(), self.normalize);
        let mean = (f.matmul(noise.detach().transpose()) / self.temperature)
            .exp()
            .mean();
        to_vec_f32(mean)[0] as f64 * self.n as f64
    }
}

/// The running estimate of InstDisc's normalising constant `Z`: the mean of the first
/// `warmup_batches` batch estimates, then frozen, as the paper and its reference code do.
/// It is plain data so that it goes into the training checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionEstimate {
    warmup_batches: usize,
    seen: usize,
    sum: f64,
}

impl PartitionEstimate {
    /// An estimate averaged over the first `warmup_batches` batches (at least 1).
    pub fn new(warmup_batches: usize) -> Self {
        PartitionEstimate {
            warmup_batches: warmup_batches.max(1),
            seen: 0,
            sum: 0.0,
        }
    }

    /// Records a batch estimate while warming up and returns the value to use for this batch.
    ///
    /// # Panics
    /// If `batch_estimate` is not finite and positive (the features were NaN or infinite).
    pub fn observe(&mut self, batch_estimate: f64) -> f64 {
        if self.seen < self.warmup_batches {
            assert!(
                batch_estimate.is_finite() && batch_estimate > 0.0,
                "PartitionEstimate::observe: batch estimate {batch_estimate} is not a positive number"
            );
            self.sum += batch_estimate;
            self.seen += 1;
        }
        self.sum / self.seen as f64
    }

    /// The frozen value, once the warm-up is over.
    pub fn value(&self) -> Option<f64> {
        (self.seen >= self.warmup_batches).then(|| self.sum / self.seen as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{inputs, matrix, unit};
    use burn::tensor::backend::AutodiffBackend;
    use contrast_core::testing::{assert_close, finite_difference};

    /// f64 reference in the reference code's own form: probabilities, then logs.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        f: &[f64],
        v: &[f64],
        noise: &[f64],
        b: usize,
        d: usize,
        n: usize,
        t: f64,
        z: f64,
        lambda: f64,
    ) -> f64 {
        let m = noise.len() / d;
        let pn = 1.0 / n as f64;
        let mut total = 0.0;
        for i in 0..b {
            let fi = unit(&f[i * d..(i + 1) * d]);
            let vi = &v[i * d..(i + 1) * d];
            let p = (fi.iter().zip(vi).map(|(a, c)| a * c).sum::<f64>() / t).exp() / z;
            total -= (p / (p + m as f64 * pn)).ln();
            for j in 0..m {
                let nj = &noise[j * d..(j + 1) * d];
                let q = (fi.iter().zip(nj).map(|(a, c)| a * c).sum::<f64>() / t).exp() / z;
                total -= (m as f64 * pn / (q + m as f64 * pn)).ln();
            }
            total += lambda * fi.iter().zip(vi).map(|(a, c)| (a - c).powi(2)).sum::<f64>();
        }
        total / b as f64
    }

    fn nce_matches_reference<B: AutodiffBackend>(device: &B::Device) {
        let (b, d, n, m, t, z) = (3, 4, 50, 5, 0.5, 30.0);
        let f = inputs(b * d, 11);
        let v = inputs(b * d, 12);
        let noise = inputs(m * d, 13);
        for lambda in [0.0, 0.7] {
            let loss = NceLossConfig::new(n)
                .with_noise_samples(m)
                .with_temperature(t)
                .with_proximal_weight(lambda)
                .init();
            let ft = matrix::<B>(&f, b, d, device).require_grad();
            let value = loss.forward(
                ft.clone(),
                matrix::<B>(&v, b, d, device),
                matrix::<B>(&noise, m, d, device),
                z,
            );
            let grad = to_vec_f32(ft.grad(&value.backward()).unwrap());
            let r = |x: &[f64]| reference(x, &v, &noise, b, d, n, t, z, lambda);
            assert_close(&to_vec_f32(value), &[r(&f) as f32], 2e-5);
            let fd: Vec<f32> = finite_difference(r, &f, 1e-6)
                .into_iter()
                .map(|g| g as f32)
                .collect();
            assert_close(&grad, &fd, 2e-4);
        }
    }

    /// At tau = 0.07 with aligned vectors (logit 14.3) and a tiny Z, nothing overflows.
    fn nce_is_stable<B: AutodiffBackend>(device: &B::Device) {
        let loss = NceLossConfig::new(1_000_000).with_noise_samples(2).init();
        let f = matrix::<B>(&[1.0, 0.0], 1, 2, device);
        let value = loss.forward(
            f.clone(),
            f.clone(),
            matrix::<B>(&[1.0, 0.0, -1.0, 0.0], 2, 2, device),
            1e-30,
        );
        let v = to_vec_f32(value)[0];
        assert!(v.is_finite() && v >= 0.0, "{v}");
    }

    /// Z estimate: with every noise row equal to the feature, exp(1/tau) * n exactly.
    fn nce_partition_estimate<B: AutodiffBackend>(device: &B::Device) {
        let loss = NceLossConfig::new(10)
            .with_noise_samples(2)
            .with_temperature(0.5)
            .init();
        let f = matrix::<B>(&[0.6, 0.8], 1, 2, device);
        let z =
            loss.partition_estimate(f.clone(), matrix::<B>(&[0.6, 0.8, 0.6, 0.8], 2, 2, device));
        assert!((z - 10.0 * 2f64.exp()).abs() < 1e-3, "{z}");
    }

    contrast_core::backend_tests!(nce_matches_reference, nce_is_stable, nce_partition_estimate);

    #[test]
    fn partition_estimate_freezes_after_warmup() {
        let mut z = PartitionEstimate::new(2);
        assert_eq!(z.value(), None);
        assert_eq!(z.observe(10.0), 10.0);
        assert_eq!(z.observe(20.0), 15.0);
        assert_eq!(z.observe(1000.0), 15.0);
        assert_eq!(z.value(), Some(15.0));
    }

    #[test]
    fn validate_names_the_field() {
        let e = NceLossConfig::new(100)
            .with_noise_samples(100)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("noise_samples"), "{e}");
        let e = NceLossConfig::new(100)
            .with_noise_samples(10)
            .with_proximal_weight(-1.0)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("proximal_weight"), "{e}");
        assert!(
            NceLossConfig::new(100)
                .with_noise_samples(10)
                .validate()
                .is_ok()
        );
    }
}
