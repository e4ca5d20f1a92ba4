use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use contrast_core::{EncoderConfig, Error, NORM_EPS, ViewMode, l2_normalize};
use contrast_encoders::{ProjectedEncoder, ProjectionHeadConfig};
use contrast_negatives::Staleness;
use contrast_parallel::{Peer, Reduce};

/// A contrastive method as the training loop sees it, for any modality: one step turns a batch
/// of views into a loss, optional state is updated after each optimiser step (a memory bank, a
/// queue, a momentum encoder), and that state is saved with the model.
///
/// `M` is the network the optimiser trains. A method is written once for every backbone that
/// fits its model (SimCLR trains a ResNet on images and a BERT on sentences alike); its batch
/// type says what the data side must deliver ([`contrast_core::Views::Batch`]).
///
/// Methods are compositions of `contrast-encoders`, `contrast-losses` and
/// `contrast-negatives` parts; the loop owns data, optimiser, schedule, monitors and
/// checkpoints. Evaluation embeds with the model itself (`M::InnerModule` is an
/// [`contrast_core::Encoder`]), so a method says nothing about it.
pub trait Method<B: AutodiffBackend, M: AutodiffModule<B>> {
    /// What one step trains on: two image views, token ids with masks, a batch of graphs.
    type Batch;
    /// Tensors the method keeps between steps (key encoder, queue, memory bank), saved in the
    /// checkpoint's model record; `PhantomData<B>` for methods without any.
    type State: AutodiffModule<B>;
    /// Plain values the method keeps between steps (step counter, random generator, frozen
    /// estimates), saved in the checkpoint's JSON header; `()` for methods without any.
    type Counters: Serialize + DeserializeOwned;

    /// Facts for reports: name, paradigm, negatives per anchor in a batch of `batch_size`
    /// instances, staleness of stored negatives, one line of settings.
    fn info(&self, batch_size: usize) -> MethodInfo;

    /// Which two views of each instance [`step`](Self::step) receives.
    fn views(&self) -> ViewMode {
        ViewMode::TwoAugmented
    }

    /// Checks, before training starts, that the method can train with this batch size on a
    /// training split of `train_len` instances (a queue must hold a batch of keys, a memory
    /// bank needs one row per instance).
    ///
    /// # Errors
    /// `InvalidConfig` naming the setting.
    fn validate_batch(&self, _batch_size: usize, _train_len: usize) -> Result<(), Error> {
        Ok(())
    }

    /// Joins a data-parallel group as `peer`, before training: the method's steps then see
    /// this peer's share of each global batch. With `gather_negatives` a method that takes
    /// in-batch negatives computes the global batch's loss on every peer from the group's
    /// gathered embeddings ([`contrast_parallel::gathered`]); without, each peer's share is a
    /// batch of its own.
    ///
    /// Returns how the loop combines the peers' gradients: [`Reduce::Sum`] when every peer
    /// computes the global loss (each peer's gradient reaches only its own rows, the sum is the
    /// global gradient), [`Reduce::Mean`] when each peer's loss is its own share's.
    ///
    /// # Errors
    /// `InvalidConfig` from methods that cannot train on several devices (the default).
    fn join(&mut self, peer: &Peer, gather_negatives: bool) -> Result<Reduce, Error> {
        let _ = gather_negatives;
        Err(Error::invalid_config(
            "devices",
            peer.world(),
            format!(
                "{} does not train on several devices yet; use one device",
                self.info(2).name
            ),
        ))
    }

    /// Checks, before training on several peers with
    /// [`TrainConfig::sync_batch_norm`](crate::TrainConfig::sync_batch_norm), that batch norm in
    /// this method's steps may take its statistics over every peer's batch together.
    ///
    /// # Errors
    /// `InvalidConfig` naming `sync_batch_norm`, from methods whose batch norm must stay per
    /// peer.
    fn validate_sync_batch_norm(&self) -> Result<(), Error> {
        Ok(())
    }

    /// The loss of one batch of the dataset instances `indices`, and the batch's detached
    /// embeddings for samplers and diagnostics.
    fn step(&mut self, model: &M, batch: Self::Batch, indices: &[usize]) -> StepOutput<B>;

    /// Called after every optimiser step with the updated model.
    fn after_step(&mut self, _model: &M) {}

