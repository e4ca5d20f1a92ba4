//! The TU graph-classification format (Morris et al., <https://chrsmrrs.github.io/datasets/>):
//! a parser over the files' bytes, which never panics, and a loader that reads them.

use std::path::{Path, PathBuf};

use crate::Error;
use crate::error::{float, int, read_file, records};

/// Degrees at or above this share the last slot of the one-hot degree features
/// ([`TuOptions::degree_cap`]'s default).
///
/// PyG's TU example, which InfoGraph's and GraphCL's unsupervised code copy, uses
/// `OneHotDegree(max_degree)` when the largest degree is below 1000 (and a normalised degree
/// above); with this cap the one-hot is the same for every TU set in the shared folder
/// (IMDB-BINARY's largest degree is 135, IMDB-MULTI's 88), and a set with larger degrees gets
/// 1001 columns instead of a different feature kind.
pub const DEFAULT_DEGREE_CAP: usize = 1000;

/// One graph: nodes `0..nodes`, an undirected edge list and the node features.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    /// Number of nodes (at least 1 in a loaded dataset).
    pub nodes: usize,
    /// Undirected edges, each stored in both directions `(u, v)` and `(v, u)`, sorted, without
    /// duplicates or self-loops (as PyG's `read_tu_data` leaves them). Local node ids.
    pub edges: Vec<(u32, u32)>,
    /// Node features, row-major `[nodes, feat]`.
    pub x: Vec<f32>,
}

impl Graph {
    /// Number of undirected edges (half the stored pairs).
    pub fn undirected_edges(&self) -> usize {
        self.edges.len() / 2
    }

    /// The degree of every node.
    pub fn degrees(&self) -> Vec<usize> {
        let mut deg = vec![0; self.nodes];
        for &(u, _) in &self.edges {
            deg[u as usize] += 1;
        }
        deg
    }
}

/// What the node features of a [`TuDataset`] are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeFeatures {
    /// One-hot node labels, then the continuous attributes and the one-hot degrees if they
    /// were asked for.
    Labels {
        /// Columns of the one-hot part.
        label_columns: usize,
        /// Columns of continuous attributes after it (0 when not used).
        attribute_columns: usize,
        /// Columns of one-hot degrees after those (0 when not used; capped as
        /// [`TuOptions::degree_cap`]).
        degree_columns: usize,
    },
    /// Continuous node attributes only (a set with attributes but no labels).
    Attributes,
    /// One-hot degree, for sets without node labels or attributes (IMDB-BINARY, IMDB-MULTI).
    Degree {
        /// Degrees at or above it share the last column.
        cap: usize,
    },
}

/// How a TU set becomes node features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TuOptions {
    /// Append the continuous `_node_attributes` after the one-hot node labels (PyG's
    /// `use_node_attr`; off by default, as in GraphCL's and InfoGraph's unsupervised code).
    /// A set with attributes but no labels uses its attributes either way.
    pub node_attributes: bool,
    /// Append one-hot degrees after the node labels (and attributes), as MVGRL's graph code
    /// builds the features of a set without attributes (labels, then `max degree + 1` degree
    /// columns); off by default. A set without labels or attributes has degree features
    /// either way; one with attributes but no labels has its attributes alone.
    pub label_degrees: bool,
    /// Degree cap for one-hot degree features: the features have `min(max degree, cap) + 1`
    /// columns.
    pub degree_cap: usize,
}

impl Default for TuOptions {
    fn default() -> Self {
        TuOptions {
            node_attributes: false,
            label_degrees: false,
            degree_cap: DEFAULT_DEGREE_CAP,
        }
    }
}

