//! MVGRL's views (Hassani & Khasahmadi, ICML 2020, <https://arxiv.org/abs/2006.05582>): each
//! graph seen through its normalised adjacency and through its personalised-PageRank diffusion.

use burn::tensor::backend::Backend;
use contrast_core::{GraphBatch, HostGraphs, Labels, ViewMode, ViewPair, Views, ensure_in_range};

use crate::{Graph, TuDataset, WeightedEdges, gcn_normalized, ppr_exact};

/// The two propagation matrices of one graph, as weighted edge lists (`(row, column)` entries).
#[derive(Debug, Clone, PartialEq)]
pub struct GraphDiffusion {
    /// `D^-1/2 (A + I) D^-1/2` ([`gcn_normalized`]).
    pub adjacency: WeightedEdges,
    /// The exact PPR diffusion ([`ppr_exact`]): dense within each connected component.
    pub diffusion: WeightedEdges,
}

impl GraphDiffusion {
    /// Both matrices of `graph`, with teleport probability `alpha`.
    ///
    /// # Panics
    /// If an edge names a node the graph does not have.
    pub fn new(graph: &Graph, alpha: f64) -> Self {
        GraphDiffusion {
            adjacency: gcn_normalized(graph.nodes, &graph.edges),
            diffusion: ppr_exact(graph.nodes, &graph.edges, alpha),
        }
    }
}

/// Appends `graph` to a weighted host batch with the propagation matrix `s`: entry
/// `(row, column)` becomes the edge `column -> row`, so that an encoder summing over incoming
/// edges computes `S X`.
fn push_weighted(host: &mut HostGraphs, graph: &Graph, s: &WeightedEdges) {
    let edges: Vec<(u32, u32)> = s.edges.iter().map(|&(r, c)| (c, r)).collect();
    host.push(&graph.x, graph.nodes, &edges, Some(&s.weights));
}

/// MVGRL's views of a TU set (or of a subset of its graphs): the first view of every graph is
/// its normalised adjacency `D^-1/2 (A + I) D^-1/2`, the second its PPR diffusion
/// `alpha (I - (1 - alpha) D^-1/2 (A + I) D^-1/2)^-1`, both as edge weights over the same node
/// features. Both are computed once per graph when the views are made (in `f64`, then stored as
/// `f32`), so batches depend on nothing but the graphs: no epoch, seed or thread.
///
/// Training batches and plain inputs are the same [`ViewPair`] (first: adjacency, second:
/// diffusion): MVGRL embeds a graph with both encoders.
#[derive(Debug, Clone)]
pub struct DiffusionViews<'a> {
    data: &'a TuDataset,
    indices: Vec<usize>,
    labels: Vec<u32>,
    matrices: Vec<GraphDiffusion>,
    alpha: f64,
}

impl<'a> DiffusionViews<'a> {
    /// The views of every graph of `data`, with teleport probability `alpha` (MVGRL: 0.2).
    ///
    /// # Errors
    /// When `alpha` is not in (0, 1].
    pub fn new(data: &'a TuDataset, alpha: f64) -> Result<Self, crate::Error> {
        Self::subset(data, (0..data.len()).collect(), alpha)
    }

    /// The views of the graphs `indices` of `data`; instance `i` is graph `indices[i]`.
    ///
    /// # Errors
    /// When `alpha` is not in (0, 1] or an index is not below `data.len()`.
    pub fn subset(
        data: &'a TuDataset,
        indices: Vec<usize>,
        alpha: f64,
    ) -> Result<Self, crate::Error> {
        ensure_in_range("alpha", alpha, f64::MIN_POSITIVE, 1.0)?;
        if let Some(&bad) = indices.iter().find(|&&i| i >= data.len()) {
            return Err(contrast_core::Error::invalid_config(
                "indices",
                bad,
                format!("{} has {} graphs", data.name, data.len()),
            )
            .into());
        }
        let labels = indices.iter().map(|&i| data.labels[i]).collect();
        let matrices = indices
            .iter()
            .map(|&i| GraphDiffusion::new(&data.graphs[i], alpha))
            .collect();
        Ok(DiffusionViews {
            data,
            indices,
            labels,
            matrices,
            alpha,
        })
    }

    /// The teleport probability.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The matrices of instance `i`.
    ///
    /// # Panics
    /// If `i` is not below [`len`](Views::len).
    pub fn matrices(&self, i: usize) -> &GraphDiffusion {
        &self.matrices[i]
    }

    /// Directed edges of both views over all instances (the diffusion's dominate: `nodes^2`
    /// per connected graph).
    pub fn edges(&self) -> (usize, usize) {
        self.matrices.iter().fold((0, 0), |(a, d), m| {
            (a + m.adjacency.edges.len(), d + m.diffusion.edges.len())
        })
    }

