//! The text job: SimCSE continued from a pretrained BERT-family checkpoint on real sentences,
//! evaluated on the STS tasks of the SimCSE paper before, during and after training, with an
//! optional second run under BatchSampler from the same start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Deserialize, Serialize};

use contrast_core::{Encoder, TokenBatch, Views, to_vec_f32};
use contrast_encoders::{Bert, BertPooling, ProjectedEncoder, load_bert, save_bert};
use contrast_methods::{
    BestRecord, Decay, EpochRecord, HeadConfig, Monitor, OptimizerConfig, OptimizerKind,
    SimCseConfig, StartEmbeddings, StepMonitors, StsMonitor, StsPairs, TrainConfig, sts_score,
    subset_indices,
};
use contrast_sampler::BatchSamplerConfig;
use contrast_text::{
    SentenceViews, StsEval, TextTokenizer, TokenizedCorpus, load_sentences, load_sts_eval,
    minilm_dir, wiki_sentences_file,
};

use crate::Error;
use crate::folder::{check_subset, open_run, run_dir};
use crate::metrics::peak_memory_mib;
use crate::options::JobOptions;
use crate::peers::train_with;
use crate::plot::{Series, line_chart};

/// The name of the STS-B dev monitor in epoch records.
pub const STSB_DEV: &str = "stsb_dev";

/// What `contrast reproduce simcse` can be told; `None` takes the recipe's value (SimCSE's: 2
/// epochs, quick 1; batch 64; learning rate 3e-5).
#[derive(Debug, Clone)]
pub struct TextOptions {
    /// What every job is told: cache, output folder, device, budget, run-folder handling.
    pub job: JobOptions,
    /// A BERT-family checkpoint folder (`config.json`, `model.safetensors`, tokenizer files);
    /// default: all-MiniLM-L6-v2, found in or fetched into `cache`.
    pub model: Option<PathBuf>,
    /// Training sentences, one per line; default: English Wikipedia sentences from the
    /// `gensim` wheel, fetched into `cache`.
    pub data: Option<PathBuf>,
    /// Folder holding `stsbenchmark/` and `sts_brmson/` (the evaluation sets).
    pub sts: PathBuf,
    /// Temperature (SimCSE: 0.05).
    pub temperature: Option<f64>,
    /// Training sentences drawn from the corpus, at least 1 (default: all).
    pub train_subset: Option<usize>,
    /// Tokens per training sentence (SimCSE: 32).
    pub max_len: Option<usize>,
    /// How sentences are pooled (default: the checkpoint's own, mean for sentence-transformers
    /// models, `cls` otherwise).
    pub pooling: Option<BertPooling>,
    /// Seed of initialisation, sampling and dropout.
    pub seed: u64,
    /// Train a second time from the same start with this sampler, and compare.
    pub batch_sampler: Option<BatchSamplerConfig>,
    /// Evaluate STS-B dev every this many steps as well as after every epoch (0: after epochs
    /// only; default 25, SimCSE's code evaluates every 125 steps of its much longer run).
    pub eval_every: Option<usize>,
    /// Score and save the last weights instead of those of the best STS-B dev evaluation
    /// (SimCSE's code keeps the best: `load_best_model_at_end` on `stsb_spearman`).
    pub keep_last: bool,
}

/// The settings a text run used, each resolved once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextRecipe {
    /// Passes over the training sentences.
    pub epochs: usize,
    /// Sentences per batch.
    pub batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Temperature.
    pub temperature: f64,
    /// Training sentences.
    pub train_sentences: usize,
    /// Tokens per training sentence.
    pub max_len: usize,
    /// Tokens per evaluation sentence.
    pub eval_max_len: usize,
    /// Pooling.
    pub pooling: BertPooling,
    /// STS-B dev every this many steps besides every epoch (0: epochs only).
    #[serde(default)]
    pub eval_every: usize,
    /// The weights scored and saved after training: those of the best STS-B dev evaluation
    /// (`true`) or the last ones.
    #[serde(default)]
    pub keep_best: bool,
    /// How the learning rate falls (SimCSE's code: linearly to zero, without warm-up; runs
    /// recorded before this field existed decayed along a cosine, the default).
    #[serde(default)]
    pub decay: Decay,
}

