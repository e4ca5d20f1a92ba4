//! GraphCL's four graph augmentations (You et al. 2020, <https://arxiv.org/abs/2010.13902>),
//! as the authors' unsupervised TU code applies them (`unsupervised_TU/aug.py`, the version
//! with the node-dropping and subgraph fixes), seeded per (seed, epoch, graph, view).

use std::collections::BTreeSet;

use contrast_core::{Error as CoreError, ensure_in_range, mix_seed};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use crate::Graph;

/// One of GraphCL's augmentations (or none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GraphAug {
    /// Node dropping: `node_drop` of the nodes lose all their edges.
    NodeDrop,
    /// Edge perturbation: `edge_perturb` of the undirected edges are removed and as many
    /// random new ones added.
    EdgePerturb,
    /// Attribute masking: the feature rows of `attr_mask` of the nodes are replaced by
    /// Gaussian noise.
    AttrMask,
    /// Subgraph: a neighbourhood expansion from a random node keeps `subgraph_keep` of the
    /// nodes; edges leaving it are removed.
    Subgraph,
    /// The graph unchanged.
    Identity,
}

impl GraphAug {
    /// GraphCL's `random4`: the pool a view draws from by default.
    pub const RANDOM4: [GraphAug; 4] = [
        GraphAug::NodeDrop,
        GraphAug::EdgePerturb,
        GraphAug::Subgraph,
        GraphAug::AttrMask,
    ];
}

/// GraphCL's augmentations, their ratios and the pool each view draws one augmentation from,
/// with the seed that makes every view a function of (seed, epoch, graph, view).
///
/// Defaults follow the authors' unsupervised TU code (`unsupervised_TU/aug.py`, bug-fixed):
/// - ratios: 10% of nodes dropped, 10% of edges perturbed, 10% of nodes masked, subgraphs of
///   20% of the nodes (the code keeps `int(0.2 n) + 1` nodes: its loop stops after passing
///   the target, and so does this one);
/// - `random4`: each view picks uniformly among the four;
/// - dropped nodes and nodes outside the subgraph stay, isolated, with their features (the
///   fixed code zeroes their rows of the adjacency and keeps `x`); `remove_dropped_nodes`
///   removes them instead, as the paper describes it;
/// - masked rows get noise drawn from N(0.5, 0.5^2) per feature (the code's
///   `np.random.normal(loc=0.5, scale=0.5)`), not zeros nor a mean token;
/// - the subgraph's frontier grows with every node added (the code's `set.union` result was
///   discarded, so it only ever sampled the start node's neighbours: that bug is fixed here).
///
/// Two departures, both documented choices: edges are perturbed as undirected pairs (the code
/// removes 10% of directed entries, which can leave one direction of an edge), and removed
/// edges are replaced by as many random non-edges, as the paper describes (the code's
/// addition is commented out; `add_edges = false` gives its behaviour). No self-loops are
/// added to the graphs: the code adds them for its GIN, here that is the encoder's business.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphClAugment {
    /// Fraction of nodes dropped.
    pub node_drop: f32,
    /// Fraction of undirected edges removed (and as many added).
    pub edge_perturb: f32,
    /// Fraction of nodes whose features are masked.
    pub attr_mask: f32,
    /// Fraction of nodes a subgraph keeps.
    pub subgraph_keep: f32,
    /// Add as many random edges as edge perturbation removes.
    pub add_edges: bool,
    /// Remove dropped nodes (and nodes outside a subgraph) instead of keeping them isolated.
    pub remove_dropped_nodes: bool,
    /// Mean of the masking noise.
    pub mask_mean: f32,
    /// Standard deviation of the masking noise.
    pub mask_std: f32,
    /// The augmentations a view picks from, uniformly.
    pub choices: Vec<GraphAug>,
    /// The seed of every view's random stream.
    pub seed: u64,
}

impl Default for GraphClAugment {
    fn default() -> Self {
        GraphClAugment {
            node_drop: 0.1,
            edge_perturb: 0.1,
            attr_mask: 0.1,
            subgraph_keep: 0.2,
            add_edges: true,
            remove_dropped_nodes: false,
            mask_mean: 0.5,
            mask_std: 0.5,
            choices: GraphAug::RANDOM4.to_vec(),
            seed: 0,
        }
    }
}

