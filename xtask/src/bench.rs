//! `cargo xtask bench` and `cargo xtask bench-report`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::{cargo, run_step};

/// One measured row: an operation at a size on a backend (ours or a peer's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// Operation (criterion group), e.g. `nt_xent_fwd_bwd`.
    pub op: String,
    /// Size label, e.g. `n=1024,d=128`.
    pub size: String,
    /// Backend label, e.g. `flex`, `wgpu (lavapipe, CPU)`, `pytorch-cpu`.
    pub backend: String,
    /// Median time of one iteration in nanoseconds.
    pub median_ns: f64,
    /// Bytes or elements processed per iteration, if declared.
    #[serde(default)]
    pub throughput: Option<Throughput>,
    /// When criterion wrote the estimate (criterion rows only).
    #[serde(skip)]
    pub written: Option<std::time::SystemTime>,
}

/// Work per iteration, as criterion declares it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Throughput {
    /// Bytes moved.
    Bytes(u64),
    /// Elements processed.
    Elements(u64),
}

/// Backends compiled into the benchmarks besides flex.
pub struct Backends {
    /// Burn's ndarray CPU backend.
    pub ndarray: bool,
    /// wgpu (lavapipe without a GPU).
    pub wgpu: bool,
    /// CUDA.
    pub cuda: bool,
    /// Autotuning and fusion for the GPU backends.
    pub gpu_tuned: bool,
}

/// One contrast row's time over PyTorch's (CPU rows with the CPU peer, GPU rows with the CUDA
/// peer), both measured in the same round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundRatio {
    pub round: usize,
    pub op: String,
    pub size: String,
    pub backend: String,
    pub ratio: f64,
}

pub fn run(
    root: &Path,
    backends: Backends,
    peer: Option<&str>,
    quick: bool,
    filter: Option<&str>,
    rounds: usize,
) -> Result<()> {
    let mut features = vec!["flex"];
    for (on, name) in [
        (backends.ndarray, "ndarray"),
        (backends.wgpu, "wgpu"),
        (backends.cuda, "cuda"),
        (backends.gpu_tuned, "gpu-tuned"),
    ] {
        if on {
            features.push(name);
        }
    }
    let mut bench = cargo();
    bench
        .current_dir(root)
        .args([
            "bench",
            "-p",
            "contrast-benches",
            "--features",
            &features.join(","),
        ])
        .arg("--");
    if let Some(f) = filter {
        bench.arg(f);
    }
    if quick {
        bench.args([
            "--warm-up-time",
            "0.5",
            "--measurement-time",
            "1",
            "--sample-size",
            "10",
        ]);
    }
    // Results go where `bench-report` reads them, whatever CARGO_TARGET_DIR says (criterion
    // would otherwise write under the shared target directory).
    bench.env("CRITERION_HOME", root.join("target/criterion"));
    if let Some(peer) = peer {
        anyhow::ensure!(
            peer == "pytorch",
            "unknown peer `{peer}`; the only peer is `pytorch`"
        );
    }
    anyhow::ensure!(rounds >= 1, "--rounds must be at least 1");
    // Each round measures contrast, then the peer right after it: a ratio compares two
    // measurements minutes apart at most, on a machine whose speed may drift over an hour.
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let start = std::time::SystemTime::now();
        let name = if rounds > 1 {
            format!("criterion benchmarks (round {round} of {rounds})")
        } else {
            "criterion benchmarks".to_string()
        };
        run_step(&name, clone_command(&bench))?;
        if peer.is_some() {
            let fresh = run_peer(root, filter)?;
            let ours: Vec<Row> = criterion_rows(&root.join("target/criterion"))?
                .into_iter()
                .filter(|r| r.written.is_some_and(|t| t >= start))
                .collect();
            ratios.extend(round_ratios(round, &ours, &fresh));
        }
    }
    report_with(root, (rounds > 1).then_some(&ratios[..]))
}

