//! MVGRL's second view (Hassani & Khasahmadi 2020, <https://arxiv.org/abs/2006.05582>): the
//! personalised-PageRank diffusion of a graph, computed on the host.

use contrast_core::{Error as CoreError, ensure_in_range};

/// How the kept entries of a sparsified diffusion are scaled again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PprNorm {
    /// `D^-1/2 S D^-1/2` with `D` the row sums of the kept entries: what PyGCL's
    /// `compute_ppr` does after thresholding (`GDC().transition_matrix(..., 'sym')`); the
    /// result stays symmetric.
    #[default]
    Symmetric,
    /// Rows scaled to sum to 1 (a random-walk matrix, no longer symmetric).
    Row,
    /// The kept entries as they are.
    None,
}

/// Personalised-PageRank diffusion settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PprConfig {
    /// Teleport probability (MVGRL: 0.2).
    pub alpha: f64,
    /// Entries below it are dropped by [`ppr_sparse`] (1e-4 here; PyGCL's `compute_ppr`
    /// defaults to 0.1, MVGRL's node-level code picks among 1e-5..1e-2 by average degree).
    pub eps: f64,
    /// Scaling after the entries below `eps` are dropped.
    pub norm: PprNorm,
}

impl Default for PprConfig {
    fn default() -> Self {
        PprConfig {
            alpha: 0.2,
            eps: 1e-4,
            norm: PprNorm::Symmetric,
        }
    }
}

impl PprConfig {
    /// Checks `alpha` in (0, 1] and `eps` in [0, 1].
    ///
    /// # Errors
    /// [`contrast_core::Error::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<(), CoreError> {
        ensure_in_range("alpha", self.alpha, f64::MIN_POSITIVE, 1.0)?;
        ensure_in_range("eps", self.eps, 0.0, 1.0)
    }
}

/// A weighted directed edge list: `edges[i]` carries `weights[i]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WeightedEdges {
    /// `(row, column)` of each entry, sorted.
    pub edges: Vec<(u32, u32)>,
    /// The entry's value.
    pub weights: Vec<f32>,
}

/// The dense PPR matrix `S = alpha (I - (1 - alpha) D^-1/2 (A + I) D^-1/2)^-1`, row-major
/// `[nodes, nodes]`, where `A` is the 0/1 adjacency of `edges` (directed pairs; an undirected
/// graph lists both) and `D` the row sums of `A + I`. This is MVGRL's `compute_ppr` and
/// PyG's `GDC` exact PPR.
///
/// Solved by Gauss-Jordan elimination with partial pivoting in `f64`: `O(nodes^3)` time and
/// `O(nodes^2)` memory, meant for graphs of up to a few thousand nodes (TU graphs have at most
/// a few hundred). The matrix inverted is well conditioned: for an undirected graph its
/// eigenvalues lie in `[alpha, 2 - alpha]`.
///
/// # Panics
/// If an edge names a node at or above `nodes`.
pub fn ppr_dense(nodes: usize, edges: &[(u32, u32)], alpha: f64) -> Vec<f64> {
    let n = nodes;
    let mut a = vec![0.0f64; n * n];
    for i in 0..n {
        a[i * n + i] = 1.0;
    }
    for &(u, v) in edges {
        assert!(
            (u as usize) < n && (v as usize) < n,
            "ppr_dense: edge ({u}, {v}) in a graph of {n} nodes"
        );
        a[u as usize * n + v as usize] = 1.0;
    }
    let d: Vec<f64> = (0..n)
        .map(|i| a[i * n..(i + 1) * n].iter().sum::<f64>().sqrt().recip())
        .collect();
    // m = I - (1 - alpha) T, rhs = alpha I.
    let mut m = vec![0.0f64; n * n];
    let mut x = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            m[i * n + j] = -(1.0 - alpha) * d[i] * a[i * n + j] * d[j];
        }
        m[i * n + i] += 1.0;
        x[i * n + i] = alpha;
    }
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&p, &q| m[p * n + col].abs().total_cmp(&m[q * n + col].abs()))
            .unwrap_or(col);
        if pivot != col {
            for j in 0..n {
                m.swap(col * n + j, pivot * n + j);
                x.swap(col * n + j, pivot * n + j);
            }
        }
        let p = m[col * n + col];
        for j in 0..n {
            m[col * n + j] /= p;
            x[col * n + j] /= p;
        }
        for r in 0..n {
            let f = m[r * n + col];
            if r == col || f == 0.0 {
                continue;
            }
            for j in 0..n {
                m[r * n + j] -= f * m[col * n + j];
                x[r * n + j] -= f * x[col * n + j];
            }
        }
    }
    x
}

