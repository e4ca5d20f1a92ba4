use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use std::collections::BTreeMap;

use burn::config::Config;
use burn::module::{AutodiffModule, Module};
use burn::optim::GradientsParams;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Deserialize, Serialize};

use contrast_core::{IndexSampler, ShuffledSampler, Views, ensure_positive, to_vec_f32};
use contrast_sampler::{
    BatchSampler, BatchSamplerConfig, mean_pairwise_similarity, same_class_pair_share,
};

use contrast_parallel::{Peer, Reduce};

use crate::checkpoint::{self, CheckpointData};
use crate::monitor::Monitor;
use crate::{Error, Method, OptimizerConfig};

/// Settings of the training loop.
#[derive(Config, Debug)]
pub struct TrainConfig {
    /// Optimiser and schedule.
    pub optimizer: OptimizerConfig,
    /// Passes over the training split.
    #[config(default = 10)]
    pub epochs: usize,
    /// Instances per batch (each gives two views).
    #[config(default = 256)]
    pub batch_size: usize,
    /// Seed of the sampler (the views carry their own seed).
    #[config(default = 42)]
    pub seed: u64,
    /// Run the monitors every this many epochs (0: only after the last epoch).
    #[config(default = 1)]
    pub monitor_every: usize,
    /// Also run the monitors after every this many optimiser steps, counted over the whole run
    /// (0: off), recorded in [`History::step_monitors`]; a step that ends an epoch whose
    /// monitors run anyway is measured once, in its [`EpochRecord`].
    #[config(default = 0)]
    pub monitor_every_steps: usize,
    /// Compute the mean pairwise similarity of each batch's embeddings (a diagnostic that
    /// copies them to the host every step).
    #[config(default = true)]
    pub batch_similarity: bool,
    /// Drop the last, incomplete batch of each shuffled epoch (the usual choice for image
    /// methods); GraphCL's reference keeps it.
    #[config(default = true)]
    pub drop_last: bool,
    /// Stop (as if killed) after this many optimiser steps in this invocation; for tests of
    /// resume.
    #[config(default = "None")]
    pub stop_after_steps: Option<usize>,
    /// Sample batches with BatchSampler instead of shuffling (its `batch_size` and `seed` are
    /// this config's: see [`resolved_batch_sampler`](Self::resolved_batch_sampler)).
    #[config(default = "None")]
    pub batch_sampler: Option<BatchSamplerConfig>,
    /// On several peers ([`RunDir::peer`]): gather every peer's embeddings as the in-batch
    /// negatives of methods that take them, so that the loss is the global batch's (off: each
    /// peer's share is a batch of its own, with its own negatives).
    #[config(default = true)]
    pub gather_negatives: bool,
    /// On several peers: batch norm ([`contrast_encoders::BatchNorm2d`], in backbones and
    /// heads) normalises with the statistics of every peer's batch together, as one device on
    /// the global batch (synchronised batch norm, PyTorch's `SyncBatchNorm`: two all-reduces
    /// per batch-norm call in each direction); off, each peer's share is normalised with its
    /// own statistics, as with PyTorch's DDP by default. MoCo refuses it
    /// ([`Method::validate_sync_batch_norm`]).
    #[config(default = false)]
    pub sync_batch_norm: bool,
    /// Keep the weights at which this monitor measured its highest value, over every epoch and
    /// step evaluation (`None`: keep only the last weights). The loop returns them in
    /// [`Trained::best`] and, with a run folder, writes them to `best.bin` beside the
    /// checkpoint so that a resumed run keeps them (as `load_best_model_at_end` in Hugging
    /// Face's trainer, which SimCSE's code uses with STS-B dev).
    #[config(default = "None")]
    pub keep_best: Option<String>,
}

impl TrainConfig {
    /// Whether the monitors measure at the end of `epoch`: every
    /// [`monitor_every`](Self::monitor_every) epochs, and after the last.
    pub(crate) fn measures_epoch(&self, epoch: usize) -> bool {
        epoch + 1 == self.epochs
            || (self.monitor_every > 0 && (epoch + 1).is_multiple_of(self.monitor_every))
    }

    /// Checks ranges against the training split size.
    ///
    /// # Errors
    /// `InvalidConfig` naming the field.
    pub fn validate(&self, train_len: usize) -> Result<(), contrast_core::Error> {
        self.validate_on(train_len, None)
    }

    /// [`validate`](Self::validate) for a batch split over `peers` peers: each needs at least
    /// one instance of every batch.
    ///
    /// # Errors
    /// `InvalidConfig` naming the field.
    pub fn validate_on(
        &self,
        train_len: usize,
        peers: Option<usize>,
    ) -> Result<(), contrast_core::Error> {
        self.optimizer.validate()?;
        ensure_positive("epochs", self.epochs as f64)?;
        if self.batch_size < 2 {
            return Err(contrast_core::Error::invalid_config(
                "batch_size",
                self.batch_size,
                "contrastive training needs at least 2 instances per batch",
            ));
        }
        if let Some(peers) = peers.filter(|&p| p > 1) {
            if self.batch_size < peers {
                return Err(contrast_core::Error::invalid_config(
                    "batch_size",
                    self.batch_size,
                    format!("is split over {peers} peers: at least one instance each"),
                ));
            }
            // BatchSampler's exactly-once epochs end with the remainder whatever `drop_last`.
            let last = train_len % self.batch_size;
            let keeps_last = !self.drop_last || self.batch_sampler.is_some();
            if keeps_last && last != 0 && last < peers {
                return Err(contrast_core::Error::invalid_config(
                    "batch_size",
                    self.batch_size,
                    format!(
                        "leaves a last batch of {last} instance(s) of the {train_len} for \
                         {peers} peers: pick another batch size"
                    ),
                ));
            }
        }
        if self.batch_size > train_len {
            return Err(contrast_core::Error::invalid_config(
                "batch_size",
                self.batch_size,
                format!("exceeds the {train_len} training instances"),
            ));
        }
        Ok(())
    }

    /// The BatchSampler settings the loop uses: [`batch_sampler`](Self::batch_sampler) with
    /// this config's batch size and seed.
    pub fn resolved_batch_sampler(&self) -> Option<BatchSamplerConfig> {
        self.batch_sampler.clone().map(|mut b| {
            b.batch_size = self.batch_size;
            b.seed = self.seed;
            b
        })
    }

    /// The settings that decide what training computes, by name: a checkpoint records them and
    /// a resume must match them all (monitors and diagnostics are left out: they change no
    /// weight; `keep_best` is in, since the best must be sought over the whole run).
    fn settings(&self, method: String, train_len: usize) -> Settings {
        let o = &self.optimizer;
        let mut settings = Settings::from([
            ("method".into(), method),
            ("training instances".into(), train_len.to_string()),
            ("epochs".into(), self.epochs.to_string()),
            ("batch size".into(), self.batch_size.to_string()),
            (
                "last batch".into(),
                if self.drop_last { "dropped" } else { "kept" }.into(),
            ),
            (
                "sampler".into(),
                self.resolved_batch_sampler()
                    .map_or("shuffled".to_string(), |b| format!("{b:?}")),
            ),
            ("seed".into(), self.seed.to_string()),
            (
                "optimizer".into(),
                format!(
                    "{:?}, learning rate {}, weight decay {}, momentum {}, warm-up {} epoch(s)",
                    o.kind, o.learning_rate, o.weight_decay, o.momentum, o.warmup_epochs
                ),
            ),
        ]);
        // Only when they differ from the defaults, so that checkpoints of cosine-decay runs
        // without `keep_best` written before these settings existed still resume (others
        // are refused: a constant rate was not recorded, so it cannot be told from cosine).
        if o.decay != crate::Decay::default() {
            settings.insert("learning-rate decay".into(), format!("{:?}", o.decay));
        }
        if let Some(name) = &self.keep_best {
            settings.insert("best weights kept by".into(), name.clone());
        }
        settings
    }
}

