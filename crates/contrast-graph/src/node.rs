//! MVGRL's node-level views (Hassani & Khasahmadi, ICML 2020,
//! <https://arxiv.org/abs/2006.05582>, as its node-classification code builds them): one
//! citation graph seen through its normalised adjacency and through its personalised-PageRank
//! diffusion, trained on windows of consecutive nodes, with the window's features shuffled
//! across its nodes as the negatives.

use burn::tensor::backend::Backend;
use contrast_core::{
    DenseGraphViews, HostDenseViews, ViewMode, Views, ensure_in_range, ensure_positive, mix_seed,
};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::{Planetoid, gcn_normalized, ppr_dense};

/// A graph's dense propagation matrices and row-normalised features, computed once.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeDiffusion {
    /// Number of nodes.
    pub nodes: usize,
    /// Width of the feature rows.
    pub feat: usize,
    /// Features with each row scaled to sum to 1 (rows of zeros stay zero), `[nodes, feat]`:
    /// how the reference's loader (DGL's citation sets) hands Cora and CiteSeer over.
    pub x: Vec<f32>,
    /// `D^-1/2 (A + I) D^-1/2`, dense `[nodes, nodes]`.
    pub adjacency: Vec<f32>,
    /// `alpha (I - (1 - alpha) D^-1/2 (A + I) D^-1/2)^-1`, dense `[nodes, nodes]` (thresholded
    /// and rescaled after [`threshold_and_scale`](Self::threshold_and_scale)).
    pub diffusion: Vec<f32>,
    /// The teleport probability of the diffusion.
    pub alpha: f64,
}

impl NodeDiffusion {
    /// The matrices of `graph` with teleport probability `alpha` (MVGRL: 0.2). The diffusion is
    /// exact ([`ppr_dense`], `O(nodes^3)`): seconds for Cora's 2708 nodes.
    ///
    /// # Errors
    /// When `alpha` is not in (0, 1].
    pub fn new(graph: &Planetoid, alpha: f64) -> Result<Self, crate::Error> {
        ensure_in_range("alpha", alpha, f64::MIN_POSITIVE, 1.0)?;
        let (n, f) = (graph.nodes, graph.feat_dim);
        let mut x = graph.x.clone();
        for row in x.chunks_mut(f.max(1)) {
            let sum: f32 = row.iter().sum();
            if sum != 0.0 {
                row.iter_mut().for_each(|v| *v /= sum);
            }
        }
        let mut adjacency = vec![0f32; n * n];
        let a = gcn_normalized(n, &graph.edges);
        for (&(r, c), &w) in a.edges.iter().zip(&a.weights) {
            adjacency[r as usize * n + c as usize] = w;
        }
        let diffusion = ppr_dense(n, &graph.edges, alpha)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        Ok(NodeDiffusion {
            nodes: n,
            feat: f,
            x,
            adjacency,
            diffusion,
            alpha,
        })
    }

    /// MVGRL's treatment of CiteSeer's diffusion (its `node/dataset.py`): entries below `eps`
    /// set to zero, `eps` the one of {1e-5, 1e-4, 1e-3, 1e-2} whose kept entries per node come
    /// closest to the graph's average degree (`directed_edges / nodes`), then every column
    /// scaled to [0, 1] by its minimum and maximum (scikit-learn's `MinMaxScaler`; a constant
    /// column becomes zero). Returns the `eps` chosen.
    pub fn threshold_and_scale(&mut self, directed_edges: usize) -> f64 {
        let n = self.nodes;
        let degree = directed_edges as f64 / n.max(1) as f64;
        // Each threshold's distance to the average degree, counted once (the first of equal
        // distances wins, as numpy's argmin).
        let gaps = [1e-5, 1e-4, 1e-3, 1e-2].map(|e: f64| {
            let kept = self
                .diffusion
                .iter()
                .filter(|&&v| f64::from(v) >= e)
                .count();
            (e, (degree - kept as f64 / n as f64).abs())
        });
        let (eps, _) = gaps
            .into_iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("four thresholds");
        for v in &mut self.diffusion {
            if f64::from(*v) < eps {
                *v = 0.0;
            }
        }
        for c in 0..n {
            let column = (0..n).map(|r| self.diffusion[r * n + c]);
            let (lo, hi) = column.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
            let range = if hi > lo { hi - lo } else { 1.0 };
            for r in 0..n {
                let v = &mut self.diffusion[r * n + c];
                *v = (*v - lo) / range;
            }
        }
        eps
    }

    /// The whole graph as one block, without corruption: the input that embeds every node.
    pub fn whole(&self) -> HostDenseViews {
        self.blocks(&[0], self.nodes, None)
    }

