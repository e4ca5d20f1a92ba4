use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::config::Config;
use burn::module::{AutodiffModule, Module};
use burn::optim::GradientsParams;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use contrast_core::{IndexSampler, ShuffledSampler, ensure_positive, to_vec_f32};
use contrast_eval::{Features, KnnClassifier};
use contrast_sampler::{
    BatchSampler, BatchSamplerConfig, mean_pairwise_similarity, same_class_pair_share,
};
use contrast_vision::{ImageBatcher, ImageDataset, Splits};

use crate::checkpoint::{self, CheckpointData};
use crate::{Error, Method, OptimizerConfig};

/// Settings of the training loop.
#[derive(Config, Debug)]
pub struct TrainConfig {
    /// Optimiser and schedule.
    pub optimizer: OptimizerConfig,
    /// Passes over the training split.
    #[config(default = 10)]
    pub epochs: usize,
    /// Images per batch (each gives two views).
    #[config(default = 256)]
    pub batch_size: usize,
    /// Seed of the sampler and the augmentations.
    #[config(default = 42)]
    pub seed: u64,
    /// Run the kNN monitor every this many epochs (0: only after the last epoch).
    #[config(default = 1)]
    pub knn_every: usize,
    /// Training images in the kNN monitor's memory (a fixed seeded subset; 0 = all).
    #[config(default = 10000)]
    pub knn_train_subset: usize,
    /// Test images the kNN monitor classifies (0 = all).
    #[config(default = 2000)]
    pub knn_test_subset: usize,
    /// Batch size for computing embeddings.
    #[config(default = 512)]
    pub eval_batch_size: usize,
    /// Stop (as if killed) after this many optimiser steps in this invocation; for tests of
    /// resume.
    #[config(default = "None")]
    pub stop_after_steps: Option<usize>,
    /// Sample batches with BatchSampler instead of shuffling (its `batch_size` and `seed` are
    /// overridden by this config's).
    #[config(default = "None")]
    pub batch_sampler: Option<BatchSamplerConfig>,
}

impl TrainConfig {
    /// Checks ranges against the training split size.
    ///
    /// # Errors
    /// `InvalidConfig` naming the field.
    pub fn validate(&self, train_len: usize) -> Result<(), contrast_core::Error> {
        self.optimizer.validate()?;
        ensure_positive("epochs", self.epochs as f64)?;
        ensure_positive("eval_batch_size", self.eval_batch_size as f64)?;
        if self.batch_size < 2 {
            return Err(contrast_core::Error::invalid_config(
                "batch_size",
                self.batch_size,
                "contrastive training needs at least 2 images per batch",
            ));
        }
        if self.batch_size > train_len {
            return Err(contrast_core::Error::invalid_config(
                "batch_size",
                self.batch_size,
                format!("exceeds the {train_len} training images"),
            ));
        }
        Ok(())
    }

    /// The fixed train and test indices the kNN monitor uses.
    pub fn monitor_subsets(&self, data: &Splits) -> (Vec<usize>, Vec<usize>) {
        (
            subset_indices(
                data.train.len(),
                self.knn_train_subset,
                self.seed ^ 0x6b6e6e,
            ),
            subset_indices(
                data.test.len(),
                self.knn_test_subset,
                self.seed ^ 0x7465_7374,
            ),
        )
    }

    fn fingerprint(&self, method: &str, train_len: usize) -> String {
        format!(
            "{method}|n={train_len}|batch={}|sampler={}|seed={}|opt={:?}/{}/{}/{}",
            self.batch_size,
            self.batch_sampler
                .as_ref()
                .map_or("shuffled".to_string(), |b| format!("{b:?}")),
            self.seed,
            self.optimizer.kind,
            self.optimizer.learning_rate,
            self.optimizer.weight_decay,
            self.optimizer.momentum
        )
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
    /// Training images per second (each image gives two views).
    pub images_per_second: f64,
    /// Seconds spent augmenting, summed over the background batches.
    pub augment_seconds: f64,
    /// Seconds the loop waited for augmented batches (0 when data never starved the model).
    pub data_wait_seconds: f64,
    /// kNN monitor top-1 (percent), when it ran.
    pub knn_top1: Option<f64>,
    /// Batches in the epoch.
    pub batches: usize,
    /// Mean over batches of the share of same-class pairs (the in-batch false-negative rate).
    pub same_class_pair_share: f64,
    /// Mean over batches of the mean pairwise cosine similarity of the batch's projections.
    pub mean_batch_similarity: f64,
    /// Seconds spent in the sampler (drawing batches, reading embeddings, graph builds).
    pub sampler_seconds: f64,
    /// Learning rate at the end of the epoch.
    pub learning_rate: f64,
}

/// The run's history, saved in every checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// One record per finished epoch.
    pub epochs: Vec<EpochRecord>,
    /// Loss of every step.
    pub step_losses: Vec<f32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    fingerprint: String,
    epochs_done: usize,
    global_step: usize,
    history: History,
}

