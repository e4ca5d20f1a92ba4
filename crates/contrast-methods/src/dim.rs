use core::marker::PhantomData;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use contrast_core::{
    AutodiffEncoder, Encoder, EncoderConfig, Error, LocalEncoder, ViewMode, ViewPair,
};
use contrast_encoders::{ProjectionHead, ProjectionHeadConfig};
use contrast_losses::{LocalGlobalLoss, LocalGlobalLossConfig, MiEstimator};

use contrast_parallel::{Peer, Reduce};

use crate::method::{Method, MethodInfo, Paradigm, StepOutput};

/// Deep InfoMax (Hjelm et al., ICLR 2019, <https://arxiv.org/abs/1808.06670>), local variant,
/// end-to-end paradigm: the encoder's global representation of an instance should tell its own
/// local features (the positions of an intermediate feature map of an image, the tokens of a
/// sentence) from those of the other instances of the batch.
///
/// The global summary is the backbone's representation through the `global` head; each local
/// feature goes through the `local` head (DIM's 1x1-convolution network, here an MLP applied
/// position by position); their dot products are scored by a mutual-information estimator
/// ([`LocalGlobalLoss`]: Jensen-Shannon by default, as the paper recommends for its stability,
/// Donsker-Varadhan or InfoNCE). Negatives are the local features of the other `N - 1`
/// instances. DIM trains on one view per instance: by default the instance itself, not
/// augmented, as in the paper (its successor AMDIM is what added augmented views); with
/// `augmented`, the first augmented view.
///
/// The backbone must show its local features ([`LocalEncoder`]); evaluation uses the
/// backbone's representation, as for the other methods.
#[derive(Config, Debug)]
pub struct DimConfig {
    /// Global head: representation -> score space.
    pub global: ProjectionHeadConfig,
    /// Local head: one local feature -> score space (its `output` must equal the global
    /// head's).
    pub local: ProjectionHeadConfig,
    /// The mutual-information estimator.
    pub loss: LocalGlobalLossConfig,
    /// Train on an augmented view of each instance instead of the instance itself.
    #[config(default = false)]
    pub augmented: bool,
}

impl DimConfig {
    /// Two-layer heads from the representation width and the local width to `dim`, and the
    /// Jensen-Shannon estimator.
    pub fn for_widths(representation: usize, local: usize, dim: usize) -> Self {
        DimConfig::new(
            ProjectionHeadConfig::new(representation, representation, dim),
            ProjectionHeadConfig::new(local, local, dim),
            LocalGlobalLossConfig::new(),
        )
    }

    /// The same with another estimator.
    pub fn with_estimator(mut self, estimator: MiEstimator) -> Self {
        self.loss.estimator = estimator;
        self
    }

    /// Checks the heads and that they meet in one space.
    ///
    /// # Errors
    /// `InvalidConfig` naming the field.
    pub fn validate(&self) -> Result<(), Error> {
        self.global.validate()?;
        self.local.validate()?;
        self.loss.validate()?;
        if self.local.output != self.global.output {
            return Err(Error::invalid_config(
                "local.output",
                self.local.output,
                format!(
                    "must equal global.output ({}): local and global features are scored by their dot product",
                    self.global.output
                ),
            ));
        }
        Ok(())
    }

    /// The network: `backbone` then the global and local heads, initialised on `device` in that
    /// order.
    ///
    /// # Errors
    /// `InvalidConfig` when a setting is wrong or a head does not fit the backbone.
    pub fn init_model<B: Backend, C: EncoderConfig>(
        &self,
        backbone: &C,
        device: &B::Device,
    ) -> Result<DimNet<B, C::Encoder<B>>, Error>
    where
        C::Encoder<B>: LocalEncoder<B>,
    {
        self.validate()?;
        contrast_encoders::check_head(backbone, &self.global)?;
        let backbone = backbone.init::<B>(device);
        if self.local.input != backbone.local_dim() {
            return Err(Error::invalid_config(
                "local.input",
                self.local.input,
                format!(
                    "must equal the backbone's local feature width {}",
                    backbone.local_dim()
                ),
            ));
        }
        Ok(DimNet {
            backbone,
            global: self.global.init(device),
            local: self.local.init(device),
        })
    }

