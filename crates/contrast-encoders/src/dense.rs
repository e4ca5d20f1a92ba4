//! Burn's `Linear` followed by an activation, through contrast's host dense kernel
//! ([`contrast_kernels::try_dense`]) where it serves.

use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::activation::{gelu, relu};
use burn::tensor::backend::Backend;
use contrast_kernels::{Activation, try_dense};

/// `act(linear(x))` for a `[rows, in]` input. On the host backends each block of rows is one
/// product with the bias and activation applied while it is in cache, where Burn runs a
/// product, then the bias addition and the activation as single-threaded passes over the
/// output; elsewhere (or for a layer without bias) Burn's operations.
pub(crate) fn dense<B: Backend>(
    linear: &Linear<B>,
    x: Tensor<B, 2>,
    act: Activation,
) -> Tensor<B, 2> {
    if let Some(bias) = &linear.bias
        && let Some(y) = try_dense(&x, &linear.weight.val(), &bias.val(), act)
    {
        return y;
    }
    let y = linear.forward(x);
    match act {
        Activation::Identity => y,
        Activation::Relu => relu(y),
        Activation::Gelu => gelu(y),
    }
}
