use core::ops::Range;

use burn::config::Config;
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module::max_pool2d;
use serde::{Deserialize, Serialize};

use contrast_core::{Encoder, EncoderConfig, Error, LocalEncoder};

use crate::BatchNorm2d;
use crate::conv::conv2d_in;
use crate::layout::Layout;

/// The first layers of a ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stem {
    /// 7x7 convolution with stride 2, then 3x3 max-pool with stride 2 (He et al. 2016, for
    /// 224x224 images).
    ImageNet,
    /// One 3x3 convolution with stride 1 and no max-pool (SimCLR's choice for 32x32 CIFAR and
    /// the small 28x28 network).
    Cifar,
    /// One 3x3 convolution with stride 2 and no max-pool: halves small inputs (28x28 -> 14x14)
    /// before the first stage, a quarter of the cost of [`Stem::Cifar`].
    Strided,
}

/// The residual block type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockKind {
    /// Two 3x3 convolutions (ResNet-18/34).
    Basic,
    /// 1x1, 3x3, 1x1 with 4x expansion (ResNet-50/101/152).
    Bottleneck,
}

impl BlockKind {
    fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// Configuration of a [`ResNet`].
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Input channels (1 for grayscale, 3 for RGB).
    pub in_channels: usize,
    /// Block type.
    pub block: BlockKind,
    /// Blocks per stage.
    pub layers: Vec<usize>,
    /// Width of each stage (before the bottleneck expansion).
    pub widths: Vec<usize>,
    /// Stem type.
    pub stem: Stem,
    /// Width of the stem convolution.
    pub stem_width: usize,
}

impl ResNetConfig {
    /// ResNet-18: basic blocks `[2, 2, 2, 2]`, widths 64 to 512, 512-d output.
    pub fn resnet18(in_channels: usize, stem: Stem) -> Self {
        Self::new(
            in_channels,
            BlockKind::Basic,
            vec![2, 2, 2, 2],
            vec![64, 128, 256, 512],
            stem,
            64,
        )
    }

    /// ResNet-50: bottleneck blocks `[3, 4, 6, 3]`, 2048-d output.
    pub fn resnet50(in_channels: usize, stem: Stem) -> Self {
        Self::new(
            in_channels,
            BlockKind::Bottleneck,
            vec![3, 4, 6, 3],
            vec![64, 128, 256, 512],
            stem,
            64,
        )
    }

    /// A small ResNet for 28x28 inputs (MNIST-like): a 3x3 stride-2 stem of width 32
    /// (28 -> 14 pixels), then one basic block per stage at widths 32, 64 and 128 (14 -> 7 -> 4
    /// pixels), 128-d output. The CIFAR stem instead (no early downsampling) makes a training
    /// step about 5x dearer on a CPU: forward + backward of 512 images took 6.2 s against
    /// 1.3 s on flex, two cores (`examples/encoder_step.rs`).
    pub fn small(in_channels: usize) -> Self {
        Self::new(
            in_channels,
            BlockKind::Basic,
            vec![1, 1, 1],
            vec![32, 64, 128],
            Stem::Strided,
            32,
        )
    }

    /// Width of the representation (after global average pooling).
    pub fn output_dim(&self) -> usize {
        self.widths.last().copied().unwrap_or(self.stem_width) * self.block.expansion()
    }