/// A TU graph-classification dataset: graphs with node features and one class per graph.
#[derive(Debug, Clone, PartialEq)]
pub struct TuDataset {
    /// The dataset's name (`MUTAG`).
    pub name: String,
    /// The graphs, in file order.
    pub graphs: Vec<Graph>,
    /// The class of each graph, in `0..classes`.
    pub labels: Vec<u32>,
    /// Number of classes.
    pub classes: usize,
    /// The label each class stands for in the file (`[-1, 1]` for MUTAG), sorted.
    pub label_values: Vec<i64>,
    /// Width of every graph's feature rows.
    pub feat_dim: usize,
    /// What the features are.
    pub features: NodeFeatures,
    /// Directed edges listed more than once in `_A.txt`, dropped (IMDB lists each twice).
    pub duplicate_edges: usize,
    /// Self-loops in `_A.txt`, dropped.
    pub self_loops: usize,
}

impl TuDataset {
    /// Number of graphs.
    pub fn len(&self) -> usize {
        self.graphs.len()
    }

    /// True when there is no graph.
    pub fn is_empty(&self) -> bool {
        self.graphs.is_empty()
    }
}

/// One file of a TU set: its bytes and its path (for messages).
#[derive(Debug, Clone, Copy)]
pub struct TuFile<'a> {
    /// The file's content.
    pub bytes: &'a [u8],
    /// Where it came from.
    pub path: &'a Path,
}

/// The files of a TU set, as bytes, for [`parse_tu`].
#[derive(Debug, Clone, Copy)]
pub struct TuFiles<'a> {
    /// `NAME_A.txt`: one directed edge `u, v` per line, 1-based global node ids.
    pub a: TuFile<'a>,
    /// `NAME_graph_indicator.txt`: the 1-based graph of node `i` on line `i`.
    pub graph_indicator: TuFile<'a>,
    /// `NAME_graph_labels.txt`: the class of graph `g` on line `g`.
    pub graph_labels: TuFile<'a>,
    /// `NAME_node_labels.txt`, if the set has it: an integer label per node.
    pub node_labels: Option<TuFile<'a>>,
    /// `NAME_node_attributes.txt`, if the set has it: comma-separated floats per node.
    pub node_attributes: Option<TuFile<'a>>,
}

/// The node -> graph map of `_graph_indicator`: graph ids must start at 1, never decrease
/// and never skip (a skipped id would be a graph without nodes).
fn parse_indicator(f: TuFile<'_>) -> Result<(Vec<u32>, Vec<usize>), Error> {
    let rows = records(f.bytes, f.path)?;
    if rows.is_empty() {
        return Err(Error::Empty {
            path: f.path.to_path_buf(),
            reason: "no node, the graph indicator is empty".into(),
        });
    }
    let mut node_graph = Vec::with_capacity(rows.len());
    // Start of every graph, in nodes.
    let mut starts = Vec::new();
    let mut prev = 0i64;
    for (i, &(line, field)) in rows.iter().enumerate() {
        let g = int(field, f.path, line, "graph id")?;
        let err = |reason: String| Error::GraphIndicator {
            path: f.path.to_path_buf(),
            line,
            reason,
        };
        if g < 1 {
            return Err(err(format!("graph ids are numbered from 1, found {g}")));
        }
        if g < prev {
            return Err(err(format!(
                "not sorted: graph {g} after graph {prev} (nodes must be listed graph by graph)"
            )));
        }
        if g > prev + 1 {
            return Err(err(format!(
                "not contiguous: graph {} has no nodes (graph {g} follows graph {prev})",
                prev + 1
            )));
        }
        if g == prev + 1 {
            if g > i64::from(u32::MAX) {
                return Err(err(format!("graph id {g} is too large")));
            }
            starts.push(i);
        }
        node_graph.push((g - 1) as u32);
        prev = g;
    }
    starts.push(node_graph.len());
    Ok((node_graph, starts))
}

