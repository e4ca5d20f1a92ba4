use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use contrast_core::{Error, ensure_positive};
use contrast_kernels::nt_xent_host;

use crate::util::{
    Kernel, MASKED, arange, check_labels, check_same_shape, cross_entropy, host_mask, log_sum_exp,
    maybe_normalize, partner, with_gradient,
};

/// Configuration of [`NtXentLoss`].
#[derive(Config, Debug)]
pub struct NtXentLossConfig {
    /// Softmax temperature tau; SimCLR uses 0.5 on CIFAR and 0.1 on ImageNet.
    #[config(default = 0.5)]
    pub temperature: f64,
    /// L2-normalise the embeddings first (cosine logits). Turn off only for inputs that are
    /// already normalised.
    #[config(default = true)]
    pub normalize: bool,
    /// Fused host kernel or tensor operations; `Auto` picks the kernel on CPU backends.
    #[config(default = "Kernel::Auto")]
    pub kernel: Kernel,
}

impl NtXentLossConfig {
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
    /// If [`validate`](Self::validate) fails; the message is its error.
    pub fn init(&self) -> NtXentLoss {
        if let Err(e) = self.validate() {
            panic!("NtXentLossConfig::init: {e}");
        }
        NtXentLoss {
            temperature: self.temperature,
            normalize: self.normalize,
            kernel: self.kernel,
        }
    }
}

/// NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR, with in-batch negatives.
///
/// The two views of `n` instances are stacked into `2n` rows `z`. Each row is an anchor whose
/// positive is the other view of its instance and whose negatives are the other `2n - 2` rows:
///
/// ```text
/// s_ij = cos(z_i, z_j) / tau
/// loss = 1/(2n) * sum_i [ -s_{i,p(i)} + log sum_{j != i} exp(s_ij) ]
/// ```
///
/// Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations",
/// ICML 2020, <https://arxiv.org/abs/2002.05709>.
///
/// [`forward_with_labels`](Self::forward_with_labels) removes known false negatives (same
/// label) from the denominator; [`forward_blocked`](Self::forward_blocked) computes the same
/// value and gradient with memory that grows with `n * block` instead of `n^2`.
///
/// On CPU backends (`Kernel::Auto`: `flex` or `ndarray`, whose host kernels this crate's
/// features of those names turn on; see `contrast_kernels::is_host_backend`) value and
/// gradient come from a fused host kernel (`contrast_kernels::nt_xent_host`) that works
/// through 256-row tiles with one `exp` per logit, so `forward` is then also memory-bounded;
/// on GPUs it runs as Burn tensor operations.
///
/// # Shapes
/// - `z1`, `z2`: `[n, d]` -> scalar `[1]`
///
/// # Panics
/// If `z1` and `z2` differ in shape or are empty (message names the op and both shapes).
#[derive(Debug, Clone)]
pub struct NtXentLoss {
    temperature: f64,
    normalize: bool,
    kernel: Kernel,
}

impl NtXentLoss {
    /// The temperature tau.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// The loss over both views; see the type's documentation.
    pub fn forward<B: Backend>(&self, z1: Tensor<B, 2>, z2: Tensor<B, 2>) -> Tensor<B, 1> {
        self.forward_masked(z1, z2, None)
    }

    /// The loss with same-label pairs (other than the positive) dropped from every denominator,
    /// so that instances known to share a class are not pushed apart.
    ///
    /// # Panics
    /// Also if `labels.len() != n`.
    pub fn forward_with_labels<B: Backend>(
        &self,
        z1: Tensor<B, 2>,
        z2: Tensor<B, 2>,
        labels: &[usize],
    ) -> Tensor<B, 1> {
        check_labels("NtXentLoss::forward_with_labels", labels, z1.dims()[0]);
        self.forward_masked(z1, z2, Some(labels))
    }