impl GraphClAugment {
    /// The default pool and ratios with `seed`.
    pub fn with_seed(seed: u64) -> Self {
        GraphClAugment {
            seed,
            ..Self::default()
        }
    }

    /// Checks the ratios and the pool.
    ///
    /// # Errors
    /// [`contrast_core::Error`] naming the field out of range or the empty pool.
    pub fn validate(&self) -> Result<(), CoreError> {
        for (name, r) in [
            ("node_drop", self.node_drop),
            ("edge_perturb", self.edge_perturb),
            ("attr_mask", self.attr_mask),
            ("subgraph_keep", self.subgraph_keep),
        ] {
            ensure_in_range(name, f64::from(r), 0.0, 1.0)?;
        }
        ensure_in_range("mask_std", f64::from(self.mask_std), 0.0, 1e6)?;
        ensure_in_range("mask_mean", f64::from(self.mask_mean), -1e6, 1e6)?;
        if self.choices.is_empty() {
            return Err(CoreError::invalid_config(
                "choices",
                "[]",
                "the pool of augmentations must name at least one",
            ));
        }
        Ok(())
    }

    /// The random stream of view `view` of graph `index` in `epoch` (as `contrast-vision`
    /// derives its images' streams).
    pub fn rng(&self, epoch: usize, index: usize, view: usize) -> Pcg64Mcg {
        let stream = ((index as u64) << 3) | view as u64;
        Pcg64Mcg::seed_from_u64(mix_seed(mix_seed(self.seed, epoch as u64), stream))
    }

    /// View `view` of graph `index` in `epoch`: one augmentation drawn from the pool, applied.
    ///
    /// # Panics
    /// If the pool is empty (see [`validate`](Self::validate)).
    pub fn view(
        &self,
        graph: &Graph,
        feat: usize,
        epoch: usize,
        index: usize,
        view: usize,
    ) -> Graph {
        assert!(
            !self.choices.is_empty(),
            "GraphClAugment: empty pool of augmentations"
        );
        let mut rng = self.rng(epoch, index, view);
        let aug = self.choices[rng.random_range(0..self.choices.len())];
        self.apply(aug, graph, feat, &mut rng)
    }

    /// Applies `aug` to `graph` (`feat` features per node) with the random stream `rng`.
    pub fn apply(&self, aug: GraphAug, graph: &Graph, feat: usize, rng: &mut Pcg64Mcg) -> Graph {
        match aug {
            GraphAug::Identity => graph.clone(),
            GraphAug::NodeDrop => {
                let drop = (graph.nodes as f32 * self.node_drop) as usize;
                let dropped = sample(graph.nodes, drop, rng);
                let mut keep = vec![true; graph.nodes];
                for d in dropped {
                    keep[d] = false;
                }
                self.restrict(graph, feat, &keep)
            }
            GraphAug::Subgraph => {
                let keep = subgraph_nodes(graph, self.subgraph_keep, rng);
                self.restrict(graph, feat, &keep)
            }
            GraphAug::EdgePerturb => perturb_edges(graph, self.edge_perturb, self.add_edges, rng),
            GraphAug::AttrMask => {
                let mut out = graph.clone();
                let masked = (graph.nodes as f32 * self.attr_mask) as usize;
                for i in sample(graph.nodes, masked, rng) {
                    for v in &mut out.x[i * feat..(i + 1) * feat] {
                        *v = self.mask_mean + self.mask_std * standard_normal(rng);
                    }
                }
                out
            }
        }
    }

