//! The `contrast` program refuses bad input with one line and never loses a checkpoint: each
//! case here is one of the faults found by trying the program as an adversary would (issue
//! "Hardening"). Runs are tiny (a few dozen synthetic 28x28 images, one epoch).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use contrast_vision::encode_idx;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("contrast-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An MNIST-format folder: `n` training and `n / 2` test images of `side`x`side` pixels (two
/// classes of stripes), test images of `test_side`.
fn idx_data(dir: &Path, n: usize, side: usize, test_side: usize) {
    let images = |n: usize, side: usize, salt: usize| -> Vec<u8> {
        (0..n * side * side)
            .map(|p| {
                let (i, px) = (p / (side * side), p % (side * side));
                let bright = if i % 2 == 0 {
                    px % side < side / 2
                } else {
                    px / side < side / 2
                };
                (if bright { 190 } else { 40 } + (p * 7 + i * 13 + salt) % 50) as u8
            })
            .collect()
    };
    let labels = |n: usize| -> Vec<u8> { (0..n).map(|i| (i % 2) as u8).collect() };
    let w = |name: &str, bytes: Vec<u8>| std::fs::write(dir.join(name), bytes).unwrap();
    w(
        "train-images-idx3-ubyte",
        encode_idx(&[n, side, side], &images(n, side, 0)),
    );
    w("train-labels-idx1-ubyte", encode_idx(&[n], &labels(n)));
    let t = n / 2;
    w(
        "t10k-images-idx3-ubyte",
        encode_idx(&[t, test_side, test_side], &images(t, test_side, 3)),
    );
    w("t10k-labels-idx1-ubyte", encode_idx(&[t], &labels(t)));
}

fn contrast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_contrast"))
        .args(args)
        .env("CONTRAST_COMMAND", "contrast (test)")
        .output()
        .unwrap()
}

/// The last line of stderr, asserting that the run failed with the program's own error (exit
/// 2), not a panic (exit 101).
fn failure(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err.lines().last().unwrap_or_default().to_string()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tiny SimCLR run's arguments on `data` into `out`.
fn tiny<'a>(data: &'a str, out: &'a str, epochs: &'a str) -> Vec<&'a str> {
    vec![
        "reproduce",
        "simclr",
        "--data",
        data,
        "--out",
        out,
        "--batch-size",
        "8",
        "--epochs",
        epochs,
    ]
}

