//! The CLIP job: an image tower trained against a locked pretrained text tower (LiT's setting,
//! the one that trains on small data) on image-caption pairs; zero-shot classification from
//! class prompts, image-text retrieval recall and the image tower's kNN and linear probe, before
//! and after training, in one report.
//!
//! The default data are Fashion-MNIST images with captions generated from their class names
//! (training templates disjoint from the evaluation prompts): it shows the machinery working
//! end to end on data every machine can fetch, not open-vocabulary transfer. `--pairs FILE
//! --images DIR` trains on real captions.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Deserialize, Serialize};

use contrast_core::{l2_normalize, to_vec_f32};
use contrast_encoders::{
    BertPooling, Precomputed, PrecomputedConfig, ResNet, ResNetConfig, Stem, load_bert,
};
use contrast_eval::{Features, LinearProbe, RetrievalRecall, retrieval_recall, zero_shot_top1};
use contrast_methods::{
    ClipConfig, ClipNet, EpochRecord, KnnMonitor, Monitor, OptimizerConfig, OptimizerKind,
    TrainConfig, ZERO_SHOT_TOP1, ZeroShotMonitor, clip_embeddings, embed, subset_indices,
};
use contrast_pairs::{
    CaptionFeatures, CaptionViews, EVAL_TEMPLATES, ImageCaptions, PairViews, PairsFormat,
    TRAIN_TEMPLATES, load_pairs,
};
use contrast_text::{TextTokenizer, minilm_dir};
use contrast_vision::{
    FASHION_MNIST_CLASSES, ImageShape, SimClrAugmentConfig, load_fashion_mnist, load_mnist_format,
};

use crate::Error;
use crate::folder::{check_subset, open_run, run_dir};
use crate::metrics::peak_memory_mib;
use crate::options::JobOptions;
use crate::peers::train_with;
use crate::plot::{Series, line_chart};
use crate::run::scores as scores_of;

/// Width of the shared embedding space.
const EMBED_DIM: usize = 128;
/// Tokens per caption.
const CAPTION_TOKENS: usize = 32;
/// Batch size for embedding evaluation sets.
const EVAL_BATCH: usize = 512;
/// Recall is reported at these ranks.
const RECALL_AT: [usize; 3] = [1, 5, 10];

/// What `contrast reproduce clip` can be told; `None` takes the recipe's value (10 epochs,
/// quick 1; batch 256; Adam at 1e-3).
#[derive(Debug, Clone)]
pub struct ClipOptions {
    /// What every job is told: cache, output folder, device, budget, run-folder handling.
    pub job: JobOptions,
    /// A pairs file (image path and caption per row); default: Fashion-MNIST with captions
    /// made from class names.
    pub pairs: Option<PathBuf>,
    /// The folder that relative image paths of `pairs` start from (default: the pairs file's
    /// folder).
    pub images: Option<PathBuf>,
    /// The pairs file's layout.
    pub format: PairsFormat,
    /// Fashion-MNIST's folder (found or fetched without it).
    pub data: Option<PathBuf>,
    /// The text tower's BERT-family checkpoint (default: all-MiniLM-L6-v2, fetched into
    /// `cache`); locked.
    pub model: Option<PathBuf>,
    /// Use only this many training images.
    pub train_subset: Option<usize>,
    /// Use only this many test images.
    pub test_subset: Option<usize>,
    /// Seed.
    pub seed: u64,
    /// On several peers: each computes the loss of its own rows against every column
    /// (`ClipConfig::local_loss`).
    pub local_loss: bool,
}

/// What the evaluation measured on one state of the network.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClipScores {
    /// Zero-shot top-1 on the test images, prompts from the evaluation templates (labelled
    /// data only).
    pub zero_shot: Option<f64>,
    /// Zero-shot top-1 with the training templates as prompts.
    pub zero_shot_train_templates: Option<f64>,
    /// Image-text retrieval recall on the test pairs.
    pub retrieval: Option<RetrievalRecall>,
    /// kNN top-1 (k = 200) of the image tower's representation (labelled data only).
    pub knn_top1: Option<f64>,
    /// Linear probe top-1 of the image tower's representation.
    pub linear_top1: Option<f64>,
}

