use core::ops::Range;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::{InstanceBatch, index_tensor};

/// Graphs on the host, batched block-diagonally (PyG's `Batch`): the node features of all
/// graphs one after the other, one edge list with each graph's node offset applied, and the
/// graph of every node. What a graph data crate builds on its prefetch thread and
/// [`GraphBatch::from_host`] moves to a device.
///
/// Nodes of graph `g` come before those of graph `g + 1`, and so do its edges: that order is
/// what lets a [`GraphBatch`] cut and join whole graphs from host-side counts. Build it with
/// [`HostGraphs::new`] and [`HostGraphs::push`], which keep the order.
#[derive(Debug, Clone, PartialEq)]
pub struct HostGraphs {
    /// Node features, row-major `[nodes, feat]`.
    pub x: Vec<f32>,
    /// Source node of every directed edge, a row of `x` (offsets applied).
    pub src: Vec<u32>,
    /// Target node of every directed edge, a row of `x` (offsets applied).
    pub dst: Vec<u32>,
    /// A weight per edge (MVGRL's diffusion), or `None` for unweighted graphs.
    pub edge_weight: Option<Vec<f32>>,
    /// The graph of every node, non-decreasing, each below `graphs`.
    pub node_graph: Vec<u32>,
    /// Number of graphs (some may have no node).
    pub graphs: usize,
    /// Width of a node's feature row.
    pub feat: usize,
}

impl HostGraphs {
    /// An empty batch of graphs with `feat` features per node, weighted or not.
    pub fn new(feat: usize, weighted: bool) -> Self {
        HostGraphs {
            x: Vec::new(),
            src: Vec::new(),
            dst: Vec::new(),
            edge_weight: weighted.then(Vec::new),
            node_graph: Vec::new(),
            graphs: 0,
            feat,
        }
    }

    /// Number of nodes, over all graphs.
    pub fn nodes(&self) -> usize {
        self.node_graph.len()
    }

    /// Number of directed edges, over all graphs.
    pub fn edges(&self) -> usize {
        self.src.len()
    }

    /// Appends one graph: `x` is `[nodes, feat]` row-major, `edges` are directed `(src, dst)`
    /// pairs of local node ids (below `nodes`), `weights` one per edge for a weighted batch.
    ///
    /// # Panics
    /// If `x` is not `nodes * feat` long, an edge names a node at or above `nodes`, or the
    /// weights do not match the batch (given for an unweighted one, missing or of another
    /// length for a weighted one).
    pub fn push(&mut self, x: &[f32], nodes: usize, edges: &[(u32, u32)], weights: Option<&[f32]>) {
        assert_eq!(
            x.len(),
            nodes * self.feat,
            "HostGraphs::push: x has {} values, {nodes} nodes x {} features need {}",
            x.len(),
            self.feat,
            nodes * self.feat
        );
        let offset = self.nodes() as u32;
        for &(s, d) in edges {
            assert!(
                (s as usize) < nodes && (d as usize) < nodes,
                "HostGraphs::push: edge ({s}, {d}) in a graph of {nodes} nodes"
            );
            self.src.push(s + offset);
            self.dst.push(d + offset);
        }
        match (&mut self.edge_weight, weights) {
            (Some(w), Some(new)) => {
                assert_eq!(
                    new.len(),
                    edges.len(),
                    "HostGraphs::push: {} weights for {} edges",
                    new.len(),
                    edges.len()
                );
                w.extend_from_slice(new);
            }
            (None, None) => {}
            (Some(_), None) => panic!("HostGraphs::push: a weighted batch needs edge weights"),
            (None, Some(_)) => panic!("HostGraphs::push: edge weights for an unweighted batch"),
        }
        self.x.extend_from_slice(x);
        self.node_graph
            .extend(std::iter::repeat_n(self.graphs as u32, nodes));
        self.graphs += 1;
    }