    fn forward_masked<B: Backend>(
        &self,
        z1: Tensor<B, 2>,
        z2: Tensor<B, 2>,
        labels: Option<&[usize]>,
    ) -> Tensor<B, 1> {
        check_same_shape("NtXentLoss::forward", z1.dims(), z2.dims());
        let [n, d] = z1.dims();
        let device = z1.device();
        let z = maybe_normalize(Tensor::cat(vec![z1, z2], 0), self.normalize);
        if self.kernel.runs_on_host::<B>(&device) {
            let host = contrast_core::to_vec_f32(z.clone().detach());
            let same_label = labels.map(|l| move |i: usize, j: usize| l[i % n] == l[j % n]);
            let exclude = same_label
                .as_ref()
                .map(|f| f as &(dyn Fn(usize, usize) -> bool + Sync));
            let inv_t = (1.0 / self.temperature) as f32;
            let (value, grad) = nt_xent_host(&host, n, d, inv_t, exclude);
            let grad = Tensor::from_data(burn::tensor::TensorData::new(grad, [2 * n, d]), &device);
            let value = Tensor::from_data(
                burn::tensor::TensorData::new(vec![value as f32], [1]),
                &device,
            );
            return with_gradient(z, grad, value);
        }
        let logits = z.clone().matmul(z.transpose()) / self.temperature;
        let excluded = host_mask::<B>(2 * n, 2 * n, &device, |i, j| {
            i == j || labels.is_some_and(|l| j != partner(i, n) && l[i % n] == l[j % n])
        });
        let logits = logits.mask_fill(excluded, MASKED);
        let targets = (arange::<B>(2 * n, &device) + n as i64).remainder_scalar(2 * n as i64);
        cross_entropy(logits, targets)
    }

