//! `reproduce`: one command from data to report (the job of `cargo xtask reproduce simclr`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use contrast_encoders::{ResNetConfig, Stem};
use contrast_eval::{Features, KnnClassifier, LinearProbe, pca_2d};
use contrast_vision::{
    FASHION_MNIST_CLASSES, ImageBatcher, ImageDataset, ImageShape, SimClrAugmentConfig, Splits,
    load_cifar10, load_fashion_mnist, load_image_folder, load_mnist_format, load_stl10,
};

use contrast_sampler::BatchSamplerConfig;

use crate::train::{
    EpochRecord, RunDir, TrainConfig, embed, subset_indices, subset_knn_top1, train,
};
use crate::{Error, Method, OptimizerConfig, OptimizerKind, SimClrConfig};

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

/// Everything `reproduce simclr` can be told.
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
    /// NT-Xent temperature.
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

/// Trains SimCLR as `opts` says and writes `report.md`, `metrics.json`, `loss.png`, `knn.png`
/// and `embedding.png` into `opts.out`, next to the checkpoint.
///
/// # Errors
/// Data, configuration, checkpoint, training and report errors, each naming what was wrong.
pub fn reproduce_simclr<B: AutodiffBackend>(
    opts: &ReproduceOptions,
    device: &B::Device,
) -> Result<Metrics, Error> {
    let started = Instant::now();
    let say = |s: &str| eprintln!("[reproduce] {s}");
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
    let temperature = opts.temperature.unwrap_or(r.temperature);
    let optimizer = opts.optimizer.unwrap_or(r.optimizer);
    let weight_decay = opts.weight_decay.unwrap_or(r.weight_decay);
    let simclr = SimClrConfig::with_backbone(r.backbone.clone(), 128, temperature);
    simclr.validate()?;
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

    B::seed(device, opts.seed);
    let model = simclr.init_model::<B>(device);
    let parameters = model.num_params();
    let mut method = simclr.init();

    // Baselines on the same split: raw pixels and the untrained encoder.
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

    let all_train: Vec<usize> = (0..data.train.len()).collect();
    let all_test: Vec<usize> = (0..data.test.len()).collect();
    let evaluate = |method: &crate::SimClr,
                    model: &<crate::SimClr as Method<B>>::Model|
     -> Result<(Scores, Vec<f32>, usize), Error> {
        let eval_batch = config.eval_batch_size;
        let (ftr, dim) = embed(
            method,
            model,
            &data.train,
            &all_train,
            &batcher,
            eval_batch,
            device,
        );
        let (fte, _) = embed(
            method, model, &data.test, &all_test, &batcher, eval_batch, device,
        );
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
            classes,
            &probe,
        )?;
        Ok((s, fte, dim))
    };
    say("baselines: random-initialised encoder");
    let (random_init, _, _) = evaluate(&method, &model)?;
    say(&format!(
        "raw pixels kNN {:.2} / linear {:.2}; random encoder kNN {:.2} / linear {:.2}",
        raw_pixels.knn_top1, raw_pixels.linear_top1, random_init.knn_top1, random_init.linear_top1
    ));

    say(&format!(
        "training SimCLR: {} train / {} test images, {epochs} epochs, batch {batch_size}, device {}",
        data.train.len(),
        data.test.len(),
        opts.device
    ));
    let run = RunDir {
        dir: Some(opts.out.clone()),
        resume: opts.resume,
        progress: true,
    };
    let trained = train(&mut method, model, &data, &batcher, &config, &run, device)?;
    let history = trained.history;
    say("evaluating the trained encoder");
    let (trained_scores, test_features, dim) = evaluate(&method, &trained.model)?;

    let batch_sampler = match &opts.batch_sampler {
        None => None,
        Some(bs) => {
            let mut bs = bs.clone();
            bs.batch_size = batch_size;
            bs.seed = opts.seed;
            bs.validate(data.train.len())?;
            say(&format!(
                "training SimCLR again from the same initial weights with BatchSampler (M={}, K={}, p0={}, rebuild every {} batches, {} warm-up epoch(s))",
                bs.candidates, bs.neighbours, bs.restart, bs.rebuild_every, bs.warmup_epochs
            ));
            B::seed(device, opts.seed);
            let model = simclr.init_model::<B>(device);
            let mut method = simclr.init();
            let config = config.clone().with_batch_sampler(Some(bs.clone()));
            let run = RunDir {
                dir: Some(opts.out.join("batch-sampler")),
                resume: opts.resume,
                progress: true,
            };
            let t = train(&mut method, model, &data, &batcher, &config, &run, device)?;
            let (scores, _, _) = evaluate(&method, &t.model)?;
            Some(SamplerComparison {
                config: bs,
                scores,
                epoch_records: t.history.epochs,
                step_losses: t.history.step_losses,
                summary: t.sampler_summary,
            })
        }
    };

    let augment_seconds: f64 = history.epochs.iter().map(|e| e.augment_seconds).sum();
    let images: usize = history.epochs.len() * (data.train.len() / batch_size) * batch_size;
    let epochs_to_beat_raw_pixels = history
        .epochs
        .iter()
        .find(|e| e.knn_top1.is_some_and(|k| k > raw_pixels_monitor_knn))
        .map(|e| e.epoch + 1);
    let metrics = Metrics {
        method: "simclr".into(),
        dataset: opts.dataset.name().into(),
        train_images: data.train.len(),
        test_images: data.test.len(),
        device: opts.device.clone(),
        backbone: r.backbone_name.into(),
        parameters,
        epochs,
        batch_size,
        learning_rate,
        optimizer,
        weight_decay,
        temperature,
        trained: trained_scores,
        random_init,
        raw_pixels,
        train_seconds: history.epochs.iter().map(|e| e.seconds).sum(),
        epoch_records: history.epochs.clone(),
        step_losses: history.step_losses.clone(),
        total_seconds: started.elapsed().as_secs_f64(),
        augment_views_per_second: 2.0 * images as f64 / augment_seconds.max(1e-9),
        peak_memory_mib: peak_memory_mib(),
        epochs_to_beat_raw_pixels,
        raw_pixels_monitor_knn,
        monitor_subsets: (mon_tr.len(), mon_te.len()),
        batch_sampler,
        command: opts.command.clone(),
    };
    let projected = pca_2d(&test_features, dim);
    crate::report::write(&opts.out, &metrics, &r.augment, &projected, &data.test)?;
    say(&format!(
        "report written to {}",
        opts.out.join("report.md").display()
    ));
    Ok(metrics)
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
