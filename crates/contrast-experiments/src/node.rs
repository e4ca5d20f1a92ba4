//! The node-level graph job: MVGRL on a citation graph (Cora as the reference reads it, from
//! its LINQS files with pygcn's split; Cora and CiteSeer from the Planetoid files with their
//! standard split), evaluated as the paper does (a logistic-regression probe on the frozen
//! embeddings of the training nodes, scored on the test nodes), beside the same encoders at
//! random initialisation, the raw features and the published number.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use contrast_core::Views;
use contrast_encoders::GcnConfig;
use contrast_eval::{Features, LinearProbe};
use contrast_graph::{
    NodeDiffusion, NodeWindows, PYGCN_SPLIT, Planetoid, cora_dir, load_linqs, load_planetoid,
};
use contrast_methods::{
    EpochRecord, Method, Monitor, MvgrlNodeConfig, MvgrlNodeNet, NODE_ACCURACY, NodeMonitor,
    NodeSplit,
};

use crate::Error;
use crate::folder::{open_run, run_dir};
use crate::graph::{GraphOptions, MeanStd, graph_train_config, mean_std};
use crate::metrics::peak_memory_mib;
use crate::peers::train_with;
use crate::plot::{Series, line_chart};

/// MVGRL's published node-classification accuracies (Hassani & Khasahmadi 2020, Table 3: mean
/// and standard deviation over 50 runs of the classifier). Its Cora is pygcn's (the reference
/// loads it through DGL's `CoraDataset`), its CiteSeer Planetoid's.
pub const MVGRL_NODE_PUBLISHED: [(&str, f64, f64); 2] =
    [("cora", 86.8, 0.5), ("citeseer", 73.3, 0.5)];

/// The citation graphs the node-level job knows by name: `cora` (the reference's: pygcn's
/// files, node order and split), `cora-planetoid` and `citeseer` (the Planetoid files and split).
pub fn is_node_dataset(name: &str) -> bool {
    ["cora", "cora-planetoid", "citeseer"].contains(&name.to_ascii_lowercase().as_str())
}

/// Whether `name` is Cora as pygcn and the reference read it (its LINQS files).
fn is_pygcn_cora(name: &str) -> bool {
    name.eq_ignore_ascii_case("cora")
}

/// The settings a node-level MVGRL run used. Differences from the reference's
/// `node/train.py`: a fixed number of epochs (the reference stops when 20 steps in a row fail to
/// lower its best loss and reloads that step's weights), each window's node order drawn on its
/// own (the reference shares one per step), and one deterministic probe fit from zero weights
/// (the reference averages 50 fits from Xavier-initialised weights, and its CiteSeer weight
/// decay also reaches the bias).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecipe {
    /// Epochs per seed.
    pub epochs: usize,
    /// Windows drawn per epoch.
    pub windows_per_epoch: usize,
    /// Windows per step (the reference: 4).
    pub batch_size: usize,
    /// Nodes per window (the reference: 2000).
    pub sample_size: usize,
    /// Learning rate (Adam, constant).
    pub learning_rate: f64,
    /// Seeds.
    pub seeds: usize,
    /// The encoders (both alike).
    pub encoder: String,
    /// GCN layers.
    pub layers: usize,
    /// Width of the layers.
    pub hidden: usize,
    /// PPR teleport probability.
    pub alpha: f64,
    /// The classifier on the frozen embeddings.
    pub probe: LinearProbe,
    /// CiteSeer's diffusion as MVGRL treats it: the threshold below which entries were dropped
    /// before each column was scaled to [0, 1] (`NodeDiffusion::threshold_and_scale`); `None`:
    /// the exact diffusion.
    #[serde(default)]
    pub diffusion_threshold: Option<f64>,
}

/// One seed's outcome: test accuracies in percent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeSeedRun {
    /// The seed.
    pub seed: u64,
    /// The encoders at initialisation.
    pub random_init: f64,
    /// After training.
    pub trained: f64,
    /// Epoch records (the probe's test accuracy after each epoch under `node_accuracy`).
    pub epoch_records: Vec<EpochRecord>,
    /// Step losses.
    pub step_losses: Vec<f32>,
    /// Seconds of training.
    pub train_seconds: f64,
}

