//! `cargo xtask reproduce`: release build of the `contrast` program with the right backend,
//! the run, and an optional check of what it wrote.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{cargo, run_step};

/// The value of `--name VALUE` or `--name=VALUE` in `args`.
fn option(args: &[String], name: &str) -> Option<String> {
    let eq = format!("{name}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if a == name {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(&eq).map(str::to_string)
        }
    })
}

/// The cargo feature of the `contrast` package that a device string needs.
fn feature(device: &str) -> Result<Option<&'static str>> {
    Ok(match device.split(':').next().unwrap_or("") {
        "flex" => None,
        "ndarray" => Some("ndarray"),
        "wgpu" => Some("wgpu"),
        "cuda" => Some("cuda"),
        other => bail!("unknown device '{other}'; valid choices: flex, ndarray, wgpu, cuda[:N]"),
    })
}

pub fn run(root: &Path, method: &str, args: &[String]) -> Result<()> {
    let check = args.iter().any(|a| a == "--check");
    let passed: Vec<String> = args.iter().filter(|a| *a != "--check").cloned().collect();
    let device = option(&passed, "--device").unwrap_or_else(|| "flex".into());
    let out = option(&passed, "--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("target/reproduce/{method}")));
    let out = if out.is_absolute() {
        out
    } else {
        root.join(out)
    };

    // Cargo's own progress lines show the build: a first one compiles Burn and takes 6 to 20
    // minutes on 2 cores, and a silent terminal that long looks like a hang.
    eprintln!(
        "reproduce {method}: building the `contrast` program in release mode (a first build \
         takes 6-20 minutes on 2 cores; later ones seconds)"
    );
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["run", "--release", "-p", "contrast"]);
    if let Some(f) = feature(&device)? {
        cmd.args(["--features", f]);
    }
    cmd.args(["--", "reproduce", method]).args(&passed).env(
        "CONTRAST_COMMAND",
        format!("cargo xtask reproduce {method} {}", args.join(" ")).trim_end(),
    );
    if option(&passed, "--out").is_none() {
        cmd.args(["--out", &out.display().to_string()]);
    }
    run_step(&format!("reproduce {method}"), cmd)?;
    if check {
        if method == "paradigms" {
            check_paradigms(&out)?;
        } else if method == "simcse" {
            check_text_report(&out)?;
        } else if method == "graphcl" || method == "mvgrl" {
            check_graph_report(&out)?;
        } else if method == "clip" {
            check_clip_report(&out)?;
        } else {
            check_report(&out)?;
        }
    }
    Ok(())
}

/// The comparison's files exist, and each method's folder holds its report.
fn check_paradigms(out: &Path) -> Result<()> {
    files(
        out,
        &[
            "report.md",
            "metrics.json",
            "loss.png",
            "knn.png",
            "tradeoffs.png",
        ],
    )?;
    let p = out.join("metrics.json");
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&p)?)
        .with_context(|| format!("{} is not a JSON array", p.display()))?;
    if runs.is_empty() {
        bail!("{} lists no method", p.display());
    }
    // Each method's own report must be complete and its encoder above chance; beating the
    // random-initialised encoder is reported, not required: on a short budget a memory bank
    // still holds near-random rows (InstDisc refreshes each row once per epoch).
    for run in &runs {
        let name = run["method"]
            .as_str()
            .with_context(|| format!("{} has a run without a method name", p.display()))?;
        files(&out.join(name), &METHOD_FILES)?;
        let trained = run["trained"]["knn_top1"].as_f64().unwrap_or(f64::NAN);
        let random = run["random_init"]["knn_top1"].as_f64().unwrap_or(f64::NAN);
        // Fashion-MNIST, CIFAR-10 and STL-10 have ten classes.
        let classes = 10.0;
        eprintln!(
            "check: {name}: kNN top-1 {trained:.2} ({} the random-initialised encoder's {random:.2})",
            if trained > random { "above" } else { "BELOW" }
        );
        if trained.is_nan() || trained <= 100.0 / classes {
            bail!("{name}: kNN top-1 {trained:.2} is not above chance");
        }
    }
    eprintln!("check: {} methods compared", runs.len());
    Ok(())
}