    /// The graph with only the edges between kept nodes; the other nodes stay isolated, or
    /// go (re-indexed in order) with `remove_dropped_nodes`.
    fn restrict(&self, graph: &Graph, feat: usize, keep: &[bool]) -> Graph {
        let edges = graph
            .edges
            .iter()
            .copied()
            .filter(|&(u, v)| keep[u as usize] && keep[v as usize]);
        if !self.remove_dropped_nodes {
            return Graph {
                nodes: graph.nodes,
                edges: edges.collect(),
                x: graph.x.clone(),
            };
        }
        let mut new_id = vec![u32::MAX; graph.nodes];
        let mut x = Vec::new();
        let mut nodes = 0u32;
        for (i, &k) in keep.iter().enumerate() {
            if k {
                new_id[i] = nodes;
                nodes += 1;
                x.extend_from_slice(&graph.x[i * feat..(i + 1) * feat]);
            }
        }
        Graph {
            nodes: nodes as usize,
            edges: edges
                .map(|(u, v)| (new_id[u as usize], new_id[v as usize]))
                .collect(),
            x,
        }
    }
}

/// `k` distinct values of `0..n` (partial Fisher-Yates), `k <= n`.
fn sample(n: usize, k: usize, rng: &mut Pcg64Mcg) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    let k = k.min(n);
    for i in 0..k {
        let j = rng.random_range(i..n);
        all.swap(i, j);
    }
    all.truncate(k);
    all
}

/// A draw from N(0, 1) (Box-Muller).
fn standard_normal(rng: &mut Pcg64Mcg) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Neighbour lists of a graph whose edges are sorted by source.
fn neighbours(graph: &Graph) -> Vec<Vec<u32>> {
    let mut adj = vec![Vec::new(); graph.nodes];
    for &(u, v) in &graph.edges {
        adj[u as usize].push(v);
    }
    adj
}

/// GraphCL's subgraph: from a random node, repeatedly add a random node of the frontier
/// (neighbours of the nodes taken so far) until `int(keep * n) + 1` nodes are taken or the
/// frontier is empty.
fn subgraph_nodes(graph: &Graph, keep: f32, rng: &mut Pcg64Mcg) -> Vec<bool> {
    let n = graph.nodes;
    let mut taken = vec![false; n];
    if n == 0 {
        return taken;
    }
    let target = ((n as f32 * keep) as usize + 1).min(n);
    let adj = neighbours(graph);
    let start = rng.random_range(0..n);
    taken[start] = true;
    let mut count = 1;
    // The frontier as a sorted set, so the draw depends only on the seed.
    let mut frontier: BTreeSet<u32> = adj[start].iter().copied().collect();
    while count < target && !frontier.is_empty() {
        let pick = *frontier
            .iter()
            .nth(rng.random_range(0..frontier.len()))
            .unwrap_or(&0);
        frontier.remove(&pick);
        if taken[pick as usize] {
            continue;
        }
        taken[pick as usize] = true;
        count += 1;
        frontier.extend(adj[pick as usize].iter().filter(|&&v| !taken[v as usize]));
    }
    taken
}