/// A copy of `cmd` (program, arguments, directory, environment) to run again.
fn clone_command(cmd: &Command) -> Command {
    let mut c = Command::new(cmd.get_program());
    c.args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        c.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// The operations the text peer measures; the PyTorch peer measures the others.
const TEXT_PEER_OPS: [&str; 3] = ["simcse_step", "text_encode", "clip_step"];

/// The group part (criterion's operation name, before any `/`) of each `|` alternative of a
/// filter: what the peers, which name operations only, match.
fn filter_groups(filter: &str) -> Vec<&str> {
    filter
        .split('|')
        .map(|a| a.split('/').next().unwrap_or(a))
        .collect()
}

/// Whether the PyTorch peer and the text peer measure something the filter's groups name: one
/// of them is part of a text operation's name (text peer) or is not (the other peer); both
/// without a filter.
fn peers_wanted(groups: Option<&[&str]>) -> (bool, bool) {
    let Some(groups) = groups else {
        return (true, true);
    };
    let is_text = |a: &str| TEXT_PEER_OPS.iter().any(|op| op.contains(a));
    (
        groups.iter().any(|a| !is_text(a)),
        groups.iter().any(|a| is_text(a)),
    )
}

/// Runs the PyTorch peers and merges their rows into `target/peers/pytorch.json`; returns the
/// rows they just measured. The text peer (it needs `transformers`) runs only when the filter
/// names one of its operations or there is no filter.
fn run_peer(root: &Path, filter: Option<&str>) -> Result<Vec<Row>> {
    let out = root.join("target/peers/pytorch.json");
    std::fs::create_dir_all(out.parent().unwrap())?;
    // The interpreter that has torch: $CONTRAST_PYTHON, else python3.
    let python = std::env::var_os("CONTRAST_PYTHON").unwrap_or_else(|| "python3".into());
    // Without a filter both peers run; with one, each peer that measures one of its
    // alternatives (`a|b`, the regular expression criterion takes), given their group parts.
    let groups = filter.map(filter_groups);
    let (other, text) = peers_wanted(groups.as_deref());
    let group = groups.map(|g| g.join("|"));
    let scripts = [
        ("benches/peers/pytorch_bench.py", other),
        ("benches/peers/text_bench.py", text),
    ];
    let mut rows = Vec::new();
    for (i, (script, wanted)) in scripts.into_iter().enumerate() {
        if !wanted {
            continue;
        }
        let fresh = root.join(format!("target/peers/pytorch-latest-{i}.json"));
        let mut py = Command::new(&python);
        // The glibc malloc settings that contrast's benchmarks apply to themselves
        // (`contrast_core::GLIBC_MALLOC_ENV`, `tune_allocator`): both sides of a ratio run
        // under one allocator configuration.
        for (name, value) in PEER_MALLOC_ENV {
            py.env(name, value);
        }
        py.current_dir(root).arg(script).arg("--out").arg(&fresh);
        if let Some(g) = &group {
            py.args(["--filter", g]);
        }
        run_step(&format!("pytorch peer ({script})"), py)?;
        merge_peer_rows(&out, &fresh)?;
        rows.extend(read_rows(&fresh)?);
    }
    Ok(rows)
}

/// The PyTorch row a contrast row compares with: same operation and size, on the CPU for CPU
/// backends and on CUDA for GPU ones.
fn peer_of<'a>(r: &Row, peers: impl IntoIterator<Item = &'a Row>) -> Option<&'a Row> {
    let gpu =
        r.backend.starts_with("cuda") || r.backend.contains("GPU") || r.backend.contains("NVIDIA");
    let peer = if gpu { "pytorch-cuda" } else { "pytorch-cpu" };
    peers
        .into_iter()
        .find(|o| o.op == r.op && o.size == r.size && o.backend.starts_with(peer))
}

fn round_ratios(round: usize, ours: &[Row], peers: &[Row]) -> Vec<RoundRatio> {
    ours.iter()
        .filter_map(|r| {
            let p = peer_of(r, peers)?;
            Some(RoundRatio {
                round,
                op: r.op.clone(),
                size: r.size.clone(),
                backend: r.backend.clone(),
                ratio: r.median_ns / p.median_ns,
            })
        })
        .collect()
}

/// `contrast_core::GLIBC_MALLOC_ENV`, repeated here so that xtask does not build Burn.
const PEER_MALLOC_ENV: [(&str, &str); 3] = [
    ("MALLOC_MMAP_THRESHOLD_", "33554432"),
    ("MALLOC_TRIM_THRESHOLD_", "2147483647"),
    ("MALLOC_TOP_PAD_", "268435456"),
];

/// Replaces the rows of `into` that `fresh` measured again (same op, size and backend), so
/// that filtered runs refresh their part of the peer's results and keep the rest.
fn merge_peer_rows(into: &Path, fresh: &Path) -> Result<()> {
    let new = read_rows(fresh)?;
    let mut rows: Vec<Row> = read_rows(into)?
        .into_iter()
        .filter(|old| {
            !new.iter()
                .any(|n| n.op == old.op && n.size == old.size && n.backend == old.backend)
        })
        .collect();
    rows.extend(new);
    std::fs::write(into, serde_json::to_string_pretty(&rows)?)?;
    Ok(())
}

/// The rows of a peer's JSON file (none when it does not exist).
fn read_rows(p: &Path) -> Result<Vec<Row>> {
    if !p.exists() {
        return Ok(Vec::new());
    }
    serde_json::from_str(&std::fs::read_to_string(p)?)
        .with_context(|| format!("parsing {}", p.display()))
}

