//! `reproduce`: one command from data to report (the job of `cargo xtask reproduce <method>`),
//! and `reproduce_paradigms`, every method under one budget in one comparison.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use burn::module::AutodiffModule;
use contrast_encoders::{ProjectedEncoder, ProjectionHeadConfig, ResNetConfig, Stem};
use contrast_eval::{Features, KnnClassifier, LinearProbe, pca_2d};
use contrast_losses::DecoupledLossConfig;
use contrast_negatives::Staleness;
use contrast_vision::{
    FASHION_MNIST_CLASSES, ImageBatcher, ImageDataset, ImageShape, SimClrAugmentConfig, Splits,
    load_cifar10, load_fashion_mnist, load_image_folder, load_mnist_format, load_stl10,
};

use contrast_sampler::BatchSamplerConfig;

use crate::train::{
    EpochRecord, RunDir, TrainConfig, embed, subset_indices, subset_knn_top1, train,
};
use crate::{
    Error, InstDisc, InstDiscConfig, InvaSpreadConfig, Method, MocoConfig, OptimizerConfig,
    OptimizerKind, Paradigm, SimClrConfig,
};

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
    /// Epochs (default per dataset).
    pub epochs: Option<usize>,
    /// Batch size (default per dataset).
    pub batch_size: Option<usize>,
    /// Peak learning rate (default per dataset).
    pub learning_rate: Option<f64>,
    /// Temperature of the method's loss (default: the method's own).
    pub temperature: Option<f64>,
    /// Optimiser (default per dataset).
    pub optimizer: Option<OptimizerKind>,
    /// L2 weight decay (default per dataset).
    pub weight_decay: Option<f64>,
    /// Run the kNN monitor every this many epochs (default 1).
    pub knn_every: Option<usize>,
    /// A one-minute run on a subset, for CI.
    pub quick: bool,
    /// Resume from the checkpoint in `out`.
    pub resume: bool,
    /// Seed.
    pub seed: u64,
    /// Use only this many training images (default: all; `quick` uses 4,000).
    pub train_subset: Option<usize>,
    /// Use only this many test images (default: all; `quick` uses 1,000).
    pub test_subset: Option<usize>,
    /// Also train with BatchSampler (same initial weights, same budget) and compare.
    pub batch_sampler: Option<BatchSamplerConfig>,
    /// Settings of particular methods.
    #[serde(default)]
    pub method_options: MethodOptions,
    /// The command line, for the report.
    pub command: String,
}

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
}

/// Top-1 accuracies of one encoder.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
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
    /// Temperature.
    pub temperature: f64,
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
}

/// Peak resident set size of this process in MiB, from `/proc/self/status` (Linux only).
pub fn peak_memory_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn load(opts: &ReproduceOptions) -> Result<Splits, Error> {
    let need = |what: &str| {
        Error::Vision(contrast_vision::Error::NotFound {
            what: what.into(),
            hint: "pass --data DIR".into(),
        })
    };
    Ok(match opts.dataset {
        DatasetKind::FashionMnist => match &opts.data {
            Some(d) => load_mnist_format(d, &FASHION_MNIST_CLASSES)?,
            None => load_fashion_mnist(None, &opts.cache)?,
        },
        DatasetKind::Cifar10 => {
            load_cifar10(opts.data.as_deref().ok_or_else(|| need("CIFAR-10"))?)?
        }
        DatasetKind::Stl10 => load_stl10(opts.data.as_deref().ok_or_else(|| need("STL-10"))?)?,
        DatasetKind::Folder => {
            let dir = opts
                .data
                .as_deref()
                .ok_or_else(|| need("the image folder"))?;
            let all = load_image_folder(
                dir,
                ImageShape {
                    channels: 3,
                    height: 96,
                    width: 96,
                },
            )?;
            let (train, test) = all.split(0.2, opts.seed)?;
            Splits { train, test }
        }
    })
}

/// The recipe per dataset: backbone, augmentations, batch, epochs, learning rate, temperature.
struct Recipe {
    backbone: ResNetConfig,
    backbone_name: &'static str,
    augment: SimClrAugmentConfig,
    batch_size: usize,
    epochs: usize,
    learning_rate: f64,
    optimizer: OptimizerKind,
    weight_decay: f64,
    temperature: f64,
}

