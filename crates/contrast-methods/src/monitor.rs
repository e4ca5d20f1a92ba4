//! Evaluation during training: the loop runs each [`Monitor`] every few epochs and records what
//! it measured under its name.

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};

use contrast_core::{Encoder, Views, to_vec_f32};
use contrast_eval::{Features, KnnClassifier};

use crate::Error;
use crate::train::subset_indices;

/// The name under which [`KnnMonitor`] records its top-1.
pub const KNN_TOP1: &str = "knn_top1";

/// Something the training loop measures on the model between epochs: kNN accuracy on class
/// labels, STS Spearman correlation, graph classification accuracy.
pub trait Monitor<B: AutodiffBackend, M: AutodiffModule<B>> {
    /// The name of the value in epoch records and reports (`knn_top1`).
    fn name(&self) -> &str;

    /// Measures the model (in inference mode: `model.valid()`).
    ///
    /// # Errors
    /// What went wrong, for example data without labels.
    fn measure(&mut self, model: &M, device: &B::Device) -> Result<f64, Error>;
}

/// Embeddings of the instances `indices` of `views` (not augmented) by `encoder`, row-major on
/// the host, in batches of `batch_size`; returns the rows and their width.
pub fn embed<B, E, V>(
    encoder: &E,
    views: &V,
    indices: &[usize],
    batch_size: usize,
    device: &B::Device,
) -> (Vec<f32>, usize)
where
    B: Backend,
    E: Encoder<B>,
    V: Views<Input<B> = E::Input>,
{
    let mut out = Vec::new();
    let mut dim = encoder.output_dim();
    for chunk in indices.chunks(batch_size.max(1)) {
        let h = encoder.embed(views.plain::<B>(chunk, device));
        dim = h.dims()[1];
        out.extend(to_vec_f32(h));
    }
    (out, dim)
}

/// Weighted kNN top-1 (k = 200, T = 0.1, [`KnnClassifier`]) of the model's representations:
/// fixed seeded subsets of a labelled training split serve as memory, a subset of the test
/// split is classified.
#[derive(Debug, Clone)]
pub struct KnnMonitor<'a, V> {
    train: &'a V,
    test: &'a V,
    train_indices: Vec<usize>,
    test_indices: Vec<usize>,
    batch_size: usize,
}

impl<'a, V: Views> KnnMonitor<'a, V> {
    /// The monitor over `train_subset` training and `test_subset` test instances (0 = all),
    /// drawn once from `seed`, embedded in batches of `batch_size`.
    ///
    /// # Errors
    /// `InvalidConfig` when a split has no labels or the batch size is zero.
    pub fn new(
        train: &'a V,
        test: &'a V,
        (train_subset, test_subset): (usize, usize),
        seed: u64,
        batch_size: usize,
    ) -> Result<Self, Error> {
        for (name, v) in [("training", train), ("test", test)] {
            if v.labels().is_none() {
                return Err(contrast_core::Error::invalid_config(
                    "monitor",
                    "knn",
                    format!("the {name} split has no class labels"),
                )
                .into());
            }
        }
        contrast_core::ensure_positive("eval_batch_size", batch_size as f64)?;
        Ok(KnnMonitor {
            train,
            test,
            train_indices: subset_indices(train.len(), train_subset, seed ^ 0x6b6e6e),
            test_indices: subset_indices(test.len(), test_subset, seed ^ 0x7465_7374),
            batch_size,
        })
    }

    /// The training and test instances the monitor uses.
    pub fn subsets(&self) -> (&[usize], &[usize]) {
        (&self.train_indices, &self.test_indices)
    }

    /// kNN top-1 of features computed elsewhere for this monitor's subsets (row `r` of
    /// `train` belongs to training instance `subsets().0[r]`), e.g. raw pixels.
    ///
    /// # Errors
    /// As [`KnnClassifier::evaluate`].
    pub fn top1_of(&self, train: &[f32], test: &[f32], dim: usize) -> Result<f64, Error> {
        let labels = |v: &V, idx: &[usize]| -> (Vec<u32>, usize) {
            let l = v.labels().expect("checked in new");
            (idx.iter().map(|&i| l.values[i]).collect(), l.classes)
        };
        let (train_labels, classes) = labels(self.train, &self.train_indices);
        let (test_labels, _) = labels(self.test, &self.test_indices);
        let acc = KnnClassifier::default().evaluate(
            Features {
                data: train,
                labels: &train_labels,
                dim,
            },
            Features {
                data: test,
                labels: &test_labels,
                dim,
            },
            classes,
        )?;
        Ok(acc.top1)
    }
}

