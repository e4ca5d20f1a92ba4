//! What a reproduction can be told: dataset, method, budget and per-method settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use contrast_methods::OptimizerKind;
use contrast_sampler::BatchSamplerConfig;

/// Datasets `reproduce` can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatasetKind {
    /// Fashion-MNIST (found or fetched automatically).
    FashionMnist,
    /// CIFAR-10, binary version (`--data`).
    Cifar10,
    /// STL-10 labelled splits, binary version (`--data`).
    Stl10,
    /// A folder of class sub-folders (`--data`), split 80/20, resized to 96x96 RGB.
    Folder,
}

impl std::str::FromStr for DatasetKind {
    type Err = contrast_core::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fashion-mnist" => Ok(DatasetKind::FashionMnist),
            "cifar10" => Ok(DatasetKind::Cifar10),
            "stl10" => Ok(DatasetKind::Stl10),
            "folder" => Ok(DatasetKind::Folder),
            _ => Err(contrast_core::Error::invalid_config(
                "dataset",
                s,
                "expected fashion-mnist, cifar10, stl10 or folder",
            )),
        }
    }
}

impl DatasetKind {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Stl10 => "stl10",
            DatasetKind::Folder => "folder",
        }
    }
}

/// Everything `reproduce <method>` can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReproduceOptions {
    /// Dataset.
    pub dataset: DatasetKind,
    /// Folder holding the dataset (required except for Fashion-MNIST).
    pub data: Option<PathBuf>,
    /// Where downloaded data is cached.
    pub cache: PathBuf,
    /// Output folder (report, plots, metrics, checkpoint).
    pub out: PathBuf,
    /// Device name, for the report.
    pub device: String,
    /// Data-parallel training: the devices, one peer each, the batch split across them.
    #[serde(default)]
    pub peers: crate::PeerOptions,
    /// Epochs (default per dataset).
    pub epochs: Option<usize>,
    /// Batch size (default per dataset).
    pub batch_size: Option<usize>,
    /// Peak learning rate (default per dataset).
    pub learning_rate: Option<f64>,
    /// Temperature of the method's loss (default: the method config's; SimCLR and DCL: the
    /// recipe's).
    pub temperature: Option<f64>,
    /// Optimiser (default per dataset).
    pub optimizer: Option<OptimizerKind>,
    /// L2 weight decay (default per dataset).
    pub weight_decay: Option<f64>,
    /// Run the monitors every this many epochs (default 1).
    pub knn_every: Option<usize>,
    /// Smallest share of the image a random resized crop keeps (default per dataset).
    #[serde(default)]
    pub crop_min_scale: Option<f64>,
    /// Colour-jitter strength (default per dataset).
    #[serde(default)]
    pub jitter_strength: Option<f64>,
    /// The image backbone's channels per stage, one per stage of the recipe's backbone; the stem
    /// takes the first (default per dataset).
    #[serde(default)]
    pub widths: Option<Vec<usize>>,
    /// A one-minute run on a subset, for CI.
    pub quick: bool,
    /// Resume from the checkpoint in `out`.
    pub resume: bool,
    /// Start again over the checkpoints of an earlier run in `out` (without it or `resume`, a
    /// folder holding a checkpoint is refused).
    #[serde(default)]
    pub overwrite: bool,
    /// Seed.
    pub seed: u64,
    /// Use only this many training images, at least 1 (default: all; `quick` uses 4,000).
    pub train_subset: Option<usize>,
    /// Use only this many test images, at least 1 (default: all; `quick` uses 1,000).
    pub test_subset: Option<usize>,
    /// Also train with BatchSampler (same initial weights, same budget) and compare.
    pub batch_sampler: Option<BatchSamplerConfig>,
    /// With `batch_sampler`: compare over this many seeds (`seed`, `seed + 1`, ...), both arms
    /// from the same start for each; reported as mean and standard deviation (default 1).
    #[serde(default)]
    pub seeds: Option<usize>,
    /// Settings of particular methods, as flags.
    #[serde(default)]
    pub method_options: MethodOptions,
    /// The method's whole config as a JSON file (`SimClrConfig`, `MocoConfig`, ...: the format
    /// of `method.json` in a report folder); flags and `temperature` apply on top.
    #[serde(default)]
    pub method_config: Option<PathBuf>,
    /// The command line, for the report.
    pub command: String,
}

