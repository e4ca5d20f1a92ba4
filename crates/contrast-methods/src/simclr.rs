use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use contrast_core::{NORM_EPS, l2_normalize, to_vec_f32};
use contrast_encoders::{ProjectedEncoder, ProjectionHeadConfig, ResNetConfig};
use contrast_losses::{NtXentLoss, NtXentLossConfig};

use crate::method::{InnerModel, Method};

/// SimCLR (Chen et al. 2020, <https://arxiv.org/abs/2002.05709>): a backbone, an MLP projection
/// head and NT-Xent over the `2N` views of a batch, every other view a negative.
#[derive(Config, Debug)]
pub struct SimClrConfig {
    /// The backbone.
    pub backbone: ResNetConfig,
    /// The projection head (its `input` must equal the backbone's output width).
    pub head: ProjectionHeadConfig,
    /// NT-Xent settings (temperature).
    pub loss: NtXentLossConfig,
}

impl SimClrConfig {
    /// SimCLR's usual shape: head `backbone -> hidden = backbone width -> out_dim`, two layers.
    pub fn with_backbone(backbone: ResNetConfig, out_dim: usize, temperature: f64) -> Self {
        let width = backbone.output_dim();
        SimClrConfig::new(
            backbone,
            ProjectionHeadConfig::new(width, width, out_dim),
            NtXentLossConfig::new().with_temperature(temperature),
        )
    }

    /// Checks the parts and that they fit together.
    ///
    /// # Errors
    /// `InvalidConfig` naming the field.
    pub fn validate(&self) -> Result<(), contrast_core::Error> {
        self.backbone.validate()?;
        self.head.validate()?;
        self.loss.validate()?;
        if self.head.input != self.backbone.output_dim() {
            return Err(contrast_core::Error::invalid_config(
                "head.input",
                self.head.input,
                format!(
                    "must equal the backbone's output width {}",
                    self.backbone.output_dim()
                ),
            ));
        }
        Ok(())
    }

    /// The network, initialised on `device`.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails.
    pub fn init_model<B: Backend>(&self, device: &B::Device) -> ProjectedEncoder<B> {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        ProjectedEncoder {
            backbone: self.backbone.init(device),
            head: self.head.init(device),
        }
    }

    /// The method (the loss; the model is built by [`init_model`](Self::init_model)).
    pub fn init(&self) -> SimClr {
        SimClr {
            loss: self.loss.init(),
            keep: false,
            last: None,
        }
    }
}

/// SimCLR's training objective, see [`SimClrConfig`].
#[derive(Debug, Clone)]
pub struct SimClr {
    loss: NtXentLoss,
    keep: bool,
    last: Option<(Vec<f32>, usize)>,
}

impl SimClr {
    /// The loss of two views: both pass through the network as one batch of `2N` (so batch
    /// norm sees both views, as in the reference implementation).
    pub fn views_loss<B: Backend>(
        &self,
        model: &ProjectedEncoder<B>,
        first: Tensor<B, 4>,
        second: Tensor<B, 4>,
    ) -> Tensor<B, 1> {
        let n = first.dims()[0];
        let z = model.projection(Tensor::cat(vec![first, second], 0));
        self.loss.forward(z.clone().slice(0..n), z.slice(n..2 * n))
    }
}

impl<B: AutodiffBackend> Method<B> for SimClr {
    type Model = ProjectedEncoder<B>;

    fn name(&self) -> &'static str {
        "simclr"
    }

    fn loss(
        &mut self,
        model: &Self::Model,
        first: Tensor<B, 4>,
        second: Tensor<B, 4>,
        _indices: &[usize],
    ) -> Tensor<B, 1> {
        let n = first.dims()[0];
        let z = model.projection(Tensor::cat(vec![first, second], 0));
        if self.keep {
            // Each view's projection normalised, the two concatenated: the reference
            // BatchSampler's instance embedding.
            let zn = l2_normalize(z.clone().detach(), NORM_EPS);
            let d = zn.dims()[1];
            let both = Tensor::cat(vec![zn.clone().slice(0..n), zn.slice(n..2 * n)], 1);
            self.last = Some((to_vec_f32(both), 2 * d));
        }
        self.loss.forward(z.clone().slice(0..n), z.slice(n..2 * n))
    }

    fn keep_embeddings(&mut self, on: bool) {
        self.keep = on;
    }

    fn take_embeddings(&mut self) -> Option<(Vec<f32>, usize)> {
        self.last.take()
    }

    fn represent(
        &self,
        model: &InnerModel<B, Self>,
        images: Tensor<B::InnerBackend, 4>,
    ) -> Tensor<B::InnerBackend, 2> {
        model.representation(images)
    }
}