/// Where the loop keeps its checkpoint and whether it resumes from it.
#[derive(Debug, Clone, Default)]
pub struct RunDir {
    /// Folder of `checkpoint.bin`; `None` for no checkpoints.
    pub dir: Option<PathBuf>,
    /// Continue from the checkpoint in `dir` if there is one.
    pub resume: bool,
    /// Print a progress line to stderr.
    pub progress: bool,
}

impl RunDir {
    /// The checkpoint file.
    pub fn checkpoint(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join("checkpoint.bin"))
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

/// Representations of `data[indices]` (no augmentation) from the model in inference mode,
/// row-major on the host.
pub fn embed<B: AutodiffBackend, M: Method<B>>(
    method: &M,
    model: &M::Model,
    data: &ImageDataset,
    indices: &[usize],
    batcher: &ImageBatcher,
    batch_size: usize,
    device: &B::Device,
) -> (Vec<f32>, usize) {
    let inner = model.valid();
    let mut out = Vec::new();
    let mut dim = 0;
    for chunk in indices.chunks(batch_size.max(1)) {
        let x = batcher.plain::<B::InnerBackend>(data, chunk, device);
        let h = method.represent(&inner, x);
        dim = h.dims()[1];
        out.extend(to_vec_f32(h));
    }
    (out, dim)
}

/// kNN top-1 of the model's representations on fixed subsets of the splits.
pub fn knn_monitor<B: AutodiffBackend, M: Method<B>>(
    method: &M,
    model: &M::Model,
    data: &Splits,
    batcher: &ImageBatcher,
    config: &TrainConfig,
    device: &B::Device,
) -> Result<f64, Error> {
    let (tr, te) = config.monitor_subsets(data);
    let (ftr, dim) = embed(
        method,
        model,
        &data.train,
        &tr,
        batcher,
        config.eval_batch_size,
        device,
    );
    let (fte, _) = embed(
        method,
        model,
        &data.test,
        &te,
        batcher,
        config.eval_batch_size,
        device,
    );
    subset_knn_top1(data, (&tr, &ftr), (&te, &fte), dim)
}

/// kNN top-1 of features computed for the rows `train.0` of the training split and `test.0`
/// of the test split (row `r` of `train.1` belongs to instance `train.0[r]`).
pub fn subset_knn_top1(
    data: &Splits,
    train: (&[usize], &[f32]),
    test: (&[usize], &[f32]),
    dim: usize,
) -> Result<f64, Error> {
    let labels = |ds: &ImageDataset, idx: &[usize]| -> Vec<u32> {
        idx.iter().map(|&i| ds.labels()[i]).collect()
    };
    let acc = KnnClassifier::default().evaluate(
        Features {
            data: train.1,
            labels: &labels(&data.train, train.0),
            dim,
        },
        Features {
            data: test.1,
            labels: &labels(&data.test, test.0),
            dim,
        },
        data.train.num_classes(),
    )?;
    Ok(acc.top1)
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
            "epoch {}/{} [{:>4}/{}] loss {:.4}  {:.0} img/s  eta {:.0}s",
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
        let knn = r
            .knn_top1
            .map(|k| format!("  kNN {k:.2}%"))
            .unwrap_or_default();
        eprintln!(
            "epoch {} done: loss {:.4}, {:.1}s, {:.0} img/s, lr {:.2e}{knn}",
            r.epoch + 1,
            r.loss,
            r.seconds,
            r.images_per_second,
            r.learning_rate
        );
    }
}

