use std::panic::{AssertUnwindSafe, catch_unwind};

use contrast_kernels::{MatMut, MatRef, Threads, matmul};
use kiddo::{KdTree, SquaredEuclidean};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_pcg::Pcg64Mcg;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use contrast_core::{Error, NORM_EPS, index_tensor, l2_normalize_row, mix_seed};

/// How the K most similar candidates of each instance are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NeighbourSearch {
    /// k-d tree (`kiddo`) for embeddings of at most 8 (`KDTREE_MAX_DIM`) dimensions and at least
    /// 256 (`KDTREE_MIN_CANDIDATES`) candidates (a tree per block only pays when it is searched
    /// many times over enough points), matrix product otherwise.
    Auto,
    /// Dot products of a block of rows against its candidates with one matrix product (`gemm`),
    /// then a partial selection per row.
    BruteForce,
    /// A k-d tree over each block's candidates (only for the dimensions in
    /// 2, 3, 4, 8 or 16 (`KDTREE_DIMS`); others fall back to [`NeighbourSearch::BruteForce`]).
    KdTree,
}

/// Dimensions compiled for the k-d tree path (kiddo fixes the dimension at compile time).
pub(crate) const KDTREE_DIMS: [usize; 5] = [2, 3, 4, 8, 16];

/// Largest dimension for which [`NeighbourSearch::Auto`] picks the k-d tree. Above a dozen
/// dimensions k-d trees lose to brute-force dot products (the curse of dimensionality).
pub(crate) const KDTREE_MAX_DIM: usize = 8;

/// Fewest candidates for which [`NeighbourSearch::Auto`] builds a k-d tree.
pub(crate) const KDTREE_MIN_CANDIDATES: usize = 256;

/// Most rows of a block; the rows of a block share one draw of candidates.
pub(crate) const BLOCK_ROWS: usize = 256;

/// Rows per block for `n` instances and `m` candidates: as many as keep the expected number of
/// instances that no block draws below 1/100.
///
/// With `n / b` blocks of `b` rows each drawing `m` of `n`, an instance is drawn by none with
/// probability `(1 - m/n)^(n/b) ~ exp(-m/b)`, so about `n exp(-m/b)` instances would get no
/// incoming edge (and enter a batch only as a walk's start); `b <= m / ln(100 n)` bounds that
/// by 0.01, as near to the reference code's per-row draws (`b = 1`) as makes no difference,
/// while the rows of a block still share one matrix product. With 256 rows per block, M = 150
/// of N = 20,000 left 55% of the instances without an incoming edge.
pub(crate) fn block_rows(n: usize, m: usize) -> usize {
    let b = (m as f64 / (100.0 * n as f64).ln()).floor();
    (b as usize).clamp(1, BLOCK_ROWS)
}

/// The proximity graph: for every instance, its `k` out-neighbours, the most cosine-similar of
/// `m` candidates drawn uniformly from the whole dataset.
///
/// Rows are processed in blocks that share their `m` candidates (drawn without replacement,
/// the row itself excluded after the search): every row still sees `m` uniform candidates, and
/// the search becomes one matrix product per block instead of `m` gathered dot products per row
/// (the reference code's per-row draw). Blocks hold at most 256 rows and few enough that every
/// instance is drawn by some block (`block_rows`: fewer than 0.01 instances expected to be left
/// out), so the graph reaches every instance as the reference's does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProximityGraph {
    /// Out-neighbours, `n * k`, row-major, most similar first.
    pub neighbours: Vec<u32>,
    /// Neighbours per node (may be below the requested `k` when `m <= k`).
    pub k: usize,
}