impl TextRecipe {
    fn resolve(o: &TextOptions, corpus: usize) -> Self {
        let (epochs, subset) = if o.job.quick { (1, 512) } else { (2, 6400) };
        let train = o.train_subset.unwrap_or(subset).min(corpus);
        TextRecipe {
            epochs: o.job.epochs.unwrap_or(epochs),
            batch_size: o.job.batch_size.unwrap_or(64),
            learning_rate: o.job.learning_rate.unwrap_or(3e-5),
            temperature: o.temperature.unwrap_or(0.05),
            train_sentences: train,
            max_len: o.max_len.unwrap_or(32),
            eval_max_len: 128,
            pooling: o.pooling.unwrap_or(BertPooling::Mean),
            eval_every: o.eval_every.unwrap_or(25),
            keep_best: !o.keep_last,
            decay: Decay::Linear,
        }
    }
}

/// STS Spearman x 100 per task, their average, and STS-B dev.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StsScores {
    /// `(task, score)` in the paper's order (STS12..16, STS-B, SICK-R); only STS-B in quick
    /// runs.
    pub tasks: Vec<(String, f64)>,
    /// The mean over `tasks`.
    pub average: f64,
    /// STS-B dev.
    pub stsb_dev: f64,
}

/// One training run's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextRun {
    /// Scores after training, of the weights at `best` (the last weights when it is `None`).
    pub after: StsScores,
    /// The STS-B dev evaluation whose weights `after` scores ([`TextRecipe::keep_best`]).
    #[serde(default)]
    pub best: Option<BestRecord>,
    /// Epoch records (STS-B dev under [`STSB_DEV`]).
    pub epoch_records: Vec<EpochRecord>,
    /// STS-B dev between epochs (every [`TextRecipe::eval_every`] steps).
    #[serde(default)]
    pub step_evaluations: Vec<StepMonitors>,
    /// Loss of every step.
    pub step_losses: Vec<f32>,
    /// Seconds of training: the epochs' steps, without the evaluations between and after them.
    pub train_seconds: f64,
    /// Cosine similarity of positive pairs (two dropout passes of a sentence) and negatives
    /// (other sentences of the batch) of the scored weights: means.
    pub positive_similarity: f64,
    /// See `positive_similarity`.
    pub negative_similarity: f64,
    /// The sampler's summary.
    pub sampler: String,
}

/// What `reproduce simcse` writes to `metrics.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextMetrics {
    /// `simcse`.
    pub method: String,
    /// The checkpoint trained from.
    pub model: String,
    /// One line on the encoder.
    pub backbone: String,
    /// Trainable parameters (encoder and head).
    pub parameters: usize,
    /// The device string.
    pub device: String,
    /// Sentences in the corpus and their source.
    pub corpus: String,
    /// Sentences in the corpus.
    pub corpus_sentences: usize,
    /// Training sentences cut to `max_len`.
    pub truncated: usize,
    /// Evaluation sentences cut to `eval_max_len`.
    pub eval_truncated: usize,
    /// Settings.
    pub recipe: TextRecipe,
    /// The method's description.
    pub objective: String,
    /// Scores of the checkpoint as loaded.
    pub before: StsScores,
    /// The run with shuffled batches.
    pub run: TextRun,
    /// The run under BatchSampler from the same start, if asked for.
    pub batch_sampler: Option<TextRun>,
    /// Subsets of the STS tasks that were not found.
    pub missing_subsets: Vec<String>,
    /// Seconds from start to report.
    pub total_seconds: f64,
    /// Peak resident memory.
    pub peak_memory_mib: Option<f64>,
    /// The command.
    pub command: String,
}

/// An STS task ready to score: its unique sentences tokenised (sorted by length, so that
/// batches carry little padding) and the pairs as indices into them.
struct EvalTask {
    corpus: TokenizedCorpus,
    pairs: StsPairs,
}