    /// Blocks of `size` nodes starting at `starts`, with each block's node order for the
    /// corrupted copy if given.
    fn blocks(&self, starts: &[usize], size: usize, shuffled: Option<Vec<u32>>) -> HostDenseViews {
        let (n, f, w) = (self.nodes, self.feat, starts.len());
        let mut x = Vec::with_capacity(w * size * f);
        let mut first = Vec::with_capacity(w * size * size);
        let mut second = Vec::with_capacity(w * size * size);
        for &s in starts {
            x.extend_from_slice(&self.x[s * f..(s + size) * f]);
            for r in s..s + size {
                first.extend_from_slice(&self.adjacency[r * n + s..r * n + s + size]);
                second.extend_from_slice(&self.diffusion[r * n + s..r * n + s + size]);
            }
        }
        HostDenseViews {
            windows: w,
            nodes: size,
            feat: f,
            x,
            shuffled,
            first,
            second,
        }
    }
}

/// MVGRL's node-level training views of one graph: each instance is a window of `size`
/// consecutive nodes whose first node is drawn uniformly from (seed, epoch, instance), as the
/// reference draws 4 window starts per step (`np.random.randint`); an epoch holds `per_epoch`
/// such windows, so its length is a choice of the recipe, not a property of the graph. Both
/// propagation matrices are restricted to the window, and an order of the window's nodes drawn
/// from the same stream makes its corrupted copy.
///
/// Both views of a training batch live in one [`DenseGraphViews`] (the view mode does not
/// apply: MVGRL's two views are the two matrices). Plain inputs are windows at evenly spaced
/// starts, without a corrupted copy, and embed as `size` rows per index (a node per row, not an
/// instance per row): node classification embeds [`NodeDiffusion::whole`] instead.
///
/// One difference from the reference: each window's node order is its own, drawn from (seed,
/// epoch, instance) so that a batch does not depend on which windows share it, where the
/// reference shuffles the 4 windows of a step with one permutation.
#[derive(Debug, Clone)]
pub struct NodeWindows<'a> {
    data: &'a NodeDiffusion,
    size: usize,
    per_epoch: usize,
    seed: u64,
}

impl<'a> NodeWindows<'a> {
    /// `per_epoch` windows of `size` nodes of `data` per epoch, drawn from the stream of `seed`.
    ///
    /// # Errors
    /// When `size` is 0 or above the graph's node count, or `per_epoch` is 0.
    pub fn new(
        data: &'a NodeDiffusion,
        size: usize,
        per_epoch: usize,
        seed: u64,
    ) -> Result<Self, crate::Error> {
        if size == 0 || size > data.nodes {
            return Err(contrast_core::Error::invalid_config(
                "sample_size",
                size,
                format!(
                    "a window must hold between 1 and the graph's {} nodes",
                    data.nodes
                ),
            )
            .into());
        }
        ensure_positive("windows_per_epoch", per_epoch as f64)?;
        Ok(NodeWindows {
            data,
            size,
            per_epoch,
            seed,
        })
    }

    /// Nodes per window.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Window `index` of `epoch`: its first node and the order of its nodes in the corrupted
    /// copy.
    pub fn window(&self, epoch: usize, index: usize) -> (usize, Vec<usize>) {
        let mut rng =
            Pcg64Mcg::seed_from_u64(mix_seed(mix_seed(self.seed, epoch as u64), index as u64));
        let start = rng.random_range(0..=self.data.nodes - self.size);
        let mut order: Vec<usize> = (0..self.size).collect();
        order.shuffle(&mut rng);
        (start, order)
    }
}