impl<B, M, V> Monitor<B, M> for KnnMonitor<'_, V>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    M::InnerModule: Encoder<B::InnerBackend>,
    V: Views<Input<B::InnerBackend> = <M::InnerModule as Encoder<B::InnerBackend>>::Input>,
{
    fn name(&self) -> &str {
        KNN_TOP1
    }

    fn measure(&mut self, model: &M, device: &B::Device) -> Result<f64, Error> {
        let inner = model.valid();
        let (train, dim) = embed(
            &inner,
            self.train,
            &self.train_indices,
            self.batch_size,
            device,
        );
        let (test, _) = embed(
            &inner,
            self.test,
            &self.test_indices,
            self.batch_size,
            device,
        );
        self.top1_of(&train, &test, dim)
    }
}

/// A semantic-similarity task for [`StsMonitor`]: sentence pairs as instance indices into a
/// views of unique sentences, with their gold scores.
#[derive(Debug, Clone)]
pub struct StsPairs {
    /// The task's name, the value's name in records (`sts_b_dev`).
    pub name: String,
    /// `(first, second)` instance indices of each pair.
    pub pairs: Vec<(usize, usize)>,
    /// One gold score per pair.
    pub gold: Vec<f64>,
}

/// STS Spearman x 100 of `encoder` on `task`: every sentence of `views` embedded once, the
/// cosine similarity of each pair ranked against the gold scores
/// ([`contrast_eval::sts_spearman`]).
///
/// # Errors
/// `InvalidConfig` for a task with fewer than two pairs or a pair index outside `views`.
pub fn sts_score<B, E, V>(
    encoder: &E,
    views: &V,
    task: &StsPairs,
    batch_size: usize,
    device: &B::Device,
) -> Result<f64, Error>
where
    B: Backend,
    E: Encoder<B>,
    V: Views<Input<B> = E::Input>,
{
    if let Some(&(a, b)) = task
        .pairs
        .iter()
        .find(|&&(a, b)| a >= views.len() || b >= views.len())
    {
        return Err(contrast_core::Error::invalid_config(
            "sts pairs",
            format!("({a}, {b})"),
            format!("{} has {} sentences", task.name, views.len()),
        )
        .into());
    }
    let all: Vec<usize> = (0..views.len()).collect();
    let (rows, dim) = embed(encoder, views, &all, batch_size, device);
    let gather = |pick: fn(&(usize, usize)) -> usize| -> Vec<f32> {
        task.pairs
            .iter()
            .flat_map(|p| rows[pick(p) * dim..(pick(p) + 1) * dim].iter().copied())
            .collect()
    };
    let (first, second) = (gather(|p| p.0), gather(|p| p.1));
    Ok(contrast_eval::sts_spearman(
        &first, &second, dim, &task.gold,
    )?)
}

/// STS Spearman of the model's representations on one task, see [`sts_score`].
#[derive(Debug, Clone)]
pub struct StsMonitor<'a, V> {
    views: &'a V,
    task: StsPairs,
    batch_size: usize,
}

impl<'a, V: Views> StsMonitor<'a, V> {
    /// The monitor of `task`, whose pairs index the sentences of `views`, embedded in batches
    /// of `batch_size`.
    ///
    /// # Errors
    /// `InvalidConfig` when the batch size is zero or the gold scores do not match the pairs.
    pub fn new(views: &'a V, task: StsPairs, batch_size: usize) -> Result<Self, Error> {
        contrast_core::ensure_positive("eval_batch_size", batch_size as f64)?;
        if task.gold.len() != task.pairs.len() {
            return Err(contrast_core::Error::invalid_config(
                "sts gold",
                task.gold.len(),
                format!("{} has {} pairs", task.name, task.pairs.len()),
            )
            .into());
        }
        Ok(StsMonitor {
            views,
            task,
            batch_size,
        })
    }
}

