use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use contrast_core::Error;

use crate::dim::{LocalGlobalLoss, LocalGlobalLossConfig, MiEstimator};
use crate::softplus;

/// Configuration of [`MvgrlLoss`].
#[derive(Config, Debug)]
pub struct MvgrlLossConfig {
    /// The estimator (MVGRL: Jensen-Shannon).
    #[config(default = "MiEstimator::JensenShannon")]
    pub estimator: MiEstimator,
}

impl MvgrlLossConfig {
    /// Nothing can be wrong with this config today; kept for a uniform entry-point contract.
    ///
    /// # Errors
    /// None at present.
    pub fn validate(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Builds the loss.
    pub fn init(&self) -> MvgrlLoss {
        MvgrlLoss {
            inner: LocalGlobalLossConfig::new()
                .with_estimator(self.estimator)
                .init(),
        }
    }
}

/// MVGRL's graph-level objective (Hassani & Khasahmadi, "Contrastive Multi-View Representation
/// Learning on Graphs", ICML 2020, <https://arxiv.org/abs/2006.05582>, as its
/// graph-classification code computes it): node features of one view against graph summaries
/// of the other, both directions.
///
/// With `l1`, `l2` the nodes of a batch of graphs in the two views (after the shared node MLP),
/// `g1`, `g2` the graphs (after the shared graph MLP), and scores `s = l . g` for every
/// (node, graph) pair of the batch, positives being a node with its own graph:
///
/// ```text
/// JSD(l, g) = E_neg[softplus(-s) + s - log 2] - E_pos[log 2 - softplus(-s)]
/// loss      = JSD(l1, g2) + JSD(l2, g1)
/// ```
///
/// `E_pos` averages over the nodes (one positive each), `E_neg` over the `nodes * (graphs - 1)`
/// other pairs. Each term is a [`LocalGlobalLoss`] with the node -> graph index as owners
/// (`softplus(-s) + s = softplus(s)`), so the other estimators are available too.
///
/// # Shapes
/// - `l1`, `l2`: `[nodes, d]`; `g1`, `g2`: `[graphs, d]`; `owner` of length `nodes`, each below
///   `graphs` -> scalar `[1]`
///
/// # Panics
/// If the widths differ, the two views' node or graph counts differ, `owner` has another length
/// than the nodes or names a graph out of range, or the batch holds a single graph (no
/// negative).
#[derive(Debug, Clone)]
pub struct MvgrlLoss {
    inner: LocalGlobalLoss,
}

impl MvgrlLoss {
    /// The cross-view loss of a batch; `owner[k]` is the graph of node `k` (both views share
    /// the nodes).
    pub fn forward<B: Backend>(
        &self,
        l1: Tensor<B, 2>,
        g1: Tensor<B, 2>,
        l2: Tensor<B, 2>,
        g2: Tensor<B, 2>,
        owner: &[usize],
    ) -> Tensor<B, 1> {
        assert!(
            l1.dims() == l2.dims() && g1.dims() == g2.dims(),
            "MvgrlLoss::forward: views of different shapes: nodes {:?} and {:?}, graphs {:?} and {:?}",
            l1.dims(),
            l2.dims(),
            g1.dims(),
            g2.dims()
        );
        self.inner.forward(l1, g2, owner) + self.inner.forward(l2, g1, owner)
    }
}

/// The graph of each node from the nodes of each graph (`[2, 1]` -> `[0, 0, 1]`): the owners
/// [`MvgrlLoss::forward`] takes, from a `GraphBatch`'s `nodes_per_graph`.
pub fn node_owners(nodes_per_graph: &[usize]) -> Vec<usize> {
    nodes_per_graph
        .iter()
        .enumerate()
        .flat_map(|(g, &n)| std::iter::repeat_n(g, n))
        .collect()
}

/// The objective of DGI (Velickovic et al., ICLR 2019) and of MVGRL's node-level model: binary
/// cross-entropy of a discriminator's scores, real (node, summary) pairs labelled 1 and
/// corrupted ones 0, averaged over every score as PyTorch's `BCEWithLogitsLoss` does:
///
/// ```text
/// loss = (sum softplus(-pos) + sum softplus(neg)) / (|pos| + |neg|)
/// ```
///
/// With as many positives as negatives this is half MVGRL's Jensen-Shannon estimate plus
/// `log 2`: the same optimum, the reference's scale.
///
/// # Shapes
/// - `pos`: `[a, b]`, `neg`: `[c, d]` (any sizes) -> scalar `[1]`
pub fn discriminator_loss<B: Backend>(pos: Tensor<B, 2>, neg: Tensor<B, 2>) -> Tensor<B, 1> {
    let count =
        (pos.dims().iter().product::<usize>() + neg.dims().iter().product::<usize>()) as f64;
    (softplus(pos.neg()).sum() + softplus(neg).sum()).div_scalar(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{inputs, matrix};
    use burn::tensor::backend::AutodiffBackend;
    use contrast_core::testing::{assert_close, finite_difference};
    use contrast_core::to_vec_f32;

    fn sp(x: f64) -> f64 {
        (1.0 + x.exp()).ln()
    }

    /// The JSD term as the reference writes it: `E_pos = sum over positives / nodes`,
    /// `E_neg = sum over negatives / (nodes * (graphs - 1))`.
    fn jsd(l: &[f64], g: &[f64], owner: &[usize], d: usize) -> f64 {
        let (m, n) = (owner.len(), g.len() / d);
        let ln2 = std::f64::consts::LN_2;
        let (mut pos, mut neg) = (0.0, 0.0);
        for k in 0..m {
            for j in 0..n {
                let s: f64 = (0..d).map(|t| l[k * d + t] * g[j * d + t]).sum();
                if owner[k] == j {
                    pos += ln2 - sp(-s);
                } else {
                    neg += sp(-s) + s - ln2;
                }
            }
        }
        neg / (m * (n - 1)) as f64 - pos / m as f64
    }

    fn mvgrl_matches_reference<B: AutodiffBackend>(device: &B::Device) {
        let (n, m, d) = (3, 7, 4);
        let owner = node_owners(&[2, 3, 2]);
        assert_eq!(owner, [0, 0, 1, 1, 1, 2, 2]);
        // x = l1, g1, l2, g2 flattened.
        let sizes = [m * d, n * d, m * d, n * d];
        let x = inputs(sizes.iter().sum(), 91);
        let split = |x: &[f64]| {
            let mut parts = Vec::new();
            let mut at = 0;
            for s in sizes {
                parts.push(x[at..at + s].to_vec());
                at += s;
            }
            parts
        };
        let reference = |x: &[f64]| {
            let p = split(x);
            jsd(&p[0], &p[3], &owner, d) + jsd(&p[2], &p[1], &owner, d)
        };
        let p = split(&x);
        let t: Vec<_> = p
            .iter()
            .zip([m, n, m, n])
            .map(|(v, rows)| matrix::<B>(v, rows, d, device).require_grad())
            .collect();
        let loss = MvgrlLossConfig::new().init();
        let v = loss.forward(
            t[0].clone(),
            t[1].clone(),
            t[2].clone(),
            t[3].clone(),
            &owner,
        );
        let grads = v.backward();
        let grad: Vec<f32> = t
            .iter()
            .flat_map(|t| to_vec_f32(t.grad(&grads).expect("a gradient")))
            .collect();
        assert_close(&to_vec_f32(v), &[reference(&x) as f32], 2e-5);
        let fd: Vec<f32> = finite_difference(reference, &x, 1e-6)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        assert_close(&grad, &fd, 2e-4);
    }

    contrast_core::backend_tests!(mvgrl_matches_reference);

    fn discriminator_loss_is_mean_binary_cross_entropy<B: AutodiffBackend>(device: &B::Device) {
        let x = inputs(10, 93);
        let reference = |x: &[f64]| {
            let pos: f64 = x[..6].iter().map(|&s| sp(-s)).sum();
            let neg: f64 = x[6..].iter().map(|&s| sp(s)).sum();
            (pos + neg) / 10.0
        };
        let pos = matrix::<B>(&x[..6], 2, 3, device).require_grad();
        let neg = matrix::<B>(&x[6..], 1, 4, device).require_grad();
        let v = discriminator_loss(pos.clone(), neg.clone());
        let grads = v.backward();
        let grad: Vec<f32> = [pos, neg]
            .iter()
            .flat_map(|t| to_vec_f32(t.grad(&grads).expect("a gradient")))
            .collect();
        assert_close(&to_vec_f32(v), &[reference(&x) as f32], 1e-5);
        let fd: Vec<f32> = finite_difference(reference, &x, 1e-6)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        assert_close(&grad, &fd, 1e-4);
        // Far-out scores stay finite.
        let big = matrix::<B>(&[200.0, -200.0], 1, 2, device);
        let v = to_vec_f32(discriminator_loss(big.clone(), big))[0];
        assert!((v - 100.0).abs() < 1e-3, "{v}");
    }

    contrast_core::backend_tests!(discriminator_loss_is_mean_binary_cross_entropy);

    #[test]
    #[should_panic(expected = "views of different shapes")]
    fn views_of_different_sizes_panic() {
        let device = Default::default();
        let z = |r| Tensor::<contrast_core::testing::Flex, 2>::ones([r, 4], &device);
        let _ = MvgrlLossConfig::new()
            .init()
            .forward(z(3), z(2), z(4), z(2), &[0, 0, 1]);
    }

    #[test]
    #[should_panic(expected = "needs at least 2 instances")]
    fn one_graph_has_no_negative() {
        let device = Default::default();
        let z = |r| Tensor::<contrast_core::testing::Flex, 2>::ones([r, 4], &device);
        let _ = MvgrlLossConfig::new()
            .init()
            .forward(z(3), z(1), z(3), z(1), &[0, 0, 0]);
    }
}