/// The graph labels, remapped to `0..classes` in sorted order of the file's values.
fn parse_graph_labels(f: TuFile<'_>, graphs: usize) -> Result<(Vec<u32>, Vec<i64>), Error> {
    let rows = records(f.bytes, f.path)?;
    if rows.len() != graphs {
        return Err(Error::Count {
            path: f.path.to_path_buf(),
            what: "labels",
            found: rows.len(),
            expected: graphs,
            of: "graphs",
        });
    }
    let raw = rows
        .iter()
        .map(|&(line, field)| int(field, f.path, line, "graph label"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut values = raw.clone();
    values.sort_unstable();
    values.dedup();
    let labels = raw
        .iter()
        .map(|v| values.binary_search(v).unwrap_or(0) as u32)
        .collect();
    Ok((labels, values))
}

/// One-hot node labels: column `label - min`, `max - min + 1` columns (PyG's `read_tu_data`).
fn parse_node_labels(f: TuFile<'_>, nodes: usize) -> Result<(Vec<usize>, usize), Error> {
    let rows = records(f.bytes, f.path)?;
    if rows.len() != nodes {
        return Err(Error::Count {
            path: f.path.to_path_buf(),
            what: "node labels",
            found: rows.len(),
            expected: nodes,
            of: "nodes",
        });
    }
    let raw = rows
        .iter()
        .map(|&(line, field)| int(field, f.path, line, "node label"))
        .collect::<Result<Vec<_>, _>>()?;
    let lo = raw.iter().copied().min().unwrap_or(0);
    let hi = raw.iter().copied().max().unwrap_or(0);
    let width = hi.checked_sub(lo).filter(|w| *w < 1 << 16).ok_or_else(|| {
        Error::format(
            f.path,
            1,
            format!("node labels span {lo}..={hi}, too wide for one-hot features"),
        )
    })? as usize
        + 1;
    Ok((raw.iter().map(|&v| (v - lo) as usize).collect(), width))
}

/// Rows of comma-separated floats, all of the same width.
fn parse_attributes(f: TuFile<'_>, nodes: usize) -> Result<(Vec<f32>, usize), Error> {
    let rows = records(f.bytes, f.path)?;
    if rows.len() != nodes {
        return Err(Error::Count {
            path: f.path.to_path_buf(),
            what: "attribute rows",
            found: rows.len(),
            expected: nodes,
            of: "nodes",
        });
    }
    let mut out = Vec::new();
    let mut width = None;
    for &(line, row) in &rows {
        let before = out.len();
        for field in row.split(',') {
            out.push(float(field, f.path, line, "attribute")?);
        }
        let w = out.len() - before;
        match width {
            None => width = Some(w),
            Some(expected) if expected != w => {
                return Err(Error::format(
                    f.path,
                    line,
                    format!("{w} attributes, the first row has {expected}"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok((out, width.unwrap_or(0)))
}

/// Parses a TU dataset from the bytes of its files. Node features are the one-hot node
/// labels (with the continuous attributes appended when `options.node_attributes`, then one-hot
/// degrees when `options.label_degrees`), the attributes alone for a set with attributes but no labels, or one-hot degrees (capped at
/// `options.degree_cap`) for a set with neither.
///
/// Edges are made undirected: each `u, v` line adds `(u, v)` and `(v, u)`, listed pairs
/// repeated in the file (IMDB lists each directed edge twice) and self-loops are dropped and
/// counted.
///
/// # Errors
/// - [`Error::GraphIndicator`] when `_graph_indicator` is not sorted or skips a graph id;
/// - [`Error::NoSuchNode`] for an edge naming a node outside `1..=nodes`;
/// - [`Error::Format`] for a malformed number or line, an edge joining two graphs;
/// - [`Error::Count`] when the labels or attribute rows do not match the graphs or nodes;
/// - [`Error::Empty`] for an empty graph indicator.
pub fn parse_tu(name: &str, files: &TuFiles<'_>, options: &TuOptions) -> Result<TuDataset, Error> {
    let (node_graph, starts) = parse_indicator(files.graph_indicator)?;
    let nodes = node_graph.len();
    let graph_count = starts.len() - 1;
    let (labels, label_values) = parse_graph_labels(files.graph_labels, graph_count)?;

    let mut edges: Vec<Vec<(u32, u32)>> = vec![Vec::new(); graph_count];
    let mut listed = 0usize;
    let mut self_loops = 0usize;
    let a = files.a;
    for (line, row) in records(a.bytes, a.path)? {
        let mut fields = row.split(',');
        let (Some(u), Some(v), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(Error::format(
                a.path,
                line,
                format!("expected `u, v`, found `{row}`"),
            ));
        };
        let mut ends = [0usize; 2];
        for (end, field) in ends.iter_mut().zip([u, v]) {
            let id = int(field, a.path, line, "node id")?;
            if id < 1 || id as u64 > nodes as u64 {
                return Err(Error::NoSuchNode {
                    path: a.path.to_path_buf(),
                    line,
                    node: id,
                    nodes,
                    base: ", numbered from 1",
                });
            }
            *end = id as usize - 1;
        }
        let [u, v] = ends;
        let (gu, gv) = (node_graph[u], node_graph[v]);
        if gu != gv {
            return Err(Error::format(
                a.path,
                line,
                format!(
                    "edge {} - {} joins graph {} and graph {}",
                    u + 1,
                    v + 1,
                    gu + 1,
                    gv + 1
                ),
            ));
        }
        if u == v {
            self_loops += 1;
            continue;
        }
        listed += 1;
        let base = starts[gu as usize];
        edges[gu as usize].push(((u - base) as u32, (v - base) as u32));
    }
    // Directed pairs listed more than once are duplicates; then each edge gets its reverse.
    let mut distinct = 0usize;
    for e in &mut edges {
        e.sort_unstable();
        e.dedup();
        distinct += e.len();
        let reversed: Vec<(u32, u32)> = e.iter().map(|&(u, v)| (v, u)).collect();
        e.extend(reversed);
        e.sort_unstable();
        e.dedup();
    }
    let duplicate_edges = listed - distinct;

    let node_labels = match files.node_labels {
        Some(f) => Some(parse_node_labels(f, nodes)?),
        None => None,
    };
    let attributes = match files.node_attributes {
        Some(f) => Some(parse_attributes(f, nodes)?),
        None => None,
    };
    let use_attributes = options.node_attributes || node_labels.is_none();
    let attributes = attributes.filter(|_| use_attributes);

    let mut graphs: Vec<Graph> = (0..graph_count)
        .map(|g| Graph {
            nodes: starts[g + 1] - starts[g],
            edges: std::mem::take(&mut edges[g]),
            x: Vec::new(),
        })
        .collect();
    let degree_columns = |cap: usize| {
        let max = graphs.iter().flat_map(|g| g.degrees()).max().unwrap_or(0);
        max.min(cap) + 1
    };
    let features = match (&node_labels, &attributes) {
        (Some((_, lw)), a) => NodeFeatures::Labels {
            label_columns: *lw,
            attribute_columns: a.as_ref().map_or(0, |(_, w)| *w),
            degree_columns: if options.label_degrees {
                degree_columns(options.degree_cap)
            } else {
                0
            },
        },
        (None, Some(_)) => NodeFeatures::Attributes,
        (None, None) => NodeFeatures::Degree {
            cap: options.degree_cap,
        },
    };
    let feat_dim = match features {
        NodeFeatures::Labels {
            label_columns,
            attribute_columns,
            degree_columns,
        } => label_columns + attribute_columns + degree_columns,
        NodeFeatures::Attributes => attributes.as_ref().map_or(0, |(_, w)| *w),
        NodeFeatures::Degree { cap } => degree_columns(cap),
    };
    let cap = options.degree_cap;
    for (g, graph) in graphs.iter_mut().enumerate() {
        let mut x = vec![0.0f32; graph.nodes * feat_dim];
        match features {
            NodeFeatures::Degree { cap } => {
                for (i, d) in graph.degrees().into_iter().enumerate() {
                    x[i * feat_dim + d.min(cap)] = 1.0;
                }
            }
            _ => {
                let degrees = graph.degrees();
                for (i, d) in degrees.into_iter().enumerate() {
                    let node = starts[g] + i;
                    let row = &mut x[i * feat_dim..(i + 1) * feat_dim];
                    let mut col = 0;
                    if let Some((l, w)) = &node_labels {
                        row[l[node]] = 1.0;
                        col = *w;
                    }
                    if let Some((values, w)) = &attributes {
                        row[col..col + w].copy_from_slice(&values[node * w..(node + 1) * w]);
                        col += w;
                    }
                    if let NodeFeatures::Labels {
                        degree_columns: 1..,
                        ..
                    } = features
                    {
                        row[col + d.min(cap)] = 1.0;
                    }
                }
            }
        }
        graph.x = x;
    }
    Ok(TuDataset {
        name: name.to_string(),
        graphs,
        classes: label_values.len(),
        labels,
        label_values,
        feat_dim,
        features,
        duplicate_edges,
        self_loops,
    })
}

/// The path of file `NAME_<part>.txt` of a TU set in `dir`.
pub fn tu_file(dir: &Path, name: &str, part: &str) -> PathBuf {
    dir.join(format!("{name}_{part}.txt"))
}

/// Reads the TU set `name` from `dir` (`dir/NAME_A.txt`, `dir/NAME_graph_indicator.txt`, ...;
/// `_node_labels` and `_node_attributes` when present) and parses it with [`parse_tu`].
///
/// # Errors
/// As [`parse_tu`], plus [`Error::Io`] for a required file that cannot be read.
pub fn load_tu(dir: &Path, name: &str, options: &TuOptions) -> Result<TuDataset, Error> {
    let paths = [
        "A",
        "graph_indicator",
        "graph_labels",
        "node_labels",
        "node_attributes",
    ]
    .map(|p| tu_file(dir, name, p));
    let required = [
        read_file(&paths[0])?,
        read_file(&paths[1])?,
        read_file(&paths[2])?,
    ];
    let optional = [&paths[3], &paths[4]].map(|p| p.is_file().then(|| read_file(p)).transpose());
    let [labels, attributes] = optional;
    let (labels, attributes) = (labels?, attributes?);
    let files = TuFiles {
        a: TuFile {
            bytes: &required[0],
            path: &paths[0],
        },
        graph_indicator: TuFile {
            bytes: &required[1],
            path: &paths[1],
        },
        graph_labels: TuFile {
            bytes: &required[2],
            path: &paths[2],
        },
        node_labels: labels.as_deref().map(|bytes| TuFile {
            bytes,
            path: &paths[3],
        }),
        node_attributes: attributes.as_deref().map(|bytes| TuFile {
            bytes,
            path: &paths[4],
        }),
    };
    parse_tu(name, &files, options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn f<'a>(bytes: &'a [u8], name: &'static str) -> TuFile<'a> {
        TuFile {
            bytes,
            path: Path::new(name),
        }
    }

    /// A triangle (nodes 1-3, listed in both directions and once more) and an edge (4-5).
    fn files<'a>(a: &'a [u8], ind: &'a [u8], labels: &'a [u8]) -> TuFiles<'a> {
        TuFiles {
            a: f(a, "A.txt"),
            graph_indicator: f(ind, "I.txt"),
            graph_labels: f(labels, "L.txt"),
            node_labels: None,
            node_attributes: None,
        }
    }

    const A: &[u8] = b"1, 2\n2, 1\n2, 3\n3, 2\n3, 1\n1, 3\n1, 2\n4, 5\n5, 5\n";
    const IND: &[u8] = b"1\n1\n1\n2\n2\n";

    fn err(files: &TuFiles<'_>) -> String {
        parse_tu("T", files, &TuOptions::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_graph_id_of_zero_is_refused() {
        // Found by the fuzzer (`crates/contrast/tests/fuzz.rs`): graph 0 became graph u32::MAX.
        let e = err(&files(A, b"0\n1\n1\n2\n2\n", b"3\n7\n"));
        assert!(
            e.contains("I.txt:1: graph ids are numbered from 1, found 0"),
            "{e}"
        );
    }

    #[test]
    fn edges_are_deduplicated_and_degree_features_one_hot() {
        let d = parse_tu("T", &files(A, IND, b"3\n7\n"), &TuOptions::default()).unwrap();
        assert_eq!(
            (d.len(), d.classes, d.label_values.clone()),
            (2, 2, vec![3, 7])
        );
        assert_eq!((d.duplicate_edges, d.self_loops), (1, 1));
        assert_eq!(
            d.graphs[0].edges,
            vec![(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
        );
        assert_eq!(d.graphs[1].edges, vec![(0, 1), (1, 0)]);
        // Degrees 2, 2, 2 and 1, 1: three columns (0, 1, 2).
        assert_eq!(
            d.features,
            NodeFeatures::Degree {
                cap: DEFAULT_DEGREE_CAP
            }
        );
        assert_eq!(d.feat_dim, 3);
        assert_eq!(d.graphs[1].x, vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0]);
        let capped = TuOptions {
            degree_cap: 1,
            ..TuOptions::default()
        };
        let d = parse_tu("T", &files(A, IND, b"3\n7\n"), &capped).unwrap();
        assert_eq!(d.feat_dim, 2);
        assert_eq!(d.graphs[0].x, vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn node_labels_and_attributes_make_the_features() {
        let mut fs = files(A, IND, b"1\n1\n");
        fs.node_labels = Some(f(b"1\n2\n1\n3\n1\n", "N.txt"));
        fs.node_attributes = Some(f(b"0.5, 1\n2, 3\n4, 5\n6, 7\n8, 9e0\n", "X.txt"));
        let d = parse_tu("T", &fs, &TuOptions::default()).unwrap();
        assert_eq!(d.classes, 1);
        assert_eq!(
            d.features,
            NodeFeatures::Labels {
                label_columns: 3,
                attribute_columns: 0,
                degree_columns: 0
            }
        );
        assert_eq!(d.graphs[1].x, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        // MVGRL's features: labels, then one-hot degrees (degrees 2, 2, 2 and 1, 1: 3 columns).
        let degrees = TuOptions {
            label_degrees: true,
            ..TuOptions::default()
        };
        let d = parse_tu("T", &fs, &degrees).unwrap();
        assert_eq!(d.feat_dim, 6);
        assert_eq!(
            d.graphs[1].x,
            vec![0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        );
        let both = TuOptions {
            node_attributes: true,
            label_degrees: true,
            ..TuOptions::default()
        };
        let d = parse_tu("T", &fs, &both).unwrap();
        assert_eq!(d.feat_dim, 8);
        assert_eq!(
            &d.graphs[0].x[..8],
            &[1.0, 0.0, 0.0, 0.5, 1.0, 0.0, 0.0, 1.0]
        );
        let with = TuOptions {
            node_attributes: true,
            ..TuOptions::default()
        };
        let d = parse_tu("T", &fs, &with).unwrap();
        assert_eq!(d.feat_dim, 5);
        assert_eq!(&d.graphs[0].x[..5], &[1.0, 0.0, 0.0, 0.5, 1.0]);
        fs.node_labels = None;
        let d = parse_tu("T", &fs, &TuOptions::default()).unwrap();
        assert_eq!((d.features, d.feat_dim), (NodeFeatures::Attributes, 2));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        assert_eq!(
            err(&files(b"1, 2\n2, 6\n", IND, b"1\n2\n")),
            "A.txt:2: node 6 does not exist (the dataset has 5 nodes, numbered from 1)"
        );
        assert_eq!(
            err(&files(b"1, 0\n", IND, b"1\n2\n")),
            "A.txt:1: node 0 does not exist (the dataset has 5 nodes, numbered from 1)"
        );
        assert_eq!(
            err(&files(b"1, 4\n", IND, b"1\n2\n")),
            "A.txt:1: edge 1 - 4 joins graph 1 and graph 2"
        );
        assert_eq!(
            err(&files(b"1; 2\n", IND, b"1\n2\n")),
            "A.txt:1: expected `u, v`, found `1; 2`"
        );
        assert_eq!(
            err(&files(b"1, x\n", IND, b"1\n2\n")),
            "A.txt:1: node id `x` is not an integer"
        );
        assert_eq!(
            err(&files(A, b"1\n1\n3\n3\n", b"1\n2\n3\n")),
            "I.txt:3: not contiguous: graph 2 has no nodes (graph 3 follows graph 1)"
        );
        assert_eq!(
            err(&files(A, b"2\n2\n", b"1\n2\n")),
            "I.txt:1: not contiguous: graph 1 has no nodes (graph 2 follows graph 0)"
        );
        assert_eq!(
            err(&files(A, b"1\n2\n1\n", b"1\n2\n")),
            "I.txt:3: not sorted: graph 1 after graph 2 (nodes must be listed graph by graph)"
        );
        assert_eq!(err(&files(A, IND, b"1\n")), "L.txt: 1 labels for 2 graphs");
        assert_eq!(
            err(&files(A, IND, b"1\nx\n")),
            "L.txt:2: graph label `x` is not an integer"
        );
        assert_eq!(err(&files(A, b"1\n\n1\n", b"1\n")), "I.txt:2: blank line");
        assert_eq!(
            err(&files(A, b"", b"1\n")),
            "I.txt: no node, the graph indicator is empty"
        );
        let mut fs = files(A, IND, b"1\n2\n");
        fs.node_attributes = Some(f(b"1\n2\n3\nnan\n5\n", "X.txt"));
        assert_eq!(err(&fs), "X.txt:4: attribute `nan` is not a finite number");
        fs.node_attributes = Some(f(b"1\n2\n3, 4\n4\n5\n", "X.txt"));
        assert_eq!(err(&fs), "X.txt:3: 2 attributes, the first row has 1");
        fs.node_labels = Some(f(b"1\n2\n", "N.txt"));
        assert_eq!(err(&fs), "N.txt: 2 node labels for 5 nodes");
    }

    #[test]
    fn trailing_blank_lines_and_crlf_are_accepted() {
        let d = parse_tu(
            "T",
            &files(b"1, 2\r\n\r\n", b"1\r\n1\r\n\n", b"0\n\n"),
            &TuOptions::default(),
        )
        .unwrap();
        assert_eq!(d.graphs[0].edges, vec![(0, 1), (1, 0)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn the_parser_never_panics(
            a in proptest::collection::vec(any::<u8>(), 0..64),
            ind in proptest::collection::vec(any::<u8>(), 0..64),
            labels in proptest::collection::vec(any::<u8>(), 0..32),
            nl in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let mut fs = files(&a, &ind, &labels);
            let _ = parse_tu("T", &fs, &TuOptions::default());
            fs.node_labels = Some(f(&nl, "N.txt"));
            fs.node_attributes = Some(f(&nl, "X.txt"));
            let _ = parse_tu("T", &fs, &TuOptions { node_attributes: true, label_degrees: true, degree_cap: 3 });
        }

        #[test]
        fn the_parser_never_panics_on_format_like_text(
            a in "[0-9, \n-]{0,60}",
            ind in "[0-9\n-]{0,30}",
            labels in "[0-9\n-]{0,12}",
            nl in "[0-9.,e\n-]{0,30}",
        ) {
            let mut fs = files(a.as_bytes(), ind.as_bytes(), labels.as_bytes());
            let _ = parse_tu("T", &fs, &TuOptions::default());
            fs.node_labels = Some(f(nl.as_bytes(), "N.txt"));
            fs.node_attributes = Some(f(nl.as_bytes(), "X.txt"));
            let _ = parse_tu("T", &fs, &TuOptions { node_attributes: true, label_degrees: true, degree_cap: 3 });
        }
    }
}