impl<B, M, V> Monitor<B, M> for StsMonitor<'_, V>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    M::InnerModule: Encoder<B::InnerBackend>,
    V: Views<Input<B::InnerBackend> = <M::InnerModule as Encoder<B::InnerBackend>>::Input>,
{
    fn name(&self) -> &str {
        &self.task.name
    }

    fn measure(&mut self, model: &M, device: &B::Device) -> Result<f64, Error> {
        sts_score(
            &model.valid(),
            self.views,
            &self.task,
            self.batch_size,
            device,
        )
    }
}

/// The name under which [`SvmMonitor`] records its accuracy.
pub const SVM_ACCURACY: &str = "svm_accuracy";

/// Graph classification accuracy of the model's representations: every instance of a labelled
/// split embedded, then an SVM under stratified cross-validation
/// ([`contrast_eval::SvmProtocol`], the InfoGraph/GraphCL protocol); records the mean over the
/// folds.
#[derive(Debug, Clone)]
pub struct SvmMonitor<'a, V> {
    views: &'a V,
    protocol: contrast_eval::SvmProtocol,
    batch_size: usize,
    last: Option<contrast_eval::CvAccuracy>,
    embeddings: Option<(Vec<f32>, usize)>,
}

impl<'a, V: Views> SvmMonitor<'a, V> {
    /// The monitor of `views` (which must have labels), embedded in batches of `batch_size`.
    ///
    /// # Errors
    /// `InvalidConfig` when the split has no labels or the batch size is zero.
    pub fn new(
        views: &'a V,
        protocol: contrast_eval::SvmProtocol,
        batch_size: usize,
    ) -> Result<Self, Error> {
        if views.labels().is_none() {
            return Err(contrast_core::Error::invalid_config(
                "monitor",
                "svm",
                "the split has no class labels",
            )
            .into());
        }
        contrast_core::ensure_positive("eval_batch_size", batch_size as f64)?;
        Ok(SvmMonitor {
            views,
            protocol,
            batch_size,
            last: None,
            embeddings: None,
        })
    }

    /// The full outcome (folds, standard deviation, chosen `C`) of the last measurement.
    pub fn last(&self) -> Option<&contrast_eval::CvAccuracy> {
        self.last.as_ref()
    }

    /// Embeds the whole split with `encoder` and keeps the embeddings for
    /// [`classify`](Self::classify); returns them (`[instances, dim]` row-major) and their
    /// width, so a run can also hand them to another classifier.
    pub fn embed<B, E>(&mut self, encoder: &E, device: &B::Device) -> (&[f32], usize)
    where
        B: Backend,
        E: Encoder<B>,
        V: Views<Input<B> = E::Input>,
    {
        let all: Vec<usize> = (0..self.views.len()).collect();
        let (rows, dim) = embed(encoder, self.views, &all, self.batch_size, device);
        let (rows, dim) = self.embeddings.insert((rows, dim));
        (rows.as_slice(), *dim)
    }

    /// Cross-validated accuracy of the embeddings of the last [`embed`](Self::embed).
    ///
    /// # Errors
    /// As [`contrast_eval::SvmProtocol::evaluate`].
    ///
    /// # Panics
    /// If nothing was embedded yet.
    pub fn classify(&mut self) -> Result<contrast_eval::CvAccuracy, Error> {
        let (rows, dim) = self.embeddings.as_ref().expect("embed before classify");
        let labels = self.views.labels().expect("checked in new");
        let acc = self
            .protocol
            .evaluate(rows, *dim, labels.values, labels.classes)?;
        self.last = Some(acc.clone());
        Ok(acc)
    }

    /// Cross-validated accuracy of `encoder`'s embeddings of the whole split:
    /// [`embed`](Self::embed), then [`classify`](Self::classify).
    ///
    /// # Errors
    /// As [`contrast_eval::SvmProtocol::evaluate`].
    pub fn evaluate<B, E>(
        &mut self,
        encoder: &E,
        device: &B::Device,
    ) -> Result<contrast_eval::CvAccuracy, Error>
    where
        B: Backend,
        E: Encoder<B>,
        V: Views<Input<B> = E::Input>,
    {
        self.embed(encoder, device);
        self.classify()
    }
}

impl<B, M, V> Monitor<B, M> for SvmMonitor<'_, V>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    M::InnerModule: Encoder<B::InnerBackend>,
    V: Views<Input<B::InnerBackend> = <M::InnerModule as Encoder<B::InnerBackend>>::Input>,
{
    fn name(&self) -> &str {
        SVM_ACCURACY
    }

    fn measure(&mut self, model: &M, device: &B::Device) -> Result<f64, Error> {
        let inner = model.valid();
        Ok(self.evaluate(&inner, device)?.mean)
    }
}

