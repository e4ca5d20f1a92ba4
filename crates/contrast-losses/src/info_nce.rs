use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use contrast_core::{Error, ensure_positive};

use crate::util::{
    MASKED, check_same_dim, check_same_shape, cross_entropy, host_mask, maybe_normalize,
};

/// Configuration of [`InfoNceLoss`].
#[derive(Config, Debug)]
pub struct InfoNceLossConfig {
    /// Softmax temperature tau (MoCo v1: 0.07, MoCo v2: 0.2).
    #[config(default = 0.07)]
    pub temperature: f64,
    /// L2-normalise queries, keys and negatives first.
    #[config(default = true)]
    pub normalize: bool,
    /// Also use the other keys of the batch as negatives (MoCo v3 style), besides the stored set.
    #[config(default = false)]
    pub in_batch_negatives: bool,
}

impl InfoNceLossConfig {
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
    pub fn init(&self) -> InfoNceLoss {
        if let Err(e) = self.validate() {
            panic!("InfoNceLossConfig::init: {e}");
        }
        InfoNceLoss {
            temperature: self.temperature,
            normalize: self.normalize,
            in_batch: self.in_batch_negatives,
        }
    }
}

/// InfoNCE with an external set of negatives that receives no gradient: the loss of the
/// momentum-encoder (MoCo queue) and memory-bank paradigms.
///
/// ```text
/// l_pos = q_i . k_i / tau
/// l_neg = q_i . n_j / tau                  for the k stored negatives n_j (detached)
///       (+ q_i . k_j / tau, j != i         with in-batch negatives)
/// loss  = mean_i [ -l_pos + log(exp(l_pos) + sum exp(l_neg)) ]
/// ```
///
/// van den Oord et al., "Representation Learning with Contrastive Predictive Coding", 2018,
/// <https://arxiv.org/abs/1807.03748>; He et al., "Momentum Contrast for Unsupervised Visual
/// Representation Learning", CVPR 2020, <https://arxiv.org/abs/1911.05722>.
///
/// Keys are used as given: MoCo's keys come from the key encoder and should already be detached
/// by the caller. The negatives are always detached here.
///
/// # Shapes
/// - `queries`, `keys`: `[n, d]`, `negatives`: `[k, d]` -> scalar `[1]`
///
/// # Panics
/// If `queries` and `keys` differ in shape, or `negatives` has another width.
#[derive(Debug, Clone)]
pub struct InfoNceLoss {
    temperature: f64,
    normalize: bool,
    in_batch: bool,
}

impl InfoNceLoss {
    /// The loss; see the type's documentation.
    pub fn forward<B: Backend>(
        &self,
        queries: Tensor<B, 2>,
        keys: Tensor<B, 2>,
        negatives: Tensor<B, 2>,
    ) -> Tensor<B, 1> {
        check_same_shape("InfoNceLoss::forward", queries.dims(), keys.dims());
        check_same_dim(
            "InfoNceLoss::forward (negatives)",
            queries.dims(),
            negatives.dims(),
        );
        let [n, _] = queries.dims();
        let device = queries.device();
        let q = maybe_normalize(queries, self.normalize);
        let k = maybe_normalize(keys, self.normalize);
        let neg = maybe_normalize(negatives.detach(), self.normalize);
        let l_pos = (q.clone() * k.clone()).sum_dim(1);
        let mut parts = vec![l_pos, q.clone().matmul(neg.transpose())];
        if self.in_batch {
            let own = host_mask::<B>(n, n, &device, |i, j| i == j);
            parts.push(q.matmul(k.transpose()).mask_fill(own, MASKED));
        }
        let logits = Tensor::cat(parts, 1) / self.temperature;
        cross_entropy(logits, Tensor::zeros([n], &device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{dot, fd_reference, inputs, matrix, unit};
    use burn::tensor::backend::AutodiffBackend;
    use contrast_core::testing::assert_close;
    use contrast_core::to_vec_f32;

    /// f64 reference written from the formula.
    fn reference(x: &[f64], negs: &[f64], n: usize, d: usize, t: f64, in_batch: bool) -> f64 {
        let q: Vec<Vec<f64>> = x[..n * d].chunks(d).map(unit).collect();
        let k: Vec<Vec<f64>> = x[n * d..].chunks(d).map(unit).collect();
        let ng: Vec<Vec<f64>> = negs.chunks(d).map(unit).collect();
        let mut total = 0.0;
        for i in 0..n {
            let pos = dot(&q[i], &k[i]) / t;
            let mut denom = pos.exp() + ng.iter().map(|v| (dot(&q[i], v) / t).exp()).sum::<f64>();
            if in_batch {
                denom += (0..n)
                    .filter(|&j| j != i)
                    .map(|j| (dot(&q[i], &k[j]) / t).exp())
                    .sum::<f64>();
            }
            total += denom.ln() - pos;
        }
        total / n as f64
    }

    fn info_nce_matches_reference<B: AutodiffBackend>(device: &B::Device) {
        let negs = inputs(5 * 3, 9);
        for in_batch in [false, true] {
            let cfg = InfoNceLossConfig::new()
                .with_temperature(0.2)
                .with_in_batch_negatives(in_batch);
            fd_reference::<B>(
                device,
                4,
                3,
                4,
                |x| reference(x, &negs, 4, 3, 0.2, in_batch),
                |q, k| cfg.init().forward(q, k, matrix::<B>(&negs, 5, 3, device)),
            );
        }
    }

    /// The stored negatives get no gradient even when they require one.
    fn info_nce_negatives_get_no_gradient<B: AutodiffBackend>(device: &B::Device) {
        let x = inputs(2 * 2 * 3, 1);
        let q = matrix::<B>(&x[..6], 2, 3, device).require_grad();
        let k = matrix::<B>(&x[6..], 2, 3, device);
        let neg = matrix::<B>(&inputs(9, 2), 3, 3, device).require_grad();
        let loss = InfoNceLossConfig::new()
            .init()
            .forward(q.clone(), k, neg.clone());
        let grads = loss.backward();
        assert!(neg.grad(&grads).is_none());
        assert!(q.grad(&grads).is_some());
    }

    /// Hand value: one query equal to its key, one orthogonal negative, tau = 1:
    /// loss = log(e + 1) - 1.
    fn info_nce_hand_value<B: AutodiffBackend>(device: &B::Device) {
        let q = matrix::<B>(&[1.0, 0.0], 1, 2, device);
        let neg = matrix::<B>(&[0.0, 1.0], 1, 2, device);
        let loss = InfoNceLossConfig::new()
            .with_temperature(1.0)
            .init()
            .forward(q.clone(), q, neg);
        assert_close(
            &to_vec_f32(loss),
            &[((1f64).exp() + 1.0).ln() as f32 - 1.0],
            1e-6,
        );
    }

    contrast_core::backend_tests!(
        info_nce_matches_reference,
        info_nce_negatives_get_no_gradient,
        info_nce_hand_value,
    );

    #[test]
    #[should_panic(
        expected = "InfoNceLoss::forward (negatives): embedding dimensions differ, got [2, 3] and [4, 5]"
    )]
    fn negative_width_mismatch_panics() {
        let device = Default::default();
        type B = contrast_core::testing::Flex;
        let q = Tensor::<B, 2>::ones([2, 3], &device);
        InfoNceLossConfig::new().init().forward(
            q.clone(),
            q,
            Tensor::<B, 2>::ones([4, 5], &device),
        );
    }
}