    /// Nodes and edges of each graph, checking the layout [`HostGraphs`] documents.
    ///
    /// # Panics
    /// If the arrays disagree in length, `node_graph` decreases or names a graph at or above
    /// `graphs`, an edge joins nodes of two graphs or names a node out of range, or edges are
    /// not grouped by graph in graph order.
    pub fn counts(&self) -> (Vec<usize>, Vec<usize>) {
        let n = self.nodes();
        assert_eq!(
            self.x.len(),
            n * self.feat,
            "HostGraphs: x has {} values, {n} nodes x {} features need {}",
            self.x.len(),
            self.feat,
            n * self.feat
        );
        assert_eq!(
            self.src.len(),
            self.dst.len(),
            "HostGraphs: {} sources, {} targets",
            self.src.len(),
            self.dst.len()
        );
        if let Some(w) = &self.edge_weight {
            assert_eq!(
                w.len(),
                self.src.len(),
                "HostGraphs: {} edge weights for {} edges",
                w.len(),
                self.src.len()
            );
        }
        let mut nodes = vec![0usize; self.graphs];
        let mut last = 0u32;
        for &g in &self.node_graph {
            assert!(
                g >= last && (g as usize) < self.graphs,
                "HostGraphs: node_graph must be non-decreasing and below {}, found {g} after {last}",
                self.graphs
            );
            nodes[g as usize] += 1;
            last = g;
        }
        let mut edges = vec![0usize; self.graphs];
        let mut last = 0u32;
        for (&s, &d) in self.src.iter().zip(&self.dst) {
            assert!(
                (s as usize) < n && (d as usize) < n,
                "HostGraphs: edge ({s}, {d}) out of {n} nodes"
            );
            let g = self.node_graph[s as usize];
            assert_eq!(
                g, self.node_graph[d as usize],
                "HostGraphs: edge ({s}, {d}) joins two graphs"
            );
            assert!(
                g >= last,
                "HostGraphs: edges are not grouped by graph (graph {g} after {last})"
            );
            edges[g as usize] += 1;
            last = g;
        }
        (nodes, edges)
    }
}

/// A batch of graphs on a device, block-diagonal like PyG's `Batch`: the input of graph
/// encoders (GIN, GCN), which gather by `src`, aggregate by `dst` and pool by `node_graph`.
///
/// The node and edge counts of each graph stay on the host, so that methods can cut, reorder
/// and join whole graphs ([`InstanceBatch`]) without reading the device. Nodes and edges are
/// stored graph after graph.
#[derive(Debug, Clone)]
pub struct GraphBatch<B: Backend> {
    /// Node features `[nodes, feat]`.
    pub x: Tensor<B, 2>,
    /// Source node of each directed edge `[edges]`, a row of `x`.
    pub src: Tensor<B, 1, Int>,
    /// Target node of each directed edge `[edges]`, a row of `x`.
    pub dst: Tensor<B, 1, Int>,
    /// Edge weights `[edges]`, or `None` for unweighted graphs.
    pub edge_weight: Option<Tensor<B, 1>>,
    /// The graph of each node `[nodes]`, non-decreasing (the pooling index).
    pub node_graph: Tensor<B, 1, Int>,
    /// Number of graphs (the rows a pooled embedding has).
    pub graphs: usize,
    /// Nodes of each graph, on the host.
    pub nodes_per_graph: Vec<usize>,
    /// Directed edges of each graph, on the host.
    pub edges_per_graph: Vec<usize>,
}

fn int_tensor<B: Backend>(values: Vec<i64>, device: &B::Device) -> Tensor<B, 1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

fn float_tensor<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// `node_graph` from the node counts: graph `g` repeated `counts[g]` times.
fn graph_ids(counts: &[usize]) -> Vec<i64> {
    counts
        .iter()
        .enumerate()
        .flat_map(|(g, &n)| std::iter::repeat_n(g as i64, n))
        .collect()
}

fn prefix(counts: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(counts.len() + 1);
    let mut acc = 0;
    out.push(0);
    for &c in counts {
        acc += c;
        out.push(acc);
    }
    out
}

impl<B: Backend> GraphBatch<B> {
    /// Moves host graphs to `device`.
    ///
    /// # Panics
    /// If `host` breaks the layout [`HostGraphs`] documents (see [`HostGraphs::counts`]).
    pub fn from_host(host: &HostGraphs, device: &B::Device) -> Self {
        let (nodes_per_graph, edges_per_graph) = host.counts();
        let widen = |v: &[u32]| v.iter().map(|&i| i64::from(i)).collect::<Vec<_>>();
        GraphBatch {
            x: float_tensor(host.x.clone(), [host.nodes(), host.feat], device),
            src: int_tensor(widen(&host.src), device),
            dst: int_tensor(widen(&host.dst), device),
            edge_weight: host
                .edge_weight
                .as_ref()
                .map(|w| float_tensor(w.clone(), [w.len()], device)),
            node_graph: int_tensor(widen(&host.node_graph), device),
            graphs: host.graphs,
            nodes_per_graph,
            edges_per_graph,
        }
    }