/// Reads every `new/estimates.json` that criterion wrote under `target/criterion`.
fn criterion_rows(dir: &Path) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "new") {
                    if let Some(row) = read_estimate(&p)? {
                        rows.push(row);
                    }
                } else {
                    stack.push(p);
                }
            }
        }
    }
    Ok(rows)
}

fn read_estimate(new_dir: &Path) -> Result<Option<Row>> {
    let (bench, est) = (
        new_dir.join("benchmark.json"),
        new_dir.join("estimates.json"),
    );
    if !bench.exists() || !est.exists() {
        return Ok(None);
    }
    let b: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&bench)?)
        .with_context(|| format!("parsing {}", bench.display()))?;
    let e: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&est)?)
        .with_context(|| format!("parsing {}", est.display()))?;
    let text = |k: &str| b.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let throughput = match b.get("throughput") {
        Some(serde_json::Value::Object(m)) => m.iter().next().and_then(|(k, v)| {
            let n = v.as_u64()?;
            match k.as_str() {
                "Bytes" | "BytesDecimal" => Some(Throughput::Bytes(n)),
                "Elements" => Some(Throughput::Elements(n)),
                _ => None,
            }
        }),
        _ => None,
    };
    Ok(Some(Row {
        op: text("group_id"),
        backend: text("function_id"),
        size: text("value_str"),
        median_ns: e["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN),
        throughput,
        written: std::fs::metadata(&est).and_then(|m| m.modified()).ok(),
    }))
}

/// The same-round ratios to PyTorch, one column per round, and their median.
fn write_rounds(md: &mut String, rounds: &[RoundRatio]) -> Result<()> {
    let n = rounds.iter().map(|r| r.round).max().unwrap_or(0);
    let mut rows: BTreeMap<(String, String, String), Vec<Option<f64>>> = BTreeMap::new();
    for r in rounds {
        let key = (r.op.clone(), r.size.clone(), r.backend.clone());
        rows.entry(key).or_insert_with(|| vec![None; n])[r.round - 1] = Some(r.ratio);
    }
    writeln!(md, "## Ratios to PyTorch, round by round\n")?;
    writeln!(
        md,
        "`--rounds {n}`: each round ran contrast's benchmarks and then PyTorch's right after them; each entry is contrast's median over PyTorch's from one round (below 1 is faster). The tables above hold the last round.\n"
    )?;
    let heads: Vec<String> = (1..=n).map(|i| format!("round {i}")).collect();
    writeln!(
        md,
        "| operation | size | backend | {} | median |",
        heads.join(" | ")
    )?;
    writeln!(md, "|---|---|---|{}---|", "---|".repeat(n))?;
    for ((op, size, backend), values) in rows {
        let mut known: Vec<f64> = values.iter().flatten().copied().collect();
        known.sort_by(f64::total_cmp);
        let median = match known.len() {
            0 => f64::NAN,
            k if k % 2 == 1 => known[k / 2],
            k => (known[k / 2 - 1] + known[k / 2]) / 2.0,
        };
        let cells: Vec<String> = values
            .iter()
            .map(|v| v.map_or("-".to_string(), |v| format!("{v:.2}")))
            .collect();
        writeln!(
            md,
            "| {op} | {size} | {backend} | {} | {median:.2} |",
            cells.join(" | ")
        )?;
    }
    writeln!(md)?;
    Ok(())
}

fn human_time(ns: f64) -> String {
    match ns {
        x if x >= 1e9 => format!("{:.3} s", x / 1e9),
        x if x >= 1e6 => format!("{:.2} ms", x / 1e6),
        x if x >= 1e3 => format!("{:.2} µs", x / 1e3),
        x => format!("{x:.0} ns"),
    }
}