fn recipe(kind: DatasetKind, train: &ImageDataset) -> Recipe {
    let (mean, std) = train.channel_stats();
    match kind {
        // 28x28 grayscale: the small ResNet, CIFAR-strength jitter without blur, crops of at
        // least 20% of the image (8% of 28x28 is an 8x8 patch). Epochs sized to ~15 min on
        // two CPU cores (see the report for the measured time).
        DatasetKind::FashionMnist => Recipe {
            backbone: ResNetConfig::small(1),
            backbone_name: "small ResNet (3x3 stride-2 stem, widths 32/64/128, one basic block per stage)",
            augment: SimClrAugmentConfig::cifar(mean, std).with_crop_min_scale(0.2),
            batch_size: 256,
            epochs: 2,
            learning_rate: 2e-3,
            optimizer: OptimizerKind::Adam,
            weight_decay: 1e-6,
            temperature: 0.5,
        },
        // SimCLR's CIFAR-10 recipe (ResNet-18 with the CIFAR stem, strength 0.5, no blur) with
        // the optimiser of lightly's CIFAR-10 benchmark (SGD, momentum 0.9, lr 0.06 per 256
        // images, weight decay 5e-4, cosine); the long GPU run is documented in the README.
        DatasetKind::Cifar10 => Recipe {
            backbone: ResNetConfig::resnet18(3, Stem::Cifar),
            backbone_name: "ResNet-18, CIFAR stem",
            augment: SimClrAugmentConfig::cifar(mean, std),
            batch_size: 512,
            epochs: 800,
            learning_rate: 0.12,
            optimizer: OptimizerKind::Sgd,
            weight_decay: 5e-4,
            temperature: 0.5,
        },
        DatasetKind::Stl10 | DatasetKind::Folder => Recipe {
            backbone: ResNetConfig::resnet18(3, Stem::ImageNet),
            backbone_name: "ResNet-18, ImageNet stem",
            augment: SimClrAugmentConfig::new(mean, std),
            batch_size: 256,
            epochs: 100,
            learning_rate: 1e-3,
            optimizer: OptimizerKind::Adam,
            weight_decay: 1e-6,
            temperature: 0.2,
        },
    }
}

fn scores(
    train: Features<'_>,
    test: Features<'_>,
    classes: usize,
    probe: &LinearProbe,
) -> Result<Scores, Error> {
    Ok(Scores {
        knn_top1: KnnClassifier::default()
            .evaluate(train, test, classes)?
            .top1,
        linear_top1: probe.evaluate(train, test, classes)?.top1,
    })
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
}

impl MethodKind {
    /// Every method, in the order of the paradigms report.
    pub const ALL: [MethodKind; 6] = [
        MethodKind::InvaSpread,
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
        }
    }

    /// Whether the negatives come from the batch, so that BatchSampler can choose them.
    pub fn uses_batch_negatives(self) -> bool {
        matches!(
            self,
            MethodKind::SimClr | MethodKind::Dcl | MethodKind::InvaSpread
        )
    }

    /// The temperature of the method's paper (SimCLR and DCL: the recipe's).
    fn default_temperature(self, recipe: f64) -> f64 {
        match self {
            MethodKind::SimClr | MethodKind::Dcl => recipe,
            MethodKind::InvaSpread => 0.1,
            MethodKind::InstDisc | MethodKind::MocoV1 => 0.07,
            MethodKind::MocoV2 => 0.2,
        }
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
                    "expected simclr, dcl, invaspread, instdisc, moco-v1, moco-v2 (or moco)",
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
    /// MoCo: groups of the shuffled batch-norm emulation (default 4; 1 = off).
    pub shuffle_groups: Option<usize>,
    /// InstDisc: noise samples per step (default 4096).
    pub noise_samples: Option<usize>,
    /// InstDisc: memory-bank momentum (default 0.5).
    pub bank_momentum: Option<f64>,
    /// InstDisc: weight of the proximal term (default 0).
    pub proximal_weight: Option<f64>,
}