    /// Number of nodes, over all graphs.
    pub fn nodes(&self) -> usize {
        self.nodes_per_graph.iter().sum()
    }

    /// Number of directed edges, over all graphs.
    pub fn edges(&self) -> usize {
        self.edges_per_graph.iter().sum()
    }

    /// Width of a node's feature row.
    pub fn feat(&self) -> usize {
        self.x.dims()[1]
    }
}

/// Node-level views of one graph on the host: `windows` blocks of `nodes` nodes each, every
/// block with its node features, two dense propagation matrices (MVGRL's node-level input: the
/// normalised adjacency and the diffusion of the same nodes) and optionally an order of its
/// nodes that makes the corrupted copy (DGI's and MVGRL's negatives: the block's features
/// shuffled across its nodes). What [`DenseGraphViews::from_host`] moves to a device.
#[derive(Debug, Clone, PartialEq)]
pub struct HostDenseViews {
    /// Number of blocks.
    pub windows: usize,
    /// Nodes per block.
    pub nodes: usize,
    /// Width of a node's feature row.
    pub feat: usize,
    /// Features, row-major `[windows, nodes, feat]`.
    pub x: Vec<f32>,
    /// Per block, `nodes` indices into the block: row `k` of the corrupted copy is row
    /// `shuffled[b * nodes + k]` of block `b`. `None` for plain inputs.
    pub shuffled: Option<Vec<u32>>,
    /// First propagation matrix per block, row-major `[windows, nodes, nodes]`.
    pub first: Vec<f32>,
    /// Second propagation matrix per block, same layout.
    pub second: Vec<f32>,
}

/// [`HostDenseViews`] on a device: row `i` of a propagation matrix holds the weights with which
/// node `i` sums the nodes of its block, so that a GCN layer is `S (X W)`, one batched matrix
/// product. Dense on purpose: a diffusion matrix has an entry for nearly every pair of nodes in a
/// connected graph, which an edge list would only make slower.
#[derive(Debug, Clone)]
pub struct DenseGraphViews<B: Backend> {
    /// Features `[windows, nodes, feat]`.
    pub x: Tensor<B, 3>,
    /// The corrupted copy's rows `[windows * nodes]`, indices into the blocks' rows laid end to
    /// end (`b * nodes + k`, never leaving block `b`), if any. A permutation rather than a
    /// copy: `(P X) W = P (X W)`, so encoders project the features once for both.
    pub shuffled: Option<Tensor<B, 1, Int>>,
    /// First propagation matrix `[windows, nodes, nodes]`.
    pub first: Tensor<B, 3>,
    /// Second propagation matrix `[windows, nodes, nodes]`.
    pub second: Tensor<B, 3>,
}

impl<B: Backend> DenseGraphViews<B> {
    /// Moves host views to `device`.
    ///
    /// # Panics
    /// If a buffer's length disagrees with `windows`, `nodes` and `feat`, or a shuffled index
    /// is not below `nodes`.
    pub fn from_host(host: HostDenseViews, device: &B::Device) -> Self {
        let (w, n, f) = (host.windows, host.nodes, host.feat);
        for (name, len, want) in [
            ("x", host.x.len(), w * n * f),
            ("first", host.first.len(), w * n * n),
            ("second", host.second.len(), w * n * n),
            (
                "shuffled",
                host.shuffled.as_ref().map_or(w * n, Vec::len),
                w * n,
            ),
        ] {
            assert_eq!(
                len, want,
                "DenseGraphViews::from_host: {name} holds {len} values for {w} blocks of {n} nodes"
            );
        }
        let shuffled = host.shuffled.map(|order| {
            let rows = order
                .iter()
                .enumerate()
                .map(|(i, &k)| {
                    assert!(
                        (k as usize) < n,
                        "DenseGraphViews::from_host: shuffled index {k} in a block of {n} nodes"
                    );
                    ((i / n) * n) as i64 + i64::from(k)
                })
                .collect();
            int_tensor(rows, device)
        });
        DenseGraphViews {
            x: float_tensor(host.x, [w, n, f], device),
            shuffled,
            first: float_tensor(host.first, [w, n, n], device),
            second: float_tensor(host.second, [w, n, n], device),
        }
    }

    /// Number of blocks.
    pub fn windows(&self) -> usize {
        self.x.dims()[0]
    }

