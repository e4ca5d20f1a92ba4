//! The `contrast` program: `contrast reproduce <method> [options]`,
//! `contrast reproduce paradigms [options]`, `contrast reproduce simcse [options]`,
//! `contrast reproduce graphcl [options]` and `contrast reproduce mvgrl [options]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use contrast::core::burn::tensor::backend::AutodiffBackend;
use contrast::core::{BackendTask, DeviceSpec};
use contrast::encoders::BertPooling;
use contrast::experiments::{
    ClipMetrics, ClipOptions, ClipScores, DatasetKind, GraphMetrics, GraphOptions, JobOptions,
    MethodKind, MethodOptions, Metrics, MvgrlRecipe, NodeMetrics, PeerOptions, ReproduceOptions,
    StsScores, TextMetrics, TextOptions, is_node_dataset, reproduce, reproduce_clip,
    reproduce_graphcl, reproduce_mvgrl, reproduce_mvgrl_node, reproduce_paradigms,
    reproduce_simcse,
};
use contrast::methods::OptimizerKind;
use contrast::pairs::PairsFormat;
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
    /// `graphcl` and `mvgrl` for graphs, `clip` for image-caption pairs.
    method: String,
    /// With `paradigms`: the methods to compare, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    methods: Option<Vec<String>>,
    /// Device: flex, ndarray, wgpu, cuda or cuda:N (each needs its cargo feature).
    #[arg(long, default_value = "flex")]
    device: String,
    /// Data-parallel training, one peer per device, comma-separated, one backend: `flex,flex`
    /// (threads sharing the CPU), `cuda:0,cuda:1`. The batch is split across the peers, the
    /// gradients are combined before every step; replaces --device.
    #[arg(long)]
    devices: Option<String>,
    /// With --devices: keep each peer's in-batch negatives its own instead of gathering every
    /// peer's embeddings (the default, which computes the whole batch's loss).
    #[arg(long)]
    local_negatives: bool,
    /// clip with --devices: each peer computes the loss of its own rows against every column
    /// (open_clip's local_loss; exact gradient), instead of the whole loss on every peer.
    #[arg(long)]
    local_loss: bool,
    /// With --devices or --nodes: batch norm normalises with the statistics of every peer's
    /// batch together, as one device on the whole batch (synchronised batch norm; two
    /// all-reduces per batch-norm layer and direction), instead of each peer's own share's.
    #[arg(long)]
    sync_batch_norm: bool,
    /// With --devices or --nodes: seconds a peer waits for the others before it names the
    /// missing one and the run stops [default: 600].
    #[arg(long, allow_negative_numbers = true)]
    peer_timeout: Option<f64>,
    /// Several processes (nodes), on one machine or several, training as one group: start the
    /// same command on every node with the same --nodes and --node-addresses and its own
    /// --node-rank, each with its own --device or --devices (as many on every node). Example,
    /// two machines with two GPUs each: `contrast reproduce simclr --devices cuda:0,cuda:1
    /// --nodes 2 --node-addresses 10.0.0.1:29500,10.0.0.2:29500 --node-rank 0` on the first,
    /// `--node-rank 1` on the second. Every node trains the same weights and writes a report
    /// and checkpoint to its own --out; node 0's is the run's (it alone runs the per-epoch
    /// monitors and --keep-best).
    #[arg(long)]
    nodes: Option<usize>,
    /// With --nodes: this process's rank, 0 .. nodes - 1.
    #[arg(long)]
    node_rank: Option<usize>,
    /// With --nodes: every node's HOST:PORT, in rank order, comma-separated; node R opens the
    /// port of entry R (on every interface) and reaches the others at theirs.
    #[arg(long, value_delimiter = ',')]
    node_addresses: Option<Vec<String>>,
    /// fashion-mnist, cifar10, stl10 or folder; graphcl, mvgrl: a TU set (MUTAG, PROTEINS,
    /// IMDB-BINARY, ...); mvgrl, node classification: cora (pygcn's files, node order and
    /// split, as the paper; fetched when --data is not given), cora-planetoid or citeseer (the
    /// Planetoid files and split).
    #[arg(long, default_value = "fashion-mnist")]
    dataset: String,
    /// Folder with the dataset (Fashion-MNIST is found or fetched without it).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder for the report, plots, metrics and checkpoint (default
    /// target/reproduce/<method>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Epochs [default: fashion-mnist 10 (paradigms: 2 per method); cifar10 800; stl10, folder 100; simcse 2 (--quick 1);
    /// graphcl 20, mvgrl 40 (node level: 30 of 10 steps) (--quick 2); clip 10 (--quick 1)].
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size [default: 256; cifar10 512; simcse 64; graphcl 128; mvgrl 64 (node level: 4 windows of 2000 nodes)].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate [default: fashion-mnist 2e-3; cifar10 0.12; stl10, folder 1e-3
    /// (instdisc: a quarter of these); simcse 3e-5; graphcl 0.01; mvgrl 1e-3; clip 1e-3]. Given,
    /// every method of a comparison trains at it.
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Temperature of the loss [default: the method's paper's; SimCLR and DCL: 0.5 on
    /// fashion-mnist and cifar10, 0.2 otherwise; simcse 0.05; graphcl 0.2].
    #[arg(long, allow_negative_numbers = true)]
    temperature: Option<f64>,
    /// The method's whole config as JSON (the `method.json` that every run writes beside its
    /// report); the flags below and --temperature apply on top.
    #[arg(long)]
    method_config: Option<PathBuf>,
    /// MoCo: queue length (default 4096).
    #[arg(long)]
    queue_size: Option<usize>,
    /// MoCo: key-encoder momentum (default 0.999).
    #[arg(long, allow_negative_numbers = true)]
    key_momentum: Option<f64>,
    /// MoCo: groups of the shuffled batch-norm emulation on one device (default 4; 1 turns
    /// shuffling off); with several --devices any value above 1 shuffles keys across them.
    #[arg(long)]
    shuffle_groups: Option<usize>,
    /// InstDisc: noise samples per step (default 4096).
    #[arg(long)]
    noise_samples: Option<usize>,
    /// InstDisc: memory-bank momentum (default 0.5).
    #[arg(long, allow_negative_numbers = true)]
    bank_momentum: Option<f64>,
    /// InstDisc: weight of the proximal term (default 0, off).
    #[arg(long, allow_negative_numbers = true)]
    proximal: Option<f64>,
    /// Optimiser: adam or sgd (momentum 0.9) [default: adam; cifar10 sgd].
    #[arg(long)]
    optimizer: Option<String>,
    /// L2 weight decay [default: 1e-6; cifar10 5e-4].
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f64>,
    /// Run the monitors (kNN) every N epochs (they always run after the last one).
    #[arg(long)]
    knn_every: Option<usize>,
    /// Image methods: smallest share of the image a random resized crop keeps, in [1e-4, 1]
    /// [default: fashion-mnist 0.2; cifar10, stl10, folder 0.08].
    #[arg(long, allow_negative_numbers = true)]
    crop_min_scale: Option<f64>,
    /// Image methods: colour-jitter strength in [0, 2.5] (SimCLR's s; brightness, contrast and
    /// saturation 0.8 s, hue 0.2 s) [default: fashion-mnist, cifar10 0.5; stl10, folder 1].
    #[arg(long, allow_negative_numbers = true)]
    jitter_strength: Option<f64>,
    /// Image methods: the backbone's channels per stage, comma-separated, one per stage (the
    /// stem takes the first) [default: fashion-mnist 32,64,256 (paradigms: 32,64,128); the
    /// ResNet-18 recipes 64,128,256,512].
    #[arg(long, value_delimiter = ',', value_parser = positive_width)]
    widths: Option<Vec<usize>>,
    /// A one-minute run on 4,000 training and 1,000 test images (for CI).
    #[arg(long)]
    quick: bool,
    /// Continue from the checkpoint in --out (with the same settings).
    #[arg(long)]
    resume: bool,
    /// Start again in an --out that holds an earlier run, replacing its checkpoints (without
    /// --resume or --overwrite such a folder is refused).
    #[arg(long)]
    overwrite: bool,
    /// Seed for initialisation, sampling and augmentation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Use only this many training images (simcse: sentences), at least 1 [default: all;
    /// --quick 4000; simcse 6400, --quick 512].
    #[arg(long, value_parser = at_least_one)]
    train_subset: Option<usize>,
    /// Use only this many test images, at least 1 [default: all; --quick 1000].
    #[arg(long, value_parser = at_least_one)]
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
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true)]
    bs_restart: f64,
    /// BatchSampler: rebuild the proximity graph every N batches.
    #[arg(long, default_value_t = 100)]
    bs_rebuild: usize,
    /// BatchSampler: shuffled warm-up epochs that collect the embeddings of its first graph (0:
    /// walk from the first step; `reproduce simcse` then builds that graph from the starting
    /// checkpoint, elsewhere batches are random until the first rebuild).
    #[arg(long, default_value_t = 1)]
    bs_warmup: usize,
    /// BatchSampler coverage: exactly-once (each instance once per epoch) or reference.
    #[arg(long, default_value = "exactly-once")]
    bs_coverage: String,
    /// Cache folder for downloaded data (default: ~/.cache/contrast).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// simcse, clip: a BERT-family checkpoint folder (config.json, model.safetensors, tokenizer);
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
    /// simcse: evaluate STS-B dev every N steps as well as after every epoch (0: after epochs
    /// only; default 25).
    #[arg(long)]
    eval_every: Option<usize>,
    /// simcse: score and save the last weights (default: the weights of the best STS-B dev
    /// evaluation, as SimCSE's code does).
    #[arg(long)]
    keep_last: bool,
    /// simcse: pooling, mean or cls (default mean).
    #[arg(long)]
    pooling: Option<String>,
    /// graphcl, mvgrl: seeds 0..N, each trained and evaluated (default 5, node level 3;
    /// --quick: 1); image methods with --batch-sampler: compare the samplers over seeds
    /// seed..seed+N (default 1).
    #[arg(long, value_parser = at_least_one)]
    seeds: Option<usize>,
    /// mvgrl: width of the GCN layers and heads (default 512; --quick: 64).
    #[arg(long)]
    hidden: Option<usize>,
    /// mvgrl: GCN layers (default 4, node level 1; --quick: 2, node level 1).
    #[arg(long)]
    layers: Option<usize>,
    /// mvgrl: train the GCN encoders too (default: only the heads, over fixed random encoders,
    /// as the authors' code does).
    #[arg(long)]
    train_encoders: bool,
    /// graphcl, mvgrl: keep the learning rate constant, as the authors' code does (default:
    /// cosine decay; node-level mvgrl is always constant).
    #[arg(long)]
    constant_lr: bool,
    /// graphcl, mvgrl: write the embeddings the SVM classifies, before and after training, the
    /// labels and the SVM's folds as `.npy` files into each training's folder (for another
    /// classifier on the same splits, e.g. `benches/peers/svm_sklearn.py`).
    #[arg(long)]
    save_embeddings: bool,
    /// clip: a pairs file, one image path and caption per row under a header (default:
    /// Fashion-MNIST with captions generated from the class names).
    #[arg(long)]
    pairs: Option<PathBuf>,
    /// clip: the folder that the pairs file's relative image paths start from (default: the
    /// pairs file's folder).
    #[arg(long)]
    images: Option<PathBuf>,
    /// clip: the header of the pairs file's image-path column [default: filepath].
    #[arg(long)]
    csv_img_key: Option<String>,
    /// clip: the header of the caption column [default: title].
    #[arg(long)]
    csv_caption_key: Option<String>,
    /// clip: the pairs file's field separator, one character or `tab` [default: tab].
    #[arg(long)]
    csv_separator: Option<String>,
}

