//! Memory order of the activations inside the encoders.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use contrast_kernels::host_kernel_serves;

/// Order of the dimensions of a 4-D activation.
///
/// The encoders take and give Burn's `[batch, channels, height, width]`; inside, on a backend
/// that contrast's host kernels serve, the activations stay channels last (the kernels' order,
/// see [`contrast_kernels`]), converted once on the way in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `[batch, channels, height, width]`.
    ChannelsFirst,
    /// `[batch, height, width, channels]`.
    ChannelsLast,
}

impl Layout {
    /// The order the encoders use inside on backend `B`.
    pub fn for_backend<B: Backend>() -> Self {
        if host_kernel_serves::<B>() {
            Layout::ChannelsLast
        } else {
            Layout::ChannelsFirst
        }
    }

    /// `x`, in this order, converted to order `to` (a permutation; Burn's autodiff carries
    /// the gradient back through it).
    pub fn convert<B: Backend>(self, x: Tensor<B, 4>, to: Layout) -> Tensor<B, 4> {
        match (self, to) {
            (Layout::ChannelsFirst, Layout::ChannelsLast) => x.permute([0, 2, 3, 1]),
            (Layout::ChannelsLast, Layout::ChannelsFirst) => x.permute([0, 3, 1, 2]),
            _ => x,
        }
    }

    /// `[batch, channels, height, width]` of an activation of shape `dims` in this order.
    pub fn nchw(self, dims: [usize; 4]) -> [usize; 4] {
        match self {
            Layout::ChannelsFirst => dims,
            Layout::ChannelsLast => [dims[0], dims[3], dims[1], dims[2]],
        }
    }
}
