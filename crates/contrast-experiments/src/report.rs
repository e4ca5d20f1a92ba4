//! `report.md`, `metrics.json` and the plots of a reproduction.

use std::fmt::Write as _;
use std::path::Path;

use contrast_vision::{ImageDataset, SimClrAugmentConfig};

use crate::Error;
use crate::metrics::Metrics;
use crate::options::MethodKind;
use crate::plot::{Series, font_available, line_chart, scatter_by_class};
use contrast_methods::EpochRecord;

/// The kNN gain over the random-initialised encoder that the default run must reach.
pub const TARGET_GAIN_OVER_RANDOM: f64 = 5.0;

/// The gain over raw pixels, on both kNN and the linear probe, that the default run must reach.
pub const TARGET_GAIN_OVER_PIXELS: f64 = 3.0;

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!(
        "{cpu}, {threads} hardware threads, {}",
        std::env::consts::OS
    )
}

/// Writes `metrics.json`, `report.md`, `loss.png`, `knn.png` and `embedding.png` into `dir`.
///
/// # Errors
/// [`Error::Io`] or [`Error::Report`].
pub fn write(
    dir: &Path,
    m: &Metrics,
    augment: &SimClrAugmentConfig,
    projected_test: &[f32],
    test: &ImageDataset,
) -> Result<(), Error> {
    let json = serde_json::to_vec_pretty(m).map_err(|e| Error::Report(e.to_string()))?;
    let mp = dir.join("metrics.json");
    std::fs::write(&mp, json).map_err(|e| Error::io(&mp, e))?;

    let smoothed = smoothed_losses(&m.step_losses);
    line_chart(
        &dir.join("loss.png"),
        &format!("{} loss ({}, batch {})", label(m), m.dataset, m.batch_size),
        "step",
        "loss",
        &[Series {
            name: "loss",
            points: smoothed,
        }],
    )?;
    let knn: Vec<(f64, f64)> = m
        .epoch_records
        .iter()
        .filter_map(|e| e.knn_top1().map(|k| ((e.epoch + 1) as f64, k)))
        .collect();
    let flat = |v: f64| vec![(1.0, v), (m.epochs.max(2) as f64, v)];
    line_chart(
        &dir.join("knn.png"),
        &format!(
            "kNN top-1 per epoch (monitor: {} train / {} test images)",
            m.monitor_subsets.0, m.monitor_subsets.1
        ),
        "epoch",
        "kNN top-1 (%)",
        &[
            Series {
                name: label(m),
                points: knn,
            },
            Series {
                name: "raw pixels (same subsets)",
                points: flat(m.raw_pixels_monitor_knn),
            },
        ],
    )?;
    let pts: Vec<(f64, f64)> = projected_test
        .chunks(2)
        .map(|p| (p[0] as f64, p[1] as f64))
        .collect();
    scatter_by_class(
        &dir.join("embedding.png"),
        "Test embeddings, first two principal components",
        ("PC 1", "PC 2"),
        &pts,
        test.labels(),
        test.class_names(),
    )?;

    let rp = dir.join("report.md");
    std::fs::write(&rp, markdown(m, augment)).map_err(|e| Error::io(&rp, e))
}

/// The method's name in reports.
fn label(m: &Metrics) -> &'static str {
    m.method
        .parse::<MethodKind>()
        .map(MethodKind::label)
        .unwrap_or("method")
}