    /// Nodes per block.
    pub fn nodes(&self) -> usize {
        self.x.dims()[1]
    }
}

/// A graph is one row `[nodes, edges, features (nodes x feat), sources, targets, weights]`,
/// edges as node ids within the graph and weights only for a weighted batch: ragged, as wide as
/// the batch's largest graph needs. Written and read on the host (the counts say where each
/// part ends), exact for graphs below 2^24 nodes.
impl<B: Backend> crate::InstanceRows<B> for GraphBatch<B> {
    const AS_ROWS: bool = true;
    const RAGGED: bool = true;

    fn to_rows(&self) -> Option<Tensor<B, 2>> {
        let feat = self.feat();
        let x = crate::to_vec_f32(self.x.clone());
        let ints = |t: &Tensor<B, 1, Int>| {
            t.clone()
                .into_data()
                .convert::<i64>()
                .into_vec::<i64>()
                .expect("an int tensor converts to i64")
        };
        let (src, dst) = (ints(&self.src), ints(&self.dst));
        let weights = self.edge_weight.clone().map(crate::to_vec_f32);
        let per_edge = 2 + usize::from(weights.is_some());
        let (np, ep) = (prefix(&self.nodes_per_graph), prefix(&self.edges_per_graph));
        let width = (0..self.graphs)
            .map(|g| 2 + self.nodes_per_graph[g] * feat + self.edges_per_graph[g] * per_edge)
            .max()
            .unwrap_or(2);
        let mut rows = vec![0.0f32; self.graphs * width];
        for (g, row) in rows.chunks_mut(width).enumerate() {
            let (nodes, edges) = (np[g]..np[g + 1], ep[g]..ep[g + 1]);
            let offset = nodes.start as i64;
            let mut values = [nodes.len() as f32, edges.len() as f32]
                .into_iter()
                .chain(x[nodes.start * feat..nodes.end * feat].iter().copied())
                .chain(src[edges.clone()].iter().map(|&s| (s - offset) as f32))
                .chain(dst[edges.clone()].iter().map(|&d| (d - offset) as f32))
                .chain(
                    weights
                        .iter()
                        .flat_map(|w| w[edges.clone()].iter().copied()),
                );
            row.iter_mut().zip(&mut values).for_each(|(r, v)| *r = v);
        }
        Some(float_tensor(rows, [self.graphs, width], &self.x.device()))
    }

    /// # Panics
    /// If a row's counts ask for more values than the row holds or are not counts, or an edge
    /// names a node outside its graph.
    fn from_rows(rows: Tensor<B, 2>, like: &Self) -> Option<Self> {
        let [graphs, width] = rows.dims();
        let values = crate::to_vec_f32(rows);
        let (feat, weighted) = (like.feat(), like.edge_weight.is_some());
        let per_edge = 2 + usize::from(weighted);
        let mut host = HostGraphs::new(feat, weighted);
        for (g, row) in values.chunks(width.max(1)).take(graphs).enumerate() {
            let count =
                |v: f32| (v >= 0.0 && v.fract() == 0.0 && v < 16_777_216.0).then_some(v as usize);
            let sizes = row
                .get(..2)
                .and_then(|c| Some((count(c[0])?, count(c[1])?)));
            let need = sizes.map(|(n, e)| 2 + n * feat + e * per_edge);
            let (Some((nodes, edges)), Some(need)) = (sizes, need.filter(|&k| k <= width)) else {
                panic!(
                    "GraphBatch::from_rows: row {g} of {width} values does not hold the graph its \
                     counts {:?} describe",
                    row.get(..2)
                );
            };
            let x = &row[2..2 + nodes * feat];
            let ends = &row[2 + nodes * feat..need];
            let edge_list: Vec<(u32, u32)> = (0..edges)
                .map(|k| (ends[k] as u32, ends[edges + k] as u32))
                .collect();
            let w = weighted.then(|| &ends[2 * edges..3 * edges]);
            host.push(x, nodes, &edge_list, w);
        }
        Some(Self::from_host(&host, &like.x.device()))
    }
}

impl<B: Backend> InstanceBatch for GraphBatch<B> {
    fn instances(&self) -> usize {
        self.graphs
    }

