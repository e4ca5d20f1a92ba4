//! What a reproduction measured (`metrics.json`) and the process probes behind it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use contrast_methods::{EpochRecord, Paradigm};
use contrast_negatives::Staleness;
use contrast_sampler::BatchSamplerConfig;

use crate::Error;
use contrast_methods::OptimizerKind;

/// The BatchSampler run of a reproduction, beside the shuffled one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SamplerComparison {
    /// Its settings (batch size and seed are the run's).
    pub config: BatchSamplerConfig,
    /// Accuracy of the encoder trained with it.
    pub scores: Scores,
    /// Its per-epoch records.
    pub epoch_records: Vec<EpochRecord>,
    /// Its loss per step.
    pub step_losses: Vec<f32>,
    /// Its counters (walks, graph builds, top-ups).
    pub summary: String,
    /// Both arms' accuracy per seed (the run's seed first); one entry without `--seeds`.
    #[serde(default)]
    pub seeds: Vec<SeedScores>,
}

/// Both arms of a sampler comparison trained from one seed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SeedScores {
    /// The seed (initial weights and batch order).
    pub seed: u64,
    /// With shuffled batches.
    pub shuffled: Scores,
    /// With BatchSampler.
    pub batch_sampler: Scores,
}

/// Top-1 accuracies of one encoder.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Scores {
    /// Weighted kNN (k = 200, T = 0.1) top-1, percent.
    pub knn_top1: f64,
    /// Linear probe top-1, percent.
    pub linear_top1: f64,
}

/// What a reproduction measured; written as `metrics.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metrics {
    /// Method name.
    pub method: String,
    /// Dataset name.
    pub dataset: String,
    /// Training / test images used.
    pub train_images: usize,
    /// Test images used.
    pub test_images: usize,
    /// Device.
    pub device: String,
    /// Backbone description.
    pub backbone: String,
    /// Trainable parameters of backbone + head.
    pub parameters: usize,
    /// Epochs trained.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Weight decay.
    pub weight_decay: f64,
    /// Temperature of the objective (`None` for DIM's estimators, which have none).
    pub temperature: Option<f64>,
    /// The trained encoder.
    pub trained: Scores,
    /// The same encoder at random initialisation.
    pub random_init: Scores,
    /// Raw pixels.
    pub raw_pixels: Scores,
    /// Per-epoch records.
    pub epoch_records: Vec<EpochRecord>,
    /// Loss per step.
    pub step_losses: Vec<f32>,
    /// Training wall time (all epochs, without evaluation), seconds.
    pub train_seconds: f64,
    /// Whole run, seconds.
    pub total_seconds: f64,
    /// Augmentation pipeline alone: augmented views per second.
    pub augment_views_per_second: f64,
    /// Peak resident memory of the process, MiB (Linux `VmHWM`).
    pub peak_memory_mib: Option<f64>,
    /// First epoch (1-based) whose kNN monitor beat the raw-pixel kNN on the same subsets.
    pub epochs_to_beat_raw_pixels: Option<usize>,
    /// Raw-pixel kNN on the monitor's subsets.
    pub raw_pixels_monitor_knn: f64,
    /// kNN monitor subset sizes (train, test).
    pub monitor_subsets: (usize, usize),
    /// The BatchSampler comparison, when it was asked for.
    pub batch_sampler: Option<SamplerComparison>,
    /// The command that produced this.
    pub command: String,
    /// Where the negatives come from.
    #[serde(default)]
    pub paradigm: Option<Paradigm>,
    /// The objective and its settings.
    #[serde(default)]
    pub objective: String,
    /// The projection head.
    #[serde(default)]
    pub head: String,
    /// Negatives each anchor is contrasted with per step.
    #[serde(default)]
    pub negatives_per_anchor: usize,
    /// Ages of the stored negatives (bank rows, queue keys) at the end of training, in steps.
    #[serde(default)]
    pub staleness: Option<Staleness>,
    /// kNN top-1 read from the method's store (InstDisc: test projections against the bank).
    #[serde(default)]
    pub store_knn_top1: Option<f64>,
    /// The method's config as trained (also written as `method.json`).
    #[serde(default)]
    pub method_config: serde_json::Value,
}

/// Peak resident set size of this process in MiB, from `/proc/self/status` (Linux only).
pub fn peak_memory_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resets the process's peak resident set size (Linux 4.0+); false where that is impossible.
pub(crate) fn reset_peak_memory() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Reads `metrics.json` from a reproduction folder.
///
/// # Errors
/// [`Error::Io`] or [`Error::Report`] when it is missing or malformed.
pub fn read_metrics(dir: &Path) -> Result<Metrics, Error> {
    let p = dir.join("metrics.json");
    let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Report(format!("{}: {e}", p.display())))
}