/// Everything a CLIP run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClipMetrics {
    /// The data.
    pub dataset: String,
    /// Where the captions came from.
    pub captions: String,
    /// The text tower.
    pub text_model: String,
    /// The image tower.
    pub image_backbone: String,
    /// Training and test images.
    pub images: (usize, usize),
    /// Distinct training captions.
    pub train_captions: usize,
    /// Epochs.
    pub epochs: usize,
    /// Pairs per batch.
    pub batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// The objective, in words.
    pub objective: String,
    /// The random-initialised image tower (and fresh projections).
    pub before: ClipScores,
    /// After training.
    pub after: ClipScores,
    /// kNN and linear probe on raw pixels (labelled data only).
    pub raw_pixels: Option<(f64, f64)>,
    /// The logit scale at the end (CLIP starts at 1/0.07 = 14.3, clamps at 100).
    pub logit_scale: f64,
    /// Per-epoch records (loss, kNN, zero-shot).
    pub epoch_records: Vec<EpochRecord>,
    /// Every step's loss.
    pub step_losses: Vec<f32>,
    /// Seconds in the training loop.
    pub train_seconds: f64,
    /// Seconds of the whole job.
    pub total_seconds: f64,
    /// Peak resident memory.
    pub peak_memory_mib: Option<f64>,
    /// Device.
    pub device: String,
    /// The command that produced this.
    pub command: String,
}

/// The data of a run: training pairs, test pairs (with their own caption table) and the locked
/// text tower's features for both, plus the zero-shot prompts' classes.
struct Data {
    model_dir: PathBuf,
    dataset: String,
    captions: String,
    train: ImageCaptions,
    test: ImageCaptions,
    train_features: CaptionFeatures,
    test_features: CaptionFeatures,
    /// Templates per class in the test (and training) caption tables of labelled data.
    templates: Option<(usize, usize)>,
    shape: ImageShape,
}

fn say(s: &str) {
    eprintln!("[clip] {s}");
}

/// The captions of `pairs` used by its images only, re-indexed.
fn compact(pairs: ImageCaptions) -> ImageCaptions {
    let mut map = vec![usize::MAX; pairs.captions.len()];
    let mut captions = Vec::new();
    let caption_of = pairs
        .caption_of
        .iter()
        .map(|ids| {
            ids.iter()
                .map(|&c| {
                    if map[c] == usize::MAX {
                        map[c] = captions.len();
                        captions.push(pairs.captions[c].clone());
                    }
                    map[c]
                })
                .collect()
        })
        .collect();
    ImageCaptions {
        captions,
        caption_of,
        ..pairs
    }
}

/// The locked text tower's sentence embeddings of `sentences` (mean pooling, unit rows), in
/// batches, on the inner (non-autodiff) backend.
fn text_features<B: Backend>(
    model_dir: &Path,
    sentences: &[String],
    device: &B::Device,
) -> Result<CaptionFeatures, Error> {
    let tokenizer = TextTokenizer::from_dir(model_dir)?.with_max_len(CAPTION_TOKENS)?;
    let (bert, config) = load_bert::<B>(model_dir, BertPooling::Mean, device)?;
    tokenizer.check_vocab(config.vocab_size)?;
    let mut rows = Vec::with_capacity(sentences.len() * config.hidden_size);
    for chunk in sentences.chunks(256) {
        let (host, _) = tokenizer.encode(&chunk.iter().map(String::as_str).collect::<Vec<_>>())?;
        let batch = contrast_core::TokenBatch::from_host(&host, device);
        let h = contrast_core::Encoder::embed(&bert, batch);
        rows.extend(to_vec_f32(l2_normalize(h, contrast_core::NORM_EPS)));
    }
    Ok(CaptionFeatures {
        rows,
        dim: config.hidden_size,
    })
}