fn markdown(m: &Metrics, a: &SimClrAugmentConfig) -> String {
    let mut s = String::new();
    let gain = m.trained.knn_top1 - m.random_init.knn_top1;
    let _ = writeln!(s, "# {} on {}\n", label(m), m.dataset);
    let _ = writeln!(
        s,
        "Produced by `{}` on {} (device `{}`).\n",
        m.command,
        machine(),
        m.device
    );
    let _ = writeln!(s, "## Results (test split, {} images)\n", m.test_images);
    let _ = writeln!(
        s,
        "| encoder | kNN top-1 (k=200, T=0.1) | linear probe top-1 |"
    );
    let _ = writeln!(s, "|---|---|---|");
    for (name, sc) in [
        (format!("{}, {} epochs", label(m), m.epochs), m.trained),
        (
            "same encoder, random initialisation".to_string(),
            m.random_init,
        ),
        ("raw pixels".to_string(), m.raw_pixels),
    ] {
        let _ = writeln!(s, "| {name} | {:.2} | {:.2} |", sc.knn_top1, sc.linear_top1);
    }
    let _ = writeln!(s);
    let target = if m.method == "simclr" {
        format!(
            " (target: at least +{TARGET_GAIN_OVER_RANDOM:.0}; {})",
            if gain >= TARGET_GAIN_OVER_RANDOM {
                "met"
            } else {
                "not met"
            }
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "- kNN gain over the random-initialised encoder: **{gain:+.2} points**{target}."
    );
    let _ = writeln!(
        s,
        "- kNN gain over raw pixels: {:+.2} points; the per-epoch monitor ({} train / {} test images) {}.",
        m.trained.knn_top1 - m.raw_pixels.knn_top1,
        m.monitor_subsets.0,
        m.monitor_subsets.1,
        match m.epochs_to_beat_raw_pixels {
            Some(e) => format!(
                "passed raw pixels ({:.2}) after epoch {e}",
                m.raw_pixels_monitor_knn
            ),
            None => format!(
                "did not pass raw pixels ({:.2}) within this run",
                m.raw_pixels_monitor_knn
            ),
        }
    );
    let linear_gain = m.trained.linear_top1 - m.raw_pixels.linear_top1;
    let _ = writeln!(
        s,
        "- Linear-probe gain over raw pixels: {linear_gain:+.2} points{}.",
        if m.method == "simclr" {
            let knn_gain = m.trained.knn_top1 - m.raw_pixels.knn_top1;
            let met = knn_gain.min(linear_gain) >= TARGET_GAIN_OVER_PIXELS;
            format!(
                " (target: kNN and linear probe both at least +{TARGET_GAIN_OVER_PIXELS:.0} over \
                 raw pixels; {})",
                if met { "met" } else { "not met" }
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "- All three rows use the same train/test split and the same kNN and probe settings, measured in this run."
    );
    if let Some(k) = m.store_knn_top1 {
        let _ = writeln!(
            s,
            "- kNN read straight from the memory bank (test projections against the stored embedding of every training image, no pass over the training set): {k:.2}."
        );
    }
    if let Some(p) = m.paradigm {
        let _ = writeln!(
            s,
            "- Paradigm: {}; {} negatives per anchor per step{}.",
            p.label(),
            m.negatives_per_anchor,
            match &m.staleness {
                Some(st) => format!(
                    "; stored negatives at the end were on average {:.1} steps old (oldest {})",
                    st.mean, st.max
                ),
                None => String::new(),
            }
        );
    }
    let _ = writeln!(s);

    if let Some(b) = &m.batch_sampler {
        let _ = writeln!(
            s,
            "## BatchSampler against shuffled batches (same initial weights, same budget)\n"
        );
        let walk = |r: &[EpochRecord], skip: usize| -> (f64, f64, f64, f64) {
            let e: Vec<&EpochRecord> = r.iter().skip(skip).collect();
            let k = e.len().max(1) as f64;
            (
                e.iter()
                    .filter_map(|x| x.same_class_pair_share)
                    .sum::<f64>()
                    / k,
                e.iter()
                    .filter_map(|x| x.mean_batch_similarity)
                    .sum::<f64>()
                    / k,
                e.iter().map(|x| x.sampler_seconds).sum::<f64>()
                    / e.iter().map(|x| x.seconds).sum::<f64>().max(1e-9),
                e.iter().map(|x| x.batches as f64).sum::<f64>() / k,
            )
        };
        let skip = b.config.warmup_epochs;
        let (sh_s, sim_s, t_s, nb_s) = walk(&m.epoch_records, skip);
        let (sh_b, sim_b, t_b, nb_b) = walk(&b.epoch_records, skip);
        let _ = writeln!(
            s,
            "Batch statistics are averaged over the epochs after BatchSampler's {skip} warm-up epoch(s).\n"
        );
        let _ = writeln!(
            s,
            "| sampler | kNN top-1 | linear top-1 | same-class pairs per batch | mean pairwise cosine in batch | sampler time / epoch time | batches per epoch |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        let _ = writeln!(
            s,
            "| shuffled | {:.2} | {:.2} | {:.3} | {:.3} | {:.2}% | {:.0} |",
            m.trained.knn_top1,
            m.trained.linear_top1,
            sh_s,
            sim_s,
            100.0 * t_s,
            nb_s
        );
        let _ = writeln!(
            s,
            "| BatchSampler | {:.2} | {:.2} | {:.3} | {:.3} | {:.2}% | {:.0} |",
            b.scores.knn_top1,
            b.scores.linear_top1,
            sh_b,
            sim_b,
            100.0 * t_b,
            nb_b
        );
        if b.seeds.len() > 1 {
            let stat = |v: Vec<f64>| {
                let n = v.len() as f64;
                let mean = v.iter().sum::<f64>() / n;
                let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
                format!("{mean:.2} ± {:.2}", var.sqrt())
            };
            let col = |f: &dyn Fn(&crate::metrics::SeedScores) -> f64| {
                stat(b.seeds.iter().map(f).collect())
            };
            let _ = writeln!(
                s,
                "\nOver {} seeds ({}), mean ± standard deviation; the difference is BatchSampler's minus shuffled's, seed by seed:\n",
                b.seeds.len(),
                b.seeds
                    .iter()
                    .map(|x| x.seed.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let _ = writeln!(s, "| | kNN top-1 | linear top-1 |\n|---|---|---|");
            let _ = writeln!(
                s,
                "| shuffled | {} | {} |",
                col(&|x| x.shuffled.knn_top1),
                col(&|x| x.shuffled.linear_top1)
            );
            let _ = writeln!(
                s,
                "| BatchSampler | {} | {} |",
                col(&|x| x.batch_sampler.knn_top1),
                col(&|x| x.batch_sampler.linear_top1)
            );
            let _ = writeln!(
                s,
                "| difference | {} | {} |",
                col(&|x| x.batch_sampler.knn_top1 - x.shuffled.knn_top1),
                col(&|x| x.batch_sampler.linear_top1 - x.shuffled.linear_top1)
            );
        }
        let _ = writeln!(
            s,
            "\nBatchSampler settings: M = {}, K = {}, p0 = {} (decay {} per epoch, floor {}), graph rebuilt every {} batches, coverage {:?}, search {:?}. Counters: {}.\n",
            b.config.candidates,
            b.config.neighbours,
            b.config.restart,
            b.config.restart_decay,
            b.config.restart_min,
            b.config.rebuild_every,
            b.config.coverage,
            b.config.search,
            b.summary
        );
    }
    let _ = writeln!(s, "## Time and memory\n");
    let _ = writeln!(
        s,
        "- Training: {:.1} s for {} epochs ({:.1} s per epoch); whole run including data, baselines, evaluation and plots: {:.1} s.",
        m.train_seconds,
        m.epoch_records.len(),
        m.train_seconds / m.epoch_records.len().max(1) as f64,
        m.total_seconds
    );
    let _ = writeln!(
        s,
        "- Augmentation pipeline alone: {:.0} views/s (on a background thread, overlapping the model's steps).",
        m.augment_views_per_second
    );
    match m.peak_memory_mib {
        Some(p) => {
            let _ = writeln!(s, "- Peak resident memory of the process: {p:.0} MiB.");
        }
        None => {
            let _ = writeln!(s, "- Peak memory: not available on this OS.");
        }
    }
    let _ = writeln!(
        s,
        "\n| epoch | mean loss | seconds | images/s | waited for data (s) | kNN monitor | lr at end |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for e in &m.epoch_records {
        let knn = e
            .knn_top1()
            .map(|k| format!("{k:.2}"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "| {} | {:.4} | {:.1} | {:.0} | {:.2} | {knn} | {:.2e} |",
            e.epoch + 1,
            e.loss,
            e.seconds,
            e.instances_per_second,
            e.data_wait_seconds,
            e.learning_rate
        );
    }
    let _ = writeln!(s, "\n## Plots\n");
    let _ = writeln!(
        s,
        "![loss](loss.png)\n\n![kNN accuracy per epoch](knn.png)\n\n![test embeddings](embedding.png)\n"
    );
    if !font_available() {
        let _ = writeln!(
            s,
            "(No TrueType font was found, so the plots carry no text; set `CONTRAST_FONT` to a .ttf file.)\n"
        );
    }
    let _ = writeln!(s, "## Configuration\n");
    let _ = writeln!(s, "| setting | value |\n|---|---|");
    for (k, v) in [
        ("dataset", format!("{} ({} train / {} test images)", m.dataset, m.train_images, m.test_images)),
        ("backbone", format!("{} ({} parameters with the head, batch-norm statistics included)", m.backbone, m.parameters)),
        ("projection head", if m.head.is_empty() { "2-layer MLP, hidden = backbone width, output 128".into() } else { m.head.clone() }),
        ("loss", if m.objective.is_empty() { format!("NT-Xent, temperature {}", m.temperature.unwrap_or(f64::NAN)) } else { m.objective.clone() }),
        ("optimiser", format!("{:?}, peak lr {}, weight decay {}, linear warm-up (1 epoch when epochs > 2), cosine decay", m.optimizer, m.learning_rate, m.weight_decay)),
        ("batch", format!("{} images, two images each (InstDisc uses the first, InvaSpread's first is the image itself), last partial batch dropped", m.batch_size)),
        ("epochs", m.epochs.to_string()),
        (
            "augmentation",
            format!(
                "resized crop scale {}-{}, ratio {:.2}-{:.2}; flip {}; colour jitter p={} strength {}; grayscale p={}; blur p={}",
                a.crop_min_scale, a.crop_max_scale, a.crop_min_ratio, a.crop_max_ratio, a.flip_prob, a.jitter_prob, a.jitter_strength, a.gray_prob, a.blur_prob
            ),
        ),
        ("evaluation", "representation before the head; kNN k=200 T=0.1 cosine; linear probe: softmax regression on standardised features, 300 full-batch Adam iterations".into()),
    ] {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    s
}

/// Loss per step smoothed over a window of 1% of the run, as `(step, loss)`.
fn smoothed_losses(losses: &[f32]) -> Vec<(f64, f64)> {
    let w = (losses.len() / 100).max(1);
    losses
        .chunks(w)
        .enumerate()
        .map(|(i, c)| {
            (
                (i * w + c.len() / 2) as f64,
                c.iter().map(|&v| v as f64).sum::<f64>() / c.len() as f64,
            )
        })
        .collect()
}

/// Writes the comparison of a paradigms run into `dir`: `metrics.json` (every method's
/// metrics), `report.md`, `knn.png` (monitor per epoch), `loss.png` (each loss relative to its
/// start) and `tradeoffs.png` (kNN against seconds per epoch). `shared_lr` is the comparison's
/// learning rate; the report names each method that trained at another.
///
/// # Errors
/// [`Error::Io`] or [`Error::Report`].
pub fn write_paradigms(
    dir: &Path,
    runs: &[Metrics],
    augment: &SimClrAugmentConfig,
    shared_lr: f64,
    total_seconds: f64,
) -> Result<(), Error> {
    let Some(first) = runs.first() else {
        return Err(Error::Report("no method was trained".into()));
    };
    let json = serde_json::to_vec_pretty(runs).map_err(|e| Error::Report(e.to_string()))?;
    let mp = dir.join("metrics.json");
    std::fs::write(&mp, json).map_err(|e| Error::io(&mp, e))?;

    let mut knn: Vec<Series<'_>> = runs
        .iter()
        .map(|m| Series {
            name: label(m),
            points: m
                .epoch_records
                .iter()
                .filter_map(|e| e.knn_top1().map(|k| ((e.epoch + 1) as f64, k)))
                .collect(),
        })
        .collect();
    knn.push(Series {
        name: "raw pixels",
        points: vec![
            (1.0, first.raw_pixels_monitor_knn),
            (first.epochs.max(2) as f64, first.raw_pixels_monitor_knn),
        ],
    });
    line_chart(
        &dir.join("knn.png"),
        &format!(
            "kNN top-1 per epoch (monitor: {} train / {} test images)",
            first.monitor_subsets.0, first.monitor_subsets.1
        ),
        "epoch",
        "kNN top-1 (%)",
        &knn,
    )?;
    let loss: Vec<Series<'_>> = runs
        .iter()
        .map(|m| {
            let pts = smoothed_losses(&m.step_losses);
            let start = pts.first().map_or(1.0, |p| p.1.abs().max(1e-12));
            Series {
                name: label(m),
                points: pts.into_iter().map(|(x, y)| (x, y / start)).collect(),
            }
        })
        .collect();
    line_chart(
        &dir.join("loss.png"),
        "Training loss relative to its first value",
        "step",
        "loss / initial loss",
        &loss,
    )?;
    let points: Vec<(f64, f64)> = runs
        .iter()
        .map(|m| (seconds_per_epoch(m), m.trained.knn_top1))
        .collect();
    let names: Vec<String> = runs.iter().map(|m| label(m).to_string()).collect();
    let ids: Vec<u32> = (0..runs.len() as u32).collect();
    scatter_by_class(
        &dir.join("tradeoffs.png"),
        "kNN top-1 (%) against training seconds per epoch",
        ("seconds per epoch", "kNN top-1 (%)"),
        &points,
        &ids,
        &names,
    )?;
    let rp = dir.join("report.md");
    std::fs::write(
        &rp,
        paradigms_markdown(runs, augment, shared_lr, total_seconds),
    )
    .map_err(|e| Error::io(&rp, e))
}

fn seconds_per_epoch(m: &Metrics) -> f64 {
    m.train_seconds / m.epoch_records.len().max(1) as f64
}

fn paradigms_markdown(
    runs: &[Metrics],
    a: &SimClrAugmentConfig,
    shared_lr: f64,
    total_seconds: f64,
) -> String {
    let f = &runs[0];
    // The methods trained at another rate than the shared one (InstDisc's quarter).
    let lr_exceptions: String = runs
        .iter()
        .filter(|m| m.learning_rate != shared_lr)
        .map(|m| {
            format!(
                "{} trains at peak lr {} ({} times the shared rate). ",
                label(m),
                m.learning_rate,
                m.learning_rate / shared_lr
            )
        })
        .collect();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# The four paradigms of negatives on {}, one budget\n",
        f.dataset
    );
    let _ = writeln!(
        s,
        "Produced by `{}` on {} (device `{}`); whole run {:.0} s. Every number below was measured in this run.\n",
        f.command,
        machine(),
        f.device,
        total_seconds
    );
    let _ = writeln!(
        s,
        "Shared by every method: {} train / {} test images; backbone {} with the same initial weights; {} epochs of batch {}; {:?}, peak lr {}, weight decay {}, cosine schedule; augmentation: resized crop scale {}-{}, flip {}, colour jitter p={} strength {}, grayscale p={}, blur p={}. {}Each method keeps its paper's head, loss and temperature.\n",
        f.train_images,
        f.test_images,
        f.backbone,
        f.epochs,
        f.batch_size,
        f.optimizer,
        shared_lr,
        f.weight_decay,
        a.crop_min_scale,
        a.crop_max_scale,
        a.flip_prob,
        a.jitter_prob,
        a.jitter_strength,
        a.gray_prob,
        a.blur_prob,
        lr_exceptions
    );
    let _ = writeln!(
        s,
        "| method | paradigm | kNN top-1 | linear top-1 | s / epoch | images / s | peak memory (MiB) | negatives per anchor | staleness of stored negatives (mean / max steps) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for m in runs {
        let images_per_second = m
            .epoch_records
            .iter()
            .map(|e| e.instances_per_second)
            .sum::<f64>()
            / m.epoch_records.len().max(1) as f64;
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} | {:.2} | {:.1} | {:.0} | {} | {} | {} |",
            label(m),
            m.paradigm.map_or("-", |p| p.label()),
            m.trained.knn_top1,
            m.trained.linear_top1,
            seconds_per_epoch(m),
            images_per_second,
            m.peak_memory_mib
                .map_or("-".to_string(), |p| format!("{p:.0}")),
            m.negatives_per_anchor,
            m.staleness
                .as_ref()
                .map_or("0 (computed this step)".to_string(), |st| format!(
                    "{:.1} / {}",
                    st.mean, st.max
                )),
        );
    }
    let _ = writeln!(
        s,
        "| random-initialised backbone | - | {:.2} | {:.2} | - | - | - | - | - |",
        f.random_init.knn_top1, f.random_init.linear_top1
    );
    let _ = writeln!(
        s,
        "| raw pixels | - | {:.2} | {:.2} | - | - | - | - | - |\n",
        f.raw_pixels.knn_top1, f.raw_pixels.linear_top1
    );
    let _ = writeln!(
        s,
        "kNN: k=200, T=0.1, cosine, on the representation before the head; linear probe: softmax regression on standardised features, 300 full-batch Adam iterations. Peak memory is the process's peak resident set while the method trained and was evaluated (reset between methods), dataset included. Staleness: how many optimiser steps before the end each stored negative was written (bank rows, queue keys); in-batch and end-to-end methods compute all negatives in the step.\n"
    );
    for m in runs {
        if let Some(k) = m.store_knn_top1 {
            let _ = writeln!(
                s,
                "- {}: kNN read straight from the memory bank (test projections against every training image's stored embedding): {k:.2}.",
                label(m)
            );
        }
    }
    let _ = writeln!(s, "\n## Objectives\n");
    for m in runs {
        let _ = writeln!(
            s,
            "- **{}** ({}): {}; head: {}. Per-method report: [{}/report.md]({}/report.md).",
            label(m),
            m.method,
            m.objective,
            m.head,
            m.method,
            m.method
        );
    }
    let _ = writeln!(s, "\n## Plots\n");
    let _ = writeln!(
        s,
        "![kNN per epoch](knn.png)\n\n![relative loss](loss.png)\n\n![accuracy against time](tradeoffs.png)\n"
    );
    if !font_available() {
        let _ = writeln!(
            s,
            "(No TrueType font was found, so the plots carry no text; set `CONTRAST_FONT` to a .ttf file.)\n"
        );
    }
    let _ = writeln!(s, "## Per epoch\n");
    let _ = writeln!(
        s,
        "| method | epoch | mean loss | seconds | images/s | kNN monitor |\n|---|---|---|---|---|---|"
    );
    for m in runs {
        for e in &m.epoch_records {
            let _ = writeln!(
                s,
                "| {} | {} | {:.4} | {:.1} | {:.0} | {} |",
                label(m),
                e.epoch + 1,
                e.loss,
                e.seconds,
                e.instances_per_second,
                e.knn_top1().map_or("-".to_string(), |k| format!("{k:.2}"))
            );
        }
    }
    s
}