/// Everything shared by the methods of one reproduction: data, recipe, loop settings and the
/// baselines.
struct Shared {
    data: Splits,
    recipe: Recipe,
    config: TrainConfig,
    batcher: ImageBatcher,
    probe: LinearProbe,
    epochs: usize,
    batch_size: usize,
    learning_rate: f64,
    optimizer: OptimizerKind,
    weight_decay: f64,
    raw_pixels: Scores,
    raw_pixels_monitor_knn: f64,
    random_init: Scores,
    monitor_subsets: (usize, usize),
}

fn say(s: &str) {
    eprintln!("[reproduce] {s}");
}

fn prepare<B: AutodiffBackend>(
    opts: &ReproduceOptions,
    device: &B::Device,
) -> Result<Shared, Error> {
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    say(&format!("loading {}", opts.dataset.name()));
    let mut data = load(opts)?;
    let (train_n, test_n) = if opts.quick {
        (Some(4000), Some(1000))
    } else {
        (None, None)
    };
    if let Some(n) = opts.train_subset.or(train_n) {
        data.train = data
            .train
            .subset(&subset_indices(data.train.len(), n, opts.seed));
    }
    if let Some(n) = opts.test_subset.or(test_n) {
        data.test = data
            .test
            .subset(&subset_indices(data.test.len(), n, opts.seed + 1));
    }
    let r = recipe(opts.dataset, &data.train);
    let epochs = opts.epochs.unwrap_or(if opts.quick { 2 } else { r.epochs });
    let batch_size = opts.batch_size.unwrap_or(r.batch_size);
    let learning_rate = opts.learning_rate.unwrap_or(r.learning_rate);
    let optimizer = opts.optimizer.unwrap_or(r.optimizer);
    let weight_decay = opts.weight_decay.unwrap_or(r.weight_decay);
    r.augment.validate()?;
    let config = TrainConfig::new(
        OptimizerConfig::new()
            .with_kind(optimizer)
            .with_learning_rate(learning_rate)
            .with_weight_decay(weight_decay)
            .with_warmup_epochs(if epochs > 2 { 1 } else { 0 }),
    )
    .with_epochs(epochs)
    .with_batch_size(batch_size)
    .with_seed(opts.seed)
    .with_knn_every(opts.knn_every.unwrap_or(1))
    .with_knn_train_subset(if opts.quick { 0 } else { 10_000 })
    .with_knn_test_subset(if opts.quick { 0 } else { 2_000 });
    config.validate(data.train.len())?;
    let batcher = ImageBatcher::new(r.augment.init(opts.seed));
    let classes = data.train.num_classes();
    let probe = LinearProbe::default();

    say("baselines: raw pixels");
    let px_train = data.train.pixels_f32();
    let px_test = data.test.pixels_f32();
    let pd = data.train.shape().len();
    let raw_pixels = scores(
        Features {
            data: &px_train,
            labels: data.train.labels(),
            dim: pd,
        },
        Features {
            data: &px_test,
            labels: data.test.labels(),
            dim: pd,
        },
        classes,
        &probe,
    )?;
    let (mon_tr, mon_te) = config.monitor_subsets(&data);
    let pick = |px: &[f32], idx: &[usize]| -> Vec<f32> {
        idx.iter()
            .flat_map(|&i| px[i * pd..(i + 1) * pd].iter().copied())
            .collect()
    };
    let raw_pixels_monitor_knn = subset_knn_top1(
        &data,
        (&mon_tr, &pick(&px_train, &mon_tr)),
        (&mon_te, &pick(&px_test, &mon_te)),
        pd,
    )?;
    drop((px_train, px_test));

    // Every method builds its backbone first after seeding, so this random encoder is the
    // initial backbone of each of them.
    say("baselines: random-initialised encoder");
    B::seed(device, opts.seed);
    let simclr = SimClrConfig::with_backbone(r.backbone.clone(), 128, r.temperature);
    let model = simclr.init_model::<B>(device);
    let mut shared = Shared {
        data,
        recipe: r,
        config,
        batcher,
        probe,
        epochs,
        batch_size,
        learning_rate,
        optimizer,
        weight_decay,
        raw_pixels,
        raw_pixels_monitor_knn,
        random_init: Scores {
            knn_top1: 0.0,
            linear_top1: 0.0,
        },
        monitor_subsets: (mon_tr.len(), mon_te.len()),
    };
    shared.random_init = evaluate(&shared, &simclr.init(), &model, device)?.0;
    say(&format!(
        "raw pixels kNN {:.2} / linear {:.2}; random encoder kNN {:.2} / linear {:.2}",
        raw_pixels.knn_top1,
        raw_pixels.linear_top1,
        shared.random_init.knn_top1,
        shared.random_init.linear_top1
    ));
    Ok(shared)
}

