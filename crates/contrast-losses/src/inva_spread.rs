use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use contrast_core::{Error, ensure_positive};

use crate::util::{MASKED, arange, check_same_shape, host_mask, log_sum_exp, maybe_normalize};

/// Configuration of [`InvaSpreadLoss`].
#[derive(Config, Debug)]
pub struct InvaSpreadLossConfig {
    /// Temperature tau (paper: 0.1).
    #[config(default = 0.1)]
    pub temperature: f64,
}

impl InvaSpreadLossConfig {
    /// Checks the temperature.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `temperature` is not finite and positive.
    pub fn validate(&self) -> Result<(), Error> {
        ensure_positive("temperature", self.temperature)
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails.
    pub fn init(&self) -> InvaSpreadLoss {
        if let Err(e) = self.validate() {
            panic!("InvaSpreadLossConfig::init: {e}");
        }
        InvaSpreadLoss {
            temperature: self.temperature,
        }
    }
}

/// The instance-wise binary classification loss of InvaSpread (end-to-end paradigm).
///
/// A softmax embedding over the batch: the `2n` L2-normalised features (images and their
/// augmented copies) classify each other. Anchor `i` should be recognised as its augmented
/// copy `p(i)` (invariance) and as *not* being any other instance (spreading):
///
/// ```text
/// P_ij = exp(f_i . f_j / tau) / sum_{k != i} exp(f_i . f_k / tau)
/// loss = -1/(2n) * sum_i [ log P_{i,p(i)} + sum_{j not in {i, p(i)}} log(1 - P_ij) ]
/// ```
///
/// This is the symmetric batch form of the authors' PyTorch code (every feature is an anchor).
/// `log(1 - P_ij)` is `log1p(-P_ij)` except for the largest entry of a row, where it is the
/// log-probability of the rest of the row, so that no `1 - P` near zero loses its digits.
///
/// Ye et al., "Unsupervised Embedding Learning via Invariant and Spreading Instance Feature",
/// CVPR 2019, <https://arxiv.org/abs/1904.03436>.
///
/// # Shapes
/// - `features`, `augmented`: `[n, d]` -> scalar `[1]`
///
/// # Panics
/// If the two inputs differ in shape or are empty.
#[derive(Debug, Clone)]
pub struct InvaSpreadLoss {
    temperature: f64,
}

impl InvaSpreadLoss {
    /// The loss; see the type's documentation.
    pub fn forward<B: Backend>(
        &self,
        features: Tensor<B, 2>,
        augmented: Tensor<B, 2>,
    ) -> Tensor<B, 1> {
        check_same_shape("InvaSpreadLoss::forward", features.dims(), augmented.dims());
        let [n, _] = features.dims();
        let m = 2 * n;
        let device = features.device();
        let f = maybe_normalize(Tensor::cat(vec![features, augmented], 0), true);
        let own = host_mask::<B>(m, m, &device, |i, j| i == j);
        let s = (f.clone().matmul(f.transpose()) / self.temperature).mask_fill(own, MASKED);
        let lse = log_sum_exp(s.clone());
        let log_p = s.clone() - lse.clone().unsqueeze_dim(1);
        let partners = (arange::<B>(m, &device) + n as i64).remainder_scalar(m as i64);
        let pos = log_p.clone().gather(1, partners.reshape([m, 1])).sum();
        let negatives = host_mask::<B>(m, m, &device, |i, j| j != i && j != (i + n) % m).float();
        // log(1 - P_ij) without cancellation: log1p(-P) is accurate while P <= 1/2, which holds
        // for every entry of a row but its largest; for that one, 1 - P_ij is the probability
        // of the rest of the row, taken in log space (a log-sum-exp without entry j).
        let largest = s.clone().argmax(1).repeat_dim(1, m);
        let columns = arange::<B>(m, &device).reshape([1, m]).repeat_dim(0, m);
        let is_largest = columns.equal(largest);
        let log_rest = log_sum_exp(s.mask_fill(is_largest.clone(), MASKED)) - lse;
        let log_not = log_p
            .exp()
            .clamp_max(0.5)
            .neg()
            .log1p()
            .mask_where(is_largest, log_rest.unsqueeze_dim::<2>(1).repeat_dim(1, m));
        let neg = (log_not * negatives).sum();
        (pos + neg).neg() / m as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{dot, fd_reference, unit_rows};
    use burn::tensor::backend::AutodiffBackend;

    fn reference(x: &[f64], n: usize, d: usize, t: f64) -> f64 {
        let rows = unit_rows(x, d);
        let m = 2 * n;
        let s = |i: usize, j: usize| dot(&rows[i], &rows[j]) / t;
        let mut total = 0.0;
        for i in 0..m {
            let denom: f64 = (0..m).filter(|&j| j != i).map(|j| s(i, j).exp()).sum();
            let p = |j: usize| s(i, j).exp() / denom;
            total += p((i + n) % m).ln();
            for j in (0..m).filter(|&j| j != i && j != (i + n) % m) {
                total += (1.0 - p(j)).ln();
            }
        }
        -total / m as f64
    }

    fn inva_spread_matches_reference<B: AutodiffBackend>(device: &B::Device) {
        fd_reference::<B>(
            device,
            3,
            4,
            21,
            |x| reference(x, 3, 4, 0.5),
            |a, b| {
                InvaSpreadLossConfig::new()
                    .with_temperature(0.5)
                    .init()
                    .forward(a, b)
            },
        );
    }

    /// A row whose largest probability is within float rounding of 1 (two nearly parallel
    /// features at temperature 0.1): the loss matches the f64 reference and does not depend on
    /// the order of the batch (a proptest found 11.3435 against 11.3568 when `log(1 - P)` was
    /// taken as `log1p(-P)` with `P` clamped).
    fn inva_spread_is_stable_when_a_negative_dominates<B: AutodiffBackend>(device: &B::Device) {
        let x: Vec<f32> = vec![
            0.736_152_1,
            -0.707_114_7,
            2.406_031_6,
            0.0,
            -2.090_794_8,
            -0.008_627_953,
            -2.871_208_2,
            -1.272_223_8,
            1.105_450_6,
            0.0,
            0.265_043_9,
            1.209_749_5,
        ];
        let (n, d) = (3, 2);
        let loss = |x: &[f32]| {
            let t = |v: &[f32]| {
                Tensor::<B, 2>::from_data(burn::tensor::TensorData::new(v.to_vec(), [n, d]), device)
            };
            let l = InvaSpreadLossConfig::new()
                .init()
                .forward(t(&x[..n * d]), t(&x[n * d..]));
            contrast_core::to_vec_f32(l)[0] as f64
        };
        let permute = |v: &[f32]| -> Vec<f32> {
            [1, 2, 0]
                .iter()
                .flat_map(|&i| v[i * d..(i + 1) * d].to_vec())
                .collect()
        };
        let shuffled = [permute(&x[..n * d]), permute(&x[n * d..])].concat();
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let expected = reference(&x64, n, d, 0.1);
        for value in [loss(&x), loss(&shuffled)] {
            assert!(
                (value - expected).abs() <= 1e-4 * expected.abs(),
                "{value} vs f64 reference {expected}"
            );
        }
    }

    contrast_core::backend_tests!(
        inva_spread_matches_reference,
        inva_spread_is_stable_when_a_negative_dominates
    );
}