/// Removes `int(ratio * m)` of the `m` undirected edges and, with `add`, adds as many random
/// node pairs that are neither edges nor self-loops (fewer where the graph is nearly
/// complete). Both directions of every edge are stored.
fn perturb_edges(graph: &Graph, ratio: f32, add: bool, rng: &mut Pcg64Mcg) -> Graph {
    let undirected: Vec<(u32, u32)> = graph.edges.iter().copied().filter(|(u, v)| u < v).collect();
    let m = undirected.len();
    let k = (m as f32 * ratio) as usize;
    let removed: BTreeSet<usize> = sample(m, k, rng).into_iter().collect();
    let mut present: BTreeSet<(u32, u32)> = undirected.iter().copied().collect();
    let mut kept: Vec<(u32, u32)> = undirected
        .iter()
        .enumerate()
        .filter(|(i, _)| !removed.contains(i))
        .map(|(_, &e)| e)
        .collect();
    let n = graph.nodes;
    if add && n >= 2 {
        let mut added = 0;
        let mut tries = 0;
        while added < k && tries < 20 * k + 20 {
            tries += 1;
            let (a, b) = (rng.random_range(0..n) as u32, rng.random_range(0..n) as u32);
            let e = (a.min(b), a.max(b));
            if a != b && present.insert(e) {
                kept.push(e);
                added += 1;
            }
        }
    }
    let mut edges: Vec<(u32, u32)> = kept.iter().flat_map(|&(u, v)| [(u, v), (v, u)]).collect();
    edges.sort_unstable();
    Graph {
        nodes: graph.nodes,
        edges,
        x: graph.x.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path 0 - 1 - ... - (n-1), features = node id.
    fn path(n: usize) -> Graph {
        let mut edges = Vec::new();
        for i in 0..n as u32 - 1 {
            edges.push((i, i + 1));
            edges.push((i + 1, i));
        }
        edges.sort_unstable();
        Graph {
            nodes: n,
            edges,
            x: (0..n).map(|i| i as f32).collect(),
        }
    }

    fn symmetric(g: &Graph) -> bool {
        let set: BTreeSet<_> = g.edges.iter().copied().collect();
        g.edges
            .iter()
            .all(|&(u, v)| set.contains(&(v, u)) && u != v && (u as usize) < g.nodes)
    }

    #[test]
    fn node_drop_isolates_ten_percent_of_nodes() {
        let a = GraphClAugment::default();
        let g = path(30);
        let out = a.apply(GraphAug::NodeDrop, &g, 1, &mut a.rng(0, 0, 0));
        assert_eq!(out.nodes, 30);
        assert_eq!(out.x, g.x);
        let isolated = out.degrees().iter().filter(|&&d| d == 0).count();
        // 3 dropped nodes, none of them an end of the path: 3 isolated; an end: fewer edges
        // lost. Either way, edges only disappear.
        assert!(isolated >= 3, "{isolated}");
        assert!(symmetric(&out));
        assert!(out.edges.iter().all(|e| g.edges.contains(e)));

        let removing = GraphClAugment {
            remove_dropped_nodes: true,
            ..a.clone()
        };
        let out = removing.apply(GraphAug::NodeDrop, &g, 1, &mut a.rng(0, 0, 0));
        assert_eq!((out.nodes, out.x.len()), (27, 27));
        assert!(symmetric(&out));
    }

    #[test]
    fn edge_perturbation_keeps_the_edge_count() {
        let a = GraphClAugment::default();
        let g = path(41);
        let out = a.apply(GraphAug::EdgePerturb, &g, 1, &mut a.rng(1, 2, 0));
        assert_eq!(out.undirected_edges(), 40);
        let common = out.edges.iter().filter(|e| g.edges.contains(e)).count();
        assert_eq!(common, 2 * 36);
        assert!(symmetric(&out));
        let no_add = GraphClAugment {
            add_edges: false,
            ..a.clone()
        };
        let out = no_add.apply(GraphAug::EdgePerturb, &g, 1, &mut a.rng(1, 2, 0));
        assert_eq!(out.undirected_edges(), 36);
    }

    #[test]
    fn attribute_masking_replaces_ten_percent_of_rows_with_noise() {
        let a = GraphClAugment::default();
        let g = Graph {
            nodes: 50,
            edges: vec![],
            x: vec![0.0; 100],
        };
        let out = a.apply(GraphAug::AttrMask, &g, 2, &mut a.rng(0, 0, 1));
        let changed = out
            .x
            .chunks(2)
            .filter(|r| r.iter().any(|&v| v != 0.0))
            .count();
        assert_eq!(changed, 5);
    }

    #[test]
    fn subgraph_is_connected_and_keeps_a_fifth_plus_one() {
        let a = GraphClAugment::default();
        let g = path(50);
        for seed in 0..20 {
            let out = a.apply(GraphAug::Subgraph, &g, 1, &mut a.rng(seed, 0, 0));
            // 11 nodes of a path, connected: 10 edges.
            assert_eq!(out.undirected_edges(), 10, "seed {seed}");
            assert!(symmetric(&out));
        }
    }

    #[test]
    fn views_depend_only_on_seed_epoch_graph_and_view() {
        let a = GraphClAugment::with_seed(7);
        let g = path(40);
        assert_eq!(a.view(&g, 1, 3, 5, 0), a.view(&g, 1, 3, 5, 0));
        let differs = (0..10).any(|e| a.view(&g, 1, e, 5, 0) != a.view(&g, 1, e, 5, 1));
        assert!(differs);
        assert!(
            GraphClAugment {
                choices: vec![],
                ..a.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            GraphClAugment {
                node_drop: 1.5,
                ..a
            }
            .validate()
            .is_err()
        );
    }
}
