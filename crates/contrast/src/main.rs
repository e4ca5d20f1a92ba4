//! The `contrast` program: `contrast reproduce <method> [options]`,
//! `contrast reproduce paradigms [options]`, `contrast reproduce simcse [options]`,
//! `contrast reproduce graphcl [options]` and `contrast reproduce mvgrl [options]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use contrast::core::burn::tensor::backend::AutodiffBackend;
use contrast::core::{BackendTask, DeviceSpec};
use contrast::encoders::BertPooling;
use contrast::experiments::{
    DatasetKind, GraphMetrics, GraphOptions, MethodKind, MethodOptions, Metrics, MvgrlRecipe,
    ReproduceOptions, StsScores, TextMetrics, TextOptions, reproduce, reproduce_graphcl,
    reproduce_mvgrl, reproduce_paradigms, reproduce_simcse,
};
use contrast::methods::OptimizerKind;
use contrast::sampler::{BatchSamplerConfig, Coverage};

#[derive(Parser)]
#[command(
    name = "contrast",
    version,
    about = "Contrastive representation learning on Burn"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a method and write a report with accuracy, time, memory and plots.
    Reproduce(ReproduceArgs),
}

#[derive(clap::Args)]
struct ReproduceArgs {
    /// Method: simclr, dcl, invaspread, instdisc, moco-v1, moco-v2 (moco), dim, or `paradigms`
    /// for all of them under one budget and one comparison report; `simcse` for sentences,
    /// `graphcl` and `mvgrl` for graphs.
    method: String,
    /// With `paradigms`: the methods to compare, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    methods: Option<Vec<String>>,
    /// Device: flex, ndarray, wgpu, cuda or cuda:N (each needs its cargo feature).
    #[arg(long, default_value = "flex")]
    device: String,
    /// fashion-mnist, cifar10, stl10 or folder.
    #[arg(long, default_value = "fashion-mnist")]
    dataset: String,
    /// Folder with the dataset (Fashion-MNIST is found or fetched without it).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder for the report, plots, metrics and checkpoint (default
    /// target/reproduce/<method>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Epochs (default depends on the dataset).
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size (default depends on the dataset).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Temperature of the loss (default: the method's paper's; SimCLR and DCL: the recipe's).
    #[arg(long)]
    temperature: Option<f64>,
    /// The method's whole config as JSON (the `method.json` that every run writes beside its
    /// report); the flags below and --temperature apply on top.
    #[arg(long)]
    method_config: Option<PathBuf>,
    /// MoCo: queue length (default 4096).
    #[arg(long)]
    queue_size: Option<usize>,
    /// MoCo: key-encoder momentum (default 0.999).
    #[arg(long)]
    key_momentum: Option<f64>,
    /// MoCo: groups of the shuffled batch-norm emulation (default 4; 1 turns it off).
    #[arg(long)]
    shuffle_groups: Option<usize>,
    /// InstDisc: noise samples per step (default 4096).
    #[arg(long)]
    noise_samples: Option<usize>,
    /// InstDisc: memory-bank momentum (default 0.5).
    #[arg(long)]
    bank_momentum: Option<f64>,
    /// InstDisc: weight of the proximal term (default 0, off).
    #[arg(long)]
    proximal: Option<f64>,
    /// Optimiser: adam or sgd (momentum 0.9).
    #[arg(long)]
    optimizer: Option<String>,
    /// L2 weight decay.
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Run the monitors (kNN) every N epochs (they always run after the last one).
    #[arg(long)]
    knn_every: Option<usize>,
    /// A one-minute run on 4,000 training and 1,000 test images (for CI).
    #[arg(long)]
    quick: bool,
    /// Continue from the checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// Seed for initialisation, sampling and augmentation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Use only this many training images.
    #[arg(long)]
    train_subset: Option<usize>,
    /// Use only this many test images.
    #[arg(long)]
    test_subset: Option<usize>,
    /// Also train with BatchSampler from the same initial weights and compare in the report.
    #[arg(long)]
    batch_sampler: bool,
    /// BatchSampler: candidates per instance (M).
    #[arg(long, default_value_t = 1000)]
    bs_candidates: usize,
    /// BatchSampler: neighbours kept per instance (K).
    #[arg(long, default_value_t = 100)]
    bs_neighbours: usize,
    /// BatchSampler: restart probability at epoch 0 (p0; minus 0.02 per epoch, floor 0.05).
    #[arg(long, default_value_t = 0.2)]
    bs_restart: f64,
    /// BatchSampler: rebuild the proximity graph every N batches.
    #[arg(long, default_value_t = 100)]
    bs_rebuild: usize,
    /// BatchSampler: shuffled warm-up epochs.
    #[arg(long, default_value_t = 1)]
    bs_warmup: usize,
    /// BatchSampler coverage: exactly-once (each instance once per epoch) or reference.
    #[arg(long, default_value = "exactly-once")]
    bs_coverage: String,
    /// Cache folder for downloaded data (default: ~/.cache/contrast).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// simcse: a BERT-family checkpoint folder (config.json, model.safetensors, tokenizer);
    /// default all-MiniLM-L6-v2, found in or fetched into the cache.
    #[arg(long)]
    model: Option<PathBuf>,
    /// simcse: the folder holding stsbenchmark/ and sts_brmson/ (default: the project's
    /// ../shared/datasets when present).
    #[arg(long)]
    sts: Option<PathBuf>,
    /// simcse: tokens per training sentence (default 32).
    #[arg(long)]
    max_len: Option<usize>,
    /// simcse: pooling, mean or cls (default mean).
    #[arg(long)]
    pooling: Option<String>,
    /// graphcl, mvgrl: seeds 0..N, each trained and evaluated (default 5; --quick: 1).
    #[arg(long)]
    seeds: Option<usize>,
    /// mvgrl: width of the GCN layers and heads (default 512; --quick: 64).
    #[arg(long)]
    hidden: Option<usize>,
    /// mvgrl: GCN layers (default 4; --quick: 2).
    #[arg(long)]
    layers: Option<usize>,
}

struct ReproduceGraph(GraphOptions);

impl BackendTask for ReproduceGraph {
    type Output = Result<GraphMetrics, contrast::experiments::Error>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        reproduce_graphcl::<B>(&self.0, &device)
    }
}