    /// Width of the local features ([`ResNet::forward_local`]): the channels of the map that
    /// enters the last stage (the stem's output when there is one stage).
    pub fn local_dim(&self) -> usize {
        match self.widths.len() {
            0 | 1 => self.stem_width,
            n => self.widths[n - 2] * self.block.expansion(),
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// `InvalidConfig` when a count is zero or `layers` and `widths` differ in length.
    pub fn validate(&self) -> Result<(), Error> {
        if self.in_channels == 0 || self.stem_width == 0 {
            return Err(Error::invalid_config(
                "in_channels/stem_width",
                0,
                "must be at least 1",
            ));
        }
        if self.layers.is_empty() || self.layers.len() != self.widths.len() {
            return Err(Error::invalid_config(
                "layers",
                format!("{:?} with widths {:?}", self.layers, self.widths),
                "need one block count and one width per stage, at least one stage",
            ));
        }
        if self.layers.contains(&0) || self.widths.contains(&0) {
            return Err(Error::invalid_config(
                "layers/widths",
                format!("{:?} / {:?}", self.layers, self.widths),
                "every stage needs at least one block and one channel",
            ));
        }
        Ok(())
    }

    /// Builds the network with Burn's default (Kaiming-uniform) initialisation; batch-norm
    /// weights start at 1 and biases at 0. Values are drawn at once, in declaration order, so
    /// the same `B::seed` always gives the same network.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResNet<B> {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let (k, s, p) = match self.stem {
            Stem::ImageNet => (7, 2, 3),
            Stem::Cifar => (3, 1, 1),
            Stem::Strided => (3, 2, 1),
        };
        let stem_conv = conv(self.in_channels, self.stem_width, k, s, p, device);
        let mut basic = Vec::new();
        let mut bottleneck = Vec::new();
        let mut in_ch = self.stem_width;
        for (stage, (&n, &width)) in self.layers.iter().zip(&self.widths).enumerate() {
            for b in 0..n {
                let stride = if b == 0 && stage > 0 { 2 } else { 1 };
                let out_ch = width * self.block.expansion();
                let downsample = (stride != 1 || in_ch != out_ch).then(|| Downsample {
                    conv: conv(in_ch, out_ch, 1, stride, 0, device),
                    bn: BatchNorm2d::new(out_ch, device),
                });
                match self.block {
                    BlockKind::Basic => basic.push(BasicBlock {
                        conv1: conv(in_ch, width, 3, stride, 1, device),
                        bn1: BatchNorm2d::new(width, device),
                        conv2: conv(width, width, 3, 1, 1, device),
                        bn2: BatchNorm2d::new(width, device),
                        downsample,
                    }),
                    BlockKind::Bottleneck => bottleneck.push(Bottleneck {
                        conv1: conv(in_ch, width, 1, 1, 0, device),
                        bn1: BatchNorm2d::new(width, device),
                        conv2: conv(width, width, 3, stride, 1, device),
                        bn2: BatchNorm2d::new(width, device),
                        conv3: conv(width, out_ch, 1, 1, 0, device),
                        bn3: BatchNorm2d::new(out_ch, device),
                        downsample,
                    }),
                }
                in_ch = out_ch;
            }
        }
        crate::init::materialize(ResNet {
            stem_conv,
            stem_bn: BatchNorm2d::new(self.stem_width, device),
            basic,
            bottleneck,
            max_pool: self.stem == Stem::ImageNet,
            output_dim: self.output_dim(),
            last_stage: self.layers[..self.layers.len() - 1].iter().sum(),
            local_dim: self.local_dim(),
        })
    }
}

fn conv<B: Backend>(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    device: &B::Device,
) -> Conv2d<B> {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device)
}

/// 1x1 convolution + batch norm on the shortcut when shape changes.
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    conv: Conv2d<B>,
    bn: BatchNorm2d<B>,
}

impl<B: Backend> Downsample<B> {
    fn forward(&self, x: Tensor<B, 4>, layout: Layout) -> Tensor<B, 4> {
        self.bn
            .forward_in(conv2d_in(&self.conv, x, layout), None, false, layout)
    }
}

/// The shortcut of a residual block.
fn shortcut<B: Backend>(
    downsample: &Option<Downsample<B>>,
    x: &Tensor<B, 4>,
    layout: Layout,
) -> Tensor<B, 4> {
    match downsample {
        Some(d) => d.forward(x.clone(), layout),
        None => x.clone(),
    }
}

/// Two 3x3 convolutions with a residual connection.
#[derive(Module, Debug)]
pub struct BasicBlock<B: Backend> {
    conv1: Conv2d<B>,
    bn1: BatchNorm2d<B>,
    conv2: Conv2d<B>,
    bn2: BatchNorm2d<B>,
    downsample: Option<Downsample<B>>,
}

impl<B: Backend> BasicBlock<B> {
    fn forward(&self, x: Tensor<B, 4>, layout: Layout) -> Tensor<B, 4> {
        let identity = shortcut(&self.downsample, &x, layout);
        let y = conv2d_in(&self.conv1, x, layout);
        let y = self.bn1.forward_in(y, None, true, layout);
        let y = conv2d_in(&self.conv2, y, layout);
        self.bn2.forward_in(y, Some(identity), true, layout)
    }
}