/// GCN's propagation matrix `D^-1/2 (A + I) D^-1/2` as a weighted edge list, self-loops
/// included: `A` is the 0/1 adjacency of `edges` (directed pairs; duplicates count once, a
/// listed self-loop is the same as the one added) and `D` the row sums of `A + I`. MVGRL's
/// first view (`normalize_adj(adj + I)` in its graph-classification code). Entries are
/// `(row, column)`, sorted, as [`ppr_exact`]'s.
///
/// # Panics
/// If an edge names a node at or above `nodes`.
pub fn gcn_normalized(nodes: usize, edges: &[(u32, u32)]) -> WeightedEdges {
    let n = nodes;
    let mut pairs: Vec<(u32, u32)> = (0..n as u32).map(|i| (i, i)).collect();
    for &(u, v) in edges {
        assert!(
            (u as usize) < n && (v as usize) < n,
            "gcn_normalized: edge ({u}, {v}) in a graph of {n} nodes"
        );
        pairs.push((u, v));
    }
    pairs.sort_unstable();
    pairs.dedup();
    let mut degree = vec![0.0f64; n];
    for &(u, _) in &pairs {
        degree[u as usize] += 1.0;
    }
    let weights = pairs
        .iter()
        .map(|&(u, v)| (degree[u as usize] * degree[v as usize]).sqrt().recip() as f32)
        .collect();
    WeightedEdges {
        edges: pairs,
        weights,
    }
}

/// The exact PPR diffusion as a weighted edge list: every non-zero entry of [`ppr_dense`]
/// (self-loops included; nodes in different components stay unconnected). MVGRL's graph
/// classification code feeds this dense matrix to its GCN.
///
/// # Panics
/// If an edge names a node at or above `nodes`.
pub fn ppr_exact(nodes: usize, edges: &[(u32, u32)], alpha: f64) -> WeightedEdges {
    keep_entries(nodes, &ppr_dense(nodes, edges, alpha), 0.0, PprNorm::None)
}

/// The PPR diffusion sparsified: entries below `config.eps` dropped, the rest scaled by
/// `config.norm` (PyGCL's `compute_ppr`: threshold, then symmetric normalisation). For
/// larger graphs, whose dense diffusion would have `nodes^2` edges.
///
/// # Panics
/// If an edge names a node at or above `nodes`.
pub fn ppr_sparse(nodes: usize, edges: &[(u32, u32)], config: &PprConfig) -> WeightedEdges {
    keep_entries(
        nodes,
        &ppr_dense(nodes, edges, config.alpha),
        config.eps,
        config.norm,
    )
}

