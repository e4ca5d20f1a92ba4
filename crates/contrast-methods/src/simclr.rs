use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use contrast_encoders::{ProjectedEncoder, ProjectionHeadConfig, ResNetConfig};
use contrast_losses::{DecoupledLoss, DecoupledLossConfig, NtXentLoss, NtXentLossConfig};

use crate::method::{InnerModel, KeptEmbeddings, Method, Paradigm};

/// SimCLR (Chen et al. 2020, <https://arxiv.org/abs/2002.05709>): a backbone, an MLP projection
/// head and NT-Xent over the `2N` views of a batch, every other view a negative.
///
/// With [`decoupled`](Self::decoupled) set, the objective is DCL instead (Yeh et al. 2022,
/// <https://arxiv.org/abs/2110.06848>): the positive pair leaves the denominator, which removes
/// the negative-positive coupling that makes NT-Xent need large batches.
#[derive(Config, Debug)]
pub struct SimClrConfig {
    /// The backbone.
    pub backbone: ResNetConfig,
    /// The projection head (its `input` must equal the backbone's output width).
    pub head: ProjectionHeadConfig,
    /// NT-Xent settings (temperature).
    pub loss: NtXentLossConfig,
    /// Use the decoupled contrastive loss (DCL / DCLW) with these settings instead of NT-Xent.
    #[config(default = "None")]
    pub decoupled: Option<DecoupledLossConfig>,
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
        self.loss.validate()?;
        if let Some(d) = &self.decoupled {
            d.validate()?;
        }
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

    /// The method (the loss; the model is built by [`init_model`](Self::init_model)).
    pub fn init(&self) -> SimClr {
        let objective = match &self.decoupled {
            None => Objective::NtXent(self.loss.init(), self.loss.temperature),
            Some(d) => Objective::Decoupled(d.init(), d.temperature, d.von_mises_sigma),
        };
        SimClr {
            objective,
            kept: KeptEmbeddings::default(),
        }
    }
}

#[derive(Debug, Clone)]
enum Objective {
    NtXent(NtXentLoss, f64),
    Decoupled(DecoupledLoss, f64, Option<f64>),
}

/// SimCLR's training objective, see [`SimClrConfig`].
#[derive(Debug, Clone)]
pub struct SimClr {
    objective: Objective,
    kept: KeptEmbeddings,
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
        self.pair_loss(z.clone().slice(0..n), z.slice(n..2 * n))
    }

    fn pair_loss<B: Backend>(&self, z1: Tensor<B, 2>, z2: Tensor<B, 2>) -> Tensor<B, 1> {
        match &self.objective {
            Objective::NtXent(l, _) => l.forward(z1, z2),
            Objective::Decoupled(l, _, _) => l.forward(z1, z2),
        }
    }
}

impl<B: AutodiffBackend> Method<B> for SimClr {
    type Model = ProjectedEncoder<B>;

    fn name(&self) -> &'static str {
        match self.objective {
            Objective::NtXent(..) => "simclr",
            Objective::Decoupled(..) => "dcl",
        }
    }

    fn paradigm(&self) -> Paradigm {
        Paradigm::InBatch
    }

    fn negatives_per_anchor(&self, batch_size: usize) -> usize {
        2 * batch_size.saturating_sub(1)
    }

    fn describe(&self) -> String {
        match &self.objective {
            Objective::NtXent(_, t) => format!("NT-Xent, temperature {t}"),
            Objective::Decoupled(_, t, None) => format!("DCL (decoupled NT-Xent), temperature {t}"),
            Objective::Decoupled(_, t, Some(s)) => {
                format!("DCLW (von Mises-Fisher weighted, sigma {s}), temperature {t}")
            }
        }
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
        let (z1, z2) = (z.clone().slice(0..n), z.slice(n..2 * n));
        self.kept.record(z1.clone(), Some(z2.clone()));
        self.pair_loss(z1, z2)
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
