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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GraphAug, NodeFeatures};
    use contrast_core::InstanceBatch;
    use contrast_core::testing::Flex;

    /// Paths of 3..3+n nodes, features = 1 per node, labels alternating.
    fn dataset(n: usize) -> TuDataset {
        let graphs: Vec<Graph> = (0..n)
            .map(|g| {
                let nodes = 3 + g;
                let mut edges = Vec::new();
                for i in 0..nodes as u32 - 1 {
                    edges.extend([(i, i + 1), (i + 1, i)]);
                }
                edges.sort_unstable();
                Graph {
                    nodes,
                    edges,
                    x: vec![1.0; nodes],
                }
            })
            .collect();
        TuDataset {
            name: "paths".into(),
            labels: (0..n as u32).map(|i| i % 2).collect(),
            graphs,
            classes: 2,
            label_values: vec![0, 1],
            feat_dim: 1,
            features: NodeFeatures::Attributes,
            duplicate_edges: 0,
            self_loops: 0,
        }
    }

    #[test]
    fn views_repeat_across_batchings_and_threads() {
        let data = dataset(12);
        let views = GraphViews::new(&data, GraphClAugment::with_seed(3)).unwrap();
        let whole = views.host_views(ViewMode::TwoAugmented, &[4, 9], 2);
        // The same graphs cut in another batch, on other threads.
        let shared = &views;
        let parts: Vec<_> = std::thread::scope(|s| {
            let h: Vec<_> = [[9usize, 1], [4, 0]]
                .into_iter()
                .map(|idx| s.spawn(move || shared.host_views(ViewMode::TwoAugmented, &idx, 2)))
                .collect();
            h.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let one = |h: &HostGraphs, g: u32| {
            let nodes: Vec<usize> = (0..h.nodes()).filter(|&i| h.node_graph[i] == g).collect();
            let first = nodes.first().copied().unwrap_or(0) as u32;
            let edges: Vec<(u32, u32)> = h
                .src
                .iter()
                .zip(&h.dst)
                .filter(|&(&s, _)| h.node_graph[s as usize] == g)
                .map(|(&s, &d)| (s - first, d - first))
                .collect();
            (nodes.len(), edges)
        };
        assert_eq!(one(&whole.0, 0), one(&parts[1].0, 0));
        assert_eq!(one(&whole.1, 1), one(&parts[0].1, 0));
        assert_ne!(
            views.host_views(ViewMode::TwoAugmented, &[9], 3),
            views.host_views(ViewMode::TwoAugmented, &[9], 2)
        );
    }

    #[test]
    fn plain_and_augmented_keeps_the_first_view_and_labels_follow_the_subset() {
        let data = dataset(6);
        let augment = GraphClAugment {
            choices: vec![GraphAug::EdgePerturb],
            add_edges: false,
            edge_perturb: 0.5,
            ..GraphClAugment::default()
        };
        let views = GraphViews::subset(&data, vec![5, 2], augment).unwrap();
        let (first, second) = views.host_views(ViewMode::PlainAndAugmented, &[0, 1], 0);
        assert_eq!(first, host_graphs([&data.graphs[5], &data.graphs[2]], 1));
        // 7 and 4 undirected edges, half (rounded down) removed.
        assert_eq!(second.edges(), 2 * (4 + 2));
        assert_eq!(views.labels().unwrap().values, &[1, 0]);

        let device = Default::default();
        let batch = views.to_device::<Flex>((first, second), &device);
        assert_eq!((batch.first.instances(), batch.first.nodes()), (2, 13));
        let plain = views.plain::<Flex>(&[1], &device);
        assert_eq!((plain.nodes(), plain.edges()), (5, 8));
        assert!(GraphViews::subset(&data, vec![6], GraphClAugment::default()).is_err());
    }
}