/// What `reproduce mvgrl --dataset cora` writes to `metrics.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeMetrics {
    /// `mvgrl`.
    pub method: String,
    /// The graph (`cora`, `cora-planetoid`, `citeseer`).
    pub dataset: String,
    /// Nodes.
    pub nodes: usize,
    /// Undirected edges.
    pub edges: usize,
    /// Classes.
    pub classes: usize,
    /// Feature width.
    pub feat_dim: usize,
    /// Training, validation and test nodes.
    pub split: (usize, usize, usize),
    /// Which split: pygcn's (Cora's LINQS files) or the Planetoid one.
    #[serde(default)]
    pub split_source: String,
    /// Parameters of both encoders and the discriminator.
    pub parameters: usize,
    /// The device string.
    pub device: String,
    /// Settings.
    pub recipe: NodeRecipe,
    /// The method's description.
    pub objective: String,
    /// Every seed.
    pub seeds: Vec<NodeSeedRun>,
    /// Trained, over seeds.
    pub trained: MeanStd,
    /// Random initialisation, over seeds.
    pub random_init: MeanStd,
    /// The probe on the row-normalised raw features.
    pub raw_features: f64,
    /// The paper's mean and standard deviation on this set.
    pub published: Option<(f64, f64)>,
    /// Seconds from start to report.
    pub total_seconds: f64,
    /// Peak resident memory.
    pub peak_memory_mib: Option<f64>,
    /// The command.
    pub command: String,
}

/// The graph `o` names. `cora`: pygcn's `cora.content` and `cora.cites` in `--data DIR`, else
/// in the cache (fetched from the `graphdatascience` wheel when missing), with pygcn's split.
/// Any other name: the Planetoid text layout in `--data DIR` or
/// `../shared/datasets/planetoid/text/<name>` (`cora-planetoid`: that folder's `cora`).
fn citation_graph(o: &GraphOptions) -> Result<Planetoid, Error> {
    if is_pygcn_cora(&o.dataset) {
        let dir = match &o.data {
            Some(d) => d.clone(),
            None => cora_dir(&o.job.cache)?,
        };
        if !dir.join("cora.content").is_file() {
            return Err(contrast_core::Error::invalid_config(
                "data",
                dir.display(),
                "holds no cora.content: `--dataset cora` reads pygcn's cora.content and \
                 cora.cites (the Planetoid files are `--dataset cora-planetoid`)",
            )
            .into());
        }
        return Ok(load_linqs(&dir, "cora", &PYGCN_SPLIT)?);
    }
    let name = o.dataset.to_ascii_lowercase();
    let folder = name.strip_suffix("-planetoid").unwrap_or(&name);
    let dir = match &o.data {
        Some(d) => d.clone(),
        None => {
            let shared = PathBuf::from("../shared/datasets/planetoid/text").join(folder);
            if !shared.is_dir() {
                return Err(contrast_core::Error::invalid_config(
                    "dataset",
                    &o.dataset,
                    "not found: pass --data DIR, the folder holding its features.txt, \
                     labels.txt, edges.txt and train_idx.txt, val_idx.txt, test_idx.txt",
                )
                .into());
            }
            shared
        }
    };
    let mut graph = load_planetoid(&dir)?;
    if name == "cora-planetoid" {
        graph.name = name;
    }
    Ok(graph)
}

/// The labelled nodes of `nodes`.
fn split(p: &Planetoid, nodes: &[u32]) -> NodeSplit {
    let (nodes, labels) = nodes
        .iter()
        .filter_map(|&n| p.labels[n as usize].map(|l| (n as usize, l)))
        .unzip();
    NodeSplit { nodes, labels }
}

