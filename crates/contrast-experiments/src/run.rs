//! `reproduce`: one command from data to report, and `reproduce_paradigms`, every method under
//! one budget in one comparison.

use std::path::PathBuf;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use contrast_core::{AutodiffEncoder, Encoder, ViewPair, Views};
use contrast_encoders::ProjectedEncoder;
use contrast_eval::{Features, KnnClassifier, LinearProbe, pca_2d};
use contrast_methods::{
    HeadConfig, InstDisc, KnnMonitor, Method, Monitor, OptimizerConfig, RunDir, SimClrConfig,
    TrainConfig, embed, subset_indices,
};
use contrast_sampler::BatchSamplerConfig;
use contrast_vision::{ImageBatcher, ImageViews, Splits};

use crate::Error;
use crate::folder::{check_subset, open_run, run_dir};
use crate::methods::MethodSpec;
use crate::metrics::{
    Metrics, SamplerComparison, Scores, SeedScores, peak_memory_mib, reset_peak_memory,
};
use crate::options::{MethodKind, ReproduceOptions};
use crate::peers::{PeerOptions, train_with};
use crate::recipe::{Recipe, load, recipe};

/// kNN monitor subsets on full-size runs (training memory, test queries); quick runs use all.
const MONITOR_SUBSETS: (usize, usize) = (10_000, 2_000);
/// Batch size for computing embeddings.
const EVAL_BATCH: usize = 512;

/// Everything shared by the methods of one reproduction: data, recipe, loop settings and the
/// baselines.
struct Shared {
    data: Splits,
    recipe: Recipe,
    config: TrainConfig,
    batcher: ImageBatcher,
    probe: LinearProbe,
    monitor_subsets: (usize, usize),
    raw_pixels: Scores,
    raw_pixels_monitor_knn: f64,
    random_init: Scores,
    /// Each requested method's config, resolved and checked once in [`prepare`].
    specs: Vec<(MethodKind, MethodSpec)>,
}

impl Shared {
    fn train_views(&self) -> ImageViews<'_> {
        self.batcher.views_of(&self.data.train)
    }

    fn test_views(&self) -> ImageViews<'_> {
        self.batcher.views_of(&self.data.test)
    }

    /// The loop's settings for `kind`: the shared ones, except that without `--lr` each method
    /// trains at its recipe rate ([`Recipe::learning_rate_for`]).
    fn config_for(&self, kind: MethodKind, opts: &ReproduceOptions) -> TrainConfig {
        let mut config = self.config.clone();
        if opts.learning_rate.is_none() {
            config.optimizer.learning_rate = self.recipe.learning_rate_for(kind);
        }
        config
    }

    /// The config of `kind`, one of the methods [`prepare`] resolved.
    fn spec(&self, kind: MethodKind) -> MethodSpec {
        self.specs
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, s)| s.clone())
            .expect("prepare resolves every requested method")
    }
}

fn say(s: &str) {
    eprintln!("[reproduce] {s}");
}