/// Loads the pairs (before the text model, so that a bad pairs file fails without a download),
/// then the locked text tower's features of their captions.
fn load_data<B: Backend>(o: &ClipOptions, device: &B::Device) -> Result<Data, Error> {
    let (train_n, test_n) = if o.job.quick {
        (Some(4000), Some(1000))
    } else {
        (None, None)
    };
    let (train_n, test_n) = (o.train_subset.or(train_n), o.test_subset.or(test_n));
    let (dataset, captions, train, test, templates, shape) = match &o.pairs {
        None => {
            say("loading Fashion-MNIST");
            let splits = match &o.data {
                Some(d) => load_mnist_format(d, &FASHION_MNIST_CLASSES)?,
                None => load_fashion_mnist(None, &o.job.cache)?,
            };
            let pick = |d: &contrast_vision::ImageDataset, n: Option<usize>, salt: u64| match n {
                Some(n) => d.subset(&subset_indices(d.len(), n, o.seed ^ salt)),
                None => d.clone(),
            };
            let train = pick(&splits.train, train_n, 0);
            let test = pick(&splits.test, test_n, 1);
            let shape = train.shape();
            (
                "fashion-mnist".to_string(),
                format!(
                    "generated from the class names: {} training templates (\"{}\", ...), {} \
                     disjoint evaluation templates (\"{}\", ...)",
                    TRAIN_TEMPLATES.len(),
                    TRAIN_TEMPLATES[0],
                    EVAL_TEMPLATES.len(),
                    EVAL_TEMPLATES[0]
                ),
                ImageCaptions::from_labels(train, &TRAIN_TEMPLATES),
                ImageCaptions::from_labels(test, &EVAL_TEMPLATES),
                Some((TRAIN_TEMPLATES.len(), EVAL_TEMPLATES.len())),
                shape,
            )
        }
        Some(file) => {
            let dir = o
                .images
                .clone()
                .or_else(|| file.parent().map(Path::to_path_buf))
                .unwrap_or_default();
            let shape = ImageShape {
                channels: 3,
                height: 96,
                width: 96,
            };
            say(&format!("loading pairs from {}", file.display()));
            let all = load_pairs(file, &dir, shape, &o.format)?;
            // A seeded tenth of the images (at least one) is held out for retrieval.
            let n = all.len();
            let test_idx = subset_indices(n, (n / 10).max(1), o.seed ^ 0x636c);
            let mut is_test = vec![false; n];
            test_idx.iter().for_each(|&i| is_test[i] = true);
            let train_idx: Vec<usize> = (0..n).filter(|&i| !is_test[i]).collect();
            if train_idx.is_empty() {
                return Err(contrast_core::Error::invalid_config(
                    "pairs",
                    n,
                    "too few images to hold a tenth out for evaluation",
                )
                .into());
            }
            let cut = |idx: &[usize], k: Option<usize>, salt: u64| -> Vec<usize> {
                match k {
                    Some(k) => subset_indices(idx.len(), k, o.seed ^ salt)
                        .into_iter()
                        .map(|i| idx[i])
                        .collect(),
                    None => idx.to_vec(),
                }
            };
            (
                file.display().to_string(),
                format!("from {}", file.display()),
                compact(all.subset(&cut(&train_idx, train_n, 2))),
                compact(all.subset(&cut(&test_idx, test_n, 3))),
                None,
                shape,
            )
        }
    };
    let model_dir = match &o.model {
        Some(d) => d.clone(),
        None => minilm_dir(&o.job.cache)?,
    };
    say(&format!(
        "text features of {} training and {} test captions from {}",
        train.captions.len(),
        test.captions.len(),
        model_dir.display()
    ));
    let train_features = text_features::<B>(&model_dir, &train.captions, device)?;
    let test_features = text_features::<B>(&model_dir, &test.captions, device)?;
    Ok(Data {
        model_dir,
        dataset,
        captions,
        train,
        test,
        train_features,
        test_features,
        templates,
        shape,
    })
}

type Net<B> = ClipNet<B, ResNet<B>, Precomputed<B>>;