impl ProximityGraph {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.neighbours.len().checked_div(self.k).unwrap_or(0)
    }

    /// True for a graph without nodes.
    pub fn is_empty(&self) -> bool {
        self.neighbours.is_empty()
    }

    /// Out-neighbours of `node`.
    pub fn neighbours_of(&self, node: usize) -> &[u32] {
        &self.neighbours[node * self.k..(node + 1) * self.k]
    }

    /// Builds the graph from `n` embeddings of width `dim` (row-major; normalised here).
    ///
    /// # Errors
    /// `InvalidConfig` for `k == 0`, `m == 0`, fewer than 2 rows, a length that is not
    /// `n * dim`, or non-finite values.
    pub fn build(
        embeddings: &[f32],
        dim: usize,
        m: usize,
        k: usize,
        search: NeighbourSearch,
        seed: u64,
    ) -> Result<ProximityGraph, Error> {
        let Prepared { n, x, m, k: k_eff } = prepare(embeddings, dim, m, k)?;
        let block = block_rows(n, m);
        let use_tree = match search {
            // A tree per block pays only when many rows search it.
            NeighbourSearch::Auto => {
                dim <= KDTREE_MAX_DIM
                    && KDTREE_DIMS.contains(&dim)
                    && m >= KDTREE_MIN_CANDIDATES
                    && block >= 64
            }
            NeighbourSearch::KdTree => KDTREE_DIMS.contains(&dim),
            NeighbourSearch::BruteForce => false,
        };
        let mut neighbours = vec![0u32; n * k_eff];
        neighbours
            .par_chunks_mut(block * k_eff)
            .enumerate()
            .for_each(|(b, out)| {
                let start = b * block;
                let rows = out.len() / k_eff;
                let mut rng = Pcg64Mcg::seed_from_u64(mix_seed(seed, b as u64));
                let cands: Vec<usize> = sample(&mut rng, n, m).into_vec();
                let tree_result = use_tree
                    && catch_unwind(AssertUnwindSafe(|| {
                        kdtree_block(&x, dim, start, rows, &cands, k_eff, out)
                    }))
                    .is_ok();
                if !tree_result {
                    brute_block(&x, dim, start, rows, &cands, k_eff, out);
                }
            });
        Ok(ProximityGraph {
            neighbours,
            k: k_eff,
        })
    }
}

impl ProximityGraph {
    /// [`ProximityGraph::build`]'s brute-force search with the products and the top-K on a
    /// Burn device (for GPU backends, where a `[256, M]` product and its top-K are cheap and the
    /// host would be the bottleneck). Candidates are drawn exactly as on the host, so on
    /// tie-free data the graph equals the host's `NeighbourSearch::BruteForce` graph.
    ///
    /// # Errors
    /// As [`ProximityGraph::build`].
    pub fn build_on_device<B: burn::tensor::backend::Backend>(
        embeddings: &[f32],
        dim: usize,
        m: usize,
        k: usize,
        seed: u64,
        device: &B::Device,
    ) -> Result<ProximityGraph, Error> {
        use burn::tensor::{Tensor, TensorData};
        let Prepared { n, x, m, k: k_eff } = prepare(embeddings, dim, m, k)?;
        let all = Tensor::<B, 2>::from_data(TensorData::new(x, [n, dim]), device);
        let mut neighbours = vec![0u32; n * k_eff];
        let block = block_rows(n, m);
        for (b, out) in neighbours.chunks_mut(block * k_eff).enumerate() {
            let start = b * block;
            let rows = out.len() / k_eff;
            let mut rng = Pcg64Mcg::seed_from_u64(mix_seed(seed, b as u64));
            let cands: Vec<usize> = sample(&mut rng, n, m).into_vec();
            let idx = index_tensor::<B>(&cands, device);
            let c = all.clone().select(0, idx);
            let a = all.clone().slice(start..start + rows);
            // One extra in case the row itself is among its candidates.
            let take = (k_eff + 1).min(m);
            let (_, top) = a.matmul(c.transpose()).topk_with_indices(take, 1);
            let top: Vec<i64> = top.into_data().convert::<i64>().to_vec().expect("indices");
            for r in 0..rows {
                let node = start + r;
                fill(
                    &mut out[r * k_eff..(r + 1) * k_eff],
                    top[r * take..(r + 1) * take]
                        .iter()
                        .map(|&j| cands[j as usize])
                        .filter(|&c| c != node)
                        .map(|c| c as u32),
                    node,
                );
            }
        }
        Ok(ProximityGraph {
            neighbours,
            k: k_eff,
        })
    }
}

/// Normalised rows and the effective candidate and neighbour counts of a build.
struct Prepared {
    n: usize,
    x: Vec<f32>,
    m: usize,
    k: usize,
}

fn prepare(embeddings: &[f32], dim: usize, m: usize, k: usize) -> Result<Prepared, Error> {
    let n = validate(embeddings, dim, m, k)?;
    let mut x = embeddings.to_vec();
    x.par_chunks_mut(dim)
        .for_each(|r| l2_normalize_row(r, NORM_EPS));
    // Candidates exclude the row itself, so at most n - 1 are useful.
    let m = m.min(n);
    Ok(Prepared {
        n,
        x,
        m,
        k: k.min(m.saturating_sub(1)).max(1),
    })
}

