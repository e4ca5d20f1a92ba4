//! 2-D convolution for the encoders: `Conv2d::forward`, on contrast's host kernel where one
//! serves the backend (see [`contrast_kernels::try_conv2d`]), in either activation order.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::PaddedConvOptions;
use contrast_kernels::{ConvGeometry, host_kernel_serves, try_conv2d};

use crate::layout::Layout;

/// `conv.forward(x)`: the same result, through contrast's host kernel on `flex`.
///
/// # Panics
/// As `Conv2d::forward`: when `x` is not `[batch, in_channels, height, width]` with the
/// module's input channels, or the kernel is larger than the padded input.
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    conv2d_in(conv, x, Layout::ChannelsFirst)
}

/// [`conv2d`] of an activation in order `layout`, the output in the same order.
pub(crate) fn conv2d_in<B: Backend>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
    layout: Layout,
) -> Tensor<B, 4> {
    let [batch, in_channels, height, width] = layout.nchw(x.dims());
    let [out_channels, weight_in, _, _] = conv.weight.dims();
    let ((top, bottom), (left, right)) = padding(
        &conv.padding,
        [height, width],
        conv.kernel_size,
        conv.stride,
    );
    let geometry = ConvGeometry {
        batch,
        in_channels,
        height,
        width,
        out_channels,
        kernel: conv.kernel_size,
        stride: conv.stride,
        pad_begin: [top, left],
        pad_end: [bottom, right],
    };
    let plain = conv.groups == 1 && conv.dilation == [1, 1] && weight_in == in_channels;
    let x = if plain && geometry.output().is_some() && host_kernel_serves::<B>() {
        let x = layout.convert(x, Layout::ChannelsLast);
        match try_conv2d(x, conv.weight.val(), geometry) {
            Ok(y) => {
                let y = match &conv.bias {
                    Some(bias) => y + bias.val().reshape([1, 1, 1, out_channels]),
                    None => y,
                };
                return Layout::ChannelsLast.convert(y, layout);
            }
            Err((x, _)) => Layout::ChannelsLast.convert(x, layout),
        }
    } else {
        x
    };
    let options = PaddedConvOptions::asymmetric(
        conv.stride,
        [top, left],
        [bottom, right],
        conv.dilation,
        conv.groups,
    );
    let y = burn_conv2d(
        layout.convert(x, Layout::ChannelsFirst),
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        options,
    );
    Layout::ChannelsFirst.convert(y, layout)
}

/// Padding pairs `((top, bottom), (left, right))` of a configuration, as `Conv2d::forward`
/// computes them (`Same` centres the padding, the extra row or column at the end).
fn padding(
    config: &PaddingConfig2d,
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
) -> ((usize, usize), (usize, usize)) {
    let same = |i: usize| {
        let out = size[i].div_ceil(stride[i].max(1));
        let total = ((out.max(1) - 1) * stride[i] + kernel[i]).saturating_sub(size[i]);
        (total / 2, total - total / 2)
    };
    match config {
        PaddingConfig2d::Valid => ((0, 0), (0, 0)),
        PaddingConfig2d::Same => (same(0), same(1)),
        PaddingConfig2d::Explicit(top, left, bottom, right) => ((*top, *bottom), (*left, *right)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;
    use contrast_core::testing::assert_close;
    use contrast_core::to_vec_f32;

    type B = contrast_core::FlexAutodiff;

    fn configs() -> Vec<Conv2dConfig> {
        vec![
            Conv2dConfig::new([3, 8], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
            Conv2dConfig::new([4, 6], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false),
            Conv2dConfig::new([4, 5], [1, 1])
                .with_stride([2, 2])
                .with_bias(false),
            Conv2dConfig::new([2, 3], [3, 2]).with_padding(PaddingConfig2d::Same),
            Conv2dConfig::new([2, 3], [3, 3]).with_padding(PaddingConfig2d::Explicit(0, 1, 2, 1)),
        ]
    }

    /// Forward values and both gradients agree with Burn's convolution (`Conv2d::forward`).
    #[test]
    fn host_kernel_agrees_with_burn_forward_and_backward() {
        assert!(
            host_kernel_serves::<B>(),
            "the test must exercise the host kernel"
        );
        let device = Default::default();
        for cfg in configs() {
            let conv = cfg.init::<B>(&device);
            let x = Tensor::<B, 4>::random(
                [5, cfg.channels[0], 9, 7],
                Distribution::Normal(0.0, 1.0),
                &device,
            )
            .require_grad();
            let seed = Tensor::<B, 4>::random(
                conv.forward(x.clone()).dims(),
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let run = |y: Tensor<B, 4>| {
                let grads = (y.clone() * seed.clone()).sum().backward();
                let dx = to_vec_f32(x.grad(&grads).unwrap());
                let dw = to_vec_f32(conv.weight.val().grad(&grads).unwrap());
                (to_vec_f32(y.inner()), dx, dw)
            };
            let (y_host, dx_host, dw_host) = run(conv2d(&conv, x.clone()));
            let (y_burn, dx_burn, dw_burn) = run(conv.forward(x.clone()));
            assert_close(&y_host, &y_burn, 1e-4);
            assert_close(&dx_host, &dx_burn, 1e-4);
            assert_close(&dw_host, &dw_burn, 1e-3);
        }
    }

    /// Inference on the plain backend (no autodiff) goes through the kernel too.
    #[test]
    fn plain_backend_forward_agrees_with_burn() {
        type P = burn::backend::Flex;
        assert!(host_kernel_serves::<P>());
        let device = Default::default();
        let conv = configs()[1].init::<P>(&device);
        let x = Tensor::<P, 4>::random([3, 4, 8, 8], Distribution::Normal(0.0, 1.0), &device);
        assert_close(
            &to_vec_f32(conv2d(&conv, x.clone())),
            &to_vec_f32(conv.forward(x)),
            1e-4,
        );
    }
}
