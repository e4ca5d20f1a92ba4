use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use contrast_core::{Encoder, EncoderConfig, Error};

use crate::{ProjectionHead, ProjectionHeadConfig, ResNet};

/// A backbone and its projection head: the network of SimCLR, MoCo v2 and most contrastive
/// methods, for any backbone (a ResNet on images; BERT and GIN share the same shape).
///
/// [`representation`](Self::representation) is what downstream tasks use (kNN, linear probe);
/// [`projection`](Self::projection) is what the contrastive loss sees.
#[derive(Module, Debug)]
pub struct ProjectedEncoder<B: Backend, E> {
    /// The backbone.
    pub backbone: E,
    /// The projection head.
    pub head: ProjectionHead<B>,
}

/// The image network: a ResNet and its head.
pub type ImageEncoder<B> = ProjectedEncoder<B, ResNet<B>>;

impl<B: Backend, E: Encoder<B>> ProjectedEncoder<B, E> {
    /// Backbone then head, initialised on `device` in that order (so that one seed gives every
    /// method the same initial backbone).
    ///
    /// # Errors
    /// `InvalidConfig` when a config is invalid or the head's input is not the backbone's
    /// output width.
    pub fn init<C: EncoderConfig<Encoder<B> = E>>(
        backbone: &C,
        head: &ProjectionHeadConfig,
        device: &B::Device,
    ) -> Result<Self, Error> {
        check_head(backbone, head)?;
        Ok(ProjectedEncoder {
            backbone: backbone.init::<B>(device),
            head: head.init(device),
        })
    }

    /// Representation before the head, `[batch, backbone dim]`.
    pub fn representation(&self, x: E::Input) -> Tensor<B, 2> {
        self.backbone.embed(x)
    }

    /// Projection after the head, `[batch, head output]`.
    pub fn projection(&self, x: E::Input) -> Tensor<B, 2> {
        self.head.forward(self.backbone.embed(x))
    }

    /// Both, from one pass: `(representation, projection)`.
    pub fn forward(&self, x: E::Input) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let h = self.backbone.embed(x);
        let z = self.head.forward(h.clone());
        (h, z)
    }
}

/// Checks a backbone and head config and that the head's input is the backbone's width.
///
/// # Errors
/// `InvalidConfig` naming the field.
pub fn check_head<C: EncoderConfig>(
    backbone: &C,
    head: &ProjectionHeadConfig,
) -> Result<(), Error> {
    backbone.validate()?;
    head.validate()?;
    if head.input != backbone.output_dim() {
        return Err(Error::invalid_config(
            "head.input",
            head.input,
            format!(
                "must equal the backbone's output width {}",
                backbone.output_dim()
            ),
        ));
    }
    Ok(())
}

impl<B: Backend, E: Encoder<B>> Encoder<B> for ProjectedEncoder<B, E> {
    type Input = E::Input;

    /// The representation (before the head).
    fn embed(&self, input: E::Input) -> Tensor<B, 2> {
        self.representation(input)
    }

    fn output_dim(&self) -> usize {
        self.backbone.output_dim()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProjectionHeadConfig, ResNetConfig, Stem};
    use burn::module::AutodiffModule;
    use burn::tensor::Distribution;
    use burn::tensor::backend::AutodiffBackend;
    use contrast_core::testing::Flex;

    fn num_params<B: Backend, M: Module<B>>(m: &M) -> usize {
        m.num_params()
    }

    fn shapes<B: AutodiffBackend>(device: &B::Device) {
        let x = Tensor::<B, 4>::random([2, 1, 28, 28], Distribution::Normal(0.0, 1.0), device);
        let small = ResNetConfig::small(1);
        let net = ProjectedEncoder::<B, _>::init(
            &small,
            &ProjectionHeadConfig::new(small.output_dim(), 128, 64),
            device,
        )
        .unwrap();
        let (h, z) = net.forward(x.clone());
        assert_eq!(h.dims(), [2, 128]);
        assert_eq!(z.dims(), [2, 64]);
        // Gradients reach the first convolution.
        let grads = z.sum().backward();
        let g = net
            .backbone
            .stem_conv
            .weight
            .grad(&grads)
            .expect("stem gradient");
        assert!(contrast_core::to_vec_f32(g.abs().sum())[0] > 0.0);
        // Inference mode (running statistics) works on the inner backend.
        let valid = net.valid();
        assert_eq!(valid.representation(x.inner()).dims(), [2, 128]);
    }

    contrast_core::backend_tests!(shapes);

    #[test]
    fn resnet_sizes_match_torchvision() {
        let device = Default::default();
        // torchvision 0.20: sum(p.numel() for p in resnet18().parameters()) - fc (512*1000+1000)
        // = 11,689,512 - 513,000; resnet50: 25,557,032 - 2,049,000. Burn also counts batch
        // norm's running mean and variance (buffers in PyTorch): 2 per batch-norm channel,
        // 4,800 channels in ResNet-18 and 26,560 in ResNet-50.
        let r18 = ResNetConfig::resnet18(3, Stem::ImageNet).init::<Flex>(&device);
        assert_eq!(num_params::<Flex, _>(&r18) - 2 * 4_800, 11_176_512);
        let r50 = ResNetConfig::resnet50(3, Stem::ImageNet).init::<Flex>(&device);
        assert_eq!(num_params::<Flex, _>(&r50) - 2 * 26_560, 23_508_032);
        let x = Tensor::<Flex, 4>::zeros([1, 3, 64, 64], &device);
        assert_eq!(r50.forward(x).dims(), [1, 2048]);
        let cifar = ResNetConfig::resnet18(3, Stem::Cifar).init::<Flex>(&device);
        let x = Tensor::<Flex, 4>::zeros([1, 3, 32, 32], &device);
        assert_eq!(cifar.forward(x).dims(), [1, 512]);
    }

    #[test]
    fn invalid_configs_are_named() {
        let msg = ResNetConfig::new(
            3,
            crate::BlockKind::Basic,
            vec![1, 1],
            vec![8],
            Stem::Cifar,
            8,
        )
        .validate()
        .unwrap_err()
        .to_string();
        assert!(msg.contains("layers"), "{msg}");
        let msg = ProjectionHeadConfig::new(8, 0, 4)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(msg.contains("head.hidden"), "{msg}");
    }
}