    /// The same value and gradient as [`forward`](Self::forward), computed `block_rows` anchor
    /// rows at a time so that no `2n x 2n` matrix is ever held.
    ///
    /// The logits of each block are computed without gradient, reduced to their log-sum-exp and
    /// softmax, and folded into the exact gradient with respect to the normalised embeddings:
    ///
    /// ```text
    /// dL/dz_k = 1/(2n tau) * [ sum_j P_kj z_j + sum_i P_ik z_i - 2 z_{p(k)} ]
    /// ```
    ///
    /// where `P` is the row softmax of the logits. A surrogate `<z, G> - <sg(z), G> + L` then
    /// carries value `L` and gradient `G` into the rest of the graph. Peak memory is
    /// `O(n * block_rows + n * d)`.
    ///
    /// # Panics
    /// Also if `block_rows == 0`.
    pub fn forward_blocked<B: Backend>(
        &self,
        z1: Tensor<B, 2>,
        z2: Tensor<B, 2>,
        block_rows: usize,
    ) -> Tensor<B, 1> {
        check_same_shape("NtXentLoss::forward_blocked", z1.dims(), z2.dims());
        assert!(
            block_rows > 0,
            "NtXentLoss::forward_blocked: block_rows must be > 0"
        );
        let [n, d] = z1.dims();
        let m = 2 * n;
        let device = z1.device();
        let inv_t = 1.0 / self.temperature;
        let z = maybe_normalize(Tensor::cat(vec![z1, z2], 0), self.normalize);
        let zd = z.clone().detach();
        let zt = zd.clone().transpose();
        let swapped = Tensor::cat(vec![zd.clone().slice(n..m), zd.clone().slice(0..n)], 0);

        let mut row_parts = Vec::new();
        let mut col_part = Tensor::<B, 2>::zeros([m, d], &device);
        let mut lse_sum = Tensor::<B, 1>::zeros([1], &device);
        for start in (0..m).step_by(block_rows) {
            let end = (start + block_rows).min(m);
            let b = end - start;
            let zb = zd.clone().slice(start..end);
            let own = Tensor::<B, 2>::zeros([b, m], &device)
                .slice_assign([0..b, start..end], Tensor::eye(b, &device))
                .equal_elem(1.0);
            let s = (zb.clone().matmul(zt.clone()) * inv_t).mask_fill(own, MASKED);
            let lse = log_sum_exp(s.clone());
            let p = (s - lse.clone().unsqueeze_dim(1)).exp();
            lse_sum = lse_sum + lse.sum();
            row_parts.push(p.clone().matmul(zd.clone()));
            col_part = col_part + p.transpose().matmul(zb);
        }
        let pos_sum = (zd.clone() * swapped.clone()).sum() * inv_t;
        let value = (lse_sum - pos_sum) / m as f64;
        let grad =
            ((Tensor::cat(row_parts, 0) + col_part) * inv_t - swapped * (2.0 * inv_t)) / m as f64;
        (z * grad.clone()).sum() - (zd * grad).sum() + value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{dot, fd_reference, two_views, unit_rows};
    use burn::tensor::backend::AutodiffBackend;
    use contrast_core::testing::assert_close;
    use contrast_core::to_vec_f32;

    /// Host reference in f64: NT-Xent written from the formula, no Burn.
    pub(crate) fn reference(
        x: &[f64],
        n: usize,
        d: usize,
        t: f64,
        labels: Option<&[usize]>,
    ) -> f64 {
        let rows = unit_rows(x, d);
        let m = 2 * n;
        let mut total = 0.0;
        for i in 0..m {
            let p = (i + n) % m;
            let s = |j: usize| dot(&rows[i], &rows[j]) / t;
            let denom: f64 = (0..m)
                .filter(|&j| j != i)
                .filter(|&j| j == p || labels.is_none_or(|l| l[i % n] != l[j % n]))
                .map(|j| s(j).exp())
                .sum();
            total += denom.ln() - s(p);
        }
        total / m as f64
    }

    /// A hand-worked case: n = 1, orthogonal views. Rows z1 = (1,0), z2 = (0,1): each anchor's
    /// only other row is its positive, so the loss is -s + log exp(s) = 0 exactly.
    fn nt_xent_single_pair_is_zero<B: AutodiffBackend>(device: &B::Device) {
        let (z1, z2) = two_views::<B>(&[1.0, 0.0], &[0.0, 1.0], 1, 2, device);
        let loss = NtXentLossConfig::new().init().forward(z1, z2);
        assert_close(&to_vec_f32(loss), &[0.0], 1e-6);
    }

    /// Two instances, tau = 1, z1 = (e1, e2), z2 = (e1, e2): for anchor 0 the positive has
    /// cosine 1 and the two negatives cosines 0 and 0, so loss = log(e + 2) - 1 by hand.
    fn nt_xent_hand_value<B: AutodiffBackend>(device: &B::Device) {
        let (z1, z2) = two_views::<B>(&[1.0, 0.0, 0.0, 1.0], &[1.0, 0.0, 0.0, 1.0], 2, 2, device);
        let loss = NtXentLossConfig::new()
            .with_temperature(1.0)
            .init()
            .forward(z1, z2);
        let expected = ((1f64).exp() + 2.0).ln() - 1.0;
        assert_close(&to_vec_f32(loss), &[expected as f32], 1e-6);
    }

    const KERNELS: [Kernel; 2] = [Kernel::Tensor, Kernel::Host];

    /// Value and gradient against the f64 host reference and its finite differences.
    fn nt_xent_matches_reference<B: AutodiffBackend>(device: &B::Device) {
        for kernel in KERNELS {
            fd_reference::<B>(
                device,
                3,
                4,
                0,
                |x| reference(x, 3, 4, 0.5, None),
                |z1, z2| {
                    NtXentLossConfig::new()
                        .with_kernel(kernel)
                        .init()
                        .forward(z1, z2)
                },
            );
        }
    }

    fn nt_xent_labels_match_reference<B: AutodiffBackend>(device: &B::Device) {
        let labels = [0usize, 1, 0, 2];
        for kernel in KERNELS {
            fd_reference::<B>(
                device,
                4,
                3,
                1,
                |x| reference(x, 4, 3, 0.3, Some(&labels)),
                |z1, z2| {
                    NtXentLossConfig::new()
                        .with_temperature(0.3)
                        .with_kernel(kernel)
                        .init()
                        .forward_with_labels(z1, z2, &labels)
                },
            );
        }
    }

    /// The host kernel tiles 256 rows at a time: a batch of 300 (600 rows, three tiles, the last
    /// partial) agrees with the tensor path in value and gradient, also without normalisation.
    fn nt_xent_host_kernel_tiles_agree<B: AutodiffBackend>(device: &B::Device) {
        let x = crate::testing::inputs(2 * 300 * 8, 5);
        for normalize in [true, false] {
            let run = |kernel| {
                let (z1, z2) = two_views::<B>(&x[..2400], &x[2400..], 300, 8, device);
                let z1 = z1.require_grad();
                let cfg = NtXentLossConfig::new()
                    .with_temperature(0.1)
                    .with_normalize(normalize);
                let v = cfg.with_kernel(kernel).init().forward(z1.clone(), z2);
                let g = to_vec_f32(z1.grad(&v.backward()).unwrap());
                (to_vec_f32(v), g)
            };
            let (tv, tg) = run(Kernel::Tensor);
            let (hv, hg) = run(Kernel::Host);
            assert_close(&hv, &tv, 1e-5);
            assert_close(&hg, &tg, 1e-4);
        }
    }

    /// The blocked variant gives the standard value and gradient, with a block size that does
    /// not divide 2n and one that straddles the two views.
    fn nt_xent_blocked_equals_full<B: AutodiffBackend>(device: &B::Device) {
        for block in [1, 5, 64] {
            fd_reference::<B>(
                device,
                5,
                3,
                2,
                |x| reference(x, 5, 3, 0.2, None),
                |z1, z2| {
                    NtXentLossConfig::new()
                        .with_temperature(0.2)
                        .init()
                        .forward_blocked(z1, z2, block)
                },
            );
        }
    }

    /// tau = 0.05 with cosines near 1 stays finite (no exp overflow).
    fn nt_xent_is_stable_at_low_temperature<B: AutodiffBackend>(device: &B::Device) {
        let a = [1.0, 1e-3, 1.0, -1e-3, 1.0, 2e-3, 1.0, 0.0];
        let (z1, z2) = two_views::<B>(&a, &a, 4, 2, device);
        let z1 = z1.require_grad();
        for kernel in KERNELS {
            let loss = NtXentLossConfig::new()
                .with_temperature(0.05)
                .with_kernel(kernel)
                .init();
            let v = loss.forward(z1.clone(), z2.clone());
            let g = to_vec_f32(z1.grad(&v.backward()).unwrap());
            let v = to_vec_f32(v)[0];
            assert!(v.is_finite() && v >= 0.0, "{kernel:?}: {v}");
            assert!(g.iter().all(|x| x.is_finite()), "{kernel:?}: {g:?}");
            let scaled = loss.forward(z1.clone() * 1e4, z2.clone());
            assert!(to_vec_f32(scaled)[0].is_finite());
            // tau = 0.01 pushes the off-diagonal logits 100 below the diagonal's: still finite.
            let cold = NtXentLossConfig::new()
                .with_temperature(0.01)
                .with_kernel(kernel)
                .init();
            let (o1, o2) =
                two_views::<B>(&[1.0, 0.0, 0.0, 1.0], &[0.0, 1.0, 1.0, 0.0], 2, 2, device);
            let v = to_vec_f32(cold.forward(o1, o2))[0];
            assert!(v.is_finite(), "{kernel:?}: {v}");
        }
    }

    /// Numbers from a published implementation, lightly 1.6.0 on PyTorch 2.15.0:
    ///
    /// ```text
    /// # inputs(len, seed) is this crate's LCG (crate::testing::inputs), ported to Python
    /// x = inputs(2 * 4 * 3, 7); z = torch.tensor(x, dtype=torch.float32).reshape(2, 4, 3)
    /// z0 = z[0].clone().requires_grad_(True); z1 = z[1].clone()
    /// v = lightly.loss.NTXentLoss(temperature=0.5)(z0, z1); v.backward()
    /// print(v.item(), z0.grad.flatten().tolist())
    /// ```
    fn nt_xent_matches_lightly<B: AutodiffBackend>(device: &B::Device) {
        let x = crate::testing::inputs(2 * 4 * 3, 7);
        let (z0, z1) = two_views::<B>(&x[..12], &x[12..], 4, 3, device);
        let z0 = z0.require_grad();
        let v = NtXentLossConfig::new()
            .with_temperature(0.5)
            .init()
            .forward(z0.clone(), z1);
        let g = to_vec_f32(z0.grad(&v.backward()).unwrap());
        assert_close(&to_vec_f32(v), &[2.380_091_4], 1e-5);
        let lightly = [
            -0.0785722, 0.2364012, 0.2653991, -0.2367534, 0.0997742, 0.198057, -0.2228293,
            -0.1054579, 0.0529955, 0.1649603, 0.2651274, 0.0084094,
        ];
        assert_close(&g, &lightly, 1e-5);
    }

    contrast_core::backend_tests!(
        nt_xent_host_kernel_tiles_agree,
        nt_xent_matches_lightly,
        nt_xent_single_pair_is_zero,
        nt_xent_hand_value,
        nt_xent_matches_reference,
        nt_xent_labels_match_reference,
        nt_xent_blocked_equals_full,
        nt_xent_is_stable_at_low_temperature,
    );

    #[test]
    fn rejects_bad_temperature() {
        for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = NtXentLossConfig::new()
                .with_temperature(t)
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains("temperature"), "{err}");
        }
    }

    #[test]
    #[should_panic(
        expected = "NtXentLoss::forward: the two inputs must have the same shape, got [2, 3] and [3, 3]"
    )]
    fn mismatched_views_panic_with_shapes() {
        let device = Default::default();
        let a = Tensor::<contrast_core::testing::Flex, 2>::zeros([2, 3], &device);
        let b = Tensor::<contrast_core::testing::Flex, 2>::zeros([3, 3], &device);
        NtXentLossConfig::new().init().forward(a, b);
    }
}