/// Refuses start embeddings without BatchSampler, or with a warm-up that would replace them
/// before the first walk; their shape is checked by the sampler.
fn check_start_embeddings(
    start: &StartEmbeddings,
    config: &TrainConfig,
) -> Result<(), contrast_core::Error> {
    match &config.batch_sampler {
        None => Err(contrast_core::Error::invalid_config(
            "start_embeddings",
            format!("{start:?}"),
            "are for BatchSampler's first graph, and this run shuffles",
        )),
        Some(b) if b.warmup_epochs > 0 => Err(contrast_core::Error::invalid_config(
            "batch_sampler.warmup_epochs",
            b.warmup_epochs,
            "must be 0 with start embeddings (the sampler walks on their graph from the first \
             step; a warm-up would collect others)",
        )),
        Some(_) => Ok(()),
    }
}

/// Start embeddings whose rows are not as wide as those the method passes the sampler, which
/// would replace them all at the first step.
fn start_width_error(start: &StartEmbeddings, dim: usize) -> contrast_core::Error {
    contrast_core::Error::invalid_config(
        "start_embeddings",
        format!("{start:?}"),
        format!(
            "have rows of {}, and the method gives the sampler rows of {dim} (each view's \
             normalised projection side by side: StartEmbeddings::from_projections with the \
             method's number of views)",
            start.dim
        ),
    )
}

/// Named settings of a run (see [`TrainConfig`] and [`RunDir::identity`]).
type Settings = BTreeMap<String, String>;

/// The differences between a checkpoint's settings and this run's, in words; empty when equal.
fn differences(saved: &Settings, now: &Settings) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = saved.keys().chain(now.keys()).collect();
    keys.into_iter()
        .filter(|k| saved.get(*k) != now.get(*k))
        .map(|k| {
            let side = |m: &Settings| m.get(k).map_or("not recorded".to_string(), |v| v.clone());
            format!("{k}: checkpoint {}, this run {}", side(saved), side(now))
        })
        .collect()
}

/// The shapes of a module's parameters, summarised: how many tensors and values, and a hash of
/// every shape in visiting order. Two modules of another backbone, head or width differ.
#[derive(Default)]
struct Layout {
    tensors: usize,
    values: usize,
    hash: u64,
}

impl Layout {
    fn add(&mut self, dims: &[usize]) {
        self.tensors += 1;
        self.values += dims.iter().product::<usize>();
        for &d in dims.iter().chain([&usize::MAX]) {
            for b in (d as u64).to_le_bytes() {
                // FNV-1a.
                self.hash = (self.hash ^ b as u64).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }

    fn of<B: burn::tensor::backend::Backend, M: Module<B>>(module: &M) -> Layout {
        let mut l = Layout {
            hash: 0xcbf2_9ce4_8422_2325,
            ..Layout::default()
        };
        module.visit(&mut l);
        l
    }

    fn describe(&self) -> String {
        format!(
            "{} values in {} tensors, shapes hash {:016x}",
            self.values, self.tensors, self.hash
        )
    }
}

/// Why the disk with `free` bytes cannot take a checkpoint of about `need` bytes (written beside
/// the previous one, then renamed over it), if it cannot.
fn lacks_space(free: Option<u64>, need: u64) -> Option<String> {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    // A margin for the header, the sampler's state and the file system's own blocks.
    let need = need + need / 10 + (1 << 20);
    free.filter(|&f| f < need).map(|f| {
        format!(
            "its disk has {:.1} MiB free, the checkpoint files of this run take about {:.1} \
             MiB: free some space or pick another --out",
            mib(f),
            mib(need)
        )
    })
}

impl<B: burn::tensor::backend::Backend> burn::module::ModuleVisitor<B> for Layout {
    fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<burn::tensor::Tensor<B, D>>) {
        self.add(&p.lazy_shape().to_vec());
    }
    fn visit_int<const D: usize>(
        &mut self,
        p: &burn::module::Param<burn::tensor::Tensor<B, D, burn::tensor::Int>>,
    ) {
        self.add(&p.lazy_shape().to_vec());
    }
    fn visit_bool<const D: usize>(
        &mut self,
        p: &burn::module::Param<burn::tensor::Tensor<B, D, burn::tensor::Bool>>,
    ) {
        self.add(&p.lazy_shape().to_vec());
    }
}

/// What happened in one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Mean loss over the epoch's steps.
    pub loss: f64,
    /// Wall time of the epoch's training steps (without the monitor), seconds.
    pub seconds: f64,
    /// Training instances per second (each gives two views).
    pub instances_per_second: f64,
    /// Seconds spent augmenting, summed over the background batches.
    pub augment_seconds: f64,
    /// Seconds the loop waited for augmented batches (0 when data never starved the model).
    pub data_wait_seconds: f64,
    /// What each monitor measured, by its name, when the monitors ran.
    #[serde(deserialize_with = "nan_from_null")]
    pub monitors: BTreeMap<String, f64>,
    /// Batches in the epoch.
    pub batches: usize,
    /// Mean over batches of the share of same-class pairs (the in-batch false-negative rate);
    /// `None` for data without labels.
    pub same_class_pair_share: Option<f64>,
    /// Mean over batches of the mean pairwise cosine similarity of the batch's embeddings
    /// (`None` when [`TrainConfig::batch_similarity`] is off).
    pub mean_batch_similarity: Option<f64>,
    /// Seconds spent in the sampler (drawing batches, reading embeddings, graph builds).
    pub sampler_seconds: f64,
    /// Learning rate at the end of the epoch.
    pub learning_rate: f64,
}

impl EpochRecord {
    /// The value of monitor `name` at this epoch, if it ran.
    pub fn monitor(&self, name: &str) -> Option<f64> {
        self.monitors.get(name).copied()
    }

    /// The kNN monitor's top-1 at this epoch, if it ran.
    pub fn knn_top1(&self) -> Option<f64> {
        self.monitor(crate::monitor::KNN_TOP1)
    }
}

/// What the monitors measured between epochs ([`TrainConfig::monitor_every_steps`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMonitors {
    /// Epoch (0-based) the step belongs to.
    pub epoch: usize,
    /// Optimiser steps done in the whole run when the monitors ran.
    pub step: usize,
    /// What each monitor measured, by its name.
    #[serde(deserialize_with = "nan_from_null")]
    pub monitors: BTreeMap<String, f64>,
}

/// Monitor values as JSON writes them: a NaN (a monitor on collapsed embeddings) is written as
/// `null`, and read back as NaN rather than refusing the checkpoint.
fn nan_from_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, f64>, D::Error> {
    let values = BTreeMap::<String, Option<f64>>::deserialize(d)?;
    Ok(values
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
        .collect())
}

/// Where the best weights of a run came from ([`TrainConfig::keep_best`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestRecord {
    /// The monitor that chose them.
    pub monitor: String,
    /// Its value there.
    pub value: f64,
    /// Epoch (0-based) of the evaluation.
    pub epoch: usize,
    /// Optimiser steps done in the whole run at the evaluation.
    pub step: usize,
}