/// The text report's files exist, the exported model folder is complete, and every STS score
/// is a finite correlation.
fn check_text_report(out: &Path) -> Result<()> {
    files(
        out,
        &[
            "report.md",
            "metrics.json",
            "loss.png",
            "stsb_dev.png",
            "similarity.png",
        ],
    )?;
    files(&out.join("model"), &["config.json", "model.safetensors"])?;
    let p = out.join("metrics.json");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&p)?)
        .with_context(|| format!("{} is not JSON", p.display()))?;
    for run in ["before", "run"] {
        let scores = if run == "run" {
            &m["run"]["after"]
        } else {
            &m["before"]
        };
        let tasks = scores["tasks"]
            .as_array()
            .with_context(|| format!("{} lacks {run} scores", p.display()))?;
        for t in tasks {
            let v = t[1].as_f64().unwrap_or(f64::NAN);
            if !(-100.0..=100.0).contains(&v) {
                bail!("{}: {run} score of {} is {v}", p.display(), t[0]);
            }
            eprintln!("check: {run}: {} {v:.2}", t[0].as_str().unwrap_or("?"));
        }
    }
    // With --eval-every below the run's steps, STS-B dev was also measured between epochs.
    let every = m["recipe"]["eval_every"].as_u64().unwrap_or(0);
    let steps: u64 = m["run"]["epoch_records"]
        .as_array()
        .map_or(0, |r| r.iter().filter_map(|e| e["batches"].as_u64()).sum());
    if every > 0 && every < steps {
        let evaluations = m["run"]["step_evaluations"].as_array().map_or(0, Vec::len);
        if evaluations == 0 {
            bail!(
                "{}: no STS-B dev evaluation between epochs (every {every} of {steps} steps)",
                p.display()
            );
        }
        eprintln!("check: STS-B dev measured {evaluations} time(s) between epochs");
    }
    // By default the scores are those of the best STS-B dev evaluation's weights: the highest
    // of every evaluation, whose dev score the scored weights reproduce.
    let keeps_best = m["recipe"]["keep_best"].as_bool() == Some(true);
    let runs = ["run", "batch_sampler"].map(|r| (r, &m[r]));
    for (name, run) in runs.iter().filter(|r| keeps_best && !r.1.is_null()) {
        let best = &run["best"];
        let (Some(step), Some(value)) = (best["step"].as_u64(), best["value"].as_f64()) else {
            bail!(
                "{}: {name}: no best STS-B dev evaluation recorded",
                p.display()
            );
        };
        let measured = |records: &serde_json::Value| -> Vec<f64> {
            records.as_array().map_or(Vec::new(), |r| {
                r.iter()
                    .filter_map(|e| e["monitors"]["stsb_dev"].as_f64())
                    .collect()
            })
        };
        let mut all = measured(&run["epoch_records"]);
        all.extend(measured(&run["step_evaluations"]));
        let top = all.iter().copied().fold(f64::MIN, f64::max);
        let dev = run["after"]["stsb_dev"].as_f64().unwrap_or(f64::NAN);
        if value != top || (dev - value).abs() > 0.05 {
            bail!(
                "{}: {name}: the best evaluation (step {step}) measured {value:.2}, the highest \
                 of {} is {top:.2}, the scored weights have {dev:.2}",
                p.display(),
                all.len()
            );
        }
        eprintln!("check: {name}: scored the weights of step {step} (STS-B dev {value:.2})");
    }
    Ok(())
}

/// The CLIP report's files exist and, on labelled data, training lifted zero-shot accuracy
/// above both chance and the random-initialised image tower.
fn check_clip_report(out: &Path) -> Result<()> {
    files(out, &["report.md", "metrics.json", "loss.png"])?;
    let p = out.join("metrics.json");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&p)?)
        .with_context(|| format!("{} is not JSON", p.display()))?;
    let zero_shot = |state: &str| m[state]["zero_shot"].as_f64();
    if let (Some(before), Some(after)) = (zero_shot("before"), zero_shot("after")) {
        eprintln!("check: zero-shot top-1 {before:.2} -> {after:.2}");
        if after <= before || after <= 20.0 {
            bail!(
                "{}: zero-shot top-1 {after:.2} after training is not above the random image \
                 tower's {before:.2} and chance",
                p.display()
            );
        }
    }
    let r1 = m["after"]["retrieval"]["image_to_text"][0][1].as_f64();
    eprintln!(
        "check: image->text R@1 {}",
        r1.map_or("-".into(), |v| format!("{v:.2}"))
    );
    Ok(())
}

