use burn::module::AutodiffModule;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use contrast_negatives::Staleness;
use contrast_vision::ViewMode;

/// The inner (non-autodiff) version of a method's model, used for evaluation.
pub type InnerModel<B, M> = <<M as Method<B>>::Model as AutodiffModule<B>>::InnerModule;

/// A contrastive method on images, as the training loop sees it: a loss over two augmented
/// views of a batch, optional state updated after each optimiser step (a memory bank, a queue,
/// a momentum encoder) and the representation used for evaluation.
///
/// Methods are compositions of `contrast-encoders`, `contrast-losses` and
/// `contrast-negatives` parts; the loop owns data, optimiser, schedule and checkpoints.
pub trait Method<B: AutodiffBackend> {
    /// The network trained by the optimiser.
    type Model: AutodiffModule<B> + Clone + core::fmt::Debug;

    /// Short lowercase name (`simclr`), used in reports and checkpoints.
    fn name(&self) -> &'static str;

    /// The loss of one batch. `first` and `second` are two augmented views
    /// (`[batch, c, h, w]` each) of the dataset instances `indices`.
    fn loss(
        &mut self,
        model: &Self::Model,
        first: Tensor<B, 4>,
        second: Tensor<B, 4>,
        indices: &[usize],
    ) -> Tensor<B, 1>;

    /// Called after every optimiser step with the updated model.
    fn after_step(&mut self, _model: &Self::Model) {}

    /// Which two images of each instance [`loss`](Self::loss) receives.
    fn views(&self) -> ViewMode {
        ViewMode::TwoAugmented
    }

    /// The paradigm the method belongs to (for reports).
    fn paradigm(&self) -> Paradigm;

    /// How many negatives each anchor is contrasted with in a batch of `batch_size` instances.
    fn negatives_per_anchor(&self, batch_size: usize) -> usize;

    /// How old the stored negatives are (memory bank rows, queue entries), in steps; `None`
    /// for methods whose negatives are all computed in the current step.
    fn staleness(&self) -> Option<Staleness> {
        None
    }

    /// One line describing the objective and its settings (for reports).
    fn describe(&self) -> String;

    /// Checks, before training starts, that the method can train with this batch size on a
    /// training split of `train_len` instances (a queue must hold a batch of keys, a memory
    /// bank needs one row per instance).
    ///
    /// # Errors
    /// `InvalidConfig` naming the setting.
    fn validate_batch(
        &self,
        _batch_size: usize,
        _train_len: usize,
    ) -> Result<(), contrast_core::Error> {
        Ok(())
    }

    /// Where the method keeps the batch's projections when asked to ([`KeptEmbeddings`]);
    /// `None` for a method that keeps none.
    fn kept(&mut self) -> Option<&mut KeptEmbeddings> {
        None
    }

    /// Asks the method to keep, from each [`loss`](Self::loss) call, the batch's detached
    /// projections for [`take_embeddings`](Self::take_embeddings) (used by samplers that read
    /// embeddings, and by the batch-similarity diagnostic).
    fn keep_embeddings(&mut self, on: bool) {
        if let Some(k) = self.kept() {
            k.on = on;
        }
    }

    /// The projections kept from the last batch: row-major `[batch, dim]` on the host, rows in
    /// the order of the batch's indices.
    fn take_embeddings(&mut self) -> Option<(Vec<f32>, usize)> {
        self.kept().and_then(|k| k.last.take())
    }

    /// The representation of `images` used by the kNN monitor and the linear probe.
    fn represent(
        &self,
        model: &InnerModel<B, Self>,
        images: Tensor<B::InnerBackend, 4>,
    ) -> Tensor<B::InnerBackend, 2>;

    /// State other than the model's weights that a checkpoint must hold.
    ///
    /// # Errors
    /// A message when the state cannot be serialised.
    fn state_bytes(&self) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }

    /// Restores what [`state_bytes`](Self::state_bytes) saved.
    ///
    /// # Errors
    /// A message when the bytes do not fit this method.
    fn load_state_bytes(&mut self, _bytes: Vec<u8>, _device: &B::Device) -> Result<(), String> {
        Ok(())
    }
}