/// The entries of `s` (`[n, n]`) at or above `eps` (and non-zero), scaled by `norm`.
fn keep_entries(n: usize, s: &[f64], eps: f64, norm: PprNorm) -> WeightedEdges {
    let keep = |v: f64| v != 0.0 && v >= eps;
    let rows: Vec<f64> = (0..n)
        .map(|i| s[i * n..(i + 1) * n].iter().filter(|&&v| keep(v)).sum())
        .collect();
    let scale = |i: usize, j: usize| match norm {
        PprNorm::None => 1.0,
        PprNorm::Row => 1.0 / rows[i],
        PprNorm::Symmetric => 1.0 / (rows[i] * rows[j]).sqrt(),
    };
    let mut out = WeightedEdges::default();
    for i in 0..n {
        for j in 0..n {
            let v = s[i * n + j];
            if keep(v) {
                out.edges.push((i as u32, j as u32));
                out.weights.push((v * scale(i, j)) as f32);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    /// By hand: one edge. A + I = [[1, 1], [1, 1]], D = 2 I, T = [[.5, .5], [.5, .5]],
    /// I - 0.8 T = [[.6, -.4], [-.4, .6]], determinant .2, inverse [[3, 2], [2, 3]],
    /// times alpha = 0.2: [[.6, .4], [.4, .6]].
    #[test]
    fn one_edge_matches_the_hand_computation() {
        let s = ppr_exact(2, &[(0, 1), (1, 0)], 0.2);
        assert_eq!(s.edges, vec![(0, 0), (0, 1), (1, 0), (1, 1)]);
        close(&s.weights, &[0.6, 0.4, 0.4, 0.6]);
        // A lone node: T = [1], S = 0.2 / 0.2 = 1.
        close(&ppr_exact(1, &[], 0.2).weights, &[1.0]);
    }

    /// A path of three nodes, by hand (numpy 2.x gives the same:
    /// `a = np.array([[1,1,0],[1,1,1],[0,1,1.]]); d = np.diag(a.sum(1) ** -.5);
    /// .2 * np.linalg.inv(np.eye(3) - .8 * d @ a @ d)`).
    /// T = [[1/2, 1/sqrt6, 0], [1/sqrt6, 1/3, 1/sqrt6], [0, 1/sqrt6, 1/2]]; the solution must
    /// satisfy (I - 0.8 T) S = 0.2 I, checked here entry by entry, and be symmetric.
    #[test]
    fn path_of_three_solves_the_system() {
        let edges = [(0, 1), (1, 0), (1, 2), (2, 1)];
        let s = ppr_dense(3, &edges, 0.2);
        let r6 = 6f64.sqrt().recip();
        let t = [0.5, r6, 0.0, r6, 1.0 / 3.0, r6, 0.0, r6, 0.5];
        for i in 0..3 {
            for j in 0..3 {
                let mut v = s[i * 3 + j];
                for k in 0..3 {
                    v -= 0.8 * t[i * 3 + k] * s[k * 3 + j];
                }
                let expected = if i == j { 0.2 } else { 0.0 };
                assert!((v - expected).abs() < 1e-12, "({i}, {j}): {v}");
                assert!((s[i * 3 + j] - s[j * 3 + i]).abs() < 1e-12);
            }
        }
        // The middle node keeps the most of its own mass among the ends' neighbours.
        assert!(s[0] > s[2] && s[4] > 0.2);
    }

    /// A path of three nodes with a duplicate pair and a listed self-loop: degrees of A + I
    /// are 2, 3, 2, so the entries are 1/2, 1/sqrt6, 1/3 (numpy: `d @ a @ d` as above).
    #[test]
    fn gcn_normalized_matches_the_hand_computation() {
        let edges = [(0, 1), (1, 0), (1, 2), (2, 1), (0, 1), (2, 2)];
        let a = gcn_normalized(3, &edges);
        assert_eq!(
            a.edges,
            vec![(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 1), (2, 2)]
        );
        let r6 = 6f32.sqrt().recip();
        close(&a.weights, &[0.5, r6, r6, 1.0 / 3.0, r6, r6, 0.5]);
        // A lone node keeps its self-loop of weight 1.
        close(&gcn_normalized(1, &[]).weights, &[1.0]);
    }

    #[test]
    fn sparsifying_drops_small_entries_and_renormalises() {
        // Two components: {0, 1} joined, {2} alone. Nothing flows between them.
        let edges = [(0, 1), (1, 0)];
        let s = ppr_exact(3, &edges, 0.2);
        assert_eq!(s.edges.len(), 5);
        let row = PprConfig {
            eps: 0.5,
            norm: PprNorm::Row,
            ..PprConfig::default()
        };
        // Entries >= 0.5: the diagonal 0.6, 0.6, 1.0; rows scaled to 1.
        let r = ppr_sparse(3, &edges, &row);
        assert_eq!(r.edges, vec![(0, 0), (1, 1), (2, 2)]);
        close(&r.weights, &[1.0, 1.0, 1.0]);
        // Symmetric scaling of the full one-edge matrix: rows sum to 1, so nothing changes.
        let sym = ppr_sparse(2, &edges, &PprConfig::default());
        close(&sym.weights, &[0.6, 0.4, 0.4, 0.6]);
        assert!(
            PprConfig {
                alpha: 0.0,
                ..PprConfig::default()
            }
            .validate()
            .is_err()
        );
    }
}