fn eval_task<'s>(
    name: &str,
    sets: &[&'s contrast_text::StsSet],
    tokenizer: &TextTokenizer,
) -> Result<EvalTask, Error> {
    let mut index: HashMap<&'s str, usize> = HashMap::new();
    let mut unique: Vec<&'s str> = Vec::new();
    let mut raw_pairs = Vec::new();
    let mut gold = Vec::new();
    for set in sets {
        for ((a, b), &s) in set.first.iter().zip(&set.second).zip(&set.scores) {
            let mut pair = [0usize; 2];
            for (slot, t) in pair.iter_mut().zip([a.as_str(), b.as_str()]) {
                *slot = *index.entry(t).or_insert_with(|| {
                    unique.push(t);
                    unique.len() - 1
                });
            }
            raw_pairs.push((pair[0], pair[1]));
            gold.push(f64::from(s));
        }
    }
    // Re-order the unique sentences by length (characters approximate tokens well enough).
    let mut order: Vec<usize> = (0..unique.len()).collect();
    order.sort_by_key(|&i| (unique[i].len(), i));
    let mut rank = vec![0; unique.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    let sorted: Vec<&str> = order.iter().map(|&i| unique[i]).collect();
    let corpus = tokenizer.encode_corpus(&sorted)?;
    Ok(EvalTask {
        corpus,
        pairs: StsPairs {
            name: name.to_string(),
            pairs: raw_pairs.iter().map(|&(a, b)| (rank[a], rank[b])).collect(),
            gold,
        },
    })
}

struct EvalSuite {
    tasks: Vec<EvalTask>,
    dev: EvalTask,
    truncated: usize,
    missing: Vec<String>,
}

fn eval_suite(eval: &StsEval, tokenizer: &TextTokenizer, quick: bool) -> Result<EvalSuite, Error> {
    let mut tasks = Vec::new();
    let mut missing = Vec::new();
    for task in &eval.tasks {
        if quick && task.name != "STS-B" {
            continue;
        }
        missing.extend(task.missing.iter().map(|m| format!("{} {m}", task.name)));
        let sets: Vec<_> = task.sets.iter().collect();
        tasks.push(eval_task(&task.name, &sets, tokenizer)?);
    }
    let dev = eval_task(STSB_DEV, &[&eval.stsb_dev], tokenizer)?;
    let truncated =
        tasks.iter().map(|t| t.corpus.truncated()).sum::<usize>() + dev.corpus.truncated();
    Ok(EvalSuite {
        tasks,
        dev,
        truncated,
        missing,
    })
}

const EVAL_BATCH: usize = 128;

/// Seed of the training sentences whose pair similarities the report shows.
const PROBE_SEED: u64 = 0x0070_726f_6265;

fn score_suite<B: Backend, E: Encoder<B, Input = TokenBatch<B>>>(
    encoder: &E,
    suite: &EvalSuite,
    device: &B::Device,
) -> Result<StsScores, Error> {
    let mut tasks = Vec::new();
    for t in &suite.tasks {
        let views = SentenceViews::new(&t.corpus);
        let s = sts_score(encoder, &views, &t.pairs, EVAL_BATCH, device)?;
        tasks.push((t.pairs.name.clone(), s));
    }
    let views = SentenceViews::new(&suite.dev.corpus);
    let stsb_dev = sts_score(encoder, &views, &suite.dev.pairs, EVAL_BATCH, device)?;
    let average = tasks.iter().map(|t| t.1).sum::<f64>() / tasks.len().max(1) as f64;
    Ok(StsScores {
        tasks,
        average,
        stsb_dev,
    })
}

/// Mean cosine similarity of positive pairs (two dropout passes of the same sentences) and of
/// negatives (the other sentences), with the training model's dropout on; also the full
/// distributions for the histogram.
fn pair_similarities<B: AutodiffBackend>(
    model: &ProjectedEncoder<B, Bert<B>>,
    views: &SentenceViews<'_>,
    indices: &[usize],
    device: &B::Device,
) -> (Vec<f64>, Vec<f64>) {
    let batch = views.plain::<B>(indices, device);
    let a = to_vec_f32(model.backbone.embed(batch.clone()).detach());
    let b = to_vec_f32(model.backbone.embed(batch).detach());
    let dim = model.backbone.output_dim();
    let unit = |v: &[f32]| -> Vec<f64> {
        let norm = v
            .iter()
            .map(|&x| f64::from(x).powi(2))
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        v.iter().map(|&x| f64::from(x) / norm).collect()
    };
    let ua: Vec<Vec<f64>> = a.chunks(dim).map(unit).collect();
    let ub: Vec<Vec<f64>> = b.chunks(dim).map(unit).collect();
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    for (i, x) in ua.iter().enumerate() {
        for (j, y) in ub.iter().enumerate() {
            let c: f64 = x.iter().zip(y).map(|(p, q)| p * q).sum();
            if i == j { pos.push(c) } else { neg.push(c) }
        }
    }
    (pos, neg)
}

fn histogram(values: &[f64], bins: usize) -> Vec<(f64, f64)> {
    let mut counts = vec![0usize; bins];
    for &v in values {
        let b = (((v + 1.0) / 2.0) * bins as f64)
            .floor()
            .clamp(0.0, bins as f64 - 1.0) as usize;
        counts[b] += 1;
    }
    let total = values.len().max(1) as f64;
    counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            (
                -1.0 + (i as f64 + 0.5) * 2.0 / bins as f64,
                c as f64 / total,
            )
        })
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

