use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use contrast_core::{Error, NORM_EPS, cosine_similarity_matrix, ensure_positive};

use crate::util::{check_same_shape, host_mask, log_sum_exp};

/// Configuration of [`GraphClLoss`].
#[derive(Config, Debug)]
pub struct GraphClLossConfig {
    /// Temperature tau (GraphCL: 0.2).
    #[config(default = 0.2)]
    pub temperature: f64,
}

impl GraphClLossConfig {
    /// Checks the temperature.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a non-positive temperature.
    pub fn validate(&self) -> Result<(), Error> {
        ensure_positive("temperature", self.temperature)
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails.
    pub fn init(&self) -> GraphClLoss {
        if let Err(e) = self.validate() {
            panic!("GraphClLossConfig::init: {e}");
        }
        GraphClLoss {
            temperature: self.temperature,
        }
    }
}

/// GraphCL's objective (You et al., NeurIPS 2020, <https://arxiv.org/abs/2010.13902>), as its
/// unsupervised graph-classification code computes it: one direction, the other graphs' second
/// views as the only negatives, and the positive left out of the denominator.
///
/// ```text
/// s_ij = cos(z1_i, z2_j) / tau
/// loss = mean_i [ -s_ii + log sum_{j != i} exp(s_ij) ]
/// ```
///
/// # Shapes
/// - `z1`, `z2`: `[n, d]`, `n >= 2` -> scalar `[1]`
///
/// # Panics
/// If the inputs differ in shape or have fewer than two rows (no negative).
#[derive(Debug, Clone)]
pub struct GraphClLoss {
    temperature: f64,
}

impl GraphClLoss {
    /// The loss of the first views `z1` against the second views `z2`.
    pub fn forward<B: Backend>(&self, z1: Tensor<B, 2>, z2: Tensor<B, 2>) -> Tensor<B, 1> {
        check_same_shape("GraphClLoss::forward", z1.dims(), z2.dims());
        let [n, _] = z1.dims();
        assert!(n >= 2, "GraphClLoss::forward: {n} rows, need at least 2");
        let device = z1.device();
        let s = cosine_similarity_matrix(z1, z2, NORM_EPS) / self.temperature;
        let diagonal = host_mask::<B>(n, n, &device, |i, j| i == j).float();
        let positive = (s.clone() * diagonal.clone()).sum_dim(1).reshape([n]);
        // The positive leaves the denominator: its logit is pushed far below the others.
        let negatives = log_sum_exp(s - diagonal * 1.0e4);
        (negatives - positive).mean()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{dot, fd_reference, unit};
    use burn::tensor::backend::AutodiffBackend;

    fn reference(a: &[f64], b: &[f64], n: usize, d: usize, t: f64) -> f64 {
        let row = |x: &[f64], i: usize| unit(&x[i * d..(i + 1) * d]);
        let mut total = 0.0;
        for i in 0..n {
            let s: Vec<f64> = (0..n).map(|j| dot(&row(a, i), &row(b, j)) / t).collect();
            let neg: f64 = (0..n).filter(|&j| j != i).map(|j| s[j].exp()).sum();
            total += neg.ln() - s[i];
        }
        total / n as f64
    }

    fn graphcl_matches_reference<B: AutodiffBackend>(device: &B::Device) {
        let (n, d, t) = (5, 3, 0.2);
        fd_reference::<B>(
            device,
            n,
            d,
            77,
            |x| reference(&x[..n * d], &x[n * d..], n, d, t),
            |a, b| GraphClLossConfig::new().init().forward(a, b),
        );
    }

    contrast_core::backend_tests!(graphcl_matches_reference);

    #[test]
    #[should_panic(expected = "need at least 2")]
    fn one_row_has_no_negative() {
        let device = Default::default();
        let z = Tensor::<contrast_core::testing::Flex, 2>::ones([1, 4], &device);
        let _ = GraphClLossConfig::new().init().forward(z.clone(), z);
    }
}