    fn host(&self, indices: &[usize]) -> (HostGraphs, HostGraphs) {
        let feat = self.data.feat_dim;
        let (mut first, mut second) = (HostGraphs::new(feat, true), HostGraphs::new(feat, true));
        for &i in indices {
            let graph = &self.data.graphs[self.indices[i]];
            push_weighted(&mut first, graph, &self.matrices[i].adjacency);
            push_weighted(&mut second, graph, &self.matrices[i].diffusion);
        }
        (first, second)
    }
}

impl Views for DiffusionViews<'_> {
    type Host = (HostGraphs, HostGraphs);
    type Batch<B: Backend> = ViewPair<GraphBatch<B>>;
    type Input<B: Backend> = ViewPair<GraphBatch<B>>;

    fn len(&self) -> usize {
        self.indices.len()
    }

    /// Both views of the instances `indices`; `mode` and `epoch` change nothing (the views are
    /// not random).
    ///
    /// # Panics
    /// If an index is not below [`len`](Views::len).
    fn host_views(&self, _mode: ViewMode, indices: &[usize], _epoch: usize) -> Self::Host {
        self.host(indices)
    }

    fn to_device<B: Backend>(&self, host: Self::Host, device: &B::Device) -> Self::Batch<B> {
        ViewPair {
            first: GraphBatch::from_host(&host.0, device),
            second: GraphBatch::from_host(&host.1, device),
        }
    }

    /// # Panics
    /// If an index is not below [`len`](Views::len).
    fn plain<B: Backend>(&self, indices: &[usize], device: &B::Device) -> Self::Input<B> {
        self.to_device(self.host(indices), device)
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
    use crate::NodeFeatures;
    use burn::tensor::Tensor;
    use contrast_core::testing::Flex;
    use contrast_core::to_vec_f32;

    /// A path of three nodes (features 1, 2, 3) and a single edge (features 4, 5).
    fn dataset() -> TuDataset {
        let graphs = vec![
            Graph {
                nodes: 3,
                edges: vec![(0, 1), (1, 0), (1, 2), (2, 1)],
                x: vec![1.0, 2.0, 3.0],
            },
            Graph {
                nodes: 2,
                edges: vec![(0, 1), (1, 0)],
                x: vec![4.0, 5.0],
            },
        ];
        TuDataset {
            name: "tiny".into(),
            labels: vec![1, 0],
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
    fn both_views_carry_their_matrices_and_propagate_as_s_x() {
        let data = dataset();
        let views = DiffusionViews::subset(&data, vec![1, 0], 0.2).unwrap();
        assert_eq!(views.labels().unwrap().values, &[0, 1]);
        // The edge: adjacency 1/2 everywhere; diffusion [[.6, .4], [.4, .6]] (by hand in
        // diffusion.rs). The path: 7 adjacency entries, 9 diffusion entries.
        assert_eq!(views.edges(), (4 + 7, 4 + 9));
        let (first, second) = views.host_views(ViewMode::TwoAugmented, &[0, 1], 0);
        assert_eq!((first.graphs, second.graphs), (2, 2));
        assert_eq!(first.x, vec![4.0, 5.0, 1.0, 2.0, 3.0]);
        assert_eq!(
            second.edge_weight.as_ref().unwrap()[..4],
            [0.6, 0.4, 0.4, 0.6]
        );
        // Not random: another epoch or mode gives the same batch.
        assert_eq!(
            views.host_views(ViewMode::PlainAndAugmented, &[0, 1], 7),
            (first.clone(), second.clone())
        );

        // On a device, summing weighted messages into each node computes S x.
        let device = Default::default();
        let pair = views.plain::<Flex>(&[1], &device);
        let s = ppr_exact(3, &data.graphs[0].edges, 0.2);
        let mut expected = [0.0f32; 3];
        for (&(r, c), &w) in s.edges.iter().zip(&s.weights) {
            expected[r as usize] += w * data.graphs[0].x[c as usize];
        }
        let g = &pair.second;
        let sx = Tensor::<Flex, 2>::zeros([3, 1], &device).select_assign(
            0,
            g.dst.clone(),
            g.x.clone().select(0, g.src.clone())
                * g.edge_weight.clone().unwrap().reshape([g.edges(), 1]),
            burn::tensor::IndexingUpdateOp::Add,
        );
        let sx = to_vec_f32(sx);
        for (a, b) in sx.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{sx:?} vs {expected:?}");
        }
        assert_eq!(pair.first.edges(), 7);
        assert!(DiffusionViews::new(&data, 0.0).is_err());
        assert!(DiffusionViews::subset(&data, vec![2], 0.2).is_err());
    }
}