type TextModel<B> = ProjectedEncoder<B, Bert<B>>;

struct Prepared {
    model_dir: PathBuf,
    tokenizer: TextTokenizer,
    corpus_source: String,
    corpus_sentences: usize,
    train: TokenizedCorpus,
    suite: EvalSuite,
    recipe: TextRecipe,
}

fn prepare(o: &TextOptions) -> Result<Prepared, Error> {
    let model_dir = match &o.model {
        Some(d) => d.clone(),
        None => minilm_dir(&o.job.cache)?,
    };
    let (data, corpus_source) = match &o.data {
        Some(f) => (f.clone(), format!("{}", f.display())),
        None => {
            let f = wiki_sentences_file(&o.job.cache)?;
            let source = format!(
                "English Wikipedia sentences from the gensim wheel's test dump ({})",
                f.display()
            );
            (f, source)
        }
    };
    let sentences = load_sentences(&data)?;
    let recipe = TextRecipe::resolve(o, sentences.len());
    let eval_tokenizer = TextTokenizer::from_dir(&model_dir)?.with_max_len(recipe.eval_max_len)?;
    let tokenizer = TextTokenizer::from_dir(&model_dir)?.with_max_len(recipe.max_len)?;
    let picked = subset_indices(
        sentences.len(),
        recipe.train_sentences,
        o.seed ^ 0x7465_7874,
    );
    let chosen: Vec<&str> = picked
        .iter()
        .map(|&i| sentences.sentences[i].as_str())
        .collect();
    let train = tokenizer.encode_corpus(&chosen)?;
    let eval = load_sts_eval(&o.sts)?;
    let suite = eval_suite(&eval, &eval_tokenizer, o.job.quick)?;
    Ok(Prepared {
        model_dir,
        tokenizer,
        corpus_source,
        corpus_sentences: sentences.len(),
        train,
        suite,
        recipe,
    })
}

fn load_model<B: AutodiffBackend>(
    p: &Prepared,
    config: &SimCseConfig,
    seed: u64,
    device: &B::Device,
) -> Result<TextModel<B>, Error> {
    B::seed(device, seed);
    let (bert, bert_config) = load_bert::<B>(&p.model_dir, p.recipe.pooling, device)?;
    p.tokenizer.check_vocab(bert_config.vocab_size)?;
    // The head starts from the same seed in every run, so runs differ only by their sampler.
    let with_head = config.init_model::<B, _>(&bert_config, device)?;
    Ok(ProjectedEncoder {
        backbone: bert,
        head: with_head.head,
    })
}