/// kNN (k = 200, T = 0.1) and linear-probe top-1 of one set of features.
pub(crate) fn scores(
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

/// Loads the data, resolves the recipe and the loop's settings, checks every setting of every
/// method in `kinds` (so that a bad one fails now, not after the baselines or after another
/// method trained), then measures the baselines.
fn prepare<B: AutodiffBackend>(
    opts: &ReproduceOptions,
    kinds: &[MethodKind],
    comparison: bool,
    device: &B::Device,
) -> Result<Shared, Error> {
    check_subset("train_subset", opts.train_subset)?;
    check_subset("test_subset", opts.test_subset)?;
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
    let mut r = recipe(opts.dataset, &data.train);
    if let Some(scale) = opts.crop_min_scale {
        r.augment.crop_min_scale = scale as f32;
    }
    if let Some(strength) = opts.jitter_strength {
        r.augment.jitter_strength = strength as f32;
    }
    let comparison_widths = r.comparison_widths.clone().filter(|_| comparison);
    if let Some(widths) = opts.widths.as_ref().or(comparison_widths.as_ref()) {
        r.set_widths(widths)?;
    }
    let epochs = opts.epochs.unwrap_or(match (opts.quick, comparison) {
        (true, _) => 2,
        (false, true) => r.comparison_epochs,
        (false, false) => r.epochs,
    });
    r.augment.validate()?;
    let config = TrainConfig::new(
        OptimizerConfig::new()
            .with_kind(opts.optimizer.unwrap_or(r.optimizer))
            .with_learning_rate(opts.learning_rate.unwrap_or(r.learning_rate))
            .with_weight_decay(opts.weight_decay.unwrap_or(r.weight_decay))
            .with_warmup_epochs(if epochs > 2 { 1 } else { 0 }),
    )
    .with_epochs(epochs)
    .with_batch_size(opts.batch_size.unwrap_or(r.batch_size))
    .with_seed(opts.seed)
    .with_monitor_every(opts.knn_every.unwrap_or(1));
    config.validate(data.train.len())?;
    let specs = kinds
        .iter()
        .map(|&kind| {
            let spec = MethodSpec::resolve(
                kind,
                &r.backbone,
                r.in_batch_temperature,
                data.train.len(),
                opts,
            )?;
            spec.check_batch(config.batch_size)?;
            Ok((kind, spec))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    if let Some(bs) = config
        .clone()
        .with_batch_sampler(opts.batch_sampler.clone())
        .resolved_batch_sampler()
    {
        bs.validate(data.train.len())?;
    }
    let monitor_subsets = if opts.quick { (0, 0) } else { MONITOR_SUBSETS };
    let batcher = ImageBatcher::new(r.augment.init(opts.seed));
    let mut shared = Shared {
        data,
        recipe: r,
        config,
        batcher,
        probe: LinearProbe::default(),
        monitor_subsets,
        raw_pixels: Scores::default(),
        raw_pixels_monitor_knn: 0.0,
        random_init: Scores::default(),
        specs,
    };
    baselines::<B>(&mut shared, opts, device)?;
    Ok(shared)
}

/// Raw pixels and the random-initialised encoder, on the same splits and classifiers.
fn baselines<B: AutodiffBackend>(
    shared: &mut Shared,
    opts: &ReproduceOptions,
    device: &B::Device,
) -> Result<(), Error> {
    say("baselines: raw pixels");
    let data = &shared.data;
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
        data.train.num_classes(),
        &shared.probe,
    )?;
    let (train_views, test_views) = (shared.train_views(), shared.test_views());
    let monitor = KnnMonitor::new(
        &train_views,
        &test_views,
        shared.monitor_subsets,
        opts.seed,
        EVAL_BATCH,
    )?;
    let (mon_tr, mon_te) = monitor.subsets();
    let pick = |px: &[f32], idx: &[usize]| -> Vec<f32> {
        idx.iter()
            .flat_map(|&i| px[i * pd..(i + 1) * pd].iter().copied())
            .collect()
    };
    let raw_pixels_monitor_knn =
        monitor.top1_of(&pick(&px_train, mon_tr), &pick(&px_test, mon_te), pd)?;
    drop((px_train, px_test));

    // Every method builds its backbone first after seeding, so this random encoder is the
    // initial backbone of each of them.
    say("baselines: random-initialised encoder");
    B::seed(device, opts.seed);
    let backbone = &shared.recipe.backbone;
    let model = SimClrConfig::for_backbone(backbone, 128).init_model::<B, _>(backbone, device)?;
    let random_init = evaluate(shared, &model, device)?.0;
    say(&format!(
        "raw pixels kNN {:.2} / linear {:.2}; random encoder kNN {:.2} / linear {:.2}",
        raw_pixels.knn_top1, raw_pixels.linear_top1, random_init.knn_top1, random_init.linear_top1
    ));
    shared.raw_pixels = raw_pixels;
    shared.raw_pixels_monitor_knn = raw_pixels_monitor_knn;
    shared.random_init = random_init;
    Ok(())
}

/// kNN and linear probe of the model's representation on the full splits; also returns the
/// test features.
fn evaluate<B: AutodiffBackend, M: AutodiffModule<B>>(
    shared: &Shared,
    model: &M,
    device: &B::Device,
) -> Result<(Scores, Vec<f32>, usize), Error>
where
    M::InnerModule: Encoder<B::InnerBackend, Input = Tensor<B::InnerBackend, 4>>,
{
    let data = &shared.data;
    let inner = model.valid();
    let all_train: Vec<usize> = (0..data.train.len()).collect();
    let all_test: Vec<usize> = (0..data.test.len()).collect();
    let (ftr, dim) = embed(
        &inner,
        &shared.train_views(),
        &all_train,
        EVAL_BATCH,
        device,
    );
    let (fte, _) = embed(&inner, &shared.test_views(), &all_test, EVAL_BATCH, device);
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
    history: contrast_methods::History,
    sampler_summary: String,
    parameters: usize,
    info: contrast_methods::MethodInfo,
    store_knn_top1: Option<f64>,
}

/// Trains one method (built by [`with_method`]) and evaluates it.
struct TrainJob<'a> {
    shared: &'a Shared,
    run: RunDir,
    config: TrainConfig,
    /// The devices of a data-parallel run (one device when it names fewer than two).
    peers: PeerOptions,
}

/// What the loop cannot see about an image run, recorded in its checkpoint and compared on
/// resume: the dataset, the image shape, the backbone and the augmentation's tunable strengths.
fn identity(shared: &Shared, opts: &ReproduceOptions) -> [(&'static str, String); 4] {
    let s = shared.data.train.shape();
    let a = &shared.recipe.augment;
    [
        ("dataset", opts.dataset.name().to_string()),
        ("images", format!("{}x{}x{}", s.channels, s.height, s.width)),
        ("backbone", shared.recipe.backbone_name()),
        (
            "augmentation",
            format!(
                "crop scale {}-{}, jitter strength {}",
                a.crop_min_scale, a.crop_max_scale, a.jitter_strength
            ),
        ),
    ]
}

impl TrainJob<'_> {
    /// Trains `method` from `model`, evaluates it, and reads kNN from its store with
    /// `store_knn` where it has one.
    fn run<B, M, Me>(
        self,
        mut method: Me,
        model: M,
        device: &B::Device,
        store_knn: impl Fn(&Me, &M) -> Option<f64>,
    ) -> Result<MethodRun, Error>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        M::InnerModule: Encoder<B::InnerBackend, Input = Tensor<B::InnerBackend, 4>>,
        Me: Method<B, M, Batch = ViewPair<Tensor<B, 4>>> + Clone + Send,
    {
        let parameters = model.num_params();
        let shared = self.shared;
        let (train_views, test_views) = (shared.train_views(), shared.test_views());
        let knn = KnnMonitor::new(
            &train_views,
            &test_views,
            shared.monitor_subsets,
            self.config.seed,
            EVAL_BATCH,
        )?;
        let mut monitors: Vec<Box<dyn Monitor<B, M> + '_>> = vec![Box::new(knn)];
        let trained = train_with(
            &self.peers,
            &mut method,
            model,
            &train_views,
            &mut monitors,
            &self.config,
            &self.run,
            device,
        )?;
        say("evaluating the trained encoder");
        let (scores, fte, dim) = evaluate(shared, &trained.model, device)?;
        Ok(MethodRun {
            scores,
            test_features: (fte, dim),
            history: trained.history,
            sampler_summary: trained.sampler_summary,
            parameters,
            info: method.info(self.config.batch_size),
            store_knn_top1: store_knn(&method, &trained.model),
        })
    }
}

/// kNN of the test images' normalised projections against InstDisc's memory bank, which holds
/// an embedding of every training image (no pass over the training set needed).
fn bank_knn<B: AutodiffBackend, E: AutodiffEncoder<B>>(
    shared: &Shared,
    method: &InstDisc<B>,
    model: &ProjectedEncoder<B, E>,
    device: &B::Device,
) -> Option<f64>
where
    E::InnerModule: Encoder<B::InnerBackend, Input = Tensor<B::InnerBackend, 4>>,
{
    let data = &shared.data;
    let inner = model.valid();
    let views = shared.test_views();
    let mut test = Vec::new();
    let idx: Vec<usize> = (0..data.test.len()).collect();
    for chunk in idx.chunks(EVAL_BATCH) {
        let x = views.plain::<B::InnerBackend>(chunk, device);
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

/// Builds the method `spec` describes (seeded, so every method starts from the same backbone)
/// and hands it to `job`.
fn with_method<B: AutodiffBackend>(
    spec: &MethodSpec,
    job: TrainJob<'_>,
    seed: u64,
    device: &B::Device,
) -> Result<MethodRun, Error> {
    let shared = job.shared;
    let backbone = &shared.recipe.backbone;
    B::seed(device, seed);
    match spec {
        MethodSpec::SimClr(c) => {
            let model = c.init_model::<B, _>(backbone, device)?;
            job.run(c.init()?, model, device, |_, _| None)
        }
        MethodSpec::InvaSpread(c) => {
            let model = c.init_model::<B, _>(backbone, device)?;
            job.run(c.init()?, model, device, |_, _| None)
        }
        MethodSpec::InstDisc(c) => {
            let model = c.init_model::<B, _>(backbone, device)?;
            let method = c.init::<B>(device)?;
            job.run(method, model, device, |m, model| {
                bank_knn(shared, m, model, device)
            })
        }
        MethodSpec::Moco(c) => {
            let model = c.init_model::<B, _>(backbone, device)?;
            let method = c.init(backbone, &model, device)?;
            job.run(method, model, device, |_, _| None)
        }
        MethodSpec::Dim(c) => {
            let model = c.init_model::<B, _>(backbone, device)?;
            job.run(c.init()?, model, device, |_, _| None)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn train_method<B: AutodiffBackend>(
    kind: MethodKind,
    spec: &MethodSpec,
    shared: &Shared,
    opts: &ReproduceOptions,
    dir: PathBuf,
    sampler: Option<BatchSamplerConfig>,
    seed: u64,
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
        shared.config.epochs,
        shared.config.batch_size,
        opts.device
    ));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let json = dir.join("method.json");
    let text = serde_json::to_string_pretty(&spec.to_json()).unwrap_or_default();
    std::fs::write(&json, text).map_err(|e| Error::io(&json, e))?;
    let job = TrainJob {
        shared,
        run: run_dir(&dir, opts.resume, opts.overwrite, &identity(shared, opts)),
        config: shared
            .config_for(kind, opts)
            .with_seed(seed)
            .with_batch_sampler(sampler),
        peers: opts.peers.clone(),
    };
    with_method::<B>(spec, job, seed, device)
}

fn metrics_of(
    kind: MethodKind,
    spec: &MethodSpec,
    shared: &Shared,
    opts: &ReproduceOptions,
    run: &MethodRun,
    started: Instant,
    batch_sampler: Option<SamplerComparison>,
) -> Metrics {
    let history = &run.history;
    let config = &shared.config_for(kind, opts);
    let augment_seconds: f64 = history.epochs.iter().map(|e| e.augment_seconds).sum();
    let images: usize = history.epochs.iter().map(|e| e.batches).sum::<usize>() * config.batch_size;
    let epochs_to_beat_raw_pixels = history
        .epochs
        .iter()
        .find(|e| {
            e.knn_top1()
                .is_some_and(|k| k > shared.raw_pixels_monitor_knn)
        })
        .map(|e| e.epoch + 1);
    let monitor_subsets = |n: usize, k: usize| if k == 0 { n } else { k.min(n) };
    Metrics {
        method: kind.name().into(),
        dataset: opts.dataset.name().into(),
        train_images: shared.data.train.len(),
        test_images: shared.data.test.len(),
        device: opts.device.clone(),
        backbone: shared.recipe.backbone_name(),
        parameters: run.parameters,
        epochs: config.epochs,
        batch_size: config.batch_size,
        learning_rate: config.optimizer.learning_rate,
        optimizer: config.optimizer.kind,
        weight_decay: config.optimizer.weight_decay,
        temperature: spec.temperature(),
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
        monitor_subsets: (
            monitor_subsets(shared.data.train.len(), shared.monitor_subsets.0),
            monitor_subsets(shared.data.test.len(), shared.monitor_subsets.1),
        ),
        batch_sampler,
        command: opts.command.clone(),
        paradigm: Some(run.info.paradigm),
        objective: run.info.description.clone(),
        head: spec.head(),
        negatives_per_anchor: run.info.negatives_per_anchor,
        staleness: run.info.staleness.clone(),
        store_knn_top1: run.store_knn_top1,
        method_config: spec.to_json(),
    }
}

/// One method's report in `dir`, with the PCA of its test features.
fn write_report(
    shared: &Shared,
    dir: &std::path::Path,
    metrics: &Metrics,
    run: &MethodRun,
) -> Result<(), Error> {
    let projected = pca_2d(&run.test_features.0, run.test_features.1);
    crate::report::write(
        dir,
        metrics,
        &shared.recipe.augment,
        &projected,
        &shared.data.test,
    )
}

/// Trains `kind` as `opts` says and writes `report.md`, `metrics.json`, `method.json`,
/// `loss.png`, `knn.png` and `embedding.png` into `opts.out`, next to the checkpoint.
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
    if opts.seeds == Some(0) || (opts.seeds.unwrap_or(1) > 1 && opts.batch_sampler.is_none()) {
        return Err(contrast_core::Error::invalid_config(
            "seeds",
            opts.seeds.unwrap_or(0),
            "at least 1, and more than 1 only to compare samplers (with --batch-sampler)",
        )
        .into());
    }
    let _lock = open_run(&opts.out, opts.resume, opts.overwrite)?;
    let mut shared = prepare::<B>(opts, &[kind], false, device)?;
    if kind == MethodKind::MocoV2 && shared.recipe.augment.blur_prob == 0.0 {
        // MoCo v2's stronger augmentation is v1's plus Gaussian blur (p = 0.5). Alone, it gets
        // it; in `reproduce_paradigms` every method shares the recipe's augmentation.
        shared.recipe.augment.blur_prob = 0.5;
        shared.batcher = ImageBatcher::new(shared.recipe.augment.init(opts.seed));
    }
    let spec = shared.spec(kind);
    let run = train_method::<B>(
        kind,
        &spec,
        &shared,
        opts,
        opts.out.clone(),
        None,
        opts.seed,
        device,
    )?;
    let batch_sampler = match &opts.batch_sampler {
        None => None,
        Some(bs) => {
            let with = shared.config.clone().with_batch_sampler(Some(bs.clone()));
            let bs = with
                .resolved_batch_sampler()
                .expect("a BatchSampler config was just set");
            say(&format!(
                "BatchSampler: M={}, K={}, p0={}, rebuild every {} batches, {} warm-up epoch(s)",
                bs.candidates, bs.neighbours, bs.restart, bs.rebuild_every, bs.warmup_epochs
            ));
            let t = train_method::<B>(
                kind,
                &spec,
                &shared,
                opts,
                opts.out.join("batch-sampler"),
                Some(bs.clone()),
                opts.seed,
                device,
            )?;
            // Further seeds (initial weights and batch order; the augmentation stream is the
            // run's): both arms again, each pair from one start.
            let mut seeds = vec![SeedScores {
                seed: opts.seed,
                shuffled: run.scores,
                batch_sampler: t.scores,
            }];
            for extra in 1..opts.seeds.unwrap_or(1) as u64 {
                let seed = opts.seed.wrapping_add(extra);
                let dir = opts.out.join(format!("seed-{seed}"));
                let arm = |dir: PathBuf, sampler: Option<BatchSamplerConfig>| {
                    train_method::<B>(kind, &spec, &shared, opts, dir, sampler, seed, device)
                };
                let a = arm(dir.join("shuffled"), None)?;
                let b = arm(dir.join("batch-sampler"), Some(bs.clone()))?;
                say(&format!(
                    "seed {seed}: shuffled kNN {:.2} / linear {:.2}, BatchSampler kNN {:.2} / linear {:.2}",
                    a.scores.knn_top1,
                    a.scores.linear_top1,
                    b.scores.knn_top1,
                    b.scores.linear_top1
                ));
                seeds.push(SeedScores {
                    seed,
                    shuffled: a.scores,
                    batch_sampler: b.scores,
                });
            }
            Some(SamplerComparison {
                config: bs,
                scores: t.scores,
                epoch_records: t.history.epochs,
                step_losses: t.history.step_losses,
                summary: t.sampler_summary,
                seeds,
            })
        }
    };
    let metrics = metrics_of(kind, &spec, &shared, opts, &run, started, batch_sampler);
    write_report(&shared, &opts.out, &metrics, &run)?;
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
/// weights, epochs, batch size, optimiser and schedule, augmentation; without `--lr`, InstDisc
/// at a quarter of the shared learning rate), each in `opts.out/<method>` with its
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
    if opts.method_config.is_some() {
        return Err(contrast_core::Error::invalid_config(
            "method-config",
            "a file",
            "a method config belongs to one method; use it with `reproduce <method>`",
        )
        .into());
    }
    if opts.batch_sampler.is_some() {
        return Err(contrast_core::Error::invalid_config(
            "batch-sampler",
            "paradigms",
            "BatchSampler is compared for one method: `reproduce simclr --batch-sampler`",
        )
        .into());
    }
    let _lock = open_run(&opts.out, opts.resume, opts.overwrite)?;
    let shared = prepare::<B>(opts, kinds, true, device)?;
    let mut all = Vec::new();
    for &kind in kinds {
        let method_started = Instant::now();
        let peak_reset = reset_peak_memory();
        let dir = opts.out.join(kind.name());
        let spec = shared.spec(kind);
        let run = train_method::<B>(
            kind,
            &spec,
            &shared,
            opts,
            dir.clone(),
            None,
            opts.seed,
            device,
        )?;
        let mut metrics = metrics_of(kind, &spec, &shared, opts, &run, method_started, None);
        if !peak_reset {
            metrics.peak_memory_mib = None;
        }
        write_report(&shared, &dir, &metrics, &run)?;
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
        shared.config.optimizer.learning_rate,
        started.elapsed().as_secs_f64(),
    )?;
    say(&format!(
        "comparison written to {}",
        opts.out.join("report.md").display()
    ));
    Ok(all)
}