/// 1x1 reduce, 3x3, 1x1 expand, with a residual connection (stride on the 3x3, as in
/// torchvision's ResNet v1.5).
#[derive(Module, Debug)]
pub struct Bottleneck<B: Backend> {
    conv1: Conv2d<B>,
    bn1: BatchNorm2d<B>,
    conv2: Conv2d<B>,
    bn2: BatchNorm2d<B>,
    conv3: Conv2d<B>,
    bn3: BatchNorm2d<B>,
    downsample: Option<Downsample<B>>,
}

impl<B: Backend> Bottleneck<B> {
    fn forward(&self, x: Tensor<B, 4>, layout: Layout) -> Tensor<B, 4> {
        let identity = shortcut(&self.downsample, &x, layout);
        let y = conv2d_in(&self.conv1, x, layout);
        let y = self.bn1.forward_in(y, None, true, layout);
        let y = conv2d_in(&self.conv2, y, layout);
        let y = self.bn2.forward_in(y, None, true, layout);
        let y = conv2d_in(&self.conv3, y, layout);
        self.bn3.forward_in(y, Some(identity), true, layout)
    }
}

/// A residual network without its classifier: images in, pooled representation out.
///
/// Built by [`ResNetConfig`] (`resnet18`, `resnet50`, `small`). In training mode (an autodiff
/// backend) batch norm uses batch statistics and updates its running averages; on the inner
/// backend (`model.valid()`) it uses the running averages.
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    pub(crate) stem_conv: Conv2d<B>,
    stem_bn: BatchNorm2d<B>,
    basic: Vec<BasicBlock<B>>,
    bottleneck: Vec<Bottleneck<B>>,
    #[module(skip)]
    max_pool: bool,
    #[module(skip)]
    output_dim: usize,
    /// Index of the last stage's first block (in `basic` or `bottleneck`).
    #[module(skip)]
    last_stage: usize,
    #[module(skip)]
    local_dim: usize,
}

impl<B: Backend> ResNet<B> {
    /// The representation: global average pool of the last stage.
    ///
    /// # Shapes
    /// - input: `[batch, in_channels, height, width]`
    /// - output: `[batch, output_dim]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let (x, layout) = self.last_map(x);
        Self::pool(x, layout)
    }

    /// DIM's local features and the representation from one pass: the positions of the map
    /// that enters the last stage (`[batch, positions, local_dim]`, positions row-major) and the
    /// representation pooled from the last stage's output. As in Deep InfoMax, the local
    /// features come from an intermediate layer and the global one is computed from them by
    /// further layers; taken from the last map itself, the global feature would be their mean,
    /// which an encoder satisfies by making every position alike.
    ///
    /// # Shapes
    /// - input: `[batch, in_channels, height, width]`
    /// - output: `([batch, h * w, local_dim], [batch, output_dim])` for an `h x w` map entering
    ///   the last stage
    pub fn forward_local(&self, x: Tensor<B, 4>) -> (Tensor<B, 3>, Tensor<B, 2>) {
        let (x, layout) = self.stem_forward(x);
        let x = self.blocks(x, 0..self.last_stage, layout);
        let [n, c, h, w] = layout.nchw(x.dims());
        let local = layout
            .convert(x.clone(), Layout::ChannelsLast)
            .reshape([n, h * w, c]);
        let x = self.blocks(x, self.last_stage..self.num_blocks(), layout);
        (local, Self::pool(x, layout))
    }

    /// The last stage's output in the order `layout` that the backend computes in.
    fn last_map(&self, x: Tensor<B, 4>) -> (Tensor<B, 4>, Layout) {
        let (x, layout) = self.stem_forward(x);
        (self.blocks(x, 0..self.num_blocks(), layout), layout)
    }

    /// The stem (and max-pool) in the order `layout` that the backend computes in.
    fn stem_forward(&self, x: Tensor<B, 4>) -> (Tensor<B, 4>, Layout) {
        let layout = Layout::for_backend::<B>();
        let x = Layout::ChannelsFirst.convert(x, layout);
        let x = conv2d_in(&self.stem_conv, x, layout);
        let mut x = self.stem_bn.forward_in(x, None, true, layout);
        if self.max_pool {
            let pooled = max_pool2d(
                layout.convert(x, Layout::ChannelsFirst),
                [3, 3],
                [2, 2],
                [1, 1],
                [1, 1],
                false,
            );
            x = Layout::ChannelsFirst.convert(pooled, layout);
        }
        (x, layout)
    }

    /// Residual blocks in all stages (they are all in `basic` or all in `bottleneck`).
    fn num_blocks(&self) -> usize {
        self.basic.len() + self.bottleneck.len()
    }

    /// The residual blocks `range` of the stages in order.
    fn blocks(&self, mut x: Tensor<B, 4>, range: Range<usize>, layout: Layout) -> Tensor<B, 4> {
        debug_assert!(
            (self.basic.is_empty() || self.bottleneck.is_empty()) && range.end <= self.num_blocks()
        );
        for b in self.basic.get(range.clone()).unwrap_or_default() {
            x = b.forward(x, layout);
        }
        for b in self.bottleneck.get(range).unwrap_or_default() {
            x = b.forward(x, layout);
        }
        x
    }

    /// Global average pool of a map in order `layout`.
    fn pool(x: Tensor<B, 4>, layout: Layout) -> Tensor<B, 2> {
        let [n, c, h, w] = layout.nchw(x.dims());
        match layout {
            Layout::ChannelsFirst => x.mean_dim(3).mean_dim(2).reshape([n, c]),
            // The mean over positions as a product with a row of 1/(h w): its backward pass is
            // another product, where `mean_dim`'s spreads the gradient through one strided
            // element-wise pass on a single thread.
            Layout::ChannelsLast => {
                let weights =
                    Tensor::<B, 3>::full([1, 1, h * w], 1.0 / (h * w) as f64, &x.device());
                weights.matmul(x.reshape([n, h * w, c])).reshape([n, c])
            }
        }
    }
}