#[allow(clippy::too_many_arguments)]
fn train_once<B: AutodiffBackend>(
    p: &Prepared,
    config: &SimCseConfig,
    o: &TextOptions,
    sampler: Option<BatchSamplerConfig>,
    out: &Path,
    device: &B::Device,
) -> Result<(TextRun, TextModel<B>, Similarities), Error> {
    let model = load_model::<B>(p, config, o.seed, device)?;
    let mut method = config.init()?;
    let views = SentenceViews::new(&p.train);
    let dev_views = SentenceViews::new(&p.suite.dev.corpus);
    let monitor = StsMonitor::new(&dev_views, p.suite.dev.pairs.clone(), EVAL_BATCH)?;
    let mut monitors: Vec<Box<dyn Monitor<B, TextModel<B>> + '_>> = vec![Box::new(monitor)];
    // Adam without weight decay is SimCSE's AdamW at its weight decay of 0.
    let optimizer = OptimizerConfig::new()
        .with_kind(OptimizerKind::Adam)
        .with_learning_rate(p.recipe.learning_rate)
        .with_weight_decay(0.0)
        .with_warmup_epochs(0)
        .with_decay(p.recipe.decay);
    let mut train_config = TrainConfig::new(optimizer)
        .with_epochs(p.recipe.epochs)
        .with_batch_size(p.recipe.batch_size)
        .with_seed(o.seed)
        .with_batch_sampler(sampler);
    train_config.monitor_every = 1;
    train_config.monitor_every_steps = p.recipe.eval_every;
    train_config.keep_best = p.recipe.keep_best.then(|| STSB_DEV.to_string());
    let mut run = run_dir(
        out,
        o.job.resume,
        o.job.overwrite,
        &[
            ("checkpoint", p.model_dir.display().to_string()),
            ("tokens per sentence", p.recipe.max_len.to_string()),
            ("pooling", format!("{:?}", p.recipe.pooling)),
            ("training sentences", p.corpus_source.clone()),
        ],
    );
    // A sampler without warm-up walks from the first step on the starting checkpoint's
    // neighbours: the pretrained encoder already places similar sentences together.
    let seeded = train_config
        .batch_sampler
        .as_ref()
        .is_some_and(|b| b.warmup_epochs == 0);
    if seeded {
        run.start_embeddings = Some(StartEmbeddings::from_projections(
            &model.valid(),
            &views,
            2,
            EVAL_BATCH,
            device,
            "the starting checkpoint's projections of the training sentences (no dropout)",
        ));
    }
    let trained = train_with(
        &o.job.peers,
        &mut method,
        model,
        &views,
        &mut monitors,
        &train_config,
        &run,
        device,
    )?;
    let train_seconds = trained.history.epochs.iter().map(|e| e.seconds).sum();
    // The last weights are not needed once the best are loaded over them.
    let model = match &trained.best {
        Some(best) => best.load_into(trained.model, device)?,
        None => trained.model,
    };
    let after = score_suite(&model.valid().backbone, &p.suite, device)?;
    let probe: Vec<usize> = subset_indices(p.train.len(), 256, o.seed ^ PROBE_SEED);
    let (pos, neg) = pair_similarities(&model, &views, &probe, device);
    Ok((
        TextRun {
            after,
            best: trained.history.best.clone(),
            epoch_records: trained.history.epochs.clone(),
            step_evaluations: trained.history.step_monitors.clone(),
            step_losses: trained.history.step_losses.clone(),
            train_seconds,
            positive_similarity: mean(&pos),
            negative_similarity: mean(&neg),
            sampler: if trained.sampler_summary.is_empty() {
                "shuffled".into()
            } else if seeded {
                format!(
                    "{}; first graph from the starting checkpoint's embeddings",
                    trained.sampler_summary
                )
            } else {
                trained.sampler_summary.clone()
            },
        },
        model,
        (pos, neg),
    ))
}

/// Cosine similarities of positive pairs and of negatives ([`pair_similarities`]).
type Similarities = (Vec<f64>, Vec<f64>);

/// `contrast reproduce simcse`: unsupervised SimCSE continued from a BERT-family checkpoint
/// (default all-MiniLM-L6-v2), STS before and after training, STS-B dev every epoch and every
/// [`TextOptions::eval_every`] steps, an
/// optional BatchSampler run from the same start; scores the weights of the best STS-B dev
/// evaluation (the last ones with [`TextOptions::keep_last`]); writes `report.md`,
/// `metrics.json`, plots and the scored encoder as a Hugging Face checkpoint folder (`model/`).
///
/// # Errors
/// Data, checkpoint, training and report errors, each in one line.
pub fn reproduce_simcse<B: AutodiffBackend>(
    o: &TextOptions,
    device: &B::Device,
) -> Result<TextMetrics, Error> {
    let started = Instant::now();
    check_subset("train_subset", o.train_subset)?;
    let _lock = open_run(&o.job.out, o.job.resume, o.job.overwrite)?;
    let p = prepare(o)?;
    let bert_config = contrast_encoders::read_bert_config(&p.model_dir, p.recipe.pooling)?;
    let mut config = SimCseConfig::for_backbone(&bert_config);
    config.loss.temperature = p.recipe.temperature;
    HeadConfig::validate(&config)?;

    let start = load_model::<B>(&p, &config, o.seed, device)?;
    let parameters = start.num_params();
    let before = score_suite(&start.valid().backbone, &p.suite, device)?;
    let probe: Vec<usize> = subset_indices(p.train.len(), 256, o.seed ^ PROBE_SEED);
    let views = SentenceViews::new(&p.train);
    let (pos0, neg0) = pair_similarities(&start, &views, &probe, device);
    drop(start);
    let method = config.init()?;
    let objective =
        contrast_methods::Method::<B, TextModel<B>>::info(&method, p.recipe.batch_size).description;

    let (run, model, (pos1, neg1)) =
        train_once::<B>(&p, &config, o, None, &o.job.out.join("shuffled"), device)?;
    save_bert(
        &model.backbone.valid(),
        &p.model_dir,
        &o.job.out.join("model"),
    )?;
    drop(model);
    let sampled = match &o.batch_sampler {
        Some(s) => {
            let mut s = s.clone();
            s.batch_size = p.recipe.batch_size;
            let (r, _, _) = train_once::<B>(
                &p,
                &config,
                o,
                Some(s),
                &o.job.out.join("batch-sampler"),
                device,
            )?;
            Some(r)
        }
        None => None,
    };

    let metrics = TextMetrics {
        method: "simcse".into(),
        model: p.model_dir.display().to_string(),
        backbone: bert_config.describe(),
        parameters,
        device: o.job.device.clone(),
        corpus: p.corpus_source.clone(),
        corpus_sentences: p.corpus_sentences,
        truncated: p.train.truncated(),
        eval_truncated: p.suite.truncated,
        recipe: p.recipe.clone(),
        objective,
        before,
        run,
        batch_sampler: sampled,
        missing_subsets: p.suite.missing.clone(),
        total_seconds: started.elapsed().as_secs_f64(),
        peak_memory_mib: peak_memory_mib(),
        command: o.job.command.clone(),
    };
    write_text_report(&metrics, &o.job.out, [(&pos0, &neg0), (&pos1, &neg1)])?;
    Ok(metrics)
}