/// The methods `reproduce` trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MethodKind {
    /// SimCLR, NT-Xent (in-batch negatives).
    SimClr,
    /// SimCLR's network with the decoupled contrastive loss (in-batch negatives).
    Dcl,
    /// InvaSpread (end-to-end).
    InvaSpread,
    /// InstDisc (memory bank).
    InstDisc,
    /// MoCo v1 (momentum encoder, linear head).
    MocoV1,
    /// MoCo v2 (momentum encoder, MLP head).
    MocoV2,
    /// Deep InfoMax, local variant (end-to-end, intermediate features).
    Dim,
}

impl MethodKind {
    /// Every method, in the order of the paradigms report.
    pub const ALL: [MethodKind; 7] = [
        MethodKind::InvaSpread,
        MethodKind::Dim,
        MethodKind::InstDisc,
        MethodKind::MocoV1,
        MethodKind::MocoV2,
        MethodKind::SimClr,
        MethodKind::Dcl,
    ];

    /// The name on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            MethodKind::SimClr => "simclr",
            MethodKind::Dcl => "dcl",
            MethodKind::InvaSpread => "invaspread",
            MethodKind::InstDisc => "instdisc",
            MethodKind::MocoV1 => "moco-v1",
            MethodKind::MocoV2 => "moco-v2",
            MethodKind::Dim => "dim",
        }
    }

    /// The name in reports.
    pub fn label(self) -> &'static str {
        match self {
            MethodKind::SimClr => "SimCLR",
            MethodKind::Dcl => "DCL",
            MethodKind::InvaSpread => "InvaSpread",
            MethodKind::InstDisc => "InstDisc",
            MethodKind::MocoV1 => "MoCo v1",
            MethodKind::MocoV2 => "MoCo v2",
            MethodKind::Dim => "DIM",
        }
    }

    /// Whether the negatives come from the batch, so that BatchSampler can choose them.
    pub fn uses_batch_negatives(self) -> bool {
        matches!(
            self,
            MethodKind::SimClr | MethodKind::Dcl | MethodKind::InvaSpread
        )
    }

    /// Whether the method takes synchronised batch norm on several peers (MoCo keeps batch
    /// norm per peer, its keys shuffled across them: `Method::validate_sync_batch_norm`).
    pub fn takes_sync_batch_norm(self) -> bool {
        !matches!(self, MethodKind::MocoV1 | MethodKind::MocoV2)
    }
}

impl std::str::FromStr for MethodKind {
    type Err = contrast_core::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "moco" => return Ok(MethodKind::MocoV2),
            "inva-spread" => return Ok(MethodKind::InvaSpread),
            "inst-disc" => return Ok(MethodKind::InstDisc),
            _ => {}
        }
        MethodKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                contrast_core::Error::invalid_config(
                    "method",
                    s,
                    "expected simclr, dcl, invaspread, instdisc, moco-v1, moco-v2 (or moco), dim",
                )
            })
    }
}

/// Settings of particular methods (each `None` keeps the method's default).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MethodOptions {
    /// MoCo: queue length (default 4096).
    pub queue_size: Option<usize>,
    /// MoCo: key-encoder momentum (default 0.999).
    pub key_momentum: Option<f64>,
    /// MoCo: groups of the shuffled batch-norm emulation on one device (default 4; 1 = off); on
    /// several peers any value above 1 shuffles keys across them.
    pub shuffle_groups: Option<usize>,
    /// InstDisc: noise samples per step (default 4096).
    pub noise_samples: Option<usize>,
    /// InstDisc: memory-bank momentum (default 0.5).
    pub bank_momentum: Option<f64>,
    /// InstDisc: weight of the proximal term (default 0).
    pub proximal_weight: Option<f64>,
}

/// What every job is told beside its own settings: the download cache, the output folder, the
/// device (for the report), the budget (`None` takes the job's recipe) and how an output folder
/// that holds an earlier run is treated.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// Download and extraction cache.
    pub cache: PathBuf,
    /// Output folder (report, metrics, plots, checkpoints).
    pub out: PathBuf,
    /// The device string, for the report.
    pub device: String,
    /// Data-parallel training: the devices, one peer each, the batch split across them.
    pub peers: crate::PeerOptions,
    /// Passes over the training data.
    pub epochs: Option<usize>,
    /// Instances per batch.
    pub batch_size: Option<usize>,
    /// Peak learning rate.
    pub learning_rate: Option<f64>,
    /// A small run (CI).
    pub quick: bool,
    /// Continue from the checkpoints in `out`.
    pub resume: bool,
    /// Start again over an earlier run's checkpoints in `out`.
    pub overwrite: bool,
    /// The command line, for the report.
    pub command: String,
}