    /// # Panics
    /// If `range` goes past the last graph.
    fn slice_instances(&self, range: Range<usize>) -> Self {
        assert!(
            range.start <= range.end && range.end <= self.graphs,
            "GraphBatch::slice_instances: {range:?} of {} graphs",
            self.graphs
        );
        let (np, ep) = (prefix(&self.nodes_per_graph), prefix(&self.edges_per_graph));
        let nodes = np[range.start]..np[range.end];
        let edges = ep[range.start]..ep[range.end];
        let device = self.x.device();
        let shift = np[range.start] as i64;
        let nodes_per_graph = self.nodes_per_graph[range.clone()].to_vec();
        GraphBatch {
            x: self.x.clone().slice(nodes),
            src: self.src.clone().slice(edges.clone()) - shift,
            dst: self.dst.clone().slice(edges.clone()) - shift,
            edge_weight: self.edge_weight.clone().map(|w| w.slice(edges)),
            node_graph: int_tensor(graph_ids(&nodes_per_graph), &device),
            graphs: range.len(),
            nodes_per_graph,
            edges_per_graph: self.edges_per_graph[range].to_vec(),
        }
    }

    /// Gathers the nodes and edges of the graphs `order`, re-offsetting the edges with shifts
    /// computed on the host.
    ///
    /// # Panics
    /// If an index is not below [`instances`](InstanceBatch::instances).
    fn select_instances(&self, order: &[usize]) -> Self {
        let (np, ep) = (prefix(&self.nodes_per_graph), prefix(&self.edges_per_graph));
        let (mut node_index, mut edge_index, mut shift) = (Vec::new(), Vec::new(), Vec::new());
        let (mut nodes_per_graph, mut edges_per_graph) = (Vec::new(), Vec::new());
        let mut new_offset = 0usize;
        for &g in order {
            assert!(
                g < self.graphs,
                "GraphBatch::select_instances: graph {g} of {}",
                self.graphs
            );
            node_index.extend(np[g]..np[g + 1]);
            edge_index.extend(ep[g]..ep[g + 1]);
            shift.extend(std::iter::repeat_n(
                new_offset as i64 - np[g] as i64,
                ep[g + 1] - ep[g],
            ));
            nodes_per_graph.push(self.nodes_per_graph[g]);
            edges_per_graph.push(self.edges_per_graph[g]);
            new_offset += self.nodes_per_graph[g];
        }
        let device = self.x.device();
        let nodes = index_tensor::<B>(&node_index, &device);
        let edges = index_tensor::<B>(&edge_index, &device);
        let shift = int_tensor::<B>(shift, &device);
        GraphBatch {
            x: self.x.clone().select(0, nodes),
            src: self.src.clone().select(0, edges.clone()) + shift.clone(),
            dst: self.dst.clone().select(0, edges.clone()) + shift,
            edge_weight: self.edge_weight.clone().map(|w| w.select(0, edges)),
            node_graph: int_tensor(graph_ids(&nodes_per_graph), &device),
            graphs: order.len(),
            nodes_per_graph,
            edges_per_graph,
        }
    }