/// kNN and linear probe of the method's representation on the full splits; also returns the
/// test features.
fn evaluate<B: AutodiffBackend, M: Method<B>>(
    shared: &Shared,
    method: &M,
    model: &M::Model,
    device: &B::Device,
) -> Result<(Scores, Vec<f32>, usize), Error> {
    let data = &shared.data;
    let eval_batch = shared.config.eval_batch_size;
    let all_train: Vec<usize> = (0..data.train.len()).collect();
    let all_test: Vec<usize> = (0..data.test.len()).collect();
    let b = &shared.batcher;
    let (ftr, dim) = embed(
        method,
        model,
        &data.train,
        &all_train,
        b,
        eval_batch,
        device,
    );
    let (fte, _) = embed(method, model, &data.test, &all_test, b, eval_batch, device);
    let s = scores(
        Features {
            data: &ftr,
            labels: data.train.labels(),
            dim,
        },
        Features {
            data: &fte,
            labels: data.test.labels(),
            dim,
        },
        data.train.num_classes(),
        &shared.probe,
    )?;
    Ok((s, fte, dim))
}

/// What one method's training run gave.
struct MethodRun {
    scores: Scores,
    test_features: (Vec<f32>, usize),
    history: crate::History,
    sampler_summary: String,
    parameters: usize,
    paradigm: Paradigm,
    objective: String,
    negatives_per_anchor: usize,
    staleness: Option<Staleness>,
    store_knn_top1: Option<f64>,
    head: String,
}

/// Trains one method (built by [`with_method`]) and evaluates it.
struct TrainJob<'a, B: AutodiffBackend> {
    shared: &'a Shared,
    run: RunDir,
    config: TrainConfig,
    device: &'a B::Device,
}

impl<B: AutodiffBackend> TrainJob<'_, B> {
    /// Trains `method` from `model`, evaluates it, and reads kNN from its store with
    /// `store_knn` where it has one.
    fn run<M: Method<B, Model = ProjectedEncoder<B>>>(
        self,
        mut method: M,
        model: ProjectedEncoder<B>,
        head: &ProjectionHeadConfig,
        store_knn: impl Fn(&M, &ProjectedEncoder<B>) -> Option<f64>,
    ) -> Result<MethodRun, Error> {
        let parameters = model.num_params();
        let head = head.describe();
        let shared = self.shared;
        let trained = train(
            &mut method,
            model,
            &shared.data,
            &shared.batcher,
            &self.config,
            &self.run,
            self.device,
        )?;
        say("evaluating the trained encoder");
        let (scores, fte, dim) = evaluate(shared, &method, &trained.model, self.device)?;
        Ok(MethodRun {
            scores,
            test_features: (fte, dim),
            history: trained.history,
            sampler_summary: trained.sampler_summary,
            parameters,
            paradigm: method.paradigm(),
            objective: method.describe(),
            negatives_per_anchor: method.negatives_per_anchor(self.config.batch_size),
            staleness: method.staleness(),
            store_knn_top1: store_knn(&method, &trained.model),
            head,
        })
    }
}