/// Zero-shot accuracy, retrieval recall, kNN and linear probe of `net`.
fn evaluate<B: Backend>(
    net: &Net<B>,
    data: &Data,
    views: (
        &PairViews<'_, CaptionFeatures>,
        &PairViews<'_, CaptionFeatures>,
    ),
    device: &B::Device,
) -> Result<ClipScores, Error> {
    let (train_views, test_views) = views;
    let all = |n: usize| (0..n).collect::<Vec<usize>>();
    let test_texts = CaptionViews {
        captions: &data.test_features,
    };
    let (images, texts, dim) = clip_embeddings(
        net,
        test_views,
        &all(data.test.len()),
        &test_texts,
        &all(data.test.captions.len()),
        EVAL_BATCH,
        device,
    );
    let retrieval = retrieval_recall(&images, &texts, dim, &data.test.caption_of, &RECALL_AT)?;
    let mut scores = ClipScores {
        retrieval: Some(retrieval),
        ..ClipScores::default()
    };
    if let Some((train_t, test_t)) = data.templates {
        let labels = data.test.images.labels();
        let classes = data.test.images.num_classes();
        let class_of = |t: usize| (0..classes * t).map(|j| j / t).collect::<Vec<_>>();
        scores.zero_shot = Some(zero_shot_top1(
            &images,
            &texts,
            dim,
            &class_of(test_t),
            labels,
            classes,
        )?);
        let train_prompts = CaptionViews {
            captions: &data.train_features,
        };
        let (_, prompts, _) = clip_embeddings(
            net,
            test_views,
            &[],
            &train_prompts,
            &all(data.train.captions.len()),
            EVAL_BATCH,
            device,
        );
        scores.zero_shot_train_templates = Some(zero_shot_top1(
            &images,
            &prompts,
            dim,
            &class_of(train_t),
            labels,
            classes,
        )?);
        let (ftr, d) = embed(net, train_views, &all(data.train.len()), EVAL_BATCH, device);
        let (fte, _) = embed(net, test_views, &all(data.test.len()), EVAL_BATCH, device);
        let train = Features {
            data: &ftr,
            labels: data.train.images.labels(),
            dim: d,
        };
        let test = Features {
            data: &fte,
            labels,
            dim: d,
        };
        let s = scores_of(train, test, classes, &LinearProbe::default())?;
        scores.knn_top1 = Some(s.knn_top1);
        scores.linear_top1 = Some(s.linear_top1);
    }
    Ok(scores)
}