/// The name under which [`NodeMonitor`] records its test accuracy.
pub const NODE_ACCURACY: &str = "node_accuracy";

/// A node split: the nodes and their classes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSplit {
    /// Rows of the graph's node embeddings.
    pub nodes: Vec<usize>,
    /// The class of each.
    pub labels: Vec<u32>,
}

impl NodeSplit {
    /// The split's rows of `data` (row-major, `dim` wide), in the split's order.
    ///
    /// # Panics
    /// If a node's row is outside `data`.
    pub fn rows(&self, data: &[f32], dim: usize) -> Vec<f32> {
        self.nodes
            .iter()
            .flat_map(|&n| data[n * dim..(n + 1) * dim].iter().copied())
            .collect()
    }
}

/// Node classification on one graph (Planetoid's protocol): the encoder embeds every node of the
/// whole graph, a [`LinearProbe`](contrast_eval::LinearProbe) fits the training nodes' embeddings
/// and is scored on the test nodes.
#[derive(Debug, Clone)]
pub struct NodeMonitor<'a> {
    graph: &'a contrast_core::HostDenseViews,
    train: NodeSplit,
    test: NodeSplit,
    classes: usize,
    probe: contrast_eval::LinearProbe,
}

impl<'a> NodeMonitor<'a> {
    /// The monitor of `graph` (the whole graph as one block) with its `classes` classes.
    ///
    /// # Errors
    /// `InvalidConfig` when a split is empty or names a node the graph does not have.
    pub fn new(
        graph: &'a contrast_core::HostDenseViews,
        (train, test): (NodeSplit, NodeSplit),
        classes: usize,
        probe: contrast_eval::LinearProbe,
    ) -> Result<Self, Error> {
        if graph.windows != 1 {
            return Err(contrast_core::Error::invalid_config(
                "monitor",
                graph.windows,
                "node classification embeds the whole graph as one block",
            )
            .into());
        }
        let rows = graph.nodes;
        for (name, s) in [("train", &train), ("test", &test)] {
            if s.nodes.is_empty() || s.nodes.len() != s.labels.len() {
                return Err(contrast_core::Error::invalid_config(
                    "monitor",
                    name,
                    "a node split needs at least one node and one label per node",
                )
                .into());
            }
            if let Some(&bad) = s.nodes.iter().find(|&&n| n >= rows) {
                return Err(contrast_core::Error::invalid_config(
                    "monitor",
                    bad,
                    format!("the {name} split names a node of a graph of {rows}"),
                )
                .into());
            }
        }
        Ok(NodeMonitor {
            graph,
            train,
            test,
            classes,
            probe,
        })
    }

    /// Test accuracy (percent) of the probe on `encoder`'s node embeddings.
    ///
    /// # Errors
    /// As [`contrast_eval::LinearProbe::evaluate`].
    pub fn evaluate<B, E>(&self, encoder: &E, device: &B::Device) -> Result<f64, Error>
    where
        B: Backend,
        E: Encoder<B, Input = contrast_core::DenseGraphViews<B>>,
    {
        let input = contrast_core::DenseGraphViews::from_host(self.graph.clone(), device);
        let h = encoder.embed(input);
        let dim = h.dims()[1];
        let rows = to_vec_f32(h);
        let (train, test) = (self.train.rows(&rows, dim), self.test.rows(&rows, dim));
        let acc = self.probe.evaluate(
            Features {
                data: &train,
                labels: &self.train.labels,
                dim,
            },
            Features {
                data: &test,
                labels: &self.test.labels,
                dim,
            },
            self.classes,
        )?;
        Ok(acc.top1)
    }
}

impl<B, M> Monitor<B, M> for NodeMonitor<'_>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    M::InnerModule:
        Encoder<B::InnerBackend, Input = contrast_core::DenseGraphViews<B::InnerBackend>>,
{
    fn name(&self) -> &str {
        NODE_ACCURACY
    }

    fn measure(&mut self, model: &M, device: &B::Device) -> Result<f64, Error> {
        self.evaluate(&model.valid(), device)
    }
}