/// The device that runs the job (the first peer's), its name for the report, and the
/// data-parallel options (`--devices` replaces `--device`).
fn devices(args: &ReproduceArgs) -> Result<(DeviceSpec, String, PeerOptions), String> {
    if args.local_loss && args.local_negatives {
        return Err(
            "--local-loss reads every peer's columns: it needs gathered negatives \
                    (leave out --local-negatives)"
                .into(),
        );
    }
    if let Some(t) = args.peer_timeout {
        contrast::core::ensure_positive("peer_timeout", t).map_err(|e| e.to_string())?;
    }
    if args.nodes.is_some_and(|n| n > 1) && args.node_rank.is_none() {
        return Err("--nodes needs --node-rank: this process's rank, 0 on the first node".into());
    }
    let devices = match &args.devices {
        Some(list) => DeviceSpec::parse_list(list).map_err(|e| e.to_string())?,
        None => vec![DeviceSpec::parse(&args.device).map_err(|e| e.to_string())?],
    };
    let peers = PeerOptions {
        devices: devices.iter().map(|d| d.to_string()).collect(),
        gather_negatives: !args.local_negatives,
        sync_batch_norm: args.sync_batch_norm,
        peer_timeout: args.peer_timeout,
        nodes: args.nodes.unwrap_or(1),
        node_rank: args.node_rank.unwrap_or(0),
        node_addresses: args.node_addresses.clone().unwrap_or_default(),
    };
    // The layout's errors now, before any data is loaded.
    peers.group().map_err(|e| e.to_string())?;
    Ok((devices[0], peers.describe(), peers))
}