impl Views for NodeWindows<'_> {
    type Host = HostDenseViews;
    type Batch<B: Backend> = DenseGraphViews<B>;
    type Input<B: Backend> = DenseGraphViews<B>;

    fn len(&self) -> usize {
        self.per_epoch
    }

    fn host_views(&self, _mode: ViewMode, indices: &[usize], epoch: usize) -> HostDenseViews {
        let (starts, orders): (Vec<usize>, Vec<Vec<usize>>) =
            indices.iter().map(|&i| self.window(epoch, i)).unzip();
        let shuffled = orders.into_iter().flatten().map(|k| k as u32).collect();
        self.data.blocks(&starts, self.size, Some(shuffled))
    }

    fn to_device<B: Backend>(
        &self,
        host: HostDenseViews,
        device: &B::Device,
    ) -> DenseGraphViews<B> {
        DenseGraphViews::from_host(host, device)
    }

    fn plain<B: Backend>(&self, indices: &[usize], device: &B::Device) -> DenseGraphViews<B> {
        let last = self.data.nodes - self.size;
        let starts: Vec<usize> = indices
            .iter()
            .map(|&i| last * i / (self.per_epoch - 1).max(1))
            .collect();
        DenseGraphViews::from_host(self.data.blocks(&starts, self.size, None), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path 0 - 1 - 2 - 3 with two features.
    fn path() -> Planetoid {
        Planetoid {
            name: "path".into(),
            nodes: 4,
            feat_dim: 2,
            x: vec![1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0],
            edges: vec![(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)],
            labels: vec![Some(0), Some(1), Some(0), Some(1)],
            classes: 2,
            train: vec![0, 1],
            val: vec![2],
            test: vec![3],
        }
    }

    #[test]
    fn windows_cut_both_matrices_and_shuffle_the_features() {
        let d = NodeDiffusion::new(&path(), 0.2).unwrap();
        // Rows sum to 1 (or stay zero).
        assert_eq!(&d.x, &[0.5, 0.5, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        // D^-1/2 (A + I) D^-1/2: node 0 has degree 2 with its loop, node 1 degree 3.
        assert!((d.adjacency[0] - 0.5).abs() < 1e-6);
        assert!((d.adjacency[1] - 1.0 / 6f32.sqrt()).abs() < 1e-6);
        assert_eq!(d.adjacency[2], 0.0);
        // The diffusion is symmetric and connects every pair of the path.
        for i in 0..4 {
            for j in 0..4 {
                assert!(d.diffusion[i * 4 + j] > 0.0);
                assert!((d.diffusion[i * 4 + j] - d.diffusion[j * 4 + i]).abs() < 1e-6);
            }
        }

        let w = NodeWindows::new(&d, 3, 5, 7).unwrap();
        assert_eq!(w.len(), 5);
        let h = w.host_views(ViewMode::default(), &[1, 0], 0);
        assert_eq!((h.windows, h.nodes, h.feat), (2, 3, 2));
        let shuffled = h.shuffled.as_ref().unwrap();
        for (k, i) in [1usize, 0].into_iter().enumerate() {
            // Window k: rows s..s+3, columns s..s+3 of both matrices.
            let (s, order) = w.window(0, i);
            assert!(s <= 1);
            for r in 0..3 {
                let got = (k * 3 + r) * 3;
                let want = (s + r) * 4 + s;
                assert_eq!(&h.first[got..got + 3], &d.adjacency[want..want + 3]);
                assert_eq!(&h.second[got..got + 3], &d.diffusion[want..want + 3]);
            }
            assert_eq!(&h.x[k * 6..k * 6 + 6], &d.x[s * 2..s * 2 + 6]);
            // The corrupted copy's order is a permutation of the window's nodes.
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2]);
            let order: Vec<u32> = order.into_iter().map(|v| v as u32).collect();
            assert_eq!(&shuffled[k * 3..k * 3 + 3], &order[..]);
        }
        // The same again for the same (epoch, instance); both starts and other orders appear
        // over epochs.
        assert_eq!(h, w.host_views(ViewMode::default(), &[1, 0], 0));
        let drawn: Vec<_> = (0..20).map(|e| w.window(e, 1)).collect();
        assert!(drawn.iter().any(|d| d.0 == 0) && drawn.iter().any(|d| d.0 == 1));
        assert!(drawn.iter().any(|d| d.1 != drawn[0].1));
        let plain = w.plain::<contrast_core::testing::Flex>(&[0, 4], &Default::default());
        assert!(plain.shuffled.is_none());
        assert_eq!(plain.x.dims(), [2, 3, 2]);

        let whole = d.whole();
        assert_eq!((whole.windows, whole.nodes), (1, 4));
        assert!(whole.shuffled.is_none());
        assert_eq!(whole.second, d.diffusion);

        // CiteSeer's treatment: on the path every entry of the diffusion is above 1e-2, so the
        // four thresholds keep all 16 entries and tie; the first (1e-5) is taken, as numpy's
        // argmin does. The columns are then scaled to [0, 1].
        let mut t = d.clone();
        assert_eq!(t.threshold_and_scale(6), 1e-5);
        // Entries that the thresholds tell apart: a diagonal of 0.5 and one off-diagonal entry
        // of 2e-3 per row; 1 kept entry per node is nearest a degree of 1, so 1e-2.
        let mut u = d.clone();
        u.diffusion = (0..16)
            .map(|k| match (k / 4, k % 4) {
                (r, c) if r == c => 0.5,
                (r, c) if c == (r + 1) % 4 => 2e-3,
                _ => 5e-6,
            })
            .collect();
        assert_eq!(u.threshold_and_scale(4), 1e-2);
        assert_eq!(u.diffusion.iter().filter(|&&v| v > 0.0).count(), 4);
        let mut v = u.clone();
        v.diffusion = d.diffusion.iter().map(|_| 0.0).collect();
        // (A constant column becomes zero, not NaN.)
        v.threshold_and_scale(4);
        assert!(v.diffusion.iter().all(|&x| x == 0.0));
        for c in 0..4 {
            let column: Vec<f32> = (0..4).map(|r| t.diffusion[r * 4 + c]).collect();
            let lo = column.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = column.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert!(lo.abs() < 1e-6 && (hi - 1.0).abs() < 1e-6, "{column:?}");
        }

        assert!(NodeWindows::new(&d, 5, 1, 0).is_err());
        assert!(NodeWindows::new(&d, 0, 1, 0).is_err());
        assert!(NodeWindows::new(&d, 2, 0, 0).is_err());
        assert!(NodeDiffusion::new(&path(), 0.0).is_err());
    }
}