/// kNN of the test images' normalised projections against InstDisc's memory bank, which holds
/// an embedding of every training image (no pass over the training set needed).
fn bank_knn<B: AutodiffBackend>(
    shared: &Shared,
    method: &InstDisc<B>,
    model: &ProjectedEncoder<B>,
    device: &B::Device,
) -> Option<f64> {
    let data = &shared.data;
    let inner = model.valid();
    let mut test = Vec::new();
    let idx: Vec<usize> = (0..data.test.len()).collect();
    for chunk in idx.chunks(shared.config.eval_batch_size) {
        let x = shared
            .batcher
            .plain::<B::InnerBackend>(&data.test, chunk, device);
        test.extend(contrast_core::to_vec_f32(contrast_core::l2_normalize(
            inner.projection(x),
            contrast_core::NORM_EPS,
        )));
    }
    let (bank, dim) = method.bank_rows();
    KnnClassifier::default()
        .evaluate(
            Features {
                data: &bank,
                labels: data.train.labels(),
                dim,
            },
            Features {
                data: &test,
                labels: data.test.labels(),
                dim,
            },
            data.train.num_classes(),
        )
        .ok()
        .map(|a| a.top1)
}

/// Builds `kind` as `opts` and the recipe say (seeded, so every method starts from the same
/// backbone) and hands it to `job`.
fn with_method<B: AutodiffBackend>(
    kind: MethodKind,
    shared: &Shared,
    opts: &ReproduceOptions,
    job: TrainJob<'_, B>,
) -> Result<MethodRun, Error> {
    let device = job.device;
    let backbone = shared.recipe.backbone.clone();
    let t = opts
        .temperature
        .unwrap_or(kind.default_temperature(shared.recipe.temperature));
    let mo = &opts.method_options;
    let n = shared.data.train.len();
    B::seed(device, opts.seed);
    match kind {
        MethodKind::SimClr | MethodKind::Dcl => {
            let mut c = SimClrConfig::with_backbone(backbone, 128, t);
            if kind == MethodKind::Dcl {
                c.decoupled = Some(DecoupledLossConfig::new().with_temperature(t));
            }
            c.validate()?;
            let model = c.init_model::<B>(device);
            job.run(c.init(), model, &c.head, |_, _| None)
        }
        MethodKind::InvaSpread => {
            let c = InvaSpreadConfig::with_backbone(backbone, 128, t);
            c.validate()?;
            let model = c.init_model::<B>(device);
            job.run(c.init(), model, &c.head, |_, _| None)
        }
        MethodKind::InstDisc => {
            let mut c = InstDiscConfig::with_backbone(backbone, 128, n).with_seed(opts.seed);
            c.nce.temperature = t;
            if let Some(m) = mo.noise_samples {
                c.nce.noise_samples = m;
            }
            if let Some(l) = mo.proximal_weight {
                c.nce.proximal_weight = l;
            }
            if let Some(m) = mo.bank_momentum {
                c.bank_momentum = m;
            }
            c.validate()?;
            let model = c.init_model::<B>(device);
            let method = c.init::<B>(device)?;
            job.run(method, model, &c.head, |m, model| {
                bank_knn(shared, m, model, device)
            })
        }
        MethodKind::MocoV1 | MethodKind::MocoV2 => {
            let c = if kind == MethodKind::MocoV1 {
                MocoConfig::v1(backbone, 128)
            } else {
                MocoConfig::v2(backbone, 128)
            };
            let mut c = c.with_seed(opts.seed);
            c.loss.temperature = t;
            if let Some(k) = mo.queue_size {
                c.queue_size = k;
            }
            if let Some(m) = mo.key_momentum {
                c.momentum = m;
            }
            if let Some(g) = mo.shuffle_groups {
                c.shuffle_groups = g;
            }
            c.validate()?;
            let model = c.init_model::<B>(device);
            let method = c.init(&model, device)?;
            job.run(method, model, &c.head, |_, _| None)
        }
    }
}

fn train_method<B: AutodiffBackend>(
    kind: MethodKind,
    shared: &Shared,
    opts: &ReproduceOptions,
    dir: PathBuf,
    sampler: Option<BatchSamplerConfig>,
    device: &B::Device,
) -> Result<MethodRun, Error> {
    say(&format!(
        "training {}{}: {} train / {} test images, {} epochs, batch {}, device {}",
        kind.label(),
        if sampler.is_some() {
            " with BatchSampler (same initial weights)"
        } else {
            ""
        },
        shared.data.train.len(),
        shared.data.test.len(),
        shared.epochs,
        shared.batch_size,
        opts.device
    ));
    let job: TrainJob<'_, B> = TrainJob {
        shared,
        run: RunDir {
            dir: Some(dir),
            resume: opts.resume,
            progress: true,
        },
        config: shared.config.clone().with_batch_sampler(sampler),
        device,
    };
    with_method(kind, shared, opts, job)
}