/// The run's history, saved in every checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// One record per finished epoch.
    pub epochs: Vec<EpochRecord>,
    /// Loss of every step.
    pub step_losses: Vec<f32>,
    /// The monitors' measurements between epochs, in step order (empty unless
    /// [`TrainConfig::monitor_every_steps`] is set; checkpoints written before it existed read
    /// as empty).
    #[serde(default)]
    pub step_monitors: Vec<StepMonitors>,
    /// The best evaluation so far under [`TrainConfig::keep_best`] (`None` when it is off or
    /// nothing was measured yet).
    #[serde(default)]
    pub best: Option<BestRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    /// What the run trains (see [`TrainConfig::settings`]); empty in checkpoints of builds that
    /// recorded a single fingerprint string instead.
    #[serde(default)]
    settings: Settings,
    epochs_done: usize,
    global_step: usize,
    history: History,
    /// The method's counters ([`Method::Counters`]) as JSON text (a `Value` cannot hold the
    /// 128-bit states of the random generators).
    method: String,
}

/// Where the loop keeps its checkpoint and whether it resumes from it.
///
/// A folder that already holds a checkpoint is never written over silently: the run resumes it
/// (`resume`, when every setting matches), replaces it (`overwrite`), or stops with an error.
#[derive(Debug, Clone, Default)]
pub struct RunDir {
    /// Folder of `checkpoint.bin`; `None` for no checkpoints.
    pub dir: Option<PathBuf>,
    /// Continue from the checkpoint in `dir` if there is one (a missing one starts fresh, with
    /// a line saying so).
    pub resume: bool,
    /// Start afresh even if `dir` holds a checkpoint; it is replaced after the first epoch
    /// (an earlier `best.bin` then too, or as soon as this run finds its own best, after which
    /// the earlier checkpoint no longer resumes).
    pub overwrite: bool,
    /// Print a progress line to stderr.
    pub progress: bool,
    /// What the caller knows about the data and model that the loop cannot see (dataset name,
    /// instance shape, backbone), by name: recorded in the checkpoint and compared on resume
    /// beside the loop's own settings and the model's parameter layout.
    pub identity: Vec<(String, String)>,
    /// This process's place in a data-parallel group (see [`train_on_peers`]); `None` for one
    /// device. Every peer trains its share of each batch; the lead peer runs the monitors and
    /// reports progress, each process's first peer writes the checkpoint.
    pub peer: Option<Peer>,
    /// Embeddings of every training instance for BatchSampler's first proximity graph, e.g. a
    /// pretrained model's representations (see [`StartEmbeddings`]); `None`: the sampler
    /// collects them from the training steps of its warm-up epochs.
    pub start_embeddings: Option<StartEmbeddings>,
}

/// Embeddings of every training instance (`rows x dim`, row `i` for instance `i`) from which
/// BatchSampler builds its first proximity graph, so that it walks from the first step (its
/// `warmup_epochs` must then be 0) instead of warming up on shuffled batches while it collects
/// them: a model that starts pretrained (SimCSE from a sentence encoder) already gives
/// meaningful neighbours. Their rows must have the layout of the embeddings the method passes
/// the sampler during training ([`StepOutput::embeddings`](crate::StepOutput): each view's
/// projection L2-normalised, the views side by side), as
/// [`from_projections`](Self::from_projections) builds them; the loop refuses other widths at
/// the first step. Used on a fresh start only; a resumed run has the sampler's embeddings in
/// its checkpoint.
#[derive(Clone)]
pub struct StartEmbeddings {
    /// Row-major values, shared so that each peer's copy of a [`RunDir`] is cheap.
    pub values: std::sync::Arc<Vec<f32>>,
    /// Width of a row.
    pub dim: usize,
    /// Where they came from, in words, for the run's settings and report.
    pub source: String,
}

impl StartEmbeddings {
    /// The projections (head outputs) of every instance of `views`, plain (not augmented), in
    /// batches of `batch`, through `model` as it is (pass the inner module: no dropout),
    /// L2-normalised and set `copies` times side by side: the layout of
    /// [`StepOutput::embeddings`](crate::StepOutput) for a method that embeds `copies` views
    /// per instance (2 for SimCLR, SimCSE, GraphCL, MoCo).
    ///
    /// # Panics
    /// If `batch` or `copies` is 0.
    pub fn from_projections<B, E, V>(
        model: &contrast_encoders::ProjectedEncoder<B, E>,
        views: &V,
        copies: usize,
        batch: usize,
        device: &B::Device,
        source: impl Into<String>,
    ) -> Self
    where
        B: Backend,
        E: contrast_core::Encoder<B>,
        V: Views<Input<B> = E::Input>,
    {
        assert!(
            batch > 0 && copies > 0,
            "StartEmbeddings::from_projections: batch {batch}, copies {copies}"
        );
        let n = views.len();
        let (mut values, mut dim) = (Vec::new(), 0);
        for start in (0..n).step_by(batch) {
            let idx: Vec<usize> = (start..(start + batch).min(n)).collect();
            let z = contrast_core::l2_normalize(
                model.projection(views.plain::<B>(&idx, device)),
                contrast_core::NORM_EPS,
            );
            let z = burn::tensor::Tensor::cat(vec![z; copies], 1);
            dim = z.dims()[1];
            values.extend(to_vec_f32(z));
        }
        Self {
            values: std::sync::Arc::new(values),
            dim,
            source: source.into(),
        }
    }
}

impl std::fmt::Debug for StartEmbeddings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StartEmbeddings({} x {} from {})",
            self.values.len() / self.dim.max(1),
            self.dim,
            self.source
        )
    }
}

impl RunDir {
    /// The checkpoint file.
    pub fn checkpoint(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join("checkpoint.bin"))
    }

    /// The file of the best weights ([`TrainConfig::keep_best`]).
    pub fn best(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join("best.bin"))
    }
}

/// The result of [`train`].
#[derive(Debug)]
pub struct Trained<M> {
    /// The trained model.
    pub model: M,
    /// Losses and per-epoch records (including those before a resume).
    pub history: History,
    /// True when `stop_after_steps` ended the run early.
    pub interrupted: bool,
    /// The epoch the run started from (non-zero after a resume).
    pub resumed_at_epoch: usize,
    /// The sampler's own counters (`IndexSampler::summary`).
    pub sampler_summary: String,
    /// The weights at [`History::best`] ([`TrainConfig::keep_best`]; `None` when it is off or
    /// nothing was measured).
    pub best: Option<BestWeights>,
}

