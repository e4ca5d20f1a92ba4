#![cfg_attr(not(any(feature = "flex", feature = "ndarray")), allow(dead_code))]
//! Host kernels: contrast's own CPU implementations of the layers that make a convolutional
//! encoder's training step, used on Burn's CPU backends `flex` and `ndarray` (plain for
//! inference, under `Autodiff` for training, each with its own backward step).
//!
//! - Convolution (`conv.rs`): im2col and one matrix product per chunk of samples for the
//!   forward pass, the weight gradient and the input gradient. Burn 0.21's CPU backends derive
//!   the weight gradient as a convolution with the batch as channels and a kernel as large as
//!   the feature map, and the input gradient as a transposed convolution; in a SimCLR step of
//!   the small ResNet on two cores those two took about 60% of the time. The 3x3
//!   convolutions with stride 1 and padding 1 use Winograd's F(2x2, 3x3) instead for the
//!   forward pass and the input gradient (`winograd.rs`; [`set_winograd`] turns it off).
//! - Batch normalisation in training mode (`norm.rs`), with the residual addition and ReLU that
//!   follow it in a ResNet fused in: one pass for the statistics and one for the output, two
//!   for the backward, where the tensor-operation version makes about ten and the ReLU and
//!   addition five more (on one thread each: `flex` runs element-wise operations serially).
//!
//! Both work channels last (`[batch, height, width, channels]`): the ResNets convert their
//! input once and keep every activation in that order where the kernels serve the backend
//! (see `crate::layout`), so that a chunk's input, output and gradients are contiguous blocks
//! the matrix products read and write in place. The public [`crate::conv2d`] and
//! [`crate::BatchNorm2d::forward`] keep Burn's channels-first contract (a permutation on each
//! side of the kernel).
//!
//! Every other backend, dtype or option goes to Burn unchanged, so one model type runs on every
//! backend and the results agree to rounding (`tests/layout.rs` compares whole networks, values
//! and gradients). [`set_host_kernels`] turns the kernels off, for benchmarks
//! (`docs/benchmarks.md` shows the step with and without them) and for checking a result
//! against Burn.
//!
//! The backend is recognised at run time (`Any` on the tensor types): the encoders stay generic
//! over `B: Backend`, with no extra trait bound for users to carry.

#[cfg(any(feature = "flex", feature = "ndarray"))]
mod backends;
mod conv;
mod norm;
mod winograd;

use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

pub(crate) use conv::ConvGeometry;

/// The output of a training-mode batch norm: `(y, batch mean, biased batch variance)`.
pub(crate) type NormOutput<B> = (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>);

/// The inputs of a batch norm: activation, gamma, beta and the residual added after it.
pub(crate) type NormInputs<B> = (
    Tensor<B, 4>,
    Tensor<B, 1>,
    Tensor<B, 1>,
    Option<Tensor<B, 4>>,
);

static HOST_KERNELS: AtomicBool = AtomicBool::new(true);
static WINOGRAD: AtomicBool = AtomicBool::new(true);

/// `len` zeros, written by rayon's pool: a kernel's output buffer. `vec![0.0; len]` zeroes
/// reused heap memory on the calling thread alone, which in a SimCLR step of the small ResNet
/// left the other core idle for about a tenth of the time.
pub(crate) fn zeros(len: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let mut v = Vec::with_capacity(len);
    v.par_extend(rayon::iter::repeat_n(0.0f32, len));
    v
}

/// Turns contrast's host kernels on or off for the whole process (on by default); off sends
/// every convolution and batch norm to Burn's own implementation.
pub fn set_host_kernels(enabled: bool) {
    HOST_KERNELS.store(enabled, Ordering::Relaxed);
}

/// Turns Winograd's F(2x2, 3x3) on or off for the host kernels' 3x3 convolutions with stride
/// 1 and padding 1 (on by default). Off, they are im2col products like every other
/// convolution: slower, and different from the Winograd results by a few ulps of rounding.
pub fn set_winograd(enabled: bool) {
    WINOGRAD.store(enabled, Ordering::Relaxed);
}

fn winograd_enabled() -> bool {
    WINOGRAD.load(Ordering::Relaxed)
}

/// Whether the encoders may use contrast's host kernels (see [`set_host_kernels`]).
pub fn host_kernels_enabled() -> bool {
    HOST_KERNELS.load(Ordering::Relaxed)
}

/// Whether float32 convolutions and batch norms on backend `B` run on contrast's host kernels:
/// true for `Flex`, `NdArray` and their `Autodiff` (default checkpointing) when this crate's
/// `flex` or `ndarray` feature is on and [`set_host_kernels`] left them enabled.
pub fn host_kernel_serves<B: Backend>() -> bool {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    return host_kernels_enabled() && backends::serves::<B>();
    #[cfg(not(any(feature = "flex", feature = "ndarray")))]
    false
}

/// The convolution of a channels-last `x` (`[batch, height, width, in]`) by `weight` (Burn's
/// `[out, in, kh, kw]`, no bias) on the host kernel: `[batch, h_out, w_out, out]`; or the
/// inputs back when it does not serve `B` or the dtype.
#[allow(clippy::type_complexity)]
pub(crate) fn try_conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    g: ConvGeometry,
) -> Result<Tensor<B, 4>, (Tensor<B, 4>, Tensor<B, 4>)> {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if host_kernels_enabled() {
        return backends::try_conv2d(x, weight, g);
    }
    let _ = g;
    Err((x, weight))
}

/// Training-mode batch norm of a channels-last activation `[batch, height, width, channels]`
/// on the host kernel, with the residual addition and ReLU that follow it fused in:
/// `(relu?(bn(x) + residual?), batch mean, biased batch variance)`, the statistics without
/// gradient; or the inputs back when the kernel does not serve `B`.
pub(crate) fn try_batch_norm<B: Backend>(
    inputs: NormInputs<B>,
    epsilon: f64,
    relu: bool,
) -> Result<NormOutput<B>, NormInputs<B>> {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if host_kernels_enabled() {
        return backends::try_batch_norm(inputs, epsilon, relu);
    }
    let _ = (epsilon, relu);
    Err(inputs)
}