/// Which weights a run's scores are of, for a row label: ` (best dev: step N)` or nothing for
/// the last weights.
fn selected(run: &TextRun) -> String {
    run.best
        .as_ref()
        .map_or(String::new(), |b| format!(" (best dev: step {})", b.step))
}

fn scores_row(label: &str, s: &StsScores) -> String {
    let cells: Vec<String> = s.tasks.iter().map(|t| format!("{:.2}", t.1)).collect();
    format!(
        "| {label} | {} | {:.2} | {:.2} |",
        cells.join(" | "),
        s.average,
        s.stsb_dev
    )
}

/// STS-B dev by optimiser step: the checkpoint as loaded at 0, then every evaluation, between
/// epochs and at their ends.
fn dev_curve(before: &StsScores, run: &TextRun) -> Vec<(f64, f64)> {
    let mut points = vec![(0.0, before.stsb_dev)];
    let mut step = 0;
    for r in &run.epoch_records {
        step += r.batches;
        if let Some(v) = r.monitor(STSB_DEV) {
            points.push((step as f64, v));
        }
    }
    for e in &run.step_evaluations {
        if let Some(&v) = e.monitors.get(STSB_DEV) {
            points.push((e.step as f64, v));
        }
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

fn write_text_report(
    m: &TextMetrics,
    out: &Path,
    similarities: [(&Vec<f64>, &Vec<f64>); 2],
) -> Result<(), Error> {
    let json = serde_json::to_string_pretty(m).map_err(|e| Error::Report(e.to_string()))?;
    let mp = out.join("metrics.json");
    std::fs::write(&mp, json).map_err(|e| Error::io(&mp, e))?;

    let losses = |r: &TextRun| -> Vec<(f64, f64)> {
        r.step_losses
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as f64 + 1.0, f64::from(l)))
            .collect()
    };
    let mut loss_series = vec![Series {
        name: "shuffled batches",
        points: losses(&m.run),
    }];
    let mut dev_series = vec![Series {
        name: "shuffled batches",
        points: dev_curve(&m.before, &m.run),
    }];
    if let Some(b) = &m.batch_sampler {
        loss_series.push(Series {
            name: "BatchSampler",
            points: losses(b),
        });
        dev_series.push(Series {
            name: "BatchSampler",
            points: dev_curve(&m.before, b),
        });
    }
    line_chart(
        &out.join("loss.png"),
        "SimCSE loss",
        "step",
        "loss",
        &loss_series,
    )?;
    line_chart(
        &out.join("stsb_dev.png"),
        "STS-B dev Spearman",
        "step (0 = the checkpoint as loaded)",
        "Spearman x 100",
        &dev_series,
    )?;
    let [(p0, n0), (p1, n1)] = similarities;
    line_chart(
        &out.join("similarity.png"),
        "cosine similarity: positive pairs (two dropout passes) vs other sentences",
        "cosine similarity",
        "share of pairs",
        &[
            Series {
                name: "positive, before",
                points: histogram(p0, 40),
            },
            Series {
                name: "negative, before",
                points: histogram(n0, 40),
            },
            Series {
                name: "positive, after",
                points: histogram(p1, 40),
            },
            Series {
                name: "negative, after",
                points: histogram(n1, 40),
            },
        ],
    )?;

    let r = &m.recipe;
    let header: Vec<&str> = m.before.tasks.iter().map(|t| t.0.as_str()).collect();
    let mut md = String::new();
    md.push_str("# SimCSE (unsupervised) on sentences\n\n");
    md.push_str(&format!(
        "{} from `{}` ({} parameters with the head); {} sentences in the corpus ({}), \
         {} trained on for {} epoch(s) at batch {}, max length {} ({} truncated), learning rate \
         {}, Adam (no weight decay) with {} decay, on `{}`. Objective: {}.\n\n",
        m.backbone,
        m.model,
        m.parameters,
        m.corpus_sentences,
        m.corpus,
        r.train_sentences,
        r.epochs,
        r.batch_size,
        r.max_len,
        m.truncated,
        r.learning_rate,
        format!("{:?}", r.decay).to_lowercase(),
        m.device,
        m.objective
    ));
    md.push_str("## STS (Spearman x 100 of cosine similarity; STS12-16 in SentEval's \"all\" aggregation)\n\n");
    md.push_str(&format!(
        "| model | {} | avg. | STS-B dev |\n",
        header.join(" | ")
    ));
    md.push_str(&format!("|---|{}---|---|\n", "---|".repeat(header.len())));
    md.push_str(&scores_row("checkpoint as loaded", &m.before));
    md.push('\n');
    md.push_str(&scores_row(
        &format!("after SimCSE, shuffled batches{}", selected(&m.run)),
        &m.run.after,
    ));
    md.push('\n');
    if let Some(b) = &m.batch_sampler {
        md.push_str(&scores_row(
            &format!("after SimCSE, BatchSampler{}", selected(b)),
            &b.after,
        ));
        md.push('\n');
    }
    md.push_str(if r.keep_best {
        "\nAfter training, the weights of the best STS-B dev evaluation are scored and saved (as \
         SimCSE's code does; `--keep-last` for the last weights); the checkpoint as loaded is \
         not a candidate.\n"
    } else {
        "\nAfter training, the last weights are scored and saved (`--keep-last`).\n"
    });
    md.push_str(
        "\nPublished (Gao et al. 2021, unsupervised SimCSE-BERT-base, trained on 1M Wikipedia \
         sentences on a GPU): STS-B test 76.85, average 76.25. all-MiniLM-L6-v2 was trained \
         with supervision on a billion sentence pairs, so it starts well above that; the table \
         shows what a short unsupervised run on a few thousand sentences does to it.\n\n",
    );
    if !m.missing_subsets.is_empty() {
        md.push_str(&format!(
            "Subsets absent from the evaluation folder (scores are over the others): {}.\n\n",
            m.missing_subsets.join(", ")
        ));
    }
    md.push_str("## Training\n\n| run | seconds | final loss | pos. cos | neg. cos | sampler |\n|---|---|---|---|---|---|\n");
    let mut runs = vec![("shuffled batches", &m.run)];
    if let Some(b) = &m.batch_sampler {
        runs.push(("BatchSampler", b));
    }
    for (name, run) in runs {
        md.push_str(&format!(
            "| {name} | {:.0} | {:.4} | {:.3} | {:.3} | {} |\n",
            run.train_seconds,
            run.epoch_records.last().map_or(f64::NAN, |e| e.loss),
            run.positive_similarity,
            run.negative_similarity,
            run.sampler
        ));
    }
    md.push_str(&format!(
        "\nSTS-B dev by step (after every epoch{}):\n\n",
        if r.eval_every > 0 {
            format!(" and every {} steps", r.eval_every)
        } else {
            String::new()
        }
    ));
    let mut curves = vec![("shuffled batches", dev_curve(&m.before, &m.run))];
    if let Some(b) = &m.batch_sampler {
        curves.push(("BatchSampler", dev_curve(&m.before, b)));
    }
    for (name, points) in curves {
        let cells: Vec<String> = points
            .iter()
            .map(|(step, v)| format!("{step:.0}: {v:.2}"))
            .collect();
        md.push_str(&format!("- {name}: {}\n", cells.join(", ")));
    }
    md.push_str(&format!(
        "\nTotal {:.1} min, peak memory {}. Plots: `loss.png`, `stsb_dev.png`, \
         `similarity.png`. The scored encoder of the shuffled run is in `model/` (Hugging Face layout; \
         `sentence-transformers` and `transformers` load it as they load the original).\n\n\
         Command: `{}`\n",
        m.total_seconds / 60.0,
        m.peak_memory_mib
            .map_or("unknown".into(), |v| format!("{v:.0} MiB")),
        m.command
    ));
    let rp = out.join("report.md");
    std::fs::write(&rp, md).map_err(|e| Error::io(&rp, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use contrast_text::StsSet;

    const VOCAB: &str = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\ncat\ndog\nsat\nran\nthe\n";

    fn set(pairs: &[(&str, &str, f32)]) -> StsSet {
        StsSet {
            name: "t".into(),
            first: pairs.iter().map(|p| p.0.to_string()).collect(),
            second: pairs.iter().map(|p| p.1.to_string()).collect(),
            scores: pairs.iter().map(|p| p.2).collect(),
            unscored: 0,
        }
    }

    #[test]
    fn eval_tasks_share_repeated_sentences_and_keep_pairs_aligned() {
        let tokenizer =
            TextTokenizer::from_vocab(VOCAB.as_bytes(), true, Path::new("vocab.txt")).unwrap();
        let a = set(&[("the cat sat", "a dog", 4.0), ("a dog", "cat", 1.0)]);
        let b = set(&[("cat", "the dog ran", 2.5)]);
        let task = eval_task("all", &[&a, &b], &tokenizer).unwrap();
        // Four distinct sentences, sorted by length.
        assert_eq!(task.corpus.len(), 4);
        assert_eq!(task.pairs.gold, vec![4.0, 1.0, 2.5]);
        let text = |i: usize| task.corpus.ids(i).to_vec();
        let cat = tokenizer.encode_corpus(&["cat"]).unwrap();
        let (p0, p1, p2) = (
            task.pairs.pairs[0],
            task.pairs.pairs[1],
            task.pairs.pairs[2],
        );
        assert_eq!(p0.1, p1.0, "\"a dog\" is one instance");
        assert_eq!(p1.1, p2.0, "\"cat\" is one instance");
        assert_eq!(text(p2.0), cat.ids(0).to_vec());
        assert!(task.corpus.ids(0).len() <= task.corpus.ids(3).len());
    }

    /// Supervised SimCSE end to end on the library's pieces: an NLI-style CSV parsed and
    /// tokenised into triplets, `TripletViews`, a BERT and `SupervisedSimCse` through the
    /// training loop (hard negatives in every batch).
    #[test]
    fn supervised_simcse_trains_on_triplets_through_the_loop() {
        use contrast_core::FlexAutodiff;
        use contrast_encoders::BertConfig;
        use contrast_methods::{RunDir, train};
        use contrast_text::{TripletViews, parse_triplets};
        let tokenizer = TextTokenizer::from_vocab(VOCAB.as_bytes(), true, Path::new("vocab.txt"))
            .unwrap()
            .with_max_len(8)
            .unwrap();
        let csv = "sent0,sent1,hard_neg\n\
                   the cat sat,a cat sat,the dog ran\n\
                   the dog ran,a dog ran,the cat sat\n\
                   a cat ran,the cat ran,a dog sat\n\
                   a dog sat,the dog sat,a cat ran\n\
                   the cat,a cat,the dog\n\
                   the dog,a dog,the cat\n\
                   cat sat,cat sat,dog ran\n\
                   dog ran,dog ran,cat sat\n";
        let triplets = parse_triplets(csv.as_bytes(), Path::new("nli.csv")).unwrap();
        assert!(triplets.negatives.is_some());
        let tokens = tokenizer.encode_triplets(&triplets).unwrap();
        let views = TripletViews::new(&tokens);
        let bert = BertConfig::new(tokenizer.vocab_size())
            .with_hidden_size(8)
            .with_num_hidden_layers(1)
            .with_num_attention_heads(2)
            .with_intermediate_size(16)
            .with_max_position_embeddings(8);
        let config = SimCseConfig::for_backbone(&bert);
        let device = Default::default();
        let model = config
            .init_model::<FlexAutodiff, _>(&bert, &device)
            .unwrap();
        let mut method = config.init_supervised().unwrap();
        let train_config = TrainConfig::new(OptimizerConfig::new().with_learning_rate(1e-3))
            .with_epochs(2)
            .with_batch_size(4);
        let trained = train(
            &mut method,
            model,
            &views,
            &mut [],
            &train_config,
            &RunDir::default(),
            &device,
        )
        .unwrap();
        let losses = &trained.history.step_losses;
        assert_eq!(losses.len(), 4);
        assert!(
            losses.iter().all(|l| l.is_finite() && *l > 0.0),
            "{losses:?}"
        );
    }

    #[test]
    fn histograms_are_shares_over_minus_one_to_one() {
        let h = histogram(&[-1.0, 0.0, 0.99, 1.0], 4);
        assert_eq!(h.len(), 4);
        assert!((h.iter().map(|p| p.1).sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(h[3].1, 0.5);
        assert!((h[0].0 + 0.75).abs() < 1e-12);
    }
}