#[test]
fn checkpoints_are_never_overwritten_or_resumed_by_another_run() {
    let root = tmp("guard");
    let (data, small) = (root.join("data"), root.join("small"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&small).unwrap();
    idx_data(&data, 32, 28, 28);
    idx_data(&small, 32, 14, 14);
    let out = root.join("out");
    let (d, s, o) = (
        data.to_str().unwrap(),
        small.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    ok(&contrast(&tiny(d, o, "1")));
    let ckpt = out.join("checkpoint.bin");
    let saved = std::fs::read(&ckpt).unwrap();

    // Forgetting --resume.
    let line = failure(&contrast(&tiny(d, o, "1")));
    assert!(
        line.contains("--resume") && line.contains("--overwrite"),
        "{line}"
    );
    // Another number of epochs on resume.
    let mut args = tiny(d, o, "2");
    args.push("--resume");
    let line = failure(&contrast(&args));
    assert!(line.contains("epochs: checkpoint 1, this run 2"), "{line}");
    // Another dataset (another image shape) on resume: refused, not a panic in Burn.
    let mut args = tiny(s, o, "1");
    args.push("--resume");
    let line = failure(&contrast(&args));
    assert!(
        line.contains("images: checkpoint 1x28x28, this run 1x14x14"),
        "{line}"
    );
    assert_eq!(
        std::fs::read(&ckpt).unwrap(),
        saved,
        "the checkpoint changed"
    );

    // A second run into a folder another process holds.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(out.join(".lock"))
        .unwrap();
    lock.try_lock().unwrap();
    std::fs::write(out.join(".lock"), "process 4242\n").unwrap();
    let mut args = tiny(d, o, "1");
    args.push("--resume");
    let line = failure(&contrast(&args));
    assert!(
        line.contains("in use by another run (process 4242)"),
        "{line}"
    );
    drop(lock);

    // --overwrite starts again.
    let mut args = tiny(d, o, "1");
    args.push("--overwrite");
    ok(&contrast(&args));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn bad_settings_fail_before_any_work() {
    let root = tmp("settings");
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    idx_data(&data, 32, 28, 28);
    let d = data.to_str().unwrap();
    let out = root.join("out");
    let o = out.to_str().unwrap();
    let with = |extra: &[&str]| {
        let mut a = tiny(d, o, "1");
        a.extend_from_slice(extra);
        contrast(&a)
    };
    // No baseline is computed before a bad temperature is found.
    let out_t = with(&["--temperature", "0"]);
    let line = failure(&out_t);
    assert!(line.contains("temperature"), "{line}");
    assert!(!String::from_utf8_lossy(&out_t.stderr).contains("baselines"));
    // Every method of a comparison is checked before the first trains.
    let p = contrast(&[
        "reproduce",
        "paradigms",
        "--methods",
        "simclr,moco-v2",
        "--data",
        d,
        "--out",
        o,
        "--batch-size",
        "8",
        "--queue-size",
        "4",
    ]);
    let line = failure(&p);
    assert!(line.contains("queue_size"), "{line}");
    assert!(!String::from_utf8_lossy(&p.stderr).contains("baselines"));
    // Options the method would ignore.
    let line = failure(&with(&["--queue-size", "100"]));
    assert!(
        line.contains("--queue-size does not apply to `simclr`") && line.contains("--temperature"),
        "{line}"
    );
    let line = failure(&with(&["--keep-last"]));
    assert!(
        line.contains("--keep-last does not apply to `simclr`"),
        "{line}"
    );
    let line = failure(&with(&["--bs-candidates", "100"]));
    assert!(line.contains("needs --batch-sampler"), "{line}");
    // Data-parallel options.
    let line = failure(&with(&["--local-negatives"]));
    assert!(
        line.contains("--local-negatives needs --devices or --nodes"),
        "{line}"
    );
    let line = failure(&with(&["--sync-batch-norm"]));
    assert!(
        line.contains("--sync-batch-norm needs --devices or --nodes"),
        "{line}"
    );
    let line = failure(&with(&["--devices", ","]));
    assert!(line.contains("names no device"), "{line}");
    let line = failure(&with(&["--devices", "flex,flex", "--device", "flex"]));
    assert!(line.contains("--devices replaces --device"), "{line}");
    let line = failure(&with(&["--devices", "flex,flex", "--peer-timeout", "0"]));
    assert!(line.contains("peer_timeout"), "{line}");
    // Options that a method does not take with several peers.
    for (method, option) in [
        ("instdisc", "--local-negatives"),
        ("moco-v2", "--sync-batch-norm"),
        ("paradigms", "--sync-batch-norm"),
    ] {
        let mut args = tiny(d, o, "1");
        args[1] = method;
        args.extend(["--devices", "flex,flex", option]);
        let line = failure(&contrast(&args));
        let want = format!("{option} does not apply to `{method}`");
        assert!(line.contains(&want), "{line}");
    }
    // Negative numbers parse, and the library names what is wrong with them.
    let line = failure(&with(&["--lr", "-1"]));
    assert!(line.contains("learning_rate"), "{line}");
    // The augmentation's strengths are checked before any work.
    let line = failure(&with(&["--crop-min-scale", "1.5"]));
    assert!(line.contains("crop_min_scale"), "{line}");
    let line = failure(&with(&["--jitter-strength", "-0.5"]));
    assert!(line.contains("jitter_strength"), "{line}");
    // Backbone widths: one per stage, none zero.
    let line = failure(&with(&["--widths", "8,16"]));
    assert!(line.contains("has 3 stages"), "{line}");
    let z = with(&["--widths", "8,0,16"]);
    assert!(!z.status.success());
    assert!(String::from_utf8_lossy(&z.stderr).contains("at least 1 channel"));
    // A subset of 0 is refused rather than read as "all".
    let z = with(&["--train-subset", "0"]);
    assert!(!z.status.success());
    assert!(String::from_utf8_lossy(&z.stderr).contains("at least 1"));
    // Train and test images of different shapes, naming the file.
    let odd = root.join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    idx_data(&odd, 32, 28, 10);
    let line = failure(&contrast(&tiny(odd.to_str().unwrap(), o, "1")));
    assert!(
        line.contains("t10k-images-idx3-ubyte") && line.contains("are 10x10"),
        "{line}"
    );
    assert!(!out.join("checkpoint.bin").exists());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_two_peer_run_trains_and_resumes_only_on_two_peers() {
    let root = tmp("peers");
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    idx_data(&data, 32, 28, 28);
    let (d, out) = (data.to_str().unwrap(), root.join("out"));
    let o = out.to_str().unwrap();
    let mut two = tiny(d, o, "1");
    two.extend(["--devices", "flex,flex", "--sync-batch-norm"]);
    ok(&contrast(&two));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("flex,flex (2 peers, synchronised batch norm)"),
        "{report}"
    );
    let mut one = tiny(d, o, "1");
    one.push("--resume");
    let line = failure(&contrast(&one));
    assert!(
        line.contains("peers: checkpoint 2, this run not recorded"),
        "{line}"
    );
    // The statistics the run trained with are part of what it resumes.
    let mut two = tiny(d, o, "1");
    two.extend(["--devices", "flex,flex", "--resume"]);
    let line = failure(&contrast(&two));
    assert!(
        line.contains("batch norm: checkpoint synchronised over every peer, this run not recorded"),
        "{line}"
    );
    two.push("--sync-batch-norm");
    ok(&contrast(&two));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn two_nodes_train_from_the_command_line_as_two_peers_of_one_process_do() {
    let root = tmp("nodes");
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    idx_data(&data, 32, 28, 28);
    let d = data.to_str().unwrap();
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let first = port();
    let second = std::iter::repeat_with(port).find(|&p| p != first).unwrap();
    let addresses = format!("127.0.0.1:{first},127.0.0.1:{second}");
    // The layout is checked before any work.
    let o = root.join("bad");
    let o = o.to_str().unwrap();
    let mut bad = tiny(d, o, "1");
    bad.extend(["--node-rank", "1"]);
    assert!(failure(&contrast(&bad)).contains("--node-rank needs --nodes"));
    let mut bad = tiny(d, o, "1");
    bad.extend(["--nodes", "2", "--node-rank", "0"]);
    let line = failure(&contrast(&bad));
    assert!(line.contains("one HOST:PORT per node"), "{line}");
    let mut bad = tiny(d, o, "1");
    bad.extend(["--nodes", "2", "--node-addresses", &addresses]);
    assert!(failure(&contrast(&bad)).contains("--nodes needs --node-rank"));

    // Two processes, one peer each, against two peers of one process, batch norm's statistics
    // synchronised across the processes.
    let outs = [root.join("node0"), root.join("node1")];
    let both = |extra: &[&str]| {
        let children: Vec<_> = outs
            .iter()
            .enumerate()
            .map(|(rank, out)| {
                let rank = rank.to_string();
                let mut args = tiny(d, out.to_str().unwrap(), "1");
                args.extend(["--nodes", "2", "--node-rank", &rank]);
                args.extend(["--node-addresses", &addresses, "--peer-timeout", "60"]);
                args.extend(extra);
                Command::new(env!("CARGO_BIN_EXE_contrast"))
                    .args(&args)
                    .env("CONTRAST_COMMAND", "contrast (test)")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            ok(&out);
            // Nothing panics on the way out, not even inside burn-communication's server.
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains("panicked"), "{err}");
        }
    };
    both(&["--sync-batch-norm"]);
    // Each node wrote its checkpoint, and the group resumes from them.
    both(&["--sync-batch-norm", "--resume"]);
    let threads = root.join("threads");
    let mut two = tiny(d, threads.to_str().unwrap(), "1");
    two.extend(["--devices", "flex,flex", "--sync-batch-norm"]);
    ok(&contrast(&two));
    let want = step_losses(&threads);
    for (rank, out) in outs.iter().enumerate() {
        let report = std::fs::read_to_string(out.join("report.md")).unwrap();
        let line = format!("flex on node {rank} of 2 (2 peers in all, synchronised batch norm)");
        assert!(report.contains(&line), "{report}");
        let got = step_losses(out);
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            assert!(
                (a - b).abs() < 1e-5 * (1.0 + b.abs()),
                "{got:?} vs {want:?}"
            );
        }
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn help_shows_the_defaults() {
    let out = contrast(&["reproduce", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "fashion-mnist 2e-3",
        "[default: adam",
        "[default: 1e-6",
        "fashion-mnist 10 (paradigms: 2 per method)",
        "fashion-mnist 32,64,256",
        "[default: 256",
        "--overwrite",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

/// The step losses a finished run recorded in `metrics.json`.
fn step_losses(out: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["step_losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn killed_runs_resume_to_the_uninterrupted_result() {
    let root = tmp("kill");
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    idx_data(&data, 32, 28, 28);
    let d = data.to_str().unwrap();
    let straight = root.join("straight");
    let started = std::time::Instant::now();
    ok(&contrast(&tiny(d, straight.to_str().unwrap(), "3")));
    let whole = started.elapsed().as_secs_f64();
    let expected = step_losses(&straight);
    assert_eq!(expected.len(), 12);

    // SIGKILL and SIGINT at points spread over the run, each followed by --resume until the run
    // finishes (a kill before the first checkpoint resumes from the start).
    let mut interrupted = 0;
    for (trial, signal) in ["KILL", "INT", "KILL", "INT"].into_iter().enumerate() {
        let out = root.join(format!("killed-{trial}"));
        let o = out.to_str().unwrap();
        let mut args = tiny(d, o, "3");
        args.push("--resume");
        let at = whole * (0.3 + 0.2 * trial as f64);
        let mut child = Command::new(env!("CARGO_BIN_EXE_contrast"))
            .args(&args)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs_f64(at));
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status();
        interrupted += usize::from(!child.wait().unwrap().success());
        let mut finished = false;
        for _ in 0..3 {
            if contrast(&args).status.success() {
                finished = true;
                break;
            }
        }
        assert!(finished, "trial {trial}: the resumed run failed");
        assert_eq!(
            step_losses(&out),
            expected,
            "trial {trial} ({signal} at {at:.2}s)"
        );
    }
    assert!(
        interrupted >= 2,
        "only {interrupted} of 4 runs were interrupted"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn clip_pairs_errors_name_the_file_and_line_before_any_download() {
    let root = tmp("clip");
    std::fs::write(
        root.join("pairs.tsv"),
        "filepath\ttitle\nmissing.png\tA cat.\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let out = root.join("out");
        let mut args = vec![
            "reproduce",
            "clip",
            "--out",
            out.to_str().unwrap(),
            "--cache",
            root.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        contrast(&args)
    };
    let pairs = root.join("pairs.tsv");
    let line = failure(&run(&["--pairs", pairs.to_str().unwrap()]));
    assert!(
        line.contains("pairs.tsv:2: image") && line.contains("missing.png"),
        "{line}"
    );
    let line = failure(&run(&[
        "--pairs",
        pairs.to_str().unwrap(),
        "--csv-img-key",
        "path",
    ]));
    assert!(line.contains("no column `path`"), "{line}");
    let line = failure(&run(&["--temperature", "0.1"]));
    assert!(
        line.contains("--temperature does not apply to `clip`"),
        "{line}"
    );
    let line = failure(&run(&["--crop-min-scale", "0.5"]));
    assert!(
        line.contains("--crop-min-scale does not apply to `clip`"),
        "{line}"
    );
    let line = failure(&run(&["--images", "x"]));
    assert!(line.contains("--images goes with --pairs"), "{line}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// A TU-format set `TOY` of 24 graphs in two classes (rings and paths of 4 to 7 nodes, node
/// labels alternating 1, 2).
fn toy_tu(dir: &Path) {
    let (mut edges, mut indicator, mut graph_labels, mut node_labels) =
        (String::new(), String::new(), String::new(), String::new());
    let mut first = 1;
    for g in 0..24 {
        let (n, ring) = (4 + g % 4, g % 2 == 0);
        for i in 0..n {
            indicator.push_str(&format!("{}\n", g + 1));
            node_labels.push_str(&format!("{}\n", 1 + i % 2));
            if i + 1 < n || ring {
                let (a, b) = (first + i, first + (i + 1) % n);
                edges.push_str(&format!("{a}, {b}\n{b}, {a}\n"));
            }
        }
        graph_labels.push_str(if ring { "1\n" } else { "-1\n" });
        first += n;
    }
    let w =
        |name: &str, body: &str| std::fs::write(dir.join(format!("TOY_{name}.txt")), body).unwrap();
    w("A", &edges);
    w("graph_indicator", &indicator);
    w("graph_labels", &graph_labels);
    w("node_labels", &node_labels);
}

/// The shape in a `.npy` file's header.
fn npy_shape(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + len]).to_string();
    let start = header.find("'shape': (").unwrap() + "'shape': (".len();
    header[start..start + header[start..].find(')').unwrap()].to_string()
}

/// `--save-embeddings` leaves the SVM's inputs and folds beside each training's checkpoint,
/// readable by NumPy, and is refused where no SVM runs.
#[test]
fn a_graph_run_saves_the_embeddings_its_svm_classifies() {
    let root = tmp("graph-npy");
    let data = root.join("TOY");
    std::fs::create_dir_all(&data).unwrap();
    toy_tu(&data);
    let out = root.join("out");
    ok(&contrast(&[
        "reproduce",
        "graphcl",
        "--dataset",
        "TOY",
        "--data",
        data.to_str().unwrap(),
        "--quick",
        "--save-embeddings",
        "--out",
        out.to_str().unwrap(),
    ]));
    let dir = out.join("seed-0/shuffled");
    assert_eq!(npy_shape(&dir.join("labels.npy")), "24,");
    let init = npy_shape(&dir.join("embeddings-init.npy"));
    assert!(init.starts_with("24, "), "{init}");
    assert_eq!(npy_shape(&dir.join("embeddings-trained.npy")), init);
    // The folds: the outer row, then one inner row per outer fold (10).
    assert_eq!(npy_shape(&dir.join("folds.npy")), "11, 24");
    let line = failure(&contrast(&["reproduce", "simclr", "--save-embeddings"]));
    assert!(
        line.contains("--save-embeddings does not apply to `simclr`"),
        "{line}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// A full disk and a read-only `--out`, on small tmpfs mounts: both fail before training, with
/// the folder and the reason. Needs the right to mount (root, as CI's machines run); elsewhere
/// it says it is skipped.
#[test]
fn a_full_or_read_only_disk_fails_before_training() {
    let root = tmp("disk");
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    idx_data(&data, 32, 28, 28);
    let mount = |dir: &Path, options: &str| {
        std::fs::create_dir_all(dir).unwrap();
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let unmount = |dir: &Path| {
        let _ = Command::new("umount").arg(dir).status();
    };
    let d = data.to_str().unwrap();
    for (name, options, expected) in [
        (
            "full",
            "size=1m",
            "MiB free, the checkpoint files of this run take about",
        ),
        ("ro", "ro,size=1m", "Read-only file system"),
    ] {
        let dir = root.join(name);
        if !mount(&dir, options) {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            break;
        }
        let out = dir.join("run");
        let result = contrast(&tiny(d, out.to_str().unwrap(), "1"));
        unmount(&dir);
        let line = failure(&result);
        assert!(line.contains(expected), "{name}: {line}");
        assert!(
            !String::from_utf8_lossy(&result.stderr).contains("epoch 1 done"),
            "{name}: it trained before failing"
        );
    }
    std::fs::remove_dir_all(&root).unwrap();
}