fn metrics_of(
    kind: MethodKind,
    shared: &Shared,
    opts: &ReproduceOptions,
    run: &MethodRun,
    started: Instant,
    batch_sampler: Option<SamplerComparison>,
) -> Metrics {
    let history = &run.history;
    let augment_seconds: f64 = history.epochs.iter().map(|e| e.augment_seconds).sum();
    let images: usize = history.epochs.iter().map(|e| e.batches).sum::<usize>() * shared.batch_size;
    let epochs_to_beat_raw_pixels = history
        .epochs
        .iter()
        .find(|e| {
            e.knn_top1
                .is_some_and(|k| k > shared.raw_pixels_monitor_knn)
        })
        .map(|e| e.epoch + 1);
    Metrics {
        method: kind.name().into(),
        dataset: opts.dataset.name().into(),
        train_images: shared.data.train.len(),
        test_images: shared.data.test.len(),
        device: opts.device.clone(),
        backbone: shared.recipe.backbone_name.into(),
        parameters: run.parameters,
        epochs: shared.epochs,
        batch_size: shared.batch_size,
        learning_rate: shared.learning_rate,
        optimizer: shared.optimizer,
        weight_decay: shared.weight_decay,
        temperature: opts
            .temperature
            .unwrap_or(kind.default_temperature(shared.recipe.temperature)),
        trained: run.scores,
        random_init: shared.random_init,
        raw_pixels: shared.raw_pixels,
        train_seconds: history.epochs.iter().map(|e| e.seconds).sum(),
        epoch_records: history.epochs.clone(),
        step_losses: history.step_losses.clone(),
        total_seconds: started.elapsed().as_secs_f64(),
        augment_views_per_second: 2.0 * images as f64 / augment_seconds.max(1e-9),
        peak_memory_mib: peak_memory_mib(),
        epochs_to_beat_raw_pixels,
        raw_pixels_monitor_knn: shared.raw_pixels_monitor_knn,
        monitor_subsets: shared.monitor_subsets,
        batch_sampler,
        command: opts.command.clone(),
        paradigm: Some(run.paradigm),
        objective: run.objective.clone(),
        head: run.head.clone(),
        negatives_per_anchor: run.negatives_per_anchor,
        staleness: run.staleness.clone(),
        store_knn_top1: run.store_knn_top1,
    }
}