struct ReproduceMvgrl(GraphOptions);

impl BackendTask for ReproduceMvgrl {
    type Output = Result<GraphMetrics<MvgrlRecipe>, contrast::experiments::Error>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        reproduce_mvgrl::<B>(&self.0, &device)
    }
}

/// The one-line summary of a graph run.
fn graph_summary<R>(m: &GraphMetrics<R>) -> String {
    format!(
        "{} on {}: SVM accuracy {:.2} ± {:.2} over {} seed(s) (random init {:.2}){}",
        m.method,
        m.dataset,
        m.trained.mean,
        m.trained.std,
        m.seeds.len(),
        m.random_init.mean,
        m.published
            .map_or(String::new(), |p| format!("; published {:.2}", p.0))
    )
}

fn batch_sampler_config(args: &ReproduceArgs) -> Option<BatchSamplerConfig> {
    args.batch_sampler.then(|| {
        let mut c = BatchSamplerConfig::new(2);
        c.candidates = args.bs_candidates;
        c.neighbours = args.bs_neighbours;
        c.restart = args.bs_restart;
        c.rebuild_every = args.bs_rebuild;
        c.warmup_epochs = args.bs_warmup;
        c
    })
}

fn run_graph(args: ReproduceArgs) -> Result<(), String> {
    let device = DeviceSpec::parse(&args.device).map_err(|e| e.to_string())?;
    let opts = GraphOptions {
        // The image default names no graph set: GraphCL's first table starts with MUTAG.
        dataset: if args.dataset == "fashion-mnist" {
            "MUTAG".into()
        } else {
            args.dataset.clone()
        },
        batch_sampler: batch_sampler_config(&args),
        data: args.data,
        cache: args.cache.unwrap_or_else(default_cache),
        out: args
            .out
            .unwrap_or_else(|| PathBuf::from(format!("target/reproduce/{}", args.method))),
        device: args.device,
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        temperature: args.temperature,
        hidden: args.hidden,
        layers: args.layers,
        seeds: args.seeds,
        quick: args.quick,
        resume: args.resume,
        command: command_line(),
    };
    let summary = if args.method == "mvgrl" {
        if opts.temperature.is_some() {
            return Err("--temperature: MVGRL's objective has none".into());
        }
        let m = device
            .run(ReproduceMvgrl(opts))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        graph_summary(&m)
    } else {
        let m = device
            .run(ReproduceGraph(opts))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        graph_summary(&m)
    };
    println!("{summary}");
    Ok(())
}

struct ReproduceText(TextOptions);

impl BackendTask for ReproduceText {
    type Output = Result<TextMetrics, contrast::experiments::Error>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        reproduce_simcse::<B>(&self.0, &device)
    }
}

/// The default STS folder: the project's shared datasets, when this is run from its root.
fn default_sts() -> Result<PathBuf, String> {
    let shared = PathBuf::from("../shared/datasets");
    if shared.join("stsbenchmark").is_dir() {
        return Ok(shared);
    }
    Err(
        "no STS evaluation sets: pass --sts DIR, a folder holding stsbenchmark/ (STS Benchmark) \
         and sts_brmson/ (SemEval STS 2012-2016, SICK)"
            .into(),
    )
}

