use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use contrast_encoders::{ProjectedEncoder, ProjectionHeadConfig, ResNetConfig};
use contrast_losses::{InvaSpreadLoss, InvaSpreadLossConfig};
use contrast_vision::ViewMode;

use crate::method::{InnerModel, KeptEmbeddings, Method, Paradigm};

/// InvaSpread (Ye et al. 2019, <https://arxiv.org/abs/1904.03436>), the end-to-end paradigm: a
/// shared-weight siamese encoder sees each image and one augmented copy of it; the `2N`
/// features of the batch classify each other with the instance-wise softmax loss
/// ([`InvaSpreadLoss`]), so positives and negatives all receive gradients and the number of
/// negatives is bounded by what one batch fits in memory.
///
/// The paper's network ends in a linear 128-d embedding; that is the default head here
/// ([`with_backbone`](Self::with_backbone)).
#[derive(Config, Debug)]
pub struct InvaSpreadConfig {
    /// The backbone.
    pub backbone: ResNetConfig,
    /// The embedding head (paper: one linear layer to 128).
    pub head: ProjectionHeadConfig,
    /// Loss settings (paper: temperature 0.1).
    pub loss: InvaSpreadLossConfig,
}

impl InvaSpreadConfig {
    /// The paper's shape: a linear layer from the backbone to `out_dim`, temperature `t`.
    pub fn with_backbone(backbone: ResNetConfig, out_dim: usize, temperature: f64) -> Self {
        let width = backbone.output_dim();
        InvaSpreadConfig::new(
            backbone,
            ProjectionHeadConfig::new(width, width, out_dim).with_layers(1),
            InvaSpreadLossConfig::new().with_temperature(temperature),
        )
    }

    /// Checks the parts and that they fit together.
    ///
    /// # Errors
    /// `InvalidConfig` naming the field.
    pub fn validate(&self) -> Result<(), contrast_core::Error> {
        self.loss.validate()?;
        crate::method::check_encoder(&self.backbone, &self.head)
    }

    /// The network, initialised on `device`.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails.
    pub fn init_model<B: Backend>(&self, device: &B::Device) -> ProjectedEncoder<B> {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        crate::method::build_encoder(&self.backbone, &self.head, device)
    }

    /// The method.
    pub fn init(&self) -> InvaSpread {
        InvaSpread {
            loss: self.loss.init(),
            temperature: self.loss.temperature,
            kept: KeptEmbeddings::default(),
        }
    }
}

/// InvaSpread's training objective, see [`InvaSpreadConfig`].
#[derive(Debug, Clone)]
pub struct InvaSpread {
    loss: InvaSpreadLoss,
    temperature: f64,
    kept: KeptEmbeddings,
}

impl<B: AutodiffBackend> Method<B> for InvaSpread {
    type Model = ProjectedEncoder<B>;

    fn name(&self) -> &'static str {
        "invaspread"
    }

    fn views(&self) -> ViewMode {
        ViewMode::PlainAndAugmented
    }

    fn paradigm(&self) -> Paradigm {
        Paradigm::EndToEnd
    }

    fn negatives_per_anchor(&self, batch_size: usize) -> usize {
        2 * batch_size.saturating_sub(1)
    }

    fn describe(&self) -> String {
        format!(
            "instance-wise softmax over the batch's images and augmented copies, temperature {}",
            self.temperature
        )
    }

    /// `first` holds the images themselves, `second` their augmented copies: one siamese pass
    /// of `2N`.
    fn loss(
        &mut self,
        model: &Self::Model,
        first: Tensor<B, 4>,
        second: Tensor<B, 4>,
        _indices: &[usize],
    ) -> Tensor<B, 1> {
        let n = first.dims()[0];
        let z = model.projection(Tensor::cat(vec![first, second], 0));
        let (z1, z2) = (z.clone().slice(0..n), z.slice(n..2 * n));
        self.kept.record(z1.clone(), Some(z2.clone()));
        self.loss.forward(z1, z2)
    }

    fn kept(&mut self) -> Option<&mut KeptEmbeddings> {
        Some(&mut self.kept)
    }

    fn represent(
        &self,
        model: &InnerModel<B, Self>,
        images: Tensor<B::InnerBackend, 4>,
    ) -> Tensor<B::InnerBackend, 2> {
        model.representation(images)
    }
}