/// The four ways of obtaining negatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Paradigm {
    /// Positives and negatives all get gradients, from one batch (InvaSpread).
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

/// Length-prefixed concatenation of byte sections (method state in checkpoints).
pub(crate) fn pack(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// The inverse of [`pack`], checking that exactly `count` sections are there.
pub(crate) fn unpack(bytes: &[u8], count: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut parts = Vec::with_capacity(count);
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 8 {
            return Err(format!(
                "truncated section header ({} bytes left)",
                rest.len()
            ));
        }
        let len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")) as usize;
        rest = &rest[8..];
        if rest.len() < len {
            return Err(format!(
                "section {} says {len} bytes, {} remain",
                parts.len(),
                rest.len()
            ));
        }
        parts.push(rest[..len].to_vec());
        rest = &rest[len..];
    }
    if parts.len() != count {
        return Err(format!("expected {count} sections, found {}", parts.len()));
    }
    Ok(parts)
}

type Bytes = BinBytesRecorder<FullPrecisionSettings>;

/// A module's record as bytes.
pub(crate) fn module_bytes<B: Backend, M: burn::module::Module<B>>(
    module: &M,
) -> Result<Vec<u8>, String> {
    Bytes::default()
        .record(module.clone().into_record(), ())
        .map_err(|e| e.to_string())
}

/// Loads bytes from [`module_bytes`] into `module`.
pub(crate) fn load_module<B: Backend, M: burn::module::Module<B>>(
    module: M,
    bytes: Vec<u8>,
    device: &B::Device,
) -> Result<M, String> {
    let record = Bytes::default()
        .load(bytes, device)
        .map_err(|e| e.to_string())?;
    Ok(module.load_record(record))
}

/// The projections a method keeps from its last batch for samplers and diagnostics: each view's
/// projection L2-normalised, the views concatenated (the reference BatchSampler's instance
/// embedding), row-major on the host. Recording is off until
/// [`Method::keep_embeddings`] turns it on.
#[derive(Debug, Clone, Default)]
pub struct KeptEmbeddings {
    on: bool,
    last: Option<(Vec<f32>, usize)>,
}

impl KeptEmbeddings {
    /// Keeps the batch's projections (one view, or two side by side) if recording is on.
    pub fn record<B: Backend>(&mut self, first: Tensor<B, 2>, second: Option<Tensor<B, 2>>) {
        if !self.on {
            return;
        }
        use contrast_core::{NORM_EPS, l2_normalize, to_vec_f32};
        let mut parts = vec![l2_normalize(first.detach(), NORM_EPS)];
        if let Some(s) = second {
            parts.push(l2_normalize(s.detach(), NORM_EPS));
        }
        let dim = parts.iter().map(|p| p.dims()[1]).sum();
        self.last = Some((to_vec_f32(Tensor::cat(parts, 1)), dim));
    }
}

/// Checks a backbone and head and that the head's input is the backbone's output width.
pub(crate) fn check_encoder(
    backbone: &contrast_encoders::ResNetConfig,
    head: &contrast_encoders::ProjectionHeadConfig,
) -> Result<(), contrast_core::Error> {
    backbone.validate()?;
    head.validate()?;
    if head.input != backbone.output_dim() {
        return Err(contrast_core::Error::invalid_config(
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

/// Backbone then head, initialised on `device` in that order (so that one seed gives every
/// method the same initial backbone).
pub(crate) fn build_encoder<B: Backend>(
    backbone: &contrast_encoders::ResNetConfig,
    head: &contrast_encoders::ProjectionHeadConfig,
    device: &B::Device,
) -> contrast_encoders::ProjectedEncoder<B> {
    contrast_encoders::ProjectedEncoder {
        backbone: backbone.init(device),
        head: head.init(device),
    }
}