/// Trains `kind` as `opts` says and writes `report.md`, `metrics.json`, `loss.png`, `knn.png`
/// and `embedding.png` into `opts.out`, next to the checkpoint.
///
/// # Errors
/// Data, configuration, checkpoint, training and report errors, each naming what was wrong;
/// `InvalidConfig` when BatchSampler is asked for a method whose negatives do not come from
/// the batch.
pub fn reproduce<B: AutodiffBackend>(
    kind: MethodKind,
    opts: &ReproduceOptions,
    device: &B::Device,
) -> Result<Metrics, Error> {
    let started = Instant::now();
    if opts.batch_sampler.is_some() && !kind.uses_batch_negatives() {
        return Err(contrast_core::Error::invalid_config(
            "batch-sampler",
            kind.name(),
            "BatchSampler chooses in-batch negatives; use it with simclr, dcl or invaspread",
        )
        .into());
    }
    let mut shared = prepare::<B>(opts, device)?;
    if kind == MethodKind::MocoV2 && shared.recipe.augment.blur_prob == 0.0 {
        // MoCo v2's stronger augmentation is v1's plus Gaussian blur (p = 0.5). Alone, it gets
        // it; in `reproduce_paradigms` every method shares the recipe's augmentation.
        shared.recipe.augment.blur_prob = 0.5;
        shared.batcher = ImageBatcher::new(shared.recipe.augment.init(opts.seed));
    }
    let run = train_method::<B>(kind, &shared, opts, opts.out.clone(), None, device)?;
    let batch_sampler = match &opts.batch_sampler {
        None => None,
        Some(bs) => {
            let mut bs = bs.clone();
            bs.batch_size = shared.batch_size;
            bs.seed = opts.seed;
            bs.validate(shared.data.train.len())?;
            say(&format!(
                "BatchSampler: M={}, K={}, p0={}, rebuild every {} batches, {} warm-up epoch(s)",
                bs.candidates, bs.neighbours, bs.restart, bs.rebuild_every, bs.warmup_epochs
            ));
            let t = train_method::<B>(
                kind,
                &shared,
                opts,
                opts.out.join("batch-sampler"),
                Some(bs.clone()),
                device,
            )?;
            Some(SamplerComparison {
                config: bs,
                scores: t.scores,
                epoch_records: t.history.epochs,
                step_losses: t.history.step_losses,
                summary: t.sampler_summary,
            })
        }
    };
    let metrics = metrics_of(kind, &shared, opts, &run, started, batch_sampler);
    let projected = pca_2d(&run.test_features.0, run.test_features.1);
    crate::report::write(
        &opts.out,
        &metrics,
        &shared.recipe.augment,
        &projected,
        &shared.data.test,
    )?;
    say(&format!(
        "report written to {}",
        opts.out.join("report.md").display()
    ));
    Ok(metrics)
}

/// SimCLR, as [`reproduce`] with [`MethodKind::SimClr`].
///
/// # Errors
/// As [`reproduce`].
pub fn reproduce_simclr<B: AutodiffBackend>(
    opts: &ReproduceOptions,
    device: &B::Device,
) -> Result<Metrics, Error> {
    reproduce::<B>(MethodKind::SimClr, opts, device)
}

/// Trains every method of `kinds` with one shared budget (data, backbone and its initial
/// weights, epochs, batch size, optimiser, augmentation), each in `opts.out/<method>` with its
/// own report and checkpoint, and writes the comparison (`report.md`, `metrics.json`,
/// `knn.png`, `loss.png`, `tradeoffs.png`) into `opts.out`.
///
/// Peak memory per method is the process's peak resident set since the method started (Linux
/// resets it through `/proc/self/clear_refs`); it includes the dataset, which all share.
///
/// # Errors
/// As [`reproduce`].
pub fn reproduce_paradigms<B: AutodiffBackend>(
    kinds: &[MethodKind],
    opts: &ReproduceOptions,
    device: &B::Device,
) -> Result<Vec<Metrics>, Error> {
    let started = Instant::now();
    let shared = prepare::<B>(opts, device)?;
    let mut all = Vec::new();
    for &kind in kinds {
        let method_started = Instant::now();
        let peak_reset = reset_peak_memory();
        let dir = opts.out.join(kind.name());
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let run = train_method::<B>(kind, &shared, opts, dir.clone(), None, device)?;
        let mut metrics = metrics_of(kind, &shared, opts, &run, method_started, None);
        if !peak_reset {
            metrics.peak_memory_mib = None;
        }
        let projected = pca_2d(&run.test_features.0, run.test_features.1);
        crate::report::write(
            &dir,
            &metrics,
            &shared.recipe.augment,
            &projected,
            &shared.data.test,
        )?;
        say(&format!(
            "{}: kNN {:.2}, linear {:.2}, {:.1} s per epoch",
            kind.label(),
            metrics.trained.knn_top1,
            metrics.trained.linear_top1,
            metrics.train_seconds / metrics.epoch_records.len().max(1) as f64
        ));
        all.push(metrics);
    }
    crate::report::write_paradigms(
        &opts.out,
        &all,
        &shared.recipe.augment,
        started.elapsed().as_secs_f64(),
    )?;
    say(&format!(
        "comparison written to {}",
        opts.out.join("report.md").display()
    ));
    Ok(all)
}

/// Resets the process's peak resident set size (Linux 4.0+); false where that is impossible.
fn reset_peak_memory() -> bool {
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