impl<B: Backend> Encoder<B> for ResNet<B> {
    type Input = Tensor<B, 4>;

    fn embed(&self, input: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward(input)
    }

    fn output_dim(&self) -> usize {
        self.output_dim
    }
}

impl<B: Backend> LocalEncoder<B> for ResNet<B> {
    /// The positions of the map entering the last stage, and the pooled representation.
    fn embed_local(&self, input: Tensor<B, 4>) -> (Tensor<B, 3>, Tensor<B, 2>) {
        self.forward_local(input)
    }

    fn local_dim(&self) -> usize {
        self.local_dim
    }
}

impl EncoderConfig for ResNetConfig {
    type Encoder<B: Backend> = ResNet<B>;

    fn validate(&self) -> Result<(), Error> {
        ResNetConfig::validate(self)
    }

    fn init<B: Backend>(&self, device: &B::Device) -> ResNet<B> {
        ResNetConfig::init(self, device)
    }

    fn output_dim(&self) -> usize {
        ResNetConfig::output_dim(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::AutodiffModule;
    use burn::tensor::Distribution;
    use burn::tensor::backend::AutodiffBackend;
    use contrast_core::testing::assert_close;
    use contrast_core::to_vec_f32;

    /// DIM's local features are the map entering the last stage (7x7 positions of width 64 for
    /// the small ResNet on 28x28; the stem's output, after the max-pool, for one stage), and
    /// the global half of `forward_local` is `forward`.
    fn local_features<B: AutodiffBackend>(device: &B::Device) {
        let x = Tensor::<B, 4>::random([2, 1, 28, 28], Distribution::Normal(0.0, 1.0), device);
        let one_stage = ResNetConfig::new(1, BlockKind::Basic, vec![1], vec![8], Stem::Strided, 4);
        // ImageNet stem: 28 -> 14 -> 7 (max-pool), then stage 2 halves to 4.
        let bottleneck = ResNetConfig::new(
            1,
            BlockKind::Bottleneck,
            vec![1, 1],
            vec![4, 8],
            Stem::ImageNet,
            4,
        );
        for (config, local, output) in [
            (ResNetConfig::small(1), [2, 49, 64], 128),
            (one_stage, [2, 196, 4], 8),
            (bottleneck, [2, 49, 16], 32),
        ] {
            let net = config.init::<B>(device).valid();
            assert_eq!(config.local_dim(), local[2]);
            assert_eq!(LocalEncoder::local_dim(&net), local[2]);
            let (l, g) = net.forward_local(x.clone().inner());
            assert_eq!(l.dims(), local);
            assert_eq!(g.dims(), [2, output]);
            assert_close(
                &to_vec_f32(g),
                &to_vec_f32(net.forward(x.clone().inner())),
                1e-6,
            );
        }
    }

    contrast_core::backend_tests!(local_features);
}