    /// The method.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn init(&self) -> Result<Dim, Error> {
        self.validate()?;
        Ok(Dim {
            loss: self.loss.init(),
            estimator: self.loss.estimator,
            augmented: self.augmented,
        })
    }
}

/// DIM's network: a backbone that shows its local features, and the two heads that map local
/// and global features into one space.
#[derive(Module, Debug)]
pub struct DimNet<B: Backend, E> {
    /// The backbone.
    pub backbone: E,
    /// Global head.
    pub global: ProjectionHead<B>,
    /// Local head.
    pub local: ProjectionHead<B>,
}

impl<B: Backend, E: LocalEncoder<B>> DimNet<B, E> {
    /// Local features through the local head, `[batch, positions, dim]`, and the global
    /// summary through the global head, `[batch, dim]`.
    pub fn scores_inputs(&self, x: E::Input) -> (Tensor<B, 3>, Tensor<B, 2>) {
        let (local, pooled) = self.backbone.embed_local(x);
        let [n, l, c] = local.dims();
        let local = self.local.forward(local.reshape([n * l, c]));
        let d = local.dims()[1];
        (local.reshape([n, l, d]), self.global.forward(pooled))
    }
}

impl<B: Backend, E: Encoder<B>> Encoder<B> for DimNet<B, E> {
    type Input = E::Input;

    /// The backbone's representation.
    fn embed(&self, input: E::Input) -> Tensor<B, 2> {
        self.backbone.embed(input)
    }

    fn output_dim(&self) -> usize {
        self.backbone.output_dim()
    }
}

/// DIM's training objective, see [`DimConfig`].
#[derive(Debug, Clone)]
pub struct Dim {
    loss: LocalGlobalLoss,
    estimator: MiEstimator,
    augmented: bool,
}

impl<B, E> Method<B, DimNet<B, E>> for Dim
where
    B: AutodiffBackend,
    E: LocalEncoder<B> + AutodiffEncoder<B>,
{
    type Batch = ViewPair<E::Input>;
    type State = PhantomData<B>;
    type Counters = ();

    fn info(&self, batch_size: usize) -> MethodInfo {
        MethodInfo {
            name: "dim".into(),
            paradigm: Paradigm::EndToEnd,
            negatives_per_anchor: batch_size.saturating_sub(1),
            staleness: None,
            description: format!(
                "local DIM, {:?} estimator between each global summary and every local feature of the batch (negatives: all local features of the other instances), on {}",
                self.estimator,
                if self.augmented {
                    "an augmented view of each instance"
                } else {
                    "the instances themselves"
                }
            ),
        }
    }

    /// The instance itself comes first in `PlainAndAugmented`; DIM reads only the first view.
    fn views(&self) -> ViewMode {
        if self.augmented {
            ViewMode::TwoAugmented
        } else {
            ViewMode::PlainAndAugmented
        }
    }

    /// Its negatives are the share's own; the peers' losses are averaged.
    fn join(&mut self, _peer: &Peer, _gather_negatives: bool) -> Result<Reduce, Error> {
        Ok(Reduce::Mean)
    }

    fn step(
        &mut self,
        model: &DimNet<B, E>,
        batch: Self::Batch,
        _indices: &[usize],
    ) -> StepOutput<B> {
        let (local, global) = model.scores_inputs(batch.first);
        let loss = self.loss.forward_grid(local, global.clone());
        StepOutput::new(loss, vec![global])
    }

    fn state(&self) -> (PhantomData<B>, ()) {
        (PhantomData, ())
    }

    fn load_state(&mut self, _state: PhantomData<B>, _counters: ()) {}
}