/// Checks the inputs of a graph build and returns the number of rows.
fn validate(embeddings: &[f32], dim: usize, m: usize, k: usize) -> Result<usize, Error> {
    if dim == 0 || !embeddings.len().is_multiple_of(dim) {
        return Err(Error::invalid_config(
            "embeddings",
            embeddings.len(),
            format!("not a whole number of rows of width {dim}"),
        ));
    }
    let n = embeddings.len() / dim;
    if n < 2 {
        return Err(Error::invalid_config(
            "embeddings",
            n,
            "need at least 2 instances",
        ));
    }
    if m == 0 || k == 0 {
        return Err(Error::invalid_config(
            "candidates/neighbours",
            format!("M={m}, K={k}"),
            "both must be at least 1",
        ));
    }
    if let Some(i) = embeddings.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid_config(
            "embeddings",
            embeddings[i],
            format!("row {} is not finite", i / dim),
        ));
    }
    Ok(embeddings.len() / dim)
}

/// Top-`k` of `cands` by similarity for rows `start..start + rows`, excluding each row itself.
fn brute_block(
    x: &[f32],
    dim: usize,
    start: usize,
    rows: usize,
    cands: &[usize],
    k: usize,
    out: &mut [u32],
) {
    let m = cands.len();
    let c: Vec<f32> = cands
        .iter()
        .flat_map(|&j| x[j * dim..(j + 1) * dim].iter().copied())
        .collect();
    let a = &x[start * dim..(start + rows) * dim];
    let mut sims = vec![0f32; rows * m];
    matmul(
        MatMut::row_major(&mut sims, rows, m),
        MatRef::row_major(a, rows, dim),
        MatRef::row_major(&c, m, dim).t(),
        false,
        Threads::One,
    );
    let mut order: Vec<u32> = Vec::with_capacity(m);
    for r in 0..rows {
        let node = start + r;
        let row = &sims[r * m..(r + 1) * m];
        order.clear();
        order.extend((0..m as u32).filter(|&j| cands[j as usize] != node));
        let take = k.min(order.len());
        let by_sim =
            |a: &u32, b: &u32| row[*b as usize].total_cmp(&row[*a as usize]).then(a.cmp(b));
        if take < order.len() {
            order.select_nth_unstable_by(take - 1, by_sim);
        }
        order[..take].sort_unstable_by(by_sim);
        fill(
            &mut out[r * k..(r + 1) * k],
            order[..take].iter().map(|&j| cands[j as usize] as u32),
            node,
        );
    }
}

/// Writes `found` into `slot`, repeating the last neighbour (or `node` itself when nothing was
/// found) if fewer than `k` exist.
fn fill(slot: &mut [u32], found: impl Iterator<Item = u32>, node: usize) {
    let mut last = node as u32;
    let mut i = 0;
    for f in found.take(slot.len()) {
        slot[i] = f;
        last = f;
        i += 1;
    }
    for s in &mut slot[i..] {
        *s = last;
    }
}

fn kdtree_block(
    x: &[f32],
    dim: usize,
    start: usize,
    rows: usize,
    cands: &[usize],
    k: usize,
    out: &mut [u32],
) {
    macro_rules! run {
        ($($d:literal),*) => {
            match dim {
                $($d => kdtree_block_k::<$d>(x, start, rows, cands, k, out),)*
                _ => unreachable!("dimension {dim} has no k-d tree path"),
            }
        };
    }
    run!(2, 3, 4, 8, 16)
}

