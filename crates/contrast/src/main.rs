//! The `contrast` program: `contrast reproduce simclr [options]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use contrast::core::burn::tensor::backend::AutodiffBackend;
use contrast::core::{BackendTask, DeviceSpec};
use contrast::methods::{DatasetKind, Metrics, OptimizerKind, ReproduceOptions, reproduce_simclr};
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
    /// Method: simclr.
    method: String,
    /// Device: flex, ndarray, wgpu, cuda or cuda:N (each needs its cargo feature).
    #[arg(long, default_value = "flex")]
    device: String,
    /// fashion-mnist, cifar10, stl10 or folder.
    #[arg(long, default_value = "fashion-mnist")]
    dataset: String,
    /// Folder with the dataset (Fashion-MNIST is found or fetched without it).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder for the report, plots, metrics and checkpoint.
    #[arg(long, default_value = "target/reproduce/simclr")]
    out: PathBuf,
    /// Epochs (default depends on the dataset).
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size (default depends on the dataset).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// NT-Xent temperature.
    #[arg(long)]
    temperature: Option<f64>,
    /// Optimiser: adam or sgd (momentum 0.9).
    #[arg(long)]
    optimizer: Option<String>,
    /// L2 weight decay.
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Run the kNN monitor every N epochs (it always runs after the last one).
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
}

struct Reproduce(ReproduceOptions);

impl BackendTask for Reproduce {
    type Output = Result<Metrics, contrast::methods::Error>;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Output {
        reproduce_simclr::<B>(&self.0, &device)
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
    if args.method != "simclr" {
        return Err(format!(
            "unknown or not yet available method '{}'; available: simclr",
            args.method
        ));
    }
    let device = DeviceSpec::parse(&args.device).map_err(|e| e.to_string())?;
    let dataset: DatasetKind = args
        .dataset
        .parse()
        .map_err(|e: contrast::core::Error| e.to_string())?;
    let opts = ReproduceOptions {
        dataset,
        data: args.data,
        cache: args.cache.unwrap_or_else(default_cache),
        out: args.out,
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
        train_subset: args.train_subset,
        test_subset: args.test_subset,
        command: std::env::var("CONTRAST_COMMAND").unwrap_or_else(|_| {
            std::iter::once("contrast".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" ")
        }),
    };
    let metrics = device
        .run(Reproduce(opts))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    println!(
        "kNN top-1 {:.2} (random init {:.2}, raw pixels {:.2}); linear {:.2}",
        metrics.trained.knn_top1,
        metrics.random_init.knn_top1,
        metrics.raw_pixels.knn_top1,
        metrics.trained.linear_top1
    );
    Ok(())
}

fn main() -> ExitCode {
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
