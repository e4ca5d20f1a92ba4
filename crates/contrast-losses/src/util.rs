//! Building blocks shared by the losses: stable log-sum-exp, masks, shape checks.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

/// Value that masked logits are set to: `exp` of it is 0 in f32, yet it stays finite so that
/// gradients through masked entries are exactly 0 instead of NaN.
pub(crate) const MASKED: f32 = -1.0e9;

/// Row-wise `log(sum_j exp(x_ij))`, computed as `m + log(sum exp(x - m))` with `m` the row
/// maximum, so that no `exp` overflows.
///
/// # Shapes
/// - `x`: `[n, c]` -> `[n]`
pub fn log_sum_exp<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 1> {
    let max = x.clone().max_dim(1).detach();
    ((x - max.clone()).exp().sum_dim(1).log() + max).squeeze_dim(1)
}

/// Mean over rows of `-log softmax(logits)_[i, target_i]`: cross-entropy with class indices.
///
/// # Shapes
/// - `logits`: `[n, c]`, `targets`: `[n]` with values in `0..c` -> scalar `[1]`
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let [n, _] = logits.dims();
    let picked = logits
        .clone()
        .gather(1, targets.reshape([n, 1]))
        .squeeze_dim(1);
    (log_sum_exp(logits) - picked).mean()
}

/// `0, 1, ..., n-1` on `device`.
pub(crate) fn arange<B: Backend>(n: usize, device: &B::Device) -> Tensor<B, 1, Int> {
    Tensor::arange(0..n as i64, device)
}

/// A `[rows, cols]` boolean mask built on the host from a predicate.
pub(crate) fn host_mask<B: Backend>(
    rows: usize,
    cols: usize,
    device: &B::Device,
    f: impl Fn(usize, usize) -> bool,
) -> Tensor<B, 2, Bool> {
    let mut v = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        for j in 0..cols {
            v.push(f(i, j));
        }
    }
    Tensor::from_data(TensorData::new(v, [rows, cols]), device)
}

/// The partner of row `i` among `2n` rows that stack view 1 over view 2.
pub(crate) fn partner(i: usize, n: usize) -> usize {
    if i < n { i + n } else { i - n }
}

/// Panics, naming the op and both shapes, if two embedding batches differ in shape.
#[track_caller]
pub(crate) fn check_same_shape(op: &str, a: [usize; 2], b: [usize; 2]) {
    assert!(
        a == b,
        "{op}: the two inputs must have the same shape, got {a:?} and {b:?}"
    );
    assert!(a[0] > 0, "{op}: empty batch, shape {a:?}");
}

/// Panics, naming the op and both shapes, if embedding widths differ.
#[track_caller]
pub(crate) fn check_same_dim(op: &str, a: [usize; 2], b: [usize; 2]) {
    assert!(
        a[1] == b[1],
        "{op}: embedding dimensions differ, got {a:?} and {b:?}"
    );
}

/// Panics if a label slice does not have one entry per instance.
#[track_caller]
pub(crate) fn check_labels(op: &str, labels: &[usize], n: usize) {
    assert!(
        labels.len() == n,
        "{op}: {} labels for a batch of {n} instances",
        labels.len()
    );
}

/// Normalises rows when asked to.
pub(crate) fn maybe_normalize<B: Backend>(x: Tensor<B, 2>, normalize: bool) -> Tensor<B, 2> {
    if normalize {
        contrast_core::l2_normalize(x, contrast_core::NORM_EPS)
    } else {
        x
    }
}

/// `log(1 + exp(x))` without overflow: `max(x, 0) + log1p(exp(-|x|))`.
pub fn softplus<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.clone().clamp_min(0.0) + x.abs().neg().exp().log1p()
}

/// Sum of the entries of `x` where `mask` is 1.0, divided by the number of such entries.
pub(crate) fn masked_mean<B: Backend>(x: Tensor<B, 2>, mask: Tensor<B, 2>) -> Tensor<B, 1> {
    (x * mask.clone()).sum() / mask.sum()
}

/// Carries a value and a gradient computed outside the autodiff graph back into it:
/// `<x, g> - <sg(x), g> + v` has value `v` and gradient `g` with respect to `x`.
///
/// # Shapes
/// - `x`, `grad`: `[m, d]`; `value`: `[1]` -> `[1]`
pub(crate) fn with_gradient<B: Backend>(
    x: Tensor<B, 2>,
    grad: Tensor<B, 2>,
    value: Tensor<B, 1>,
) -> Tensor<B, 1> {
    let detached = x.clone().detach();
    (x * grad.clone()).sum() - (detached * grad).sum() + value
}

/// Where a loss with a fused CPU kernel computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kernel {
    /// The host kernel on the backends `contrast_kernels::is_host_backend` recognises (`flex`,
    /// `ndarray`, plain or under `Autodiff`), tensor operations elsewhere.
    Auto,
    /// Burn tensor operations on any backend.
    Tensor,
    /// The fused host kernel: the batch is read back to host memory (cheap on CPU backends,
    /// a device round trip on GPUs).
    Host,
}

impl Kernel {
    /// Whether this choice runs the host kernel on `B` (the device does not change the answer).
    pub fn runs_on_host<B: Backend>(self, _device: &B::Device) -> bool {
        match self {
            Kernel::Auto => contrast_kernels::is_host_backend::<B>(),
            Kernel::Tensor => false,
            Kernel::Host => true,
        }
    }
}