fn kdtree_block_k<const D: usize>(
    x: &[f32],
    start: usize,
    rows: usize,
    cands: &[usize],
    k: usize,
    out: &mut [u32],
) {
    let point =
        |i: usize| -> [f32; D] { x[i * D..(i + 1) * D].try_into().expect("row of width D") };
    let mut tree: KdTree<f32, D> = KdTree::new();
    for (j, &c) in cands.iter().enumerate() {
        tree.add(&point(c), j as u64);
    }
    for r in 0..rows {
        let node = start + r;
        let mut found = tree.nearest_n::<SquaredEuclidean>(&point(node), k + 1);
        // On unit vectors squared distance is 2 - 2 cos: same order as similarity. Ties are
        // broken by candidate position, as in the brute-force path.
        found.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.item.cmp(&b.item)));
        fill(
            &mut out[r * k..(r + 1) * k],
            found
                .iter()
                .map(|nn| cands[nn.item as usize])
                .filter(|&c| c != node)
                .map(|c| c as u32),
            node,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    fn random(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        (0..n * d).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    fn exact_knn(x: &[f32], d: usize, k: usize) -> Vec<Vec<u32>> {
        let n = x.len() / d;
        let mut xs = x.to_vec();
        xs.chunks_mut(d).for_each(|r| l2_normalize_row(r, NORM_EPS));
        (0..n)
            .map(|i| {
                let mut s: Vec<(f32, u32)> = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| {
                        (
                            (0..d).map(|t| xs[i * d + t] * xs[j * d + t]).sum(),
                            j as u32,
                        )
                    })
                    .collect();
                s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                s.iter().take(k).map(|p| p.1).collect()
            })
            .collect()
    }

    #[test]
    fn m_equal_n_gives_the_exact_knn_graph_on_both_paths() {
        for d in [3, 8, 16, 20] {
            let n = 300;
            let x = random(n, d, d as u64);
            let want = exact_knn(&x, d, 5);
            for search in [
                NeighbourSearch::BruteForce,
                NeighbourSearch::KdTree,
                NeighbourSearch::Auto,
            ] {
                let g = ProximityGraph::build(&x, d, n, 5, search, 1).unwrap();
                assert_eq!(g.len(), n);
                for (i, w) in want.iter().enumerate() {
                    assert_eq!(g.neighbours_of(i), &w[..], "d={d} {search:?} node {i}");
                }
            }
        }
    }

    #[test]
    fn tree_and_matrix_paths_agree_with_sampled_candidates() {
        let (n, d) = (1000, 8);
        let x = random(n, d, 4);
        let a = ProximityGraph::build(&x, d, 100, 10, NeighbourSearch::BruteForce, 9).unwrap();
        let b = ProximityGraph::build(&x, d, 100, 10, NeighbourSearch::KdTree, 9).unwrap();
        assert_eq!(a, b);
        assert!(a.neighbours.iter().all(|&j| (j as usize) < n));
        for i in 0..n {
            assert!(
                !a.neighbours_of(i).contains(&(i as u32)),
                "self loop at {i}"
            );
        }
    }

    #[test]
    fn device_path_matches_the_host_path() {
        let (n, d) = (700, 24);
        let x = random(n, d, 6);
        let host = ProximityGraph::build(&x, d, 150, 12, NeighbourSearch::BruteForce, 3).unwrap();
        let dev = ProximityGraph::build_on_device::<contrast_core::testing::Flex>(
            &x,
            d,
            150,
            12,
            3,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(host, dev);
    }

    /// Every instance gets an incoming edge, as with the reference code's per-row draws: with
    /// 256-row blocks sharing M = 150 candidates of N = 20,000, 55% got none (issue "Results
    /// that convince").
    #[test]
    fn no_instance_is_left_without_an_incoming_edge() {
        assert_eq!(block_rows(20_000, 150), 10);
        assert_eq!(block_rows(60_000, 1000), 64);
        assert_eq!(block_rows(100, 100_000), BLOCK_ROWS);
        assert_eq!(block_rows(1_000_000, 5), 1);
        // Ten Gaussian clusters in 32 dimensions, separation 1.
        let (n, d, k) = (20_000, 32, 100);
        let mut rng = Pcg64Mcg::seed_from_u64(12);
        let centres: Vec<f32> = (0..10 * d)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let x: Vec<f32> = (0..n * d)
            .map(|i| centres[(i / d % 10) * d + i % d] + rng.random_range(-0.5f32..0.5))
            .collect();
        let g = ProximityGraph::build(&x, d, 150, k, NeighbourSearch::Auto, 3).unwrap();
        let mut in_degree = vec![0u32; n];
        g.neighbours
            .iter()
            .for_each(|&j| in_degree[j as usize] += 1);
        let unreachable = in_degree.iter().filter(|&&c| c == 0).count();
        assert!(
            unreachable <= 2,
            "{unreachable} of {n} instances have no incoming edge"
        );
    }

    #[test]
    fn identical_points_and_bad_input() {
        // 100 identical rows overflow a k-d tree bucket: the build falls back, not panics.
        let x = vec![0.5f32; 100 * 2];
        let g = ProximityGraph::build(&x, 2, 100, 4, NeighbourSearch::KdTree, 0).unwrap();
        assert_eq!(g.len(), 100);
        assert!(ProximityGraph::build(&[1.0], 1, 1, 1, NeighbourSearch::Auto, 0).is_err());
        let msg = ProximityGraph::build(
            &[1.0, f32::NAN, 0.0, 1.0],
            2,
            2,
            1,
            NeighbourSearch::Auto,
            0,
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("row 0"), "{msg}");
    }
}