fn node_recipe(o: &GraphOptions, nodes: usize) -> NodeRecipe {
    let q = o.job.quick;
    let citeseer = o.dataset.eq_ignore_ascii_case("citeseer");
    let layers = o.layers.unwrap_or(1);
    let hidden = o.hidden.unwrap_or(if q { 64 } else { 512 });
    NodeRecipe {
        epochs: o.job.epochs.unwrap_or(if q { 2 } else { 30 }),
        windows_per_epoch: if q { 8 } else { 40 },
        batch_size: o.job.batch_size.unwrap_or(4),
        sample_size: nodes.min(if q { 500 } else { 2000 }),
        learning_rate: o.job.learning_rate.unwrap_or(1e-3),
        seeds: o.seeds.unwrap_or(if q { 1 } else { 3 }),
        encoder: format!(
            "GCN of {layers} layer(s) of {hidden} (PReLU(S X W + b), S a dense block of the \
             view's matrix)"
        ),
        layers,
        hidden,
        alpha: 0.2,
        // The reference's classifier: Adam, lr 0.01, 300 full-batch steps, no weight decay.
        probe: LinearProbe {
            iterations: 300,
            learning_rate: 0.01,
            // ... with weight decay 0.01 on CiteSeer.
            weight_decay: if citeseer { 0.01 } else { 0.0 },
            standardise: false,
            cosine_decay: false,
        },
        diffusion_threshold: None,
    }
}

/// `contrast reproduce mvgrl --dataset cora`: MVGRL, node level (two one-layer GCNs over the
/// normalised adjacency and the PPR diffusion, bilinear discriminator against feature-shuffled
/// negatives), trained on windows of the graph for each seed; a logistic-regression probe on
/// every node's `h1 + h2` before, during (each epoch) and after training; writes `report.md`,
/// `metrics.json`, `loss.png` and `accuracy.png`.
///
/// # Errors
/// Data, training and report errors, each in one line.
pub fn reproduce_mvgrl_node<B: AutodiffBackend>(
    o: &GraphOptions,
    device: &B::Device,
) -> Result<NodeMetrics, Error> {
    let started = Instant::now();
    if o.batch_sampler.is_some() {
        return Err(contrast_core::Error::invalid_config(
            "batch_sampler",
            "on",
            "node-level MVGRL draws fresh windows of one graph every step: there are no fixed \
             instances for BatchSampler to arrange",
        )
        .into());
    }
    if o.train_encoders {
        return Err(contrast_core::Error::invalid_config(
            "train_encoders",
            "on",
            "node-level MVGRL always trains its encoders (the reference's node code registers them)",
        )
        .into());
    }
    if o.save_embeddings {
        return Err(contrast_core::Error::invalid_config(
            "save_embeddings",
            "on",
            "node-level MVGRL is scored by a linear probe on the split's nodes, not by the graph \
             SVM whose inputs this saves",
        )
        .into());
    }
    let _lock = open_run(&o.job.out, o.job.resume, o.job.overwrite)?;
    let data = citation_graph(o)?;
    let mut r = node_recipe(o, data.nodes);
    let t = Instant::now();
    let mut diffusion = NodeDiffusion::new(&data, r.alpha)?;
    if o.dataset.eq_ignore_ascii_case("citeseer") {
        r.diffusion_threshold = Some(diffusion.threshold_and_scale(data.edges.len()));
    }
    eprintln!(
        "{}: {} nodes, diffusion computed in {:.1} s",
        data.name,
        data.nodes,
        t.elapsed().as_secs_f64()
    );
    let whole = diffusion.whole();
    let (train, test) = (split(&data, &data.train), split(&data, &data.test));
    let monitor = NodeMonitor::new(&whole, (train.clone(), test.clone()), data.classes, r.probe)?;
    let raw_features = probe_raw(&diffusion, &train, &test, data.classes, r.probe)?;
    let config = MvgrlNodeConfig::new(
        GcnConfig::new(data.feat_dim)
            .with_hidden(r.hidden)
            .with_layers(r.layers),
    );
    let objective = Method::<B, MvgrlNodeNet<B>>::info(&config.init()?, r.batch_size).description;
    let parameters = config.init_model::<B>(device)?.num_params();
    std::fs::create_dir_all(&o.job.out).map_err(|e| Error::io(&o.job.out, e))?;
    let mut seeds = Vec::new();
    for seed in 0..r.seeds as u64 {
        B::seed(device, seed);
        let model = config.init_model::<B>(device)?;
        let random_init = monitor.evaluate(&model.valid(), device)?;
        let views = NodeWindows::new(&diffusion, r.sample_size, r.windows_per_epoch, seed)?;
        // The reference keeps Adam's learning rate constant.
        let mut train_config = graph_train_config(
            views.len(),
            (r.epochs, r.batch_size),
            (r.learning_rate, true),
            seed,
            None,
        );
        // Every window carries its own negatives: no batch is too small to keep.
        train_config.drop_last = false;
        train_config.batch_similarity = false;
        let mut monitors: Vec<Box<dyn Monitor<B, MvgrlNodeNet<B>> + '_>> =
            vec![Box::new(monitor.clone())];
        let out = o.job.out.join(format!("seed-{seed}"));
        let run = run_dir(
            &out,
            o.job.resume,
            o.job.overwrite,
            &[("dataset", o.dataset.clone())],
        );
        let t = Instant::now();
        let trained = train_with(
            &o.job.peers,
            &mut config.init()?,
            model,
            &views,
            &mut monitors,
            &train_config,
            &run,
            device,
        )?;
        let train_seconds = t.elapsed().as_secs_f64();
        let after = monitor.evaluate(&trained.model.valid(), device)?;
        eprintln!("seed {seed}: test accuracy {after:.2} (random init {random_init:.2})");
        seeds.push(NodeSeedRun {
            seed,
            random_init,
            trained: after,
            epoch_records: trained.history.epochs,
            step_losses: trained.history.step_losses,
            train_seconds,
        });
    }
    let published = MVGRL_NODE_PUBLISHED
        .iter()
        .find(|p| p.0.eq_ignore_ascii_case(&o.dataset))
        .map(|p| (p.1, p.2));
    let metrics = NodeMetrics {
        method: "mvgrl".into(),
        dataset: data.name.clone(),
        nodes: data.nodes,
        edges: data.edges.len() / 2,
        classes: data.classes,
        feat_dim: data.feat_dim,
        split: (data.train.len(), data.val.len(), data.test.len()),
        split_source: if is_pygcn_cora(&o.dataset) {
            "pygcn's split (nodes 0-139, 200-499 and 500-1499 in the order of cora.content)".into()
        } else {
            "the standard Planetoid split (Yang et al. 2016)".into()
        },
        parameters,
        device: o.job.device.clone(),
        objective,
        trained: mean_std(seeds.iter().map(|s| s.trained)),
        random_init: mean_std(seeds.iter().map(|s| s.random_init)),
        raw_features,
        published,
        recipe: r,
        seeds,
        total_seconds: started.elapsed().as_secs_f64(),
        peak_memory_mib: peak_memory_mib(),
        command: o.job.command.clone(),
    };
    write_node_report(&metrics, &o.job.out)?;
    Ok(metrics)
}