/// Trains `model` with `method` on `data.train` (two augmented views per image, shuffled
/// batches), with a checkpoint after every epoch and the kNN monitor.
///
/// With `run.resume` and a checkpoint in `run.dir`, the model, optimiser, sampler position,
/// method state and history are restored and training continues from the next epoch; on a
/// deterministic backend (flex) the final weights equal those of an uninterrupted run.
///
/// # Errors
/// `InvalidConfig` for bad settings, [`Error::Checkpoint`] for an unusable checkpoint (it is
/// never overwritten before a new one is complete), [`Error::NonFiniteLoss`] when the loss is
/// NaN or infinite (the weights are not updated with it and the last checkpoint stays).
pub fn train<B: AutodiffBackend, M: Method<B>>(
    method: &mut M,
    mut model: M::Model,
    data: &Splits,
    batcher: &ImageBatcher,
    config: &TrainConfig,
    run: &RunDir,
    device: &B::Device,
) -> Result<Trained<M::Model>, Error> {
    config.validate(data.train.len())?;
    method.validate_batch(config.batch_size, data.train.len())?;
    let fingerprint = config.fingerprint(
        &format!("{} ({})", method.name(), method.describe()),
        data.train.len(),
    );
    let n = data.train.len();
    let mut sampler: Box<dyn IndexSampler> = match &config.batch_sampler {
        Some(b) => {
            let mut b = b.clone();
            b.batch_size = config.batch_size;
            b.seed = config.seed;
            Box::new(BatchSampler::new(b, n)?)
        }
        None => Box::new(ShuffledSampler::new(
            n,
            config.batch_size,
            true,
            config.seed,
        )?),
    };
    method.keep_embeddings(true);
    let mut optim = config.optimizer.init::<B, M::Model>();
    let mut history = History::default();
    let mut start_epoch = 0;
    let mut global_step = 0;
    let ckpt_path = run.checkpoint();

    if let (true, Some(path)) = (run.resume, &ckpt_path)
        && path.exists()
    {
        let ck = checkpoint::read(path)?;
        let bad = |reason: String| Error::Checkpoint {
            path: path.clone(),
            reason,
        };
        let header: Header =
            serde_json::from_slice(&ck.header).map_err(|e| bad(format!("header: {e}")))?;
        if header.fingerprint != fingerprint {
            return Err(bad(format!(
                "it was written by a different run ({}), this run is ({fingerprint}); use another --out folder or the same settings",
                header.fingerprint
            )));
        }
        let record = Bytes::default()
            .load(ck.model, device)
            .map_err(|e| bad(format!("model: {e}")))?;
        model = model.load_record(record);
        optim = optim
            .load_bytes(ck.optimizer, device)
            .map_err(|e| bad(format!("optimizer: {e}")))?;
        method
            .load_state_bytes(ck.method, device)
            .map_err(|e| bad(format!("method state: {e}")))?;
        sampler
            .load_state_bytes(&ck.sampler)
            .map_err(|e| bad(format!("sampler state: {e}")))?;
        start_epoch = header.epochs_done;
        global_step = header.global_step;
        history = header.history;
        if run.progress {
            eprintln!("resuming from {} after epoch {start_epoch}", path.display());
        }
    }

    // Schedule and progress use the batch count of a shuffled epoch (BatchSampler's epochs
    // have about as many batches in its exactly-once mode).
    let steps_per_epoch = n / config.batch_size;
    let total_steps = steps_per_epoch * config.epochs;
    let warmup = (config.optimizer.warmup_epochs * steps_per_epoch).min(total_steps / 2);
    let mut progress = Progress::new(run.progress);
    let mut steps_this_call = 0usize;
    let mut lr = config
        .optimizer
        .learning_rate_at(global_step, total_steps, warmup);

    for epoch in start_epoch..config.epochs {
        let started = Instant::now();
        // Starting an epoch may rebuild BatchSampler's graph: sampler time.
        sampler.begin_epoch(epoch);
        let epoch_start_seconds = started.elapsed().as_secs_f64();
        let batches_this_epoch = sampler.batches_per_epoch();
        let mut loss_sum = 0.0f64;
        let mut steps = 0usize;
        let mut augment_seconds = 0.0;
        let mut wait_seconds = 0.0;
        let mut sampler_seconds = epoch_start_seconds;
        let mut pair_share_sum = 0.0;
        let mut similarity_sum = 0.0;
        let mut stopped = false;
        let labels = data.train.labels();
        // The optimiser takes the model by value; holding it in a slot lets the step move it
        // instead of cloning it (a clone shares every parameter, so the update could not reuse
        // their buffers).
        let mut slot = Some(model);
        let views = method.views();
        let outcome: Result<(), Error> = std::thread::scope(|s| {
            let spawn = |idx: Vec<usize>| {
                s.spawn(move || {
                    let t = Instant::now();
                    let v = batcher.host_views_as(views, &data.train, &idx, epoch);
                    (idx, v, t.elapsed().as_secs_f64())
                })
            };
            let t = Instant::now();
            let mut pending = sampler.next_batch().map(spawn);
            sampler_seconds += t.elapsed().as_secs_f64();
            while let Some(handle) = pending.take() {
                let wait = Instant::now();
                let (idx, views, aug) = handle.join().expect("augmentation thread panicked");
                wait_seconds += wait.elapsed().as_secs_f64();
                augment_seconds += aug;
                let t = Instant::now();
                pending = sampler.next_batch().map(spawn);
                sampler_seconds += t.elapsed().as_secs_f64();
                pair_share_sum += same_class_pair_share(&idx, labels);

                let (first, second) = batcher.to_device::<B>(views, device);
                let current = slot.take().expect("the model is in its slot between steps");
                let loss = method.loss(&current, first, second, &idx);
                let value = to_vec_f32(loss.clone())[0];
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
                let grads = GradientsParams::from_grads(loss.backward(), &current);
                let updated = optim.step(lr, current, grads);
                method.after_step(&updated);
                slot = Some(updated);
                if let Some((emb, dim)) = method.take_embeddings() {
                    similarity_sum += mean_pairwise_similarity(&emb, dim);
                    if sampler.wants_embeddings() {
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
                let elapsed = started.elapsed().as_secs_f64();
                let ips = (steps * config.batch_size) as f64 / elapsed.max(1e-9);
                // BatchSampler's exactly-once epochs may have one batch more than the schedule
                // counts, so the remaining count saturates at zero.
                let remaining =
                    total_steps.saturating_sub(global_step) as f64 * elapsed / steps as f64;
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
            return Ok(Trained {
                model,
                history,
                interrupted: true,
                resumed_at_epoch: start_epoch,
                sampler_summary: sampler.summary(),
            });
        }
        let seconds = started.elapsed().as_secs_f64();
        let last = epoch + 1 == config.epochs;
        let run_knn = last || (config.knn_every > 0 && (epoch + 1) % config.knn_every == 0);
        let knn_top1 = if run_knn {
            Some(knn_monitor(method, &model, data, batcher, config, device)?)
        } else {
            None
        };
        let record = EpochRecord {
            epoch,
            loss: loss_sum / steps.max(1) as f64,
            seconds,
            images_per_second: (steps * config.batch_size) as f64 / seconds.max(1e-9),
            augment_seconds,
            data_wait_seconds: wait_seconds,
            knn_top1,
            batches: steps,
            same_class_pair_share: pair_share_sum / steps.max(1) as f64,
            mean_batch_similarity: similarity_sum / steps.max(1) as f64,
            sampler_seconds,
            learning_rate: lr,
        };
        progress.epoch(&record);
        history.epochs.push(record);
        if let Some(path) = &ckpt_path {
            let header = Header {
                fingerprint: fingerprint.clone(),
                epochs_done: epoch + 1,
                global_step,
                history: history.clone(),
            };
            save_checkpoint(path, &model, &optim, method, sampler.as_ref(), &header)?;
        }
    }
    Ok(Trained {
        model,
        history,
        interrupted: false,
        resumed_at_epoch: start_epoch,
        sampler_summary: sampler.summary(),
    })
}

fn save_checkpoint<B: AutodiffBackend, M: Method<B>>(
    path: &Path,
    model: &M::Model,
    optim: &crate::AnyOptimizer<M::Model, B>,
    method: &M,
    sampler: &dyn IndexSampler,
    header: &Header,
) -> Result<(), Error> {
    let bad = |reason: String| Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let model_bytes = Bytes::default()
        .record(model.clone().into_record(), ())
        .map_err(|e| bad(format!("model: {e}")))?;
    let data = CheckpointData {
        header: serde_json::to_vec(header).map_err(|e| bad(e.to_string()))?,
        model: model_bytes,
        optimizer: optim
            .to_bytes()
            .map_err(|e| bad(format!("optimizer: {e}")))?,
        method: method
            .state_bytes()
            .map_err(|e| bad(format!("method state: {e}")))?,
        sampler: sampler.state_bytes(),
    };
    checkpoint::write_atomic(path, &data)
}
