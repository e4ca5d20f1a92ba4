use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use contrast_core::{Error, NORM_EPS, cosine_similarity_matrix, ensure_finite, ensure_positive};

use crate::util::{arange, check_same_shape, cross_entropy, host_mask};

/// Configuration of [`SimCseLoss`].
#[derive(Config, Debug)]
pub struct SimCseLossConfig {
    /// Temperature tau (SimCSE: 0.05).
    #[config(default = 0.05)]
    pub temperature: f64,
    /// Supervised only: a value added to the logit of each anchor's own hard negative (the
    /// official `hard_negative_weight`; 0 leaves it as is).
    #[config(default = 0.0)]
    pub hard_negative_weight: f64,
}

impl SimCseLossConfig {
    /// Checks both fields.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a non-positive temperature or a non-finite weight.
    pub fn validate(&self) -> Result<(), Error> {
        ensure_positive("temperature", self.temperature)?;
        ensure_finite("hard_negative_weight", self.hard_negative_weight)
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails.
    pub fn init(&self) -> SimCseLoss {
        if let Err(e) = self.validate() {
            panic!("SimCseLossConfig::init: {e}");
        }
        SimCseLoss {
            temperature: self.temperature,
            hard_negative_weight: self.hard_negative_weight,
        }
    }
}

/// The SimCSE objective for sentence embeddings.
///
/// Unsupervised: the two views are two forward passes of the same sentences with different
/// dropout masks; anchors are the first view only (one direction):
///
/// ```text
/// loss = mean_i CE( cos(h_i, h'_j) / tau over j , target i )
/// ```
///
/// Supervised (NLI triplets: anchor, entailment, contradiction): the contradictions `h-` join
/// the candidates, and the official `hard_negative_weight` `w` is added to the logit of each
/// anchor's own hard negative:
///
/// ```text
/// logits_i = [ cos(h_i, h+_j) / tau ]_j  ++  [ cos(h_i, h-_j) / tau + w [i == j] ]_j
/// loss     = mean_i CE(logits_i, target i)
/// ```
///
/// Gao et al., "SimCSE: Simple Contrastive Learning of Sentence Embeddings", EMNLP 2021,
/// <https://arxiv.org/abs/2104.08821>.
///
/// # Shapes
/// - every input: `[n, d]` -> scalar `[1]`
///
/// # Panics
/// If the inputs differ in shape or are empty.
#[derive(Debug, Clone)]
pub struct SimCseLoss {
    temperature: f64,
    hard_negative_weight: f64,
}

impl SimCseLoss {
    /// The unsupervised loss (dropout views).
    pub fn forward<B: Backend>(&self, z1: Tensor<B, 2>, z2: Tensor<B, 2>) -> Tensor<B, 1> {
        check_same_shape("SimCseLoss::forward", z1.dims(), z2.dims());
        let [n, _] = z1.dims();
        let device = z1.device();
        let logits = cosine_similarity_matrix(z1, z2, NORM_EPS) / self.temperature;
        cross_entropy(logits, arange::<B>(n, &device))
    }

    /// The supervised loss with one hard negative per anchor.
    pub fn forward_supervised<B: Backend>(
        &self,
        anchors: Tensor<B, 2>,
        positives: Tensor<B, 2>,
        hard_negatives: Tensor<B, 2>,
    ) -> Tensor<B, 1> {
        check_same_shape(
            "SimCseLoss::forward_supervised",
            anchors.dims(),
            positives.dims(),
        );
        check_same_shape(
            "SimCseLoss::forward_supervised",
            anchors.dims(),
            hard_negatives.dims(),
        );
        let [n, _] = anchors.dims();
        let device = anchors.device();
        let pos = cosine_similarity_matrix(anchors.clone(), positives, NORM_EPS);
        let neg = cosine_similarity_matrix(anchors, hard_negatives, NORM_EPS);
        let mut logits = Tensor::cat(vec![pos, neg], 1) / self.temperature;
        if self.hard_negative_weight != 0.0 {
            let own = host_mask::<B>(n, 2 * n, &device, |i, j| j == n + i).float();
            logits = logits + own * self.hard_negative_weight;
        }
        cross_entropy(logits, arange::<B>(n, &device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{dot, fd_reference, inputs, matrix, unit};
    use burn::tensor::backend::AutodiffBackend;
    use contrast_core::testing::{assert_close, finite_difference};
    use contrast_core::to_vec_f32;

    fn cos(a: &[f64], b: &[f64]) -> f64 {
        dot(&unit(a), &unit(b))
    }

    /// f64 reference of both forms (`third` = hard negatives for the supervised one).
    fn reference(
        a: &[f64],
        b: &[f64],
        third: Option<&[f64]>,
        n: usize,
        d: usize,
        t: f64,
        w: f64,
    ) -> f64 {
        let row = |x: &[f64], i: usize| x[i * d..(i + 1) * d].to_vec();
        let mut total = 0.0;
        for i in 0..n {
            let mut logits: Vec<f64> = (0..n).map(|j| cos(&row(a, i), &row(b, j)) / t).collect();
            if let Some(h) = third {
                logits.extend(
                    (0..n).map(|j| cos(&row(a, i), &row(h, j)) / t + if i == j { w } else { 0.0 }),
                );
            }
            total += logits.iter().map(|l| l.exp()).sum::<f64>().ln() - logits[i];
        }
        total / n as f64
    }

    fn simcse_unsupervised_matches_reference<B: AutodiffBackend>(device: &B::Device) {
        fd_reference::<B>(
            device,
            4,
            3,
            41,
            |x| reference(&x[..12], &x[12..], None, 4, 3, 0.5, 0.0),
            |a, b| {
                SimCseLossConfig::new()
                    .with_temperature(0.5)
                    .init()
                    .forward(a, b)
            },
        );
    }

    fn simcse_supervised_matches_reference<B: AutodiffBackend>(device: &B::Device) {
        let (n, d, t, w) = (3, 4, 0.3, 0.7);
        let h = inputs(n * d, 43);
        fd_reference::<B>(
            device,
            n,
            d,
            42,
            |x| reference(&x[..n * d], &x[n * d..], Some(&h), n, d, t, w),
            |a, b| {
                SimCseLossConfig::new()
                    .with_temperature(t)
                    .with_hard_negative_weight(w)
                    .init()
                    .forward_supervised(a, b, matrix::<B>(&h, n, d, device))
            },
        );
        // The gradient reaches the hard negatives too.
        let a = matrix::<B>(&inputs(n * d, 44), n, d, device);
        let ht = matrix::<B>(&h, n, d, device).require_grad();
        let loss = SimCseLossConfig::new()
            .with_temperature(t)
            .with_hard_negative_weight(w)
            .init();
        let v = loss.forward_supervised(a.clone(), a.clone(), ht.clone());
        let g = to_vec_f32(ht.grad(&v.backward()).unwrap());
        let a64 = inputs(n * d, 44)
            .iter()
            .map(|&v| v as f32 as f64)
            .collect::<Vec<_>>();
        let fd: Vec<f32> =
            finite_difference(|x| reference(&a64, &a64, Some(x), n, d, t, w), &h, 1e-6)
                .into_iter()
                .map(|g| g as f32)
                .collect();
        assert_close(&g, &fd, 2e-4);
    }

    contrast_core::backend_tests!(
        simcse_unsupervised_matches_reference,
        simcse_supervised_matches_reference
    );

    #[test]
    fn nan_weight_is_rejected() {
        let e = SimCseLossConfig::new()
            .with_hard_negative_weight(f64::NAN)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("hard_negative_weight"), "{e}");
    }
}