fn run_text(args: ReproduceArgs) -> Result<(), String> {
    let pooling = match args.pooling.as_deref() {
        None => None,
        Some("mean") => Some(BertPooling::Mean),
        Some("cls") => Some(BertPooling::Cls),
        Some(other) => return Err(format!("--pooling '{other}': expected mean or cls")),
    };
    let device = DeviceSpec::parse(&args.device).map_err(|e| e.to_string())?;
    let batch_sampler = batch_sampler_config(&args);
    let opts = TextOptions {
        model: args.model,
        data: args.data,
        sts: match args.sts {
            Some(d) => d,
            None => default_sts()?,
        },
        cache: args.cache.unwrap_or_else(default_cache),
        out: args
            .out
            .unwrap_or_else(|| PathBuf::from("target/reproduce/simcse")),
        device: args.device,
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        temperature: args.temperature,
        train_subset: args.train_subset,
        max_len: args.max_len,
        pooling,
        quick: args.quick,
        resume: args.resume,
        seed: args.seed,
        batch_sampler,
        command: command_line(),
    };
    let m = device
        .run(ReproduceText(opts))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let stsb = |s: &StsScores| {
        s.tasks
            .iter()
            .find(|t| t.0 == "STS-B")
            .map_or(f64::NAN, |t| t.1)
    };
    println!(
        "simcse: STS-B test {:.2} (checkpoint {:.2}), average {:.2} (checkpoint {:.2})",
        stsb(&m.run.after),
        stsb(&m.before),
        m.run.after.average,
        m.before.average
    );
    Ok(())
}

fn command_line() -> String {
    std::env::var("CONTRAST_COMMAND").unwrap_or_else(|_| {
        std::iter::once("contrast".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// One method, or several under one budget.
enum Job {
    One(MethodKind),
    Paradigms(Vec<MethodKind>),
}

struct Reproduce(Job, ReproduceOptions);

impl BackendTask for Reproduce {
    type Output = Result<Vec<Metrics>, contrast::experiments::Error>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        match &self.0 {
            Job::One(kind) => reproduce::<B>(*kind, &self.1, &device).map(|m| vec![m]),
            Job::Paradigms(kinds) => reproduce_paradigms::<B>(kinds, &self.1, &device),
        }
    }
}

fn default_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("contrast")
}

fn run(args: ReproduceArgs) -> Result<(), String> {
    if args.method == "simcse" {
        return run_text(args);
    }
    if args.method == "graphcl" || args.method == "mvgrl" {
        return run_graph(args);
    }
    let parse = |m: &str| -> Result<MethodKind, String> {
        m.parse::<MethodKind>()
            .map_err(|e| format!("{e}; or `paradigms` to compare them all"))
    };
    let job = if args.method == "paradigms" {
        let kinds = match &args.methods {
            None => MethodKind::ALL.to_vec(),
            Some(list) => list.iter().map(|m| parse(m)).collect::<Result<_, _>>()?,
        };
        if args.batch_sampler {
            return Err(
                "--batch-sampler compares samplers for one method; run `contrast reproduce simclr --batch-sampler`"
                    .into(),
            );
        }
        Job::Paradigms(kinds)
    } else {
        if args.methods.is_some() {
            return Err("--methods goes with `reproduce paradigms`".into());
        }
        Job::One(parse(&args.method)?)
    };
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("target/reproduce/{}", args.method)));
    let device = DeviceSpec::parse(&args.device).map_err(|e| e.to_string())?;
    let dataset: DatasetKind = args
        .dataset
        .parse()
        .map_err(|e: contrast::core::Error| e.to_string())?;
    let opts = ReproduceOptions {
        dataset,
        data: args.data,
        cache: args.cache.unwrap_or_else(default_cache),
        out,
        device: args.device,
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        temperature: args.temperature,
        optimizer: args
            .optimizer
            .map(|o| o.parse::<OptimizerKind>())
            .transpose()
            .map_err(|e| e.to_string())?,
        weight_decay: args.weight_decay,
        knn_every: args.knn_every,
        quick: args.quick,
        resume: args.resume,
        seed: args.seed,
        batch_sampler: if args.batch_sampler {
            let mut c = BatchSamplerConfig::new(2);
            c.candidates = args.bs_candidates;
            c.neighbours = args.bs_neighbours;
            c.restart = args.bs_restart;
            c.rebuild_every = args.bs_rebuild;
            c.warmup_epochs = args.bs_warmup;
            c.coverage = match args.bs_coverage.as_str() {
                "exactly-once" => Coverage::ExactlyOnce,
                "reference" => Coverage::Reference,
                other => {
                    return Err(format!(
                        "--bs-coverage '{other}': expected exactly-once or reference"
                    ));
                }
            };
            Some(c)
        } else {
            None
        },
        method_options: MethodOptions {
            queue_size: args.queue_size,
            key_momentum: args.key_momentum,
            shuffle_groups: args.shuffle_groups,
            noise_samples: args.noise_samples,
            bank_momentum: args.bank_momentum,
            proximal_weight: args.proximal,
        },
        method_config: args.method_config,
        train_subset: args.train_subset,
        test_subset: args.test_subset,
        command: command_line(),
    };
    let all = device
        .run(Reproduce(job, opts))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    for m in &all {
        println!(
            "{}: kNN top-1 {:.2} (random init {:.2}, raw pixels {:.2}); linear {:.2}",
            m.method,
            m.trained.knn_top1,
            m.random_init.knn_top1,
            m.raw_pixels.knn_top1,
            m.trained.linear_top1
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    contrast_core::tune_allocator();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Reproduce(a) => run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