    /// Joins the parts, offsetting each part's edges by the nodes before it.
    ///
    /// # Panics
    /// If `parts` is empty, their feature widths differ, or some are weighted and others not.
    fn concat(parts: Vec<Self>) -> Self {
        assert!(!parts.is_empty(), "GraphBatch::concat: no parts");
        let weighted = parts.iter().filter(|p| p.edge_weight.is_some()).count();
        assert!(
            weighted == 0 || weighted == parts.len(),
            "GraphBatch::concat: {weighted} of {} parts have edge weights",
            parts.len()
        );
        let feat = parts[0].feat();
        let device = parts[0].x.device();
        let (mut x, mut src, mut dst, mut w) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut nodes_per_graph, mut edges_per_graph) = (Vec::new(), Vec::new());
        let mut offset = 0usize;
        for p in parts {
            assert_eq!(
                p.feat(),
                feat,
                "GraphBatch::concat: parts with {feat} and {} features",
                p.feat()
            );
            let (nodes, edges) = (p.nodes(), p.edges());
            x.push(p.x);
            // Parts without edges add nothing (and no zero-length tensor to join).
            if edges > 0 {
                src.push(p.src + offset as i64);
                dst.push(p.dst + offset as i64);
                w.extend(p.edge_weight);
            }
            nodes_per_graph.extend(p.nodes_per_graph);
            edges_per_graph.extend(p.edges_per_graph);
            offset += nodes;
        }
        let join_int = |t: Vec<Tensor<B, 1, Int>>| {
            if t.is_empty() {
                int_tensor::<B>(Vec::new(), &device)
            } else {
                Tensor::cat(t, 0)
            }
        };
        let edge_weight = (weighted > 0).then(|| {
            if w.is_empty() {
                float_tensor::<B, 1>(Vec::new(), [0], &device)
            } else {
                Tensor::cat(w, 0)
            }
        });
        GraphBatch {
            x: Tensor::cat(x, 0),
            src: join_int(src),
            dst: join_int(dst),
            edge_weight,
            node_graph: int_tensor(graph_ids(&nodes_per_graph), &device),
            graphs: nodes_per_graph.len(),
            nodes_per_graph,
            edges_per_graph,
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn ints(t: &Tensor<Flex, 1, Int>) -> Vec<i64> {
        t.clone().into_data().convert::<i64>().to_vec().unwrap()
    }

    fn floats<const D: usize>(t: &Tensor<Flex, D>) -> Vec<f32> {
        t.clone().into_data().convert::<f32>().to_vec().unwrap()
    }

    /// Three graphs, one feature per node (the node's global id * 10 + graph): a triangle
    /// edge pair, a single node without edges, and a two-node edge.
    fn host(weighted: bool) -> HostGraphs {
        let mut h = HostGraphs::new(1, weighted);
        let w = |v: &[f32]| weighted.then(|| v.to_vec());
        h.push(
            &[0.0, 10.0, 20.0],
            3,
            &[(0, 1), (1, 0), (1, 2), (2, 1)],
            w(&[1.0, 1.0, 2.0, 2.0]).as_deref(),
        );
        h.push(&[31.0], 1, &[], w(&[]).as_deref());
        h.push(
            &[42.0, 52.0],
            2,
            &[(0, 1), (1, 0)],
            w(&[3.0, 4.0]).as_deref(),
        );
        h
    }

    #[test]
    fn push_applies_offsets_and_counts_read_them_back() {
        let h = host(false);
        assert_eq!(h.src, vec![0, 1, 1, 2, 4, 5]);
        assert_eq!(h.dst, vec![1, 0, 2, 1, 5, 4]);
        assert_eq!(h.node_graph, vec![0, 0, 0, 1, 2, 2]);
        assert_eq!(h.counts(), (vec![3, 1, 2], vec![4, 0, 2]));
    }

    #[test]
    fn slice_select_and_concat_move_whole_graphs() {
        let device = Default::default();
        let b = GraphBatch::<Flex>::from_host(&host(true), &device);
        assert_eq!(
            (b.instances(), b.nodes(), b.edges(), b.feat()),
            (3, 6, 6, 1)
        );

        let s = b.slice_instances(1..3);
        assert_eq!(floats(&s.x), vec![31.0, 42.0, 52.0]);
        assert_eq!(ints(&s.src), vec![1, 2]);
        assert_eq!(ints(&s.dst), vec![2, 1]);
        assert_eq!(ints(&s.node_graph), vec![0, 1, 1]);
        assert_eq!(floats(s.edge_weight.as_ref().unwrap()), vec![3.0, 4.0]);

        let r = b.select_instances(&[2, 0]);
        assert_eq!(floats(&r.x), vec![42.0, 52.0, 0.0, 10.0, 20.0]);
        assert_eq!(ints(&r.src), vec![0, 1, 2, 3, 3, 4]);
        assert_eq!(ints(&r.dst), vec![1, 0, 3, 2, 4, 3]);
        assert_eq!(ints(&r.node_graph), vec![0, 0, 1, 1, 1]);
        assert_eq!(
            floats(r.edge_weight.as_ref().unwrap()),
            vec![3.0, 4.0, 1.0, 1.0, 2.0, 2.0]
        );
        assert_eq!(
            (r.nodes_per_graph.clone(), r.edges_per_graph.clone()),
            (vec![2, 3], vec![2, 4])
        );

        // Cutting into pieces and joining them back gives the batch again.
        let j = GraphBatch::concat(vec![
            b.slice_instances(0..1),
            b.slice_instances(1..2),
            b.slice_instances(2..3),
        ]);
        assert_eq!(floats(&j.x), floats(&b.x));
        assert_eq!(ints(&j.src), ints(&b.src));
        assert_eq!(ints(&j.dst), ints(&b.dst));
        assert_eq!(ints(&j.node_graph), ints(&b.node_graph));
        assert_eq!(j.edges_per_graph, vec![4, 0, 2]);
    }

    #[test]
    fn a_batch_without_edges_joins() {
        let device = Default::default();
        let b = GraphBatch::<Flex>::from_host(&host(false), &device);
        let lone = b.slice_instances(1..2);
        assert_eq!(lone.edges(), 0);
        let j = GraphBatch::concat(vec![lone.clone(), lone]);
        assert_eq!((j.graphs, j.nodes(), j.edges()), (2, 2, 0));
        assert_eq!(ints(&j.src), Vec::<i64>::new());
        assert_eq!(ints(&j.node_graph), vec![0, 1]);
    }

    #[test]
    #[should_panic(expected = "joins two graphs")]
    fn an_edge_across_graphs_panics() {
        let mut h = host(false);
        h.dst[0] = 4;
        let _ = GraphBatch::<Flex>::from_host(&h, &Default::default());
    }

    #[test]
    #[should_panic(expected = "weights for an unweighted batch")]
    fn weights_for_an_unweighted_batch_panic() {
        let mut h = HostGraphs::new(1, false);
        h.push(&[1.0, 2.0], 2, &[(0, 1)], Some(&[1.0]));
    }

    fn dense(shuffled: Option<Vec<u32>>, second: usize) -> HostDenseViews {
        HostDenseViews {
            windows: 2,
            nodes: 2,
            feat: 1,
            x: vec![1.0, 2.0, 3.0, 4.0],
            shuffled,
            first: vec![0.5; 8],
            second: vec![0.25; second],
        }
    }

    #[test]
    fn dense_views_offset_each_block_s_shuffled_rows() {
        let v = DenseGraphViews::<Flex>::from_host(
            dense(Some(vec![1, 0, 0, 1]), 8),
            &Default::default(),
        );
        assert_eq!((v.windows(), v.nodes()), (2, 2));
        assert_eq!(ints(v.shuffled.as_ref().unwrap()), [1, 0, 2, 3]);
        assert_eq!(floats(&v.x), [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    #[should_panic(expected = "second holds 7 values")]
    fn dense_views_of_the_wrong_size_panic() {
        let _ = DenseGraphViews::<Flex>::from_host(dense(None, 7), &Default::default());
    }

    #[test]
    fn graphs_written_as_rows_and_padded_read_back_as_the_same_batch() {
        use crate::InstanceRows;
        let device = Default::default();
        for weighted in [false, true] {
            let b = GraphBatch::<Flex>::from_host(&host(weighted), &device);
            let rows = b.to_rows().unwrap();
            // The triangle: 2 counts, 3 features, 4 edges x (2 or 3) values.
            let width = if weighted { 17 } else { 13 };
            assert_eq!(rows.dims(), [3, width]);
            // Padded on the right, as a wider peer makes them travel, and reordered.
            let rows = Tensor::cat(vec![rows, Tensor::zeros([3, 4], &device)], 1);
            let back = GraphBatch::from_rows(rows.select_instances(&[2, 0, 1]), &b).unwrap();
            let want = b.select_instances(&[2, 0, 1]);
            assert_eq!(back.nodes_per_graph, want.nodes_per_graph);
            assert_eq!(back.edges_per_graph, want.edges_per_graph);
            assert_eq!(floats(&back.x), floats(&want.x));
            assert_eq!(ints(&back.src), ints(&want.src));
            assert_eq!(ints(&back.dst), ints(&want.dst));
            assert_eq!(ints(&back.node_graph), ints(&want.node_graph));
            assert_eq!(
                back.edge_weight.as_ref().map(floats),
                want.edge_weight.as_ref().map(floats)
            );
        }
    }

    #[test]
    #[should_panic(expected = "row 0 of 4 values does not hold the graph")]
    fn a_row_whose_counts_overrun_it_panics() {
        use crate::InstanceRows;
        let device = Default::default();
        let b = GraphBatch::<Flex>::from_host(&host(false), &device);
        let rows = Tensor::<Flex, 2>::from_data(
            TensorData::new(vec![3.0, 0.0, 1.0, 2.0], [1, 4]),
            &device,
        );
        let _ = GraphBatch::from_rows(rows, &b);
    }

    #[test]
    #[should_panic(expected = "shuffled index 2 in a block of 2 nodes")]
    fn a_shuffled_index_outside_its_block_panics() {
        let _ = DenseGraphViews::<Flex>::from_host(
            dense(Some(vec![0, 1, 2, 0]), 8),
            &Default::default(),
        );
    }
}