/// The weights a run kept at its best evaluation ([`TrainConfig::keep_best`]), as a record.
///
/// A record and not a second model: a clone of a Burn module shares its batch-norm running
/// statistics with the original, which training goes on updating.
#[derive(Clone)]
pub struct BestWeights {
    /// Where they came from.
    pub record: BestRecord,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for BestWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BestWeights")
            .field("record", &self.record)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl BestWeights {
    /// `model` (the run's final model, or a fresh one of the same layout) with these weights:
    /// Burn loads a record in place, batch-norm statistics included, so every clone of `model`
    /// changes with it.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] (naming `best.bin`) when the weights do not fit `model`.
    pub fn load_into<B: Backend, M: Module<B>>(
        &self,
        model: M,
        device: &B::Device,
    ) -> Result<M, Error> {
        let bad = |reason: String| Error::Checkpoint {
            path: PathBuf::from("best.bin"),
            reason,
        };
        decode_into(self.bytes.clone(), model, device, "best weights", bad)
    }
}

/// `model` with the record in `bytes` loaded into it (in place, as Burn loads), refusing bytes
/// that do not decode or whose tensors do not have the model's shapes; errors begin with
/// `what` and are built by `bad`.
fn decode_into<B: Backend, M: Module<B>>(
    bytes: Vec<u8>,
    model: M,
    device: &B::Device,
    what: &str,
    bad: impl Fn(String) -> Error,
) -> Result<M, Error> {
    let want = Layout::of::<B, _>(&model);
    let record = checkpoint::catch_decode_panic(|| {
        crate::record_check::load_record::<B, M::Record>(bytes, device)
    })
    .map_err(|p| bad(format!("{what}: undecodable ({p})")))?
    .map_err(|e| bad(format!("{what}: {e}")))?;
    let loaded = checkpoint::catch_decode_panic(|| model.load_record(record))
        .map_err(|p| bad(format!("{what}: do not fit this model ({p})")))?;
    // Burn loads a record into parameters of other shapes without a word.
    let got = Layout::of::<B, _>(&loaded);
    if want.hash != got.hash {
        return Err(bad(format!(
            "{what}: its tensors ({}) do not have this model's shapes ({})",
            got.describe(),
            want.describe()
        )));
    }
    Ok(loaded)
}

type Bytes = BinBytesRecorder<FullPrecisionSettings>;

/// A fixed seeded subset of `0..n` of size `k` (all of `0..n` for `k == 0` or `k >= n`).
pub fn subset_indices(n: usize, k: usize, seed: u64) -> Vec<usize> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let mut idx: Vec<usize> = (0..n).collect();
    if k == 0 || k >= n {
        return idx;
    }
    idx.shuffle(&mut rand_pcg::Pcg64Mcg::seed_from_u64(seed));
    idx.truncate(k);
    idx.sort_unstable();
    idx
}

struct Progress {
    enabled: bool,
    tty: bool,
    last_line: Instant,
}