/// `contrast reproduce clip`: see the module documentation. Writes `report.md`,
/// `metrics.json` and `loss.png` into `o.job.out`, beside the checkpoint.
///
/// # Errors
/// Data, model, configuration, training and report errors, each in one line.
pub fn reproduce_clip<B: AutodiffBackend>(
    o: &ClipOptions,
    device: &B::Device,
) -> Result<ClipMetrics, Error> {
    let started = Instant::now();
    check_subset("train_subset", o.train_subset)?;
    check_subset("test_subset", o.test_subset)?;
    let _lock = open_run(&o.job.out, o.job.resume, o.job.overwrite)?;
    let data = load_data::<B::InnerBackend>(o, device)?;
    let model_dir = &data.model_dir;
    let epochs = o.job.epochs.unwrap_or(if o.job.quick { 1 } else { 10 });
    let batch_size = o.job.batch_size.unwrap_or(256);
    let learning_rate = o.job.learning_rate.unwrap_or(1e-3);
    let config = TrainConfig::new(
        OptimizerConfig::new()
            .with_kind(OptimizerKind::Adam)
            .with_learning_rate(learning_rate)
            .with_weight_decay(1e-6)
            .with_warmup_epochs(if epochs > 2 { 1 } else { 0 }),
    )
    .with_epochs(epochs)
    .with_batch_size(batch_size)
    .with_seed(o.seed);
    config.validate(data.train.len())?;

    let (backbone, backbone_name) = if data.templates.is_some() {
        (
            ResNetConfig::small(data.shape.channels),
            "small ResNet (3x3 stride-2 stem, widths 32/64/128, one basic block per stage)",
        )
    } else {
        (
            ResNetConfig::resnet18(data.shape.channels, Stem::ImageNet),
            "ResNet-18, ImageNet stem, 96x96 images",
        )
    };
    let text = PrecomputedConfig {
        dim: data.train_features.dim,
    };
    let clip = ClipConfig::for_towers(backbone.output_dim(), text.dim, EMBED_DIM)
        .with_lock_text(true)
        .with_local_loss(o.local_loss);
    // Crops only, as CLIP trains (open_clip: random resized crop of scale 0.9 to 1).
    let (mean, std) = data.train.images.channel_stats();
    let augment = SimClrAugmentConfig::new(mean, std)
        .with_crop_min_scale(0.9)
        .with_flip_prob(0.0)
        .with_jitter_prob(0.0)
        .with_gray_prob(0.0)
        .with_blur_prob(0.0);
    augment.validate()?;
    let augment = augment.init(o.seed);
    let train_views = PairViews {
        images: &data.train.images,
        labelled: data.templates.is_some(),
        augment: &augment,
        captions: &data.train_features,
        caption_of: &data.train.caption_of,
        seed: o.seed,
    };
    let test_views = PairViews {
        images: &data.test.images,
        captions: &data.test_features,
        caption_of: &data.test.caption_of,
        ..train_views
    };

    B::seed(device, o.seed);
    let net = clip.init_model::<B, _, _>(&backbone, &text, device)?;
    let mut method = clip.init()?;
    let objective = contrast_methods::Method::<B, Net<B>>::info(&method, batch_size).description;
    say("evaluating the random-initialised image tower");
    let before = evaluate(&net.valid(), &data, (&train_views, &test_views), device)?;
    let raw_pixels = match data.templates {
        Some(_) => {
            let (tr, te) = (&data.train.images, &data.test.images);
            let (ptr, pte) = (tr.pixels_f32(), te.pixels_f32());
            let d = tr.shape().len();
            let train = Features {
                data: &ptr,
                labels: tr.labels(),
                dim: d,
            };
            let test = Features {
                data: &pte,
                labels: te.labels(),
                dim: d,
            };
            let classes = tr.num_classes();
            let s = scores_of(train, test, classes, &LinearProbe::default())?;
            Some((s.knn_top1, s.linear_top1))
        }
        None => None,
    };

    let prompts = CaptionViews {
        captions: &data.test_features,
    };
    let mut monitors: Vec<Box<dyn Monitor<B, Net<B>> + '_>> = Vec::new();
    if let Some((_, test_t)) = data.templates {
        let classes = data.test.images.num_classes();
        let monitor_subsets = if o.job.quick { (0, 0) } else { (10_000, 2_000) };
        monitors.push(Box::new(KnnMonitor::new(
            &train_views,
            &test_views,
            monitor_subsets,
            o.seed,
            EVAL_BATCH,
        )?));
        monitors.push(Box::new(ZeroShotMonitor::new(
            &test_views,
            &prompts,
            (0..classes * test_t).map(|j| j / test_t).collect(),
            monitor_subsets.1,
            o.seed,
            EVAL_BATCH,
        )?));
    }
    say(&format!(
        "training: {} pairs, {epochs} epoch(s), batch {batch_size}, device {}",
        data.train.len(),
        o.job.device
    ));
    let run = run_dir(
        &o.job.out,
        o.job.resume,
        o.job.overwrite,
        &[
            ("dataset", data.dataset.clone()),
            ("captions", data.captions.clone()),
            ("text tower", model_dir.display().to_string()),
        ],
    );
    let t = Instant::now();
    let trained = train_with(
        &o.job.peers,
        &mut method,
        net,
        &train_views,
        &mut monitors,
        &config,
        &run,
        device,
    )?;
    let train_seconds = t.elapsed().as_secs_f64();
    drop(monitors);
    say("evaluating the trained towers");
    let inner = trained.model.valid();
    let after = evaluate(&inner, &data, (&train_views, &test_views), device)?;
    let logit_scale = f64::from(to_vec_f32(inner.loss.scale())[0]);
    let metrics = ClipMetrics {
        dataset: data.dataset.clone(),
        captions: data.captions.clone(),
        text_model: format!("{} (locked; features computed once)", model_dir.display()),
        image_backbone: backbone_name.into(),
        images: (data.train.len(), data.test.len()),
        train_captions: data.train.captions.len(),
        epochs,
        batch_size,
        learning_rate,
        objective,
        before,
        after,
        raw_pixels,
        logit_scale,
        epoch_records: trained.history.epochs,
        step_losses: trained.history.step_losses,
        train_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
        peak_memory_mib: peak_memory_mib(),
        device: o.job.device.clone(),
        command: o.job.command.clone(),
    };
    write_report(&metrics, &o.job.out)?;
    say(&format!(
        "report written to {}",
        o.job.out.join("report.md").display()
    ));
    Ok(metrics)
}