    /// The state and counters to save (tensors are shared, not copied).
    fn state(&self) -> (Self::State, Self::Counters);

    /// Restores what [`state`](Self::state) returned (the state loaded with a checkpoint's
    /// record).
    fn load_state(&mut self, state: Self::State, counters: Self::Counters);
}

/// What one training step gives the loop.
#[derive(Debug, Clone)]
pub struct StepOutput<B: Backend> {
    /// The scalar loss, `[1]`, with its graph.
    pub loss: Tensor<B, 1>,
    /// The batch's embeddings, `[batch, dim]`, detached, rows in the order of the batch's
    /// indices: each view's projection L2-normalised, the views side by side (the reference
    /// BatchSampler's instance embedding). The loop copies them to the host only when a
    /// sampler or a diagnostic reads them.
    pub embeddings: Tensor<B, 2>,
}

impl<B: Backend> StepOutput<B> {
    /// The loss and the embedding built from the projections of each view (one or two,
    /// `[batch, d]` each).
    ///
    /// # Panics
    /// If `views` is empty.
    pub fn new(loss: Tensor<B, 1>, views: Vec<Tensor<B, 2>>) -> Self {
        assert!(!views.is_empty(), "StepOutput::new: no view projections");
        let parts: Vec<_> = views
            .into_iter()
            .map(|v| l2_normalize(v.detach(), NORM_EPS))
            .collect();
        StepOutput {
            loss,
            embeddings: Tensor::cat(parts, 1),
        }
    }
}

/// The facts about a method that reports print, in one value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodInfo {
    /// Short lowercase name (`simclr`), used in reports and checkpoints.
    pub name: String,
    /// Where the negatives come from.
    pub paradigm: Paradigm,
    /// How many negatives each anchor is contrasted with per step.
    pub negatives_per_anchor: usize,
    /// How old the stored negatives are (memory bank rows, queue entries), in steps; `None`
    /// for methods whose negatives are all computed in the current step.
    pub staleness: Option<Staleness>,
    /// One line describing the objective and its settings.
    pub description: String,
}

/// The four ways of obtaining negatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Paradigm {
    /// Positives and negatives all get gradients, from one batch (InvaSpread, DIM).
    EndToEnd,
    /// A stored embedding per dataset instance serves as negative (InstDisc).
    MemoryBank,
    /// Keys from a moving-average encoder, kept in a FIFO queue (MoCo).
    MomentumEncoder,
    /// Every other view of the batch is a negative (SimCLR, DCL).
    InBatch,
}

impl Paradigm {
    /// Human-readable name.
    pub fn label(self) -> &'static str {
        match self {
            Paradigm::EndToEnd => "end-to-end",
            Paradigm::MemoryBank => "memory bank",
            Paradigm::MomentumEncoder => "momentum encoder + queue",
            Paradigm::InBatch => "in-batch negatives",
        }
    }
}

/// The config of a method whose network is a backbone and a projection head: it holds the
/// objective and the head, and receives the backbone's config.
pub trait HeadConfig {
    /// The projection head (its `input` must equal the backbone's output width).
    fn head(&self) -> &ProjectionHeadConfig;

    /// Checks the method's own settings (the backbone and head are checked by
    /// [`init_model`](Self::init_model)).
    ///
    /// # Errors
    /// `InvalidConfig` naming the field.
    fn validate(&self) -> Result<(), Error>;

    /// The network: `backbone` then the head, initialised on `device` in that order (so that
    /// one seed gives every method the same initial backbone).
    ///
    /// # Errors
    /// `InvalidConfig` when a setting is wrong or the head does not fit the backbone.
    fn init_model<B: Backend, C: EncoderConfig>(
        &self,
        backbone: &C,
        device: &B::Device,
    ) -> Result<ProjectedEncoder<B, C::Encoder<B>>, Error> {
        self.validate()?;
        ProjectedEncoder::init(backbone, self.head(), device)
    }
}

/// [`Method::join`] for a method whose loss takes in-batch negatives: keeps `peer` when the
/// negatives are gathered and says how the gradients combine.
pub(crate) fn join_in_batch(slot: &mut Option<Peer>, peer: &Peer, gather: bool) -> Reduce {
    *slot = gather.then(|| peer.clone());
    if gather { Reduce::Sum } else { Reduce::Mean }
}