impl Progress {
    fn new(enabled: bool) -> Self {
        Progress {
            enabled,
            tty: std::io::stderr().is_terminal(),
            last_line: Instant::now(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        epoch: usize,
        epochs: usize,
        step: usize,
        steps: usize,
        loss: f64,
        ips: f64,
        eta: f64,
    ) {
        if !self.enabled {
            return;
        }
        let line = format!(
            "epoch {}/{} [{:>4}/{}] loss {:.4}  {:.0} inst/s  eta {:.0}s",
            epoch + 1,
            epochs,
            step + 1,
            steps,
            loss,
            ips,
            eta
        );
        if self.tty {
            eprint!("\r{line}   ");
        } else if self.last_line.elapsed().as_secs_f64() > 30.0 || step + 1 == steps {
            eprintln!("{line}");
            self.last_line = Instant::now();
        }
    }

    fn epoch(&mut self, r: &EpochRecord) {
        if !self.enabled {
            return;
        }
        if self.tty {
            eprintln!();
        }
        let monitors: String = r
            .monitors
            .iter()
            .map(|(name, v)| format!("  {name} {v:.2}"))
            .collect();
        eprintln!(
            "epoch {} done: loss {:.4}, {:.1}s, {:.0} inst/s, lr {:.2e}{monitors}",
            r.epoch + 1,
            r.loss,
            r.seconds,
            r.instances_per_second,
            r.learning_rate
        );
    }

    fn monitors(&mut self, step: usize, measured: &BTreeMap<String, f64>) {
        if !self.enabled {
            return;
        }
        if self.tty {
            eprintln!();
        }
        let values: String = measured
            .iter()
            .map(|(name, v)| format!("  {name} {v:.2}"))
            .collect();
        eprintln!("step {step}:{values}");
    }
}

/// The model and the method's state, recorded together in a checkpoint's model section.
type Saved<M, S> = (M, S);

/// Trains `model` with `method` on the instances of `views` (two views per instance, batches
/// from the shuffled sampler or BatchSampler), with a checkpoint after every epoch and the
/// `monitors` every [`TrainConfig::monitor_every`] epochs, after the last, and every
/// [`TrainConfig::monitor_every_steps`] steps when set; with [`TrainConfig::keep_best`], the
/// weights of that monitor's best evaluation are kept too ([`Trained::best`], `best.bin` in
/// `run.dir`).
///
/// The views of batch `t + 1` are made on a background thread while the model trains on batch
/// `t`. With `run.resume` and a checkpoint in `run.dir`, the model, optimiser, sampler
/// position, method state and history are restored and training continues from the next
/// epoch; on a deterministic backend (flex) the final weights equal those of an uninterrupted
/// run.
///
/// # Errors
/// `InvalidConfig` for bad settings, [`Error::Checkpoint`] for an unusable checkpoint (it is
/// never overwritten before a new one is complete), [`Error::NonFiniteLoss`] when the loss is
/// NaN or infinite (the weights are not updated with it and the last checkpoint stays), and
/// whatever a monitor reports.
pub fn train<B, M, Me, V>(
    method: &mut Me,
    mut model: M,
    views: &V,
    monitors: &mut [Box<dyn Monitor<B, M> + '_>],
    config: &TrainConfig,
    run: &RunDir,
    device: &B::Device,
) -> Result<Trained<M>, Error>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    Me: Method<B, M, Batch = V::Batch<B>>,
    V: Views,
{
    let n = views.len();
    let peer = run.peer.as_ref().filter(|p| p.world() > 1);
    config.validate_on(n, peer.map(Peer::world))?;
    method.validate_batch(config.batch_size, n)?;
    // Checked before the peers meet, so that a refusal does not leave them waiting; only the
    // lead runs monitors.
    if let Some(name) = config
        .keep_best
        .as_deref()
        .filter(|_| peer.is_none_or(|p| p.is_lead()))
        && !monitors.iter().any(|m| m.name() == name)
    {
        let names: Vec<&str> = monitors.iter().map(|m| m.name()).collect();
        return Err(contrast_core::Error::invalid_config(
            "keep_best",
            name,
            format!(
                "names no monitor of this run (its monitors: {})",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            ),
        )
        .into());
    }
    let reduce = match peer {
        Some(p) => {
            let reduce = method.join(p, config.gather_negatives)?;
            // A share whose loss is its own is a batch of its own.
            let smallest = config.batch_size / p.world();
            if reduce == Reduce::Mean && smallest < 2 {
                return Err(contrast_core::Error::invalid_config(
                    "batch_size",
                    config.batch_size,
                    format!(
                        "gives {} peers shares of {smallest} instance(s), each trained as a \
                         batch of its own: at least 2 per peer",
                        p.world()
                    ),
                )
                .into());
            }
            if config.sync_batch_norm {
                method.validate_sync_batch_norm()?;
                if !contrast_parallel::sums_with_gradient::<B>() {
                    return Err(contrast_core::Error::invalid_config(
                        "sync_batch_norm",
                        true,
                        "needs Burn's Autodiff with its default checkpointing (the backward \
                         pass sums the statistics' gradients over the peers)",
                    )
                    .into());
                }
            }
            p.register::<B::InnerBackend>(device)?;
            reduce
        }
        None => Reduce::Mean,
    };
    let lead = peer.is_none_or(|p| p.is_lead());
    let info = method.info(config.batch_size);
    let mut settings = config.settings(format!("{} ({})", info.name, info.description), n);
    if let Some(p) = peer {
        settings.insert("peers".into(), p.world().to_string());
        let negatives = if config.gather_negatives {
            "gathered from every peer"
        } else {
            "each peer's own"
        };
        settings.insert("negatives".into(), negatives.into());
        if config.sync_batch_norm {
            settings.insert("batch norm".into(), "synchronised over every peer".into());
        }
    }
    let layout = Layout::of::<B, _>(&(model.clone(), method.state().0));
    settings.insert("model and method state".into(), layout.describe());
    settings.extend(run.identity.iter().cloned());
    if let Some(start) = &run.start_embeddings {
        check_start_embeddings(start, config)?;
        settings.insert(
            "first proximity graph".into(),
            format!("from {}", start.source),
        );
    }
    let mut sampler: Box<dyn IndexSampler> = match config.resolved_batch_sampler() {
        Some(b) => {
            let mut s = BatchSampler::new(b, n)?;
            if let Some(start) = &run.start_embeddings {
                s.set_embeddings(start.values.to_vec(), start.dim)?;
            }
            Box::new(s)
        }
        None => Box::new(ShuffledSampler::new(
            n,
            config.batch_size,
            config.drop_last,
            config.seed,
        )?),
    };
    let mut optim = config.optimizer.init::<B, M>();
    let mut history = History::default();
    let mut start_epoch = 0;
    let mut global_step = 0;
    let ckpt_path = run.checkpoint();
    let best_path = run.best();
    // The weights at `history.best`.
    let mut best_model: Option<BestWeights> = None;

    let existing = ckpt_path.as_ref().filter(|p| p.exists());
    if let (Some(path), false, false) = (existing, run.resume, run.overwrite) {
        return Err(Error::Checkpoint {
            path: path.clone(),
            reason: "it holds an earlier run: continue it with --resume (same settings) or \
                     start again over it with --overwrite"
                .into(),
        });
    }
    if let (Some(path), true, false) = (&ckpt_path, run.resume, existing.is_some())
        && run.progress
        && lead
    {
        eprintln!(
            "no checkpoint at {}: nothing to resume, starting from the first epoch",
            path.display()
        );
    }
    if let (true, Some(path)) = (run.resume, existing) {
        let ck = checkpoint::read(path)?;
        let bad = |reason: String| Error::Checkpoint {
            path: path.clone(),
            reason,
        };
        let header: Header =
            serde_json::from_slice(&ck.header).map_err(|e| bad(format!("header: {e}")))?;
        if header.settings.is_empty() {
            return Err(bad(
                "it was written by an earlier contrast that did not record its settings; start \
                 again with --overwrite or in another --out folder"
                    .into(),
            ));
        }
        let changed = differences(&header.settings, &settings);
        if !changed.is_empty() {
            return Err(bad(format!(
                "it was written by a run with other settings ({}); resume with the same \
                 settings, or start again with --overwrite or in another --out folder",
                changed.join("; ")
            )));
        }
        let counters: Me::Counters = serde_json::from_str(&header.method)
            .map_err(|e| bad(format!("method counters: {e}")))?;
        let (state, _) = method.state();
        // The layout recorded in the header matched, so a shape difference found here means a
        // crafted file.
        let (loaded, state): Saved<M, Me::State> = decode_into(
            ck.model,
            (model, state),
            device,
            "model and method state",
            bad,
        )?;
        model = loaded;
        method.load_state(state, counters);
        optim = checkpoint::catch_decode_panic(|| optim.load_bytes(ck.optimizer, device))
            .map_err(|p| bad(format!("optimizer: undecodable ({p})")))?
            .map_err(|e| bad(format!("optimizer: {e}")))?;
        checkpoint::catch_decode_panic(|| sampler.load_state_bytes(&ck.sampler))
            .map_err(|p| bad(format!("sampler state: undecodable ({p})")))?
            .map_err(|e| bad(format!("sampler state: {e}")))?;
        start_epoch = header.epochs_done;
        global_step = header.global_step;
        history = header.history;
        if let (Some(saved), Some(best), Some(_)) = (&history.best, &best_path, &config.keep_best)
            && lead
        {
            let weights = read_best(best, saved)?;
            history.best = Some(weights.record.clone());
            best_model = Some(weights);
        }
        if run.progress && lead {
            eprintln!("resuming from {} after epoch {start_epoch}", path.display());
        }
    }
    if let Some(p) = peer {
        // Every peer starts from the lead's weights and state, whatever its own draw.
        let (state, counters) = method.state();
        let (shared, state) = contrast_parallel::broadcast_module(p, (model, state))?;
        model = shared;
        method.load_state(state, counters);
    }
    // Each process's first peer writes the checkpoint (the peers hold the same weights).
    let writes = peer.is_none_or(Peer::is_node_lead);

    if let Some(path) = &ckpt_path {
        // Checkpoints hold the model and method state and the optimiser's state (Adam: two
        // moments per parameter), in f32; `best.bin` another copy of the model.
        let model_values = Layout::of::<B, _>(&model).values;
        let best = if config.keep_best.is_some() {
            model_values
        } else {
            0
        };
        let need = 4 * (layout.values + 2 * model_values + best) as u64;
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Some(reason) = lacks_space(contrast_core::available_space(dir), need) {
            return Err(Error::NoSpace {
                dir: dir.to_path_buf(),
                reason,
            });
        }
    }

    // Schedule and progress use the batch count of a shuffled epoch (BatchSampler's epochs
    // have about as many batches in its exactly-once mode).
    let steps_per_epoch = if config.drop_last {
        n / config.batch_size
    } else {
        n.div_ceil(config.batch_size)
    };
    let total_steps = steps_per_epoch * config.epochs;
    let warmup = (config.optimizer.warmup_epochs * steps_per_epoch).min(total_steps / 2);
    let mut progress = Progress::new(run.progress && lead);
    let mut steps_this_call = 0usize;
    let mut lr = config
        .optimizer
        .learning_rate_at(global_step, total_steps, warmup);
    let labels = views.labels();
    let mode = method.views();

    // BatchSampler on several peers: the lead's sampler draws every global batch and shares
    // it, so that its proximity graph is built once; the other peers' samplers stay idle.
    let shared_sampler = peer.filter(|_| config.batch_sampler.is_some());
    let drives = shared_sampler.is_none_or(Peer::is_lead);
    if shared_sampler.is_some() && n >= contrast_parallel::EXACT_INDICES {
        return Err(contrast_core::Error::invalid_config(
            "batch_sampler",
            n,
            "on several peers the batches travel as f32 indices, exact below 2^24 instances",
        )
        .into());
    }
    let next = |sampler: &mut dyn IndexSampler| -> Result<Option<Vec<usize>>, Error> {
        let mine = if drives { sampler.next_batch() } else { None };
        match shared_sampler {
            None => Ok(mine),
            Some(p) => Ok(contrast_parallel::share_indices::<B::InnerBackend>(
                p,
                mine.as_deref(),
                config.batch_size,
                device,
            )?),
        }
    };

    // The monitors' evaluations in this call and their seconds: the progress line's ETA adds
    // those still to come at their mean time.
    let mut evaluations = (0usize, 0.0f64);
    for epoch in start_epoch..config.epochs {
        let started = Instant::now();
        // Starting an epoch may rebuild BatchSampler's graph: sampler time.
        if drives {
            sampler.begin_epoch(epoch);
        }
        let epoch_start_seconds = started.elapsed().as_secs_f64();
        let batches_this_epoch = sampler.batches_per_epoch();
        let run_monitors = config.measures_epoch(epoch);
        // Seconds the step monitors took: not training time.
        let mut monitor_seconds = 0.0;
        let mut loss_sum = 0.0f64;
        let mut steps = 0usize;
        let mut augment_seconds = 0.0;
        let mut wait_seconds = 0.0;
        let mut sampler_seconds = epoch_start_seconds;
        let mut pair_share_sum = 0.0;
        let mut similarity_sum = 0.0;
        let mut stopped = false;
        // The optimiser takes the model by value; holding it in a slot lets the step move it
        // instead of cloning it (a clone shares every parameter, so the update could not reuse
        // their buffers).
        let mut slot = Some(model);
        let outcome: Result<(), Error> = std::thread::scope(|s| {
            // Each peer makes the views of its share of the global batch only.
            let spawn = |idx: Vec<usize>| {
                s.spawn(move || {
                    let t = Instant::now();
                    let (mine, split) = share(&idx, peer);
                    let v = views.host_views(mode, &mine, epoch);
                    (idx, mine, split, v, t.elapsed().as_secs_f64())
                })
            };
            let t = Instant::now();
            let mut pending = next(sampler.as_mut())?.map(spawn);
            sampler_seconds += t.elapsed().as_secs_f64();
            while let Some(handle) = pending.take() {
                let wait = Instant::now();
                let (idx, mine, split, host, aug) =
                    handle.join().expect("the views thread panicked");
                wait_seconds += wait.elapsed().as_secs_f64();
                augment_seconds += aug;
                let t = Instant::now();
                pending = next(sampler.as_mut())?.map(spawn);
                sampler_seconds += t.elapsed().as_secs_f64();
                if let Some(l) = labels {
                    pair_share_sum += same_class_pair_share(&idx, l.values);
                }

                let batch = views.to_device::<B>(host, device);
                let current = slot.take().expect("the model is in its slot between steps");
                if let Some(p) = peer {
                    p.set_split(split);
                }
                let out = match peer.filter(|p| config.sync_batch_norm && p.world() > 1) {
                    Some(p) => contrast_core::with_peer_sum(
                        contrast_parallel::batch_statistics_sum::<B>(p),
                        || method.step(&current, batch, &mine),
                    ),
                    None => method.step(&current, batch, &mine),
                };
                if let Some(e) = peer.and_then(Peer::take_error) {
                    slot = Some(current);
                    return Err(e.into());
                }
                let value = to_vec_f32(out.loss.clone())[0];
                // On several peers the gradients are computed first and combined with the
                // loss, so that every peer sees the same loss and stops together on a NaN.
                let (value, grads) = match peer {
                    None => (value, None),
                    Some(p) => {
                        // Averaged shares' losses weigh by their size: the mean over the
                        // peers is then the global batch's mean, even split or not.
                        let weight = match reduce {
                            Reduce::Mean => (p.world() * mine.len()) as f32 / idx.len() as f32,
                            Reduce::Sum => 1.0,
                        };
                        let value = value * weight;
                        let loss = if weight == 1.0 {
                            out.loss.clone()
                        } else {
                            out.loss.clone().mul_scalar(weight)
                        };
                        let grads = GradientsParams::from_grads(loss.backward(), &current);
                        let synced =
                            contrast_parallel::sync_gradients(p, grads, &current, reduce, &[value]);
                        let (grads, combined) = match synced {
                            Ok(g) => g,
                            Err(e) => {
                                slot = Some(current);
                                return Err(e.into());
                            }
                        };
                        let value = match reduce {
                            Reduce::Sum => combined[0] / p.world() as f32,
                            Reduce::Mean => combined[0],
                        };
                        (value, Some(grads))
                    }
                };
                if !value.is_finite() {
                    let checkpoint = match (&ckpt_path, history.epochs.last()) {
                        (Some(p), Some(r)) if p.exists() => format!(
                            "The last good checkpoint, {} (after epoch {}), is unchanged. ",
                            p.display(),
                            r.epoch + 1
                        ),
                        _ => "No checkpoint was written yet. ".into(),
                    };
                    slot = Some(current);
                    return Err(Error::NonFiniteLoss {
                        epoch,
                        step: steps,
                        global_step,
                        value,
                        checkpoint,
                    });
                }
                lr = config
                    .optimizer
                    .learning_rate_at(global_step, total_steps, warmup);
                let grads = grads
                    .unwrap_or_else(|| GradientsParams::from_grads(out.loss.backward(), &current));
                let updated = optim.step(lr, current, grads);
                method.after_step(&updated);
                // Synchronised batch norm keeps the running statistics equal too.
                #[cfg(debug_assertions)]
                if let Some(p) = peer
                    && let Err(e) = contrast_parallel::check_same_parameters(
                        p,
                        &updated,
                        global_step,
                        config.sync_batch_norm,
                    )
                {
                    slot = Some(updated);
                    return Err(e.into());
                }
                slot = Some(updated);
                // Every peer takes part in gathering what the lead's sampler reads.
                let wants = drives && sampler.wants_embeddings();
                if config.batch_similarity || wants || shared_sampler.is_some() {
                    let dim = out.embeddings.dims()[1];
                    // The sampler and the diagnostic read the whole global batch.
                    let embeddings = match peer {
                        None => out.embeddings,
                        Some(p) => contrast_parallel::gather_rows(p, out.embeddings)?,
                    };
                    let emb = to_vec_f32(embeddings);
                    if config.batch_similarity {
                        similarity_sum += mean_pairwise_similarity(&emb, dim);
                    }
                    if wants {
                        if let Some(start) = run.start_embeddings.as_ref().filter(|s| s.dim != dim)
                        {
                            return Err(start_width_error(start, dim).into());
                        }
                        let t = Instant::now();
                        sampler.observe(&idx, &emb, dim);
                        sampler_seconds += t.elapsed().as_secs_f64();
                    }
                }
                loss_sum += value as f64;
                history.step_losses.push(value);
                steps += 1;
                global_step += 1;
                steps_this_call += 1;
                let every = config.monitor_every_steps;
                let ends_measured_epoch = run_monitors && steps >= batches_this_epoch;
                let due = every > 0 && global_step % every == 0 && !ends_measured_epoch;
                if due && lead && !monitors.is_empty() {
                    let t = Instant::now();
                    // The other peers of this process wait for the lead without counting it.
                    let _busy = peer.map(Peer::busy);
                    let model = slot
                        .as_ref()
                        .expect("the model is in its slot between steps");
                    let measured = measure_all(monitors, model, device)?;
                    keep_if_best(
                        config.keep_best.as_deref(),
                        (&measured, epoch, global_step),
                        model,
                        (&mut history, &mut best_model),
                        best_path.as_deref().filter(|_| writes),
                    )?;
                    progress.monitors(global_step, &measured);
                    history.step_monitors.push(StepMonitors {
                        epoch,
                        step: global_step,
                        monitors: measured,
                    });
                    let took = t.elapsed().as_secs_f64();
                    monitor_seconds += took;
                    evaluations = (evaluations.0 + 1, evaluations.1 + took);
                }
                let elapsed = started.elapsed().as_secs_f64() - monitor_seconds;
                let ips = (steps * config.batch_size) as f64 / elapsed.max(1e-9);
                // BatchSampler's exactly-once epochs may have one batch more than the schedule
                // counts, so the remaining count saturates at zero.
                let mut remaining =
                    total_steps.saturating_sub(global_step) as f64 * elapsed / steps as f64;
                if lead && !monitors.is_empty() && evaluations.0 > 0 {
                    let left = evaluations_left(config, (epoch, global_step, total_steps));
                    remaining += left as f64 * evaluations.1 / evaluations.0 as f64;
                }
                progress.step(
                    epoch,
                    config.epochs,
                    steps - 1,
                    batches_this_epoch,
                    loss_sum / steps as f64,
                    ips,
                    remaining,
                );
                if config.stop_after_steps == Some(steps_this_call) {
                    stopped = true;
                    // Let the prefetch thread finish; its batch is dropped.
                    if let Some(h) = pending.take() {
                        let _ = h.join();
                    }
                    return Ok(());
                }
            }
            Ok(())
        });
        outcome?;
        model = slot.expect("the model is back in its slot after the epoch");
        if stopped {
            if let Some(p) = peer {
                model = lead_model(p, model)?;
                p.finish::<B::InnerBackend>()?;
            }
            return Ok(Trained {
                model,
                history,
                interrupted: true,
                resumed_at_epoch: start_epoch,
                sampler_summary: sampler.summary(),
                best: best_model,
            });
        }
        let seconds = started.elapsed().as_secs_f64() - monitor_seconds;
        // The other peers of this process wait for the lead without counting the time.
        let _busy = peer.map(Peer::busy);
        let measured = if run_monitors && lead {
            let t = Instant::now();
            let measured = measure_all(monitors, &model, device)?;
            evaluations = (evaluations.0 + 1, evaluations.1 + t.elapsed().as_secs_f64());
            measured
        } else {
            BTreeMap::new()
        };
        keep_if_best(
            config.keep_best.as_deref(),
            (&measured, epoch, global_step),
            &model,
            (&mut history, &mut best_model),
            best_path.as_deref().filter(|_| writes),
        )?;
        let per_step = |sum: f64| sum / steps.max(1) as f64;
        let record = EpochRecord {
            epoch,
            loss: per_step(loss_sum),
            seconds,
            instances_per_second: (steps * config.batch_size) as f64 / seconds.max(1e-9),
            augment_seconds,
            data_wait_seconds: wait_seconds,
            monitors: measured,
            batches: steps,
            same_class_pair_share: labels.map(|_| per_step(pair_share_sum)),
            mean_batch_similarity: config.batch_similarity.then(|| per_step(similarity_sum)),
            sampler_seconds,
            learning_rate: lr,
        };
        progress.epoch(&record);
        history.epochs.push(record);
        if let (Some(path), true) = (&ckpt_path, writes) {
            let so_far = (&settings, epoch + 1, global_step, &history);
            save_checkpoint(path, so_far, &model, &optim, method, sampler.as_ref())?;
            // A best.bin that this run's history does not name is the replaced run's.
            if let (None, Some(stale)) = (&history.best, best_path.as_ref().filter(|b| b.exists()))
            {
                std::fs::remove_file(stale).map_err(|e| Error::Checkpoint {
                    path: stale.clone(),
                    reason: format!("left by an earlier run, cannot be removed: {e}"),
                })?;
            }
        }
        drop(_busy);
    }
    if let Some(p) = peer {
        model = lead_model(p, model)?;
        p.finish::<B::InnerBackend>()?;
    }
    Ok(Trained {
        model,
        history,
        interrupted: false,
        resumed_at_epoch: start_epoch,
        sampler_summary: sampler.summary(),
        best: best_model,
    })
}

/// The monitors' evaluations still to come after `step` of `total` in `epoch`, for the ETA:
/// one every [`TrainConfig::monitor_every_steps`] steps and one at the end of each measured
/// epoch from `epoch` on. An estimate: a step evaluation that falls on a measured epoch's end
/// is skipped by the loop but counted here, except at the run's last step.
fn evaluations_left(config: &TrainConfig, (epoch, step, total): (usize, usize, usize)) -> usize {
    let every = config.monitor_every_steps;
    let by_steps = match (total.checked_div(every), step.checked_div(every)) {
        (Some(to_end), Some(done)) => {
            to_end.saturating_sub(done) - usize::from(total.is_multiple_of(every) && total > step)
        }
        _ => 0,
    };
    by_steps
        + (epoch..config.epochs)
            .filter(|&e| config.measures_epoch(e))
            .count()
}

/// Records `model` as the run's best when monitor `keep` measured more than at
/// `history.best` (or nothing was recorded yet), and writes it to `path` when given (before the
/// next checkpoint names it, so a checkpoint never names weights that are not on disk).
fn keep_if_best<B: AutodiffBackend, M: AutodiffModule<B>>(
    keep: Option<&str>,
    (measured, epoch, step): (&BTreeMap<String, f64>, usize, usize),
    model: &M,
    (history, best): (&mut History, &mut Option<BestWeights>),
    path: Option<&Path>,
) -> Result<(), Error> {
    let Some((name, &value)) = keep.and_then(|k| measured.get_key_value(k)) else {
        return Ok(());
    };
    // A NaN measurement is never the best.
    if !value.is_finite() || history.best.as_ref().is_some_and(|b| value <= b.value) {
        return Ok(());
    }
    let record = BestRecord {
        monitor: name.clone(),
        value,
        epoch,
        step,
    };
    let bad = |reason: String| Error::Checkpoint {
        path: path.unwrap_or(Path::new("best.bin")).to_path_buf(),
        reason,
    };
    let bytes = Bytes::default()
        .record(model.clone().into_record(), ())
        .map_err(|e| bad(format!("best weights: {e}")))?;
    let bytes = match path {
        // A checkpoint file whose header is the record and whose model section holds the
        // weights (no optimiser or sampler).
        Some(path) => {
            let data = CheckpointData {
                header: serde_json::to_vec(&record).map_err(|e| bad(e.to_string()))?,
                model: bytes,
                optimizer: Vec::new(),
                sampler: Vec::new(),
            };
            checkpoint::write_atomic(path, &data)?;
            data.model
        }
        None => bytes,
    };
    history.best = Some(record.clone());
    *best = Some(BestWeights { record, bytes });
    Ok(())
}

/// Reads the best weights that a checkpoint's history names (`saved`) from `path`. The file may
/// be newer than the checkpoint (written after it by the steps a resume repeats, which find the
/// same best again; on a backend that does not repeat a run bit for bit, the kept weights may
/// then come from the path the resume abandoned), never older.
///
/// # Errors
/// [`Error::Checkpoint`] when the file is missing, damaged or older than `saved`.
fn read_best(path: &Path, saved: &BestRecord) -> Result<BestWeights, Error> {
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    if !path.exists() {
        return Err(bad(format!(
            "missing: the checkpoint names best weights ({} {:.4} at step {}) that should be \
             in it; restore the file, or start again with --overwrite",
            saved.monitor, saved.value, saved.step
        )));
    }
    let data = checkpoint::read(path)?;
    let record: BestRecord =
        serde_json::from_slice(&data.header).map_err(|e| bad(format!("header: {e}")))?;
    if record.monitor != saved.monitor || record.step < saved.step || record.value < saved.value {
        return Err(bad(format!(
            "it holds {} {:.4} at step {}, older than the checkpoint's best ({} {:.4} at step \
             {}): written by another run; start again with --overwrite",
            record.monitor, record.value, record.step, saved.monitor, saved.value, saved.step
        )));
    }
    Ok(BestWeights {
        record,
        bytes: data.model,
    })
}

/// What every monitor measures on `model`, by its name.
fn measure_all<B: AutodiffBackend, M: AutodiffModule<B>>(
    monitors: &mut [Box<dyn Monitor<B, M> + '_>],
    model: &M,
    device: &B::Device,
) -> Result<BTreeMap<String, f64>, Error> {
    let mut measured = BTreeMap::new();
    for m in monitors.iter_mut() {
        measured.insert(m.name().to_string(), m.measure(model, device)?);
    }
    Ok(measured)
}

/// This peer's contiguous share of the global batch `idx` and every rank's share size (the
/// whole batch without a peer).
fn share(idx: &[usize], peer: Option<&Peer>) -> (Vec<usize>, Vec<usize>) {
    let Some(p) = peer else {
        return (idx.to_vec(), vec![idx.len()]);
    };
    let (w, m) = (p.world(), idx.len());
    let sizes: Vec<usize> = (0..w).map(|r| m / w + usize::from(r < m % w)).collect();
    let start: usize = sizes[..p.rank()].iter().sum();
    (idx[start..start + sizes[p.rank()]].to_vec(), sizes)
}

/// With several nodes, `model` as the lead peer (rank 0) holds it: the weights are the same on
/// every peer, but without synchronised batch norm each keeps running statistics of its own
/// share, and every node evaluates and writes what its first peer returns.
///
/// # Errors
/// As [`contrast_parallel::broadcast_module`].
fn lead_model<B: AutodiffBackend, M: AutodiffModule<B>>(peer: &Peer, model: M) -> Result<M, Error> {
    if peer.config().nodes > 1 {
        Ok(contrast_parallel::broadcast_module(peer, model)?)
    } else {
        Ok(model)
    }
}

/// [`train`] data-parallel: one peer per device of `devices` (this process's peers of the
/// group, see [`contrast_parallel::GroupConfig`]), each training its contiguous share of every
/// global batch of [`TrainConfig::batch_size`] instances, with the gradients combined before
/// every optimiser step so that the peers' weights stay equal.
///
/// The first peer runs on the calling thread with `method`, `model` and the `monitors`; the
/// others on threads of their own, with copies moved to their devices. With gathered
/// negatives ([`TrainConfig::gather_negatives`]) the in-batch methods compute the global
/// batch's loss and the result equals one device's training on the whole batch (batch norm
/// aside, whose statistics stay per peer unless [`TrainConfig::sync_batch_norm`]). A checkpoint
/// records the number of peers; a resume must use as many.
///
/// Returns the first peer's result (its history has the monitors' values when it is the
/// group's lead).
///
/// # Errors
/// As [`train`], and [`Error::Peer`] when a peer fails (the first failure is named; the
/// others stop at their next collective operation) or does not answer within the group's
/// timeout.
///
/// # Panics
/// If `peers` and `devices` differ in length.
#[allow(clippy::too_many_arguments)]
pub fn train_on_peers<B, M, Me, V>(
    peers: Vec<Peer>,
    devices: &[B::Device],
    method: &mut Me,
    model: M,
    views: &V,
    monitors: &mut [Box<dyn Monitor<B, M> + '_>],
    config: &TrainConfig,
    run: &RunDir,
) -> Result<Trained<M>, Error>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    Me: Method<B, M, Batch = V::Batch<B>> + Clone + Send,
    V: Views,
{
    assert_eq!(
        peers.len(),
        devices.len(),
        "train_on_peers: one device per peer"
    );
    let others: Vec<std::sync::Mutex<Option<(Me, M)>>> = devices[1..]
        .iter()
        .map(|d| {
            // Copies of their own: a clone would share Burn's batch-norm running state
            // between the peers (and move it to the last peer's device).
            let mut m = method.clone();
            let (state, counters) = m.state();
            m.load_state(Me::State::from_inner(state.valid()).fork(d), counters);
            let copy = M::from_inner(model.valid()).fork(d);
            std::sync::Mutex::new(Some((m, copy)))
        })
        .collect();
    let with = |peer: Peer| RunDir {
        peer: Some(peer),
        ..run.clone()
    };
    let results = contrast_parallel::run_peers::<B::InnerBackend, _, Error, _, _>(
        peers,
        |peer| {
            let run = with(peer);
            train(method, model, views, monitors, config, &run, &devices[0]).map(Some)
        },
        |peer| {
            let i = peer.local_index();
            let (mut me, m) = others[i - 1]
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .expect("each peer runs once");
            let run = with(peer);
            train(&mut me, m, views, &mut [], config, &run, &devices[i]).map(|_| None)
        },
    )?;
    Ok(results
        .into_iter()
        .next()
        .flatten()
        .expect("the first peer's result"))
}

/// Writes the checkpoint of the run so far: a header of `(settings, epochs done, global step,
/// history)` and the method's counters, the model and the method's state as one record, the
/// optimiser and the sampler.
fn save_checkpoint<B, M, Me>(
    path: &Path,
    (settings, epochs_done, global_step, history): (&Settings, usize, usize, &History),
    model: &M,
    optim: &crate::AnyOptimizer<M, B>,
    method: &Me,
    sampler: &dyn IndexSampler,
) -> Result<(), Error>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    Me: Method<B, M>,
{
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let (state, counters) = method.state();
    let header = Header {
        settings: settings.clone(),
        epochs_done,
        global_step,
        history: history.clone(),
        method: serde_json::to_string(&counters)
            .map_err(|e| bad(format!("method counters: {e}")))?,
    };
    let record: <Saved<M, Me::State> as Module<B>>::Record = (model.clone(), state).into_record();
    let data = CheckpointData {
        header: serde_json::to_vec(&header).map_err(|e| bad(e.to_string()))?,
        model: Bytes::default()
            .record(record, ())
            .map_err(|e| bad(format!("model and method state: {e}")))?,
        optimizer: optim
            .to_bytes()
            .map_err(|e| bad(format!("optimizer: {e}")))?,
        sampler: sampler.state_bytes(),
    };
    checkpoint::write_atomic(path, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eta_counts_the_evaluations_to_come() {
        // 3 epochs of 10 steps, every epoch measured, and every 4 steps.
        let config = TrainConfig::new(OptimizerConfig::new())
            .with_epochs(3)
            .with_monitor_every_steps(4);
        // After step 5 of 30 in epoch 0: steps 8, 12, ..., 28 (6) and three epoch ends.
        assert_eq!(evaluations_left(&config, (0, 5, 30)), 9);
        // Step 28 done: only the last epoch's end (step 30 is no multiple of 4).
        assert_eq!(evaluations_left(&config, (2, 28, 30)), 1);
        // 32 steps: step 32 is the last epoch's end, counted once.
        assert_eq!(evaluations_left(&config, (2, 28, 32)), 1);
        assert_eq!(evaluations_left(&config, (2, 32, 32)), 1);
        // Every second epoch measured, no step evaluations: epochs 1 and 2 (the last).
        let config = config.with_monitor_every(2).with_monitor_every_steps(0);
        assert_eq!(evaluations_left(&config, (0, 3, 30)), 2);
    }

    #[test]
    fn a_disk_too_full_for_a_checkpoint_is_named_before_training() {
        assert!(lacks_space(None, 1 << 30).is_none());
        assert!(lacks_space(Some(10 << 30), 1 << 30).is_none());
        let why = lacks_space(Some(5 << 20), 100 << 20).unwrap();
        assert!(
            why.contains("5.0 MiB free") && why.contains("111.0 MiB"),
            "{why}"
        );
    }
}