fn cell(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

fn recall_cells(r: &Option<RetrievalRecall>) -> String {
    match r {
        None => "- | - | - | - | - | -".into(),
        Some(r) => r
            .image_to_text
            .iter()
            .chain(&r.text_to_image)
            .map(|(_, v)| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join(" | "),
    }
}

fn write_report(m: &ClipMetrics, out: &Path) -> Result<(), Error> {
    let json = serde_json::to_string_pretty(m).map_err(|e| Error::Report(e.to_string()))?;
    let path = out.join("metrics.json");
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    let losses: Vec<(f64, f64)> = m
        .step_losses
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as f64 + 1.0, f64::from(l)))
        .collect();
    line_chart(
        &out.join("loss.png"),
        "CLIP loss",
        "step",
        "loss",
        &[Series {
            name: "symmetric cross-entropy",
            points: losses,
        }],
    )?;
    let mut md = String::new();
    md.push_str("# CLIP: an image tower against a locked text tower\n\n");
    md.push_str(&format!(
        "Data: {} ({} training, {} test images); captions {}. Text tower: {}. Image tower: {} \
         trained from random initialisation, both projected linearly into {EMBED_DIM} \
         dimensions. {} epoch(s), batch {}, Adam at {} (cosine schedule), on `{}`. Objective: {}. \
         Logit scale at the end: {:.2}.\n\n",
        m.dataset,
        m.images.0,
        m.images.1,
        m.captions,
        m.text_model,
        m.image_backbone,
        m.epochs,
        m.batch_size,
        m.learning_rate,
        m.device,
        m.objective,
        m.logit_scale
    ));
    if m.before.zero_shot.is_some() {
        md.push_str(
            "**The captions are generated from the labels**: every caption says only the class \
             name, so zero-shot accuracy here measures how well the image tower learned to \
             point at ten fixed text embeddings (supervision by class, through text), not \
             transfer to unseen concepts. It demonstrates the machinery; real captions go \
             through `--pairs FILE --images DIR`.\n\n",
        );
    }
    md.push_str(
        "| state | zero-shot top-1 (eval prompts) | zero-shot (train prompts) | kNN top-1 | linear top-1 | \
         image->text R@1 | R@5 | R@10 | text->image R@1 | R@5 | R@10 |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (label, s) in [
        ("random image tower", &m.before),
        ("after training", &m.after),
    ] {
        md.push_str(&format!(
            "| {label} | {} | {} | {} | {} | {} |\n",
            cell(s.zero_shot),
            cell(s.zero_shot_train_templates),
            cell(s.knn_top1),
            cell(s.linear_top1),
            recall_cells(&s.retrieval)
        ));
    }
    if let Some((knn, linear)) = m.raw_pixels {
        md.push_str(&format!(
            "| raw pixels | - | - | {knn:.2} | {linear:.2} | - | - | - | - | - | - |\n"
        ));
    }
    md.push_str(
        "\nRetrieval runs over the test pairs: an image hits when one of its captions is among the \
         k most similar captions, a caption when one of its images is among the k most similar \
         images (with captions made from labels, every image of a class shares that class's \
         prompts).\n\n## Per epoch\n\n| epoch | loss | kNN top-1 | zero-shot top-1 | seconds |\n|---|---|---|---|---|\n",
    );
    for r in &m.epoch_records {
        md.push_str(&format!(
            "| {} | {:.4} | {} | {} | {:.1} |\n",
            r.epoch + 1,
            r.loss,
            cell(r.knn_top1()),
            cell(r.monitor(ZERO_SHOT_TOP1)),
            r.seconds
        ));
    }
    md.push_str(&format!(
        "\nTraining {:.0} s, whole job {:.0} s, peak memory {}.\n\nCommand: `{}`\n",
        m.train_seconds,
        m.total_seconds,
        m.peak_memory_mib
            .map_or("not measured".into(), |v| format!("{v:.0} MiB")),
        m.command
    ));
    let path = out.join("report.md");
    std::fs::write(&path, md).map_err(|e| Error::io(&path, e))
}
