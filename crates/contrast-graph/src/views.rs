//! The graph modality's [`Views`]: GraphCL's two augmented views of each graph of a TU set.

use burn::tensor::backend::Backend;
use contrast_core::{GraphBatch, HostGraphs, Labels, ViewMode, ViewPair, Views};

use crate::{Graph, GraphClAugment, TuDataset};

/// Packs graphs into one block-diagonal host batch.
///
/// # Panics
/// If a graph's `x` is not `nodes * feat` long or an edge names a node it does not have.
pub fn host_graphs<'g>(graphs: impl IntoIterator<Item = &'g Graph>, feat: usize) -> HostGraphs {
    let mut host = HostGraphs::new(feat, false);
    for g in graphs {
        host.push(&g.x, g.nodes, &g.edges, None);
    }
    host
}

/// GraphCL's views of a TU set (or of a subset of its graphs): each view is one augmentation
/// drawn from [`GraphClAugment::choices`], its randomness derived from (seed, epoch, graph's
/// index in the dataset, view), so batches repeat whatever the thread count, the batch
/// composition or a resume.
///
/// [`ViewMode::TwoAugmented`] gives two augmented views (the paper);
/// [`ViewMode::PlainAndAugmented`] the graph itself and one augmented view, which is what the
/// authors' unsupervised TU code trains on (`return data, data_aug`).
#[derive(Debug, Clone)]
pub struct GraphViews<'a> {
    data: &'a TuDataset,
    indices: Vec<usize>,
    labels: Vec<u32>,
    augment: GraphClAugment,
}

impl<'a> GraphViews<'a> {
    /// The views of every graph of `data`.
    ///
    /// # Errors
    /// When `augment` does not validate.
    pub fn new(data: &'a TuDataset, augment: GraphClAugment) -> Result<Self, crate::Error> {
        Self::subset(data, (0..data.len()).collect(), augment)
    }

    /// The views of the graphs `indices` of `data` (a fold of a cross-validation); instance
    /// `i` of the views is graph `indices[i]`.
    ///
    /// # Errors
    /// When `augment` does not validate or an index is not below `data.len()`.
    pub fn subset(
        data: &'a TuDataset,
        indices: Vec<usize>,
        augment: GraphClAugment,
    ) -> Result<Self, crate::Error> {
        augment.validate()?;
        if let Some(&bad) = indices.iter().find(|&&i| i >= data.len()) {
            return Err(contrast_core::Error::invalid_config(
                "indices",
                bad,
                format!("{} has {} graphs", data.name, data.len()),
            )
            .into());
        }
        let labels = indices.iter().map(|&i| data.labels[i]).collect();
        Ok(GraphViews {
            data,
            indices,
            labels,
            augment,
        })
    }

    /// The augmentation settings.
    pub fn augment(&self) -> &GraphClAugment {
        &self.augment
    }

    /// Graph `i` of the views (graph `indices[i]` of the dataset).
    ///
    /// # Panics
    /// If `i` is not below [`len`](Views::len).
    pub fn graph(&self, i: usize) -> &'a Graph {
        &self.data.graphs[self.indices[i]]
    }

    /// View `view` of instance `i` in `epoch`.
    fn augmented(&self, i: usize, epoch: usize, view: usize) -> Graph {
        let index = self.indices[i];
        self.augment.view(
            &self.data.graphs[index],
            self.data.feat_dim,
            epoch,
            index,
            view,
        )
    }
}

impl Views for GraphViews<'_> {
    type Host = (HostGraphs, HostGraphs);
    type Batch<B: Backend> = ViewPair<GraphBatch<B>>;
    type Input<B: Backend> = GraphBatch<B>;

    fn len(&self) -> usize {
        self.indices.len()
    }

    /// # Panics
    /// If an index is not below [`len`](Views::len).
    fn host_views(&self, mode: ViewMode, indices: &[usize], epoch: usize) -> Self::Host {
        let feat = self.data.feat_dim;
        let second: Vec<Graph> = indices
            .iter()
            .map(|&i| self.augmented(i, epoch, 1))
            .collect();
        let first = match mode {
            ViewMode::TwoAugmented => {
                let first: Vec<Graph> = indices
                    .iter()
                    .map(|&i| self.augmented(i, epoch, 0))
                    .collect();
                host_graphs(&first, feat)
            }
            ViewMode::PlainAndAugmented => {
                host_graphs(indices.iter().map(|&i| self.graph(i)), feat)
            }
        };
        (first, host_graphs(&second, feat))
    }

    fn to_device<B: Backend>(&self, host: Self::Host, device: &B::Device) -> Self::Batch<B> {
        ViewPair {
            first: GraphBatch::from_host(&host.0, device),
            second: GraphBatch::from_host(&host.1, device),
        }
    }

    /// # Panics
    /// If an index is not below [`len`](Views::len).
    fn plain<B: Backend>(&self, indices: &[usize], device: &B::Device) -> GraphBatch<B> {
        let host = host_graphs(indices.iter().map(|&i| self.graph(i)), self.data.feat_dim);
        GraphBatch::from_host(&host, device)
    }

    fn labels(&self) -> Option<Labels<'_>> {
        Some(Labels {
            values: &self.labels,
            classes: self.data.classes,
        })
    }
}