/// The graph report's files exist and the trained encoder's SVM accuracy is a percentage above
/// chance for a two-class set.
fn check_graph_report(out: &Path) -> Result<()> {
    files(out, &["report.md", "metrics.json", "loss.png"])?;
    let p = out.join("metrics.json");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&p)?)
        .with_context(|| format!("{} is not JSON", p.display()))?;
    let trained = m["trained"]["mean"].as_f64().unwrap_or(f64::NAN);
    let random = m["random_init"]["mean"].as_f64().unwrap_or(f64::NAN);
    let classes = m["classes"].as_f64().unwrap_or(2.0);
    // Graph-level runs report SVM accuracy, node-level ones a probe's test accuracy.
    eprintln!("check: accuracy {trained:.2} (random-initialised encoder {random:.2})");
    if !(trained > 100.0 / classes && trained <= 100.0) {
        bail!("{}: accuracy {trained:.2} is not above chance", p.display());
    }
    Ok(())
}

/// What `reproduce <method>` writes besides its checkpoint.
const METHOD_FILES: [&str; 5] = [
    "report.md",
    "metrics.json",
    "loss.png",
    "knn.png",
    "embedding.png",
];

/// Every file of `names` exists in `dir` and is not empty.
fn files(dir: &Path, names: &[&str]) -> Result<()> {
    for f in names {
        let p = dir.join(f);
        let len = std::fs::metadata(&p)
            .with_context(|| format!("the reproduction did not write {}", p.display()))?
            .len();
        if len == 0 {
            bail!("{} is empty", p.display());
        }
    }
    Ok(())
}

/// The report, plots and metrics exist, and the trained encoder's kNN accuracy beats the same
/// encoder at random initialisation.
fn check_report(out: &Path) -> Result<()> {
    files(out, &METHOD_FILES)?;
    let p = out.join("metrics.json");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&p)?)
        .with_context(|| format!("{} is not JSON", p.display()))?;
    let get = |path: &[&str]| -> Result<f64> {
        let mut v = &m;
        for k in path {
            v = v
                .get(k)
                .with_context(|| format!("{} lacks {}", p.display(), path.join(".")))?;
        }
        v.as_f64()
            .with_context(|| format!("{} is not a number", path.join(".")))
    };
    let trained = get(&["trained", "knn_top1"])?;
    let random = get(&["random_init", "knn_top1"])?;
    eprintln!("check: kNN top-1 {trained:.2} (random-initialised encoder {random:.2})");
    if trained <= random {
        bail!(
            "the trained encoder's kNN top-1 ({trained:.2}) does not beat the random-initialised encoder ({random:.2})"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_features() {
        let a: Vec<String> = ["--quick", "--device", "wgpu", "--out=x"]
            .map(String::from)
            .to_vec();
        assert_eq!(option(&a, "--device").as_deref(), Some("wgpu"));
        assert_eq!(option(&a, "--out").as_deref(), Some("x"));
        assert_eq!(option(&a, "--epochs"), None);
        assert_eq!(feature("cuda:1").unwrap(), Some("cuda"));
        assert_eq!(feature("flex").unwrap(), None);
        assert!(
            feature("tpu")
                .unwrap_err()
                .to_string()
                .contains("valid choices")
        );
    }

    #[test]
    fn paradigms_check_reads_every_method() {
        let dir = std::env::temp_dir().join(format!("xtask-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let write = |p: PathBuf, text: &str| {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let run = |knn: f64| {
            format!(
                r#"{{"method":"moco-v2","trained":{{"knn_top1":{knn}}},"random_init":{{"knn_top1":50.0}}}}"#
            )
        };
        for f in ["report.md", "loss.png", "knn.png", "tradeoffs.png"] {
            write(dir.join(f), "x");
        }
        write(dir.join("metrics.json"), &format!("[{}]", run(40.0)));
        let e = check_paradigms(&dir).unwrap_err();
        assert!(format!("{e:#}").contains("moco-v2"), "{e:#}");
        for f in METHOD_FILES {
            write(dir.join("moco-v2").join(f), "x");
        }
        check_paradigms(&dir).unwrap();
        write(dir.join("metrics.json"), &format!("[{}]", run(5.0)));
        let e = check_paradigms(&dir).unwrap_err().to_string();
        assert!(e.contains("not above chance"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