/// The options every job shares, from the command line; `out` defaults to
/// `target/reproduce/<method>`.
fn job_options(args: &ReproduceArgs) -> Result<(DeviceSpec, JobOptions), String> {
    let (device, name, peers) = devices(args)?;
    Ok((
        device,
        JobOptions {
            cache: args.cache.clone().unwrap_or_else(default_cache),
            out: args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("target/reproduce/{}", args.method))),
            device: name,
            peers,
            epochs: args.epochs,
            batch_size: args.batch_size,
            learning_rate: args.lr,
            quick: args.quick,
            resume: args.resume,
            overwrite: args.overwrite,
            command: command_line(),
        },
    ))
}

struct ReproduceClip(ClipOptions);

impl BackendTask for ReproduceClip {
    type Output = Result<ClipMetrics, contrast::experiments::Error>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        reproduce_clip::<B>(&self.0, &device)
    }
}

fn run_clip(args: ReproduceArgs) -> Result<(), String> {
    let (device, job) = job_options(&args)?;
    let mut format = PairsFormat::default();
    if let Some(k) = args.csv_img_key {
        format.image_key = k;
    }
    if let Some(k) = args.csv_caption_key {
        format.caption_key = k;
    }
    if let Some(sep) = args.csv_separator {
        let mut chars = sep.chars();
        format.separator = match (sep.as_str(), chars.next(), chars.next()) {
            ("tab" | "\\t", _, _) => '\t',
            (_, Some(c), None) if !matches!(c, '"' | '\n' | '\r') => c,
            _ => {
                return Err(format!(
                    "--csv-separator '{sep}': one character (not a quote or a line break) or `tab`"
                ));
            }
        };
    }
    if args.images.is_some() && args.pairs.is_none() {
        return Err("--images goes with --pairs FILE".into());
    }
    let opts = ClipOptions {
        job,
        pairs: args.pairs,
        images: args.images,
        format,
        data: args.data,
        model: args.model,
        train_subset: args.train_subset,
        test_subset: args.test_subset,
        seed: args.seed,
        local_loss: args.local_loss,
    };
    let m = device
        .run(ReproduceClip(opts))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    let r1 = |s: &ClipScores| f(s.retrieval.as_ref().map(|r| r.image_to_text[0].1));
    println!(
        "clip: zero-shot top-1 {} (random image tower {}), image->text R@1 {} ({}), kNN {} (raw pixels {})",
        f(m.after.zero_shot),
        f(m.before.zero_shot),
        r1(&m.after),
        r1(&m.before),
        f(m.after.knn_top1),
        f(m.raw_pixels.map(|p| p.0))
    );
    Ok(())
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

struct ReproduceMvgrlNode(GraphOptions);

impl BackendTask for ReproduceMvgrlNode {
    type Output = Result<NodeMetrics, contrast::experiments::Error>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        reproduce_mvgrl_node::<B>(&self.0, &device)
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

fn batch_sampler_config(args: &ReproduceArgs) -> Result<Option<BatchSamplerConfig>, String> {
    if !args.batch_sampler {
        return Ok(None);
    }
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
    Ok(Some(c))
}

/// A count that must be at least 1 (0 would otherwise read as "all").
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (leave the option out to use all)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn positive_width(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("a stage needs at least 1 channel".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// The options every method takes.
const COMMON: [&str; 11] = [
    "method",
    "device",
    "data",
    "out",
    "epochs",
    "batch_size",
    "lr",
    "seed",
    "cache",
    "resume",
    "overwrite",
];

/// BatchSampler's settings (they need `--batch-sampler`).
/// The options of data-parallel runs (all but the first two need `devices` or `nodes`).
const PEERS: [&str; 8] = [
    "devices",
    "nodes",
    "local_negatives",
    "peer_timeout",
    "local_loss",
    "node_rank",
    "node_addresses",
    "sync_batch_norm",
];

/// The options of runs on several nodes.
const NODES: [&str; 3] = ["nodes", "node_rank", "node_addresses"];

const SAMPLER: [&str; 6] = [
    "bs_candidates",
    "bs_neighbours",
    "bs_restart",
    "bs_rebuild",
    "bs_warmup",
    "bs_coverage",
];

/// The options of one image method beyond [`COMMON`].
fn image_method_options(kind: MethodKind) -> Vec<&'static str> {
    let mut v = vec![
        "dataset",
        "quick",
        "optimizer",
        "weight_decay",
        "knn_every",
        "train_subset",
        "test_subset",
        "crop_min_scale",
        "jitter_strength",
        "widths",
    ];
    if kind != MethodKind::Dim {
        v.push("temperature");
    }
    match kind {
        MethodKind::MocoV1 | MethodKind::MocoV2 => {
            v.extend(["queue_size", "key_momentum", "shuffle_groups"])
        }
        MethodKind::InstDisc => v.extend(["noise_samples", "bank_momentum", "proximal"]),
        _ => {}
    }
    v.extend(["devices", "peer_timeout"]);
    v.extend(NODES);
    if kind.takes_sync_batch_norm() {
        v.push("sync_batch_norm");
    }
    // Only the methods with in-batch negatives gather them.
    if kind.uses_batch_negatives() {
        v.push("local_negatives");
    }
    v
}

/// The options that `method` (with `kinds`, the image methods it trains) takes beyond
/// [`COMMON`].
fn method_options(method: &str, kinds: &[MethodKind]) -> Vec<&'static str> {
    let with_sampler = |mut v: Vec<&'static str>| {
        v.push("batch_sampler");
        v.extend(SAMPLER);
        v
    };
    match method {
        "simcse" => with_sampler(vec![
            "devices",
            "local_negatives",
            "peer_timeout",
            "nodes",
            "node_rank",
            "node_addresses",
            "quick",
            "temperature",
            "train_subset",
            "model",
            "sts",
            "max_len",
            "eval_every",
            "keep_last",
            "pooling",
        ]),
        "graphcl" => with_sampler(vec![
            "dataset",
            "constant_lr",
            "save_embeddings",
            "quick",
            "temperature",
            "seeds",
            "devices",
            "local_negatives",
            "peer_timeout",
            "sync_batch_norm",
            "nodes",
            "node_rank",
            "node_addresses",
        ]),
        // MVGRL's negatives are its own batch's nodes: nothing to gather.
        "mvgrl" => with_sampler(vec![
            "dataset",
            "quick",
            "seeds",
            "hidden",
            "layers",
            "train_encoders",
            "constant_lr",
            "save_embeddings",
            "devices",
            "peer_timeout",
            "nodes",
            "node_rank",
            "node_addresses",
        ]),
        "clip" => vec![
            "devices",
            "local_negatives",
            "peer_timeout",
            "nodes",
            "node_rank",
            "node_addresses",
            "local_loss",
            "sync_batch_norm",
            "quick",
            "train_subset",
            "test_subset",
            "model",
            "pairs",
            "images",
            "csv_img_key",
            "csv_caption_key",
            "csv_separator",
        ],
        "paradigms" => {
            let mut v: Vec<&'static str> = kinds
                .iter()
                .flat_map(|&k| image_method_options(k))
                .collect();
            v.push("methods");
            // The comparison synchronises batch norm for all of its methods or none.
            if !kinds.iter().all(|k| k.takes_sync_batch_norm()) {
                v.retain(|o| *o != "sync_batch_norm");
            }
            v.sort_unstable();
            v.dedup();
            v
        }
        _ => {
            let mut v: Vec<&'static str> = kinds
                .iter()
                .flat_map(|&k| image_method_options(k))
                .collect();
            v.push("method_config");
            if kinds.iter().all(|k| k.uses_batch_negatives()) {
                v = with_sampler(v);
                v.push("seeds");
            }
            v
        }
    }
}

/// Refuses options given on the command line that `method` would ignore, naming the ones it
/// takes.
fn check_applicable(args: &ArgMatches, method: &str, kinds: &[MethodKind]) -> Result<(), String> {
    let takes = method_options(method, kinds);
    let flag = |id: &str| format!("--{}", id.replace('_', "-"));
    // The ids of arguments (the derive also records the struct's group).
    let command = Cli::command();
    let arguments: Vec<String> = command
        .find_subcommand("reproduce")
        .expect("the reproduce subcommand exists")
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();
    let given: Vec<&str> = args
        .ids()
        .map(|id| id.as_str())
        .filter(|id| arguments.iter().any(|a| a == id))
        .filter(|id| args.value_source(id) == Some(ValueSource::CommandLine))
        .collect();
    for id in &given {
        if !COMMON.contains(id) && !takes.contains(id) {
            let mut valid: Vec<String> = takes.iter().map(|id| flag(id)).collect();
            valid.sort();
            return Err(format!(
                "{} does not apply to `{method}`; besides the common options it takes {}",
                flag(id),
                valid.join(", ")
            ));
        }
        let image_seeds = *id == "seeds" && !matches!(method, "graphcl" | "mvgrl");
        if (SAMPLER.contains(id) || image_seeds) && !given.contains(&"batch_sampler") {
            return Err(format!("{} needs --batch-sampler", flag(id)));
        }
        if NODES[1..].contains(id) && !given.contains(&"nodes") {
            return Err(format!("{} needs --nodes", flag(id)));
        }
        if PEERS[2..].contains(id) && !given.contains(&"devices") && !given.contains(&"nodes") {
            return Err(format!("{} needs --devices or --nodes", flag(id)));
        }
        if *id == "devices" && given.contains(&"device") {
            return Err("--devices replaces --device: give one of them".into());
        }
    }
    Ok(())
}

fn run_graph(args: ReproduceArgs) -> Result<(), String> {
    let (device, job) = job_options(&args)?;
    let opts = GraphOptions {
        job,
        // The image default names no graph set: GraphCL's first table starts with MUTAG.
        dataset: if args.dataset == "fashion-mnist" {
            "MUTAG".into()
        } else {
            args.dataset.clone()
        },
        batch_sampler: batch_sampler_config(&args)?,
        data: args.data,
        temperature: args.temperature,
        hidden: args.hidden,
        layers: args.layers,
        train_encoders: args.train_encoders,
        constant_lr: args.constant_lr,
        save_embeddings: args.save_embeddings,
        seeds: args.seeds,
    };
    let summary = if args.method == "mvgrl" && is_node_dataset(&opts.dataset) {
        let m = device
            .run(ReproduceMvgrlNode(opts))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        format!(
            "mvgrl on {}: test accuracy {:.2} ± {:.2} over {} seed(s) (random init {:.2}, raw \
             features {:.2}){}",
            m.dataset,
            m.trained.mean,
            m.trained.std,
            m.seeds.len(),
            m.random_init.mean,
            m.raw_features,
            m.published
                .map_or(String::new(), |(p, _)| format!(", published {p:.1}"))
        )
    } else if args.method == "mvgrl" {
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
    let (device, job) = job_options(&args)?;
    let batch_sampler = batch_sampler_config(&args)?;
    let opts = TextOptions {
        job,
        model: args.model,
        data: args.data,
        sts: match args.sts {
            Some(d) => d,
            None => default_sts()?,
        },
        temperature: args.temperature,
        train_subset: args.train_subset,
        max_len: args.max_len,
        pooling,
        seed: args.seed,
        batch_sampler,
        eval_every: args.eval_every,
        keep_last: args.keep_last,
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

fn run(args: ReproduceArgs, given: &ArgMatches) -> Result<(), String> {
    if matches!(
        args.method.as_str(),
        "simcse" | "graphcl" | "mvgrl" | "clip"
    ) {
        check_applicable(given, &args.method, &[])?;
        return match args.method.as_str() {
            "simcse" => run_text(args),
            "clip" => run_clip(args),
            _ => run_graph(args),
        };
    }
    let parse = |m: &str| -> Result<MethodKind, String> {
        m.parse::<MethodKind>().map_err(|e| {
            format!("{e}; or `paradigms` to compare them all, `simcse`, `graphcl`, `mvgrl`, `clip`")
        })
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
        check_applicable(given, "paradigms", &kinds)?;
        Job::Paradigms(kinds)
    } else {
        let kind = parse(&args.method)?;
        check_applicable(given, &args.method, &[kind])?;
        Job::One(kind)
    };
    let batch_sampler = batch_sampler_config(&args)?;
    let (device, device_name, peers) = devices(&args)?;
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("target/reproduce/{}", args.method)));
    let dataset: DatasetKind = args
        .dataset
        .parse()
        .map_err(|e: contrast::core::Error| e.to_string())?;
    let opts = ReproduceOptions {
        dataset,
        data: args.data,
        cache: args.cache.unwrap_or_else(default_cache),
        out,
        device: device_name,
        peers,
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
        crop_min_scale: args.crop_min_scale,
        jitter_strength: args.jitter_strength,
        widths: args.widths,
        quick: args.quick,
        resume: args.resume,
        overwrite: args.overwrite,
        seed: args.seed,
        batch_sampler,
        seeds: args.seeds,
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
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Reproduce(a) => {
            let given = matches
                .subcommand_matches("reproduce")
                .expect("the reproduce subcommand was parsed");
            run(a, given)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