fn human_throughput(t: &Option<Throughput>, ns: f64) -> String {
    match t {
        Some(Throughput::Bytes(b)) => format!("{:.2} GB/s", *b as f64 / ns),
        Some(Throughput::Elements(n)) => format!("{:.3} Melem/s", *n as f64 / ns * 1e3),
        None => "-".into(),
    }
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

pub fn report(root: &Path) -> Result<()> {
    report_with(root, None)
}

/// [`report`], with a section of same-round ratios to PyTorch when `rounds` ran.
fn report_with(root: &Path, rounds: Option<&[RoundRatio]>) -> Result<()> {
    let mut rows = criterion_rows(&root.join("target/criterion"))?;
    let peer_file: PathBuf = root.join("target/peers/pytorch.json");
    if peer_file.exists() {
        let peer: Vec<Row> = serde_json::from_str(&std::fs::read_to_string(&peer_file)?)
            .with_context(|| format!("parsing {}", peer_file.display()))?;
        rows.extend(peer);
    }
    anyhow::ensure!(
        !rows.is_empty(),
        "no benchmark results under target/criterion; run `cargo xtask bench` first"
    );
    let git = command_output("git", &["rev-parse", "--short", "HEAD"]);
    let rustc = command_output("rustc", &["-V"]);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let machine = format!("{} ({cores} threads)", cpu_model());

    let mut by_op: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for r in &rows {
        by_op.entry(r.op.clone()).or_default().push(r.clone());
    }
    let mut md = String::new();
    writeln!(md, "# Benchmarks\n")?;
    writeln!(
        md,
        "Written by `cargo xtask bench-report` from criterion's medians (and the PyTorch peer's, when `--peer pytorch` ran in the same invocation).\n"
    )?;
    writeln!(md, "- machine: {machine}\n- rustc: {rustc}\n- git: {git}\n")?;
    writeln!(
        md,
        "`ratio` is the median over the fastest backend at that size; `vs PyTorch` is contrast's median over PyTorch's at that size (below 1 is faster). Rows labelled plain `wgpu` ran on the default adapter: on a machine without a GPU that is Mesa's lavapipe, a software Vulkan driver on the same CPU (set `CONTRAST_WGPU_LABEL` to name a real GPU).\n"
    )?;
    let mut chart_groups: Vec<(String, Vec<Row>)> = Vec::new();
    for (op, mut list) in by_op {
        list.sort_by(|a, b| {
            a.size
                .cmp(&b.size)
                .then(a.median_ns.total_cmp(&b.median_ns))
        });
        let mut sizes: Vec<String> = list.iter().map(|r| r.size.clone()).collect();
        sizes.dedup();
        for size in sizes {
            let group: Vec<Row> = list.iter().filter(|r| r.size == size).cloned().collect();
            chart_groups.push((format!("{op}  {size}"), group));
        }
        writeln!(md, "## {op}\n")?;
        writeln!(
            md,
            "| size | backend | median | throughput | ratio | vs PyTorch |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|")?;
        for r in &list {
            let same: Vec<&Row> = list.iter().filter(|o| o.size == r.size).collect();
            let fastest = same
                .iter()
                .map(|o| o.median_ns)
                .fold(f64::INFINITY, f64::min);
            // GPU rows compare with PyTorch on CUDA, CPU rows with PyTorch on the CPU.
            let torch = peer_of(r, same.iter().copied()).map(|o| o.median_ns);
            let vs = match torch {
                Some(t) if !r.backend.starts_with("pytorch") => format!("{:.2}", r.median_ns / t),
                _ => "-".into(),
            };
            writeln!(
                md,
                "| {} | {} | {} | {} | {:.2} | {} |",
                r.size,
                r.backend,
                human_time(r.median_ns),
                human_throughput(&r.throughput, r.median_ns),
                r.median_ns / fastest,
                vs
            )?;
        }
        writeln!(md)?;
    }
    if let Some(rounds) = rounds {
        write_rounds(&mut md, rounds)?;
    }
    std::fs::create_dir_all(root.join("docs"))?;
    writeln!(
        md,
        "![median over the fastest backend per operation and size](benchmarks.png)"
    )?;
    std::fs::write(root.join("docs/benchmarks.md"), md)?;
    crate::chart::write(&root.join("docs/benchmarks.png"), &chart_groups)?;
    let record =
        serde_json::json!({ "git": git, "rustc": rustc, "machine": machine, "rows": rows });
    std::fs::write(
        root.join("target/bench-record.json"),
        serde_json::to_string_pretty(&record)?,
    )?;
    eprintln!(
        "wrote docs/benchmarks.md and target/bench-record.json ({} rows)",
        rows.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{filter_groups, peers_wanted};

    #[test]
    fn each_peer_runs_for_the_alternatives_it_measures() {
        let wanted = |f: &str| peers_wanted(Some(&filter_groups(f)));
        assert_eq!(peers_wanted(None), (true, true));
        assert_eq!(wanted("simcse_step|text_encode"), (false, true));
        assert_eq!(wanted("gin_fwd_bwd|graphcl_step"), (true, false));
        assert_eq!(wanted("simcse_step|gin_fwd_bwd"), (true, true));
        assert_eq!(wanted("clip"), (false, true));
        assert_eq!(
            filter_groups("simcse_step/flex|gin_fwd_bwd"),
            ["simcse_step", "gin_fwd_bwd"]
        );
        assert_eq!(wanted("simcse_step/flex|gin_fwd_bwd"), (true, true));
    }
}