/// The probe on the raw (row-normalised) features.
fn probe_raw(
    d: &NodeDiffusion,
    train: &NodeSplit,
    test: &NodeSplit,
    classes: usize,
    probe: LinearProbe,
) -> Result<f64, Error> {
    let (a, b) = (train.rows(&d.x, d.feat), test.rows(&d.x, d.feat));
    let acc = probe.evaluate(
        Features {
            data: &a,
            labels: &train.labels,
            dim: d.feat,
        },
        Features {
            data: &b,
            labels: &test.labels,
            dim: d.feat,
        },
        classes,
    )?;
    Ok(acc.top1)
}

fn write_node_report(m: &NodeMetrics, out: &Path) -> Result<(), Error> {
    let json = serde_json::to_string_pretty(m).map_err(|e| Error::Report(e.to_string()))?;
    let mp = out.join("metrics.json");
    std::fs::write(&mp, json).map_err(|e| Error::io(&mp, e))?;
    let names: Vec<String> = m.seeds.iter().map(|s| format!("seed {}", s.seed)).collect();
    let series = |f: &dyn Fn(&NodeSeedRun) -> Vec<(f64, f64)>| -> Vec<Series<'_>> {
        m.seeds
            .iter()
            .zip(&names)
            .map(|(s, name)| Series { name, points: f(s) })
            .collect()
    };
    line_chart(
        &out.join("loss.png"),
        "MVGRL (node level) loss",
        "step",
        "loss",
        &series(&|s| {
            s.step_losses
                .iter()
                .enumerate()
                .map(|(i, &l)| (i as f64 + 1.0, f64::from(l)))
                .collect()
        }),
    )?;
    line_chart(
        &out.join("accuracy.png"),
        "MVGRL (node level) test accuracy of the probe",
        "epoch",
        "accuracy (%)",
        &series(&|s| {
            std::iter::once((0.0, s.random_init))
                .chain(
                    s.epoch_records.iter().filter_map(|e| {
                        e.monitor(NODE_ACCURACY).map(|a| (e.epoch as f64 + 1.0, a))
                    }),
                )
                .collect()
        }),
    )?;
    let r = &m.recipe;
    let pm = |v: &MeanStd| format!("{:.2} ± {:.2}", v.mean, v.std);
    let mut md = format!(
        "# MVGRL (node level) on {}\n\n{} nodes, {} edges, {} classes, {} binary features \
         (rows scaled to sum to 1); {}: {} / {} / {} (train / validation / test). \
         Two encoders, each a {} ({} parameters with the bilinear discriminator); first view \
         D^-1/2 (A + I) D^-1/2, second the exact PPR diffusion with alpha {}{}, both dense; \
         {} epochs of {} windows of {} consecutive nodes (start drawn uniformly, features \
         shuffled within the window as the negatives), {} windows per step, Adam lr {} \
         (constant), no early stopping; on `{}`. Objective: {}.\n\n\
         Test accuracy of a logistic-regression probe (softmax, {} full-batch Adam steps, lr \
         {}{}, weight decay {}, {}) fit on the {} \
         training nodes' embeddings h1 + h2 ({} wide), mean ± std over {} seed(s):\n\n\
         | embedding | test accuracy |\n|---|---|\n| MVGRL, trained | **{}** |\n\
         | same encoders, random initialisation | {} |\n| raw features | {:.2} |\n",
        m.dataset,
        m.nodes,
        m.edges,
        m.classes,
        m.feat_dim,
        if m.split_source.is_empty() {
            "standard split"
        } else {
            &m.split_source
        },
        m.split.0,
        m.split.1,
        m.split.2,
        r.encoder,
        m.parameters,
        r.alpha,
        r.diffusion_threshold.map_or(String::new(), |e| format!(
            " (entries below {e:e} dropped, then each column scaled to [0, 1], as MVGRL treats \
             CiteSeer)"
        )),
        r.epochs,
        r.windows_per_epoch,
        r.sample_size,
        r.batch_size,
        r.learning_rate,
        m.device,
        m.objective,
        r.probe.iterations,
        r.probe.learning_rate,
        if r.probe.cosine_decay {
            " (cosine decay)"
        } else {
            " (constant)"
        },
        r.probe.weight_decay,
        if r.probe.standardise {
            "features standardised on the training nodes"
        } else {
            "features as they are"
        },
        m.split.0,
        r.hidden,
        m.seeds.len(),
        pm(&m.trained),
        pm(&m.random_init),
        m.raw_features,
    );
    match m.published {
        Some((mean, std)) => md.push_str(&format!(
            "| MVGRL, published (Hassani & Khasahmadi 2020) | {mean:.1} ± {std:.1} |\n\n\
             Difference to the paper: {:+.2} points ({:.1} of its standard deviations).\n",
            m.trained.mean - mean,
            (m.trained.mean - mean) / std
        )),
        None if m.dataset == "cora-planetoid" => {
            let (_, mean, std) = MVGRL_NODE_PUBLISHED
                .iter()
                .find(|p| p.0 == "cora")
                .expect("the paper's Cora number is listed");
            md.push_str(&format!(
                "\nThe paper's Cora number ({mean:.1} ± {std:.1}) is on pygcn's split (`--dataset \
                 cora`); on this split DGI (Velickovic et al. 2019) reports 82.3 ± 0.6.\n"
            ));
        }
        None => md.push_str("\nThe paper reports no number for this set.\n"),
    }
    md.push_str("\n| seed | random init | trained | train s |\n|---|---|---|---|\n");
    for s in &m.seeds {
        md.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.0} |\n",
            s.seed, s.random_init, s.trained, s.train_seconds
        ));
    }
    md.push_str(&format!(
        "\nTotal {:.1} min, peak memory {}. Plots: `loss.png`, `accuracy.png` (the probe after \
         each epoch).\n\nCommand: `{}`\n",
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
    use crate::{JobOptions, PeerOptions};
    use contrast_core::testing::Flex;

    /// A 40-node graph of two communities (a ring each, plus one bridge), with features that
    /// hint at the community, written as a Planetoid folder.
    fn toy(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        let n = 40;
        let class = |i: usize| i * 2 / n;
        let features: String = (0..n)
            .map(|i| format!("{} {}\n", class(i), 2 + i % 3))
            .collect();
        let labels: String = (0..n).map(|i| format!("{}\n", class(i))).collect();
        let mut edges = String::new();
        for c in 0..2 {
            for k in 0..n / 2 {
                let (u, v) = (c * n / 2 + k, c * n / 2 + (k + 1) % (n / 2));
                edges.push_str(&format!("{} {}\n", u.min(v), u.max(v)));
            }
        }
        edges.push_str("0 20\n");
        let ids = |r: std::ops::Range<usize>| -> String { r.map(|i| format!("{i}\n")).collect() };
        let train: String = (0..n).step_by(4).map(|i| format!("{i}\n")).collect();
        for (name, body) in [
            ("features.txt", features),
            ("labels.txt", labels),
            ("edges.txt", edges),
            ("train_idx.txt", train),
            ("val_idx.txt", ids(1..3)),
            ("test_idx.txt", ids(20..40)),
        ] {
            std::fs::write(dir.join(name), body).unwrap();
        }
    }

    #[test]
    fn the_node_job_trains_probes_and_reports() {
        let root = std::env::temp_dir().join(format!("contrast-node-job-{}", std::process::id()));
        let data = root.join("toy");
        toy(&data);
        let o = GraphOptions {
            job: JobOptions {
                cache: root.join("cache"),
                out: root.join("out"),
                device: "flex".into(),
                peers: PeerOptions::default(),
                epochs: None,
                batch_size: Some(2),
                learning_rate: None,
                quick: true,
                resume: false,
                overwrite: true,
                command: "test".into(),
            },
            dataset: "toy".into(),
            data: Some(data),
            temperature: None,
            hidden: Some(8),
            layers: None,
            train_encoders: false,
            save_embeddings: false,
            constant_lr: false,
            seeds: None,
            batch_sampler: None,
        };
        let m = reproduce_mvgrl_node::<Flex>(&o, &Default::default()).unwrap();
        assert_eq!((m.nodes, m.classes, m.split), (40, 2, (10, 2, 20)));
        assert_eq!(m.recipe.sample_size, 40);
        assert_eq!(m.seeds.len(), 1);
        let s = &m.seeds[0];
        assert_eq!(s.step_losses.len(), 2 * 8 / 2);
        assert!(s.step_losses.iter().all(|l| l.is_finite()));
        // The probe ran after every epoch, and the final number is the last epoch's.
        let per_epoch: Vec<f64> = s
            .epoch_records
            .iter()
            .filter_map(|e| e.monitor(NODE_ACCURACY))
            .collect();
        assert_eq!(per_epoch.len(), 2);
        assert_eq!(per_epoch[1], s.trained);
        for acc in [s.trained, s.random_init, m.raw_features] {
            assert!((0.0..=100.0).contains(&acc), "{acc}");
        }
        // The features name the community: the raw probe separates it.
        assert_eq!(m.raw_features, 100.0);
        assert!(m.published.is_none());
        for f in ["report.md", "metrics.json", "loss.png", "accuracy.png"] {
            assert!(o.job.out.join(f).is_file(), "{f}");
        }
        let report = std::fs::read_to_string(o.job.out.join("report.md")).unwrap();
        assert!(report.contains("MVGRL (node level) on toy"), "{report}");

        // Options that do not apply are refused before any work.
        let mut bad = o.clone();
        bad.train_encoders = true;
        let e = reproduce_mvgrl_node::<Flex>(&bad, &Default::default()).unwrap_err();
        assert!(e.to_string().contains("train_encoders"), "{e}");
        let mut bad = o.clone();
        bad.save_embeddings = true;
        let e = reproduce_mvgrl_node::<Flex>(&bad, &Default::default()).unwrap_err();
        assert!(e.to_string().contains("save_embeddings"), "{e}");
        std::fs::remove_dir_all(&root).ok();
    }
}
