//! Planetoid citation graphs (Cora, CiteSeer) in the plain-text layout of the shared datasets
//! folder: a parser over the files' bytes, which never panics, and a loader.

use std::path::{Path, PathBuf};

use crate::Error;
use crate::error::{int, lines, read_file, records};

/// A Planetoid citation graph for node classification: one graph, binary bag-of-words
/// features, a class per labelled node and the standard splits (Yang et al. 2016).
#[derive(Debug, Clone, PartialEq)]
pub struct Planetoid {
    /// The dataset's name (`cora`).
    pub name: String,
    /// Number of nodes.
    pub nodes: usize,
    /// Width of the feature rows: the largest feature index + 1.
    pub feat_dim: usize,
    /// Binary features, row-major `[nodes, feat_dim]`.
    pub x: Vec<f32>,
    /// Undirected edges, each in both directions, sorted, without duplicates or self-loops.
    pub edges: Vec<(u32, u32)>,
    /// The class of each node, `None` where the file says -1 (CiteSeer's isolated test nodes).
    pub labels: Vec<Option<u32>>,
    /// Number of classes (the largest label + 1).
    pub classes: usize,
    /// Training nodes.
    pub train: Vec<u32>,
    /// Validation nodes.
    pub val: Vec<u32>,
    /// Test nodes.
    pub test: Vec<u32>,
}

/// One file: its bytes and its path (for messages).
#[derive(Debug, Clone, Copy)]
pub struct PlanetoidFile<'a> {
    /// The file's content.
    pub bytes: &'a [u8],
    /// Where it came from.
    pub path: &'a Path,
}

/// The six files of a Planetoid set, as bytes, for [`parse_planetoid`].
#[derive(Debug, Clone, Copy)]
pub struct PlanetoidFiles<'a> {
    /// `features.txt`: per node, the indices of its non-zero features, space-separated (a
    /// blank line for a node without features).
    pub features: PlanetoidFile<'a>,
    /// `labels.txt`: per node, its class or -1.
    pub labels: PlanetoidFile<'a>,
    /// `edges.txt`: `u v` per line, 0-based.
    pub edges: PlanetoidFile<'a>,
    /// `train_idx.txt`: one node per line.
    pub train: PlanetoidFile<'a>,
    /// `val_idx.txt`.
    pub val: PlanetoidFile<'a>,
    /// `test_idx.txt`.
    pub test: PlanetoidFile<'a>,
}

/// The 0-based node id in `field`, checked against `nodes`.
fn node(field: &str, f: PlanetoidFile<'_>, line: usize, nodes: usize) -> Result<u32, Error> {
    let id = int(field, f.path, line, "node id")?;
    if id < 0 || id as u64 >= nodes as u64 {
        return Err(Error::NoSuchNode {
            path: f.path.to_path_buf(),
            line,
            node: id,
            nodes,
            base: "",
        });
    }
    Ok(id as u32)
}

fn split(f: PlanetoidFile<'_>, nodes: usize) -> Result<Vec<u32>, Error> {
    records(f.bytes, f.path)?
        .into_iter()
        .map(|(line, field)| node(field, f, line, nodes))
        .collect()
}

/// Each pair `(u, v)` as an edge in both directions, sorted, without self-loops or duplicates:
/// how the citation graphs hold their edges.
pub(crate) fn undirected(pairs: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    let mut edges: Vec<(u32, u32)> = pairs
        .into_iter()
        .filter(|(u, v)| u != v)
        .flat_map(|(u, v)| [(u, v), (v, u)])
        .collect();
    edges.sort_unstable();
    edges.dedup();
    edges
}

/// Parses a Planetoid set from the bytes of its files. The node count is the number of lines
/// of `labels.txt`.
///
/// # Errors
/// - [`Error::NoSuchNode`] for an edge or a split naming a node that does not exist;
/// - [`Error::Count`] when `features.txt` has another number of lines than `labels.txt`;
/// - [`Error::Format`] for a malformed number, a label below -1, an edge line without two
///   fields, a feature index above 2^20;
/// - [`Error::Empty`] when `labels.txt` is empty.
pub fn parse_planetoid(name: &str, files: &PlanetoidFiles<'_>) -> Result<Planetoid, Error> {
    let lf = files.labels;
    let label_rows = records(lf.bytes, lf.path)?;
    if label_rows.is_empty() {
        return Err(Error::Empty {
            path: lf.path.to_path_buf(),
            reason: "no node, the label file is empty".into(),
        });
    }
    let nodes = label_rows.len();
    let mut labels = Vec::with_capacity(nodes);
    for (line, field) in label_rows {
        let v = int(field, lf.path, line, "label")?;
        labels.push(match v {
            -1 => None,
            0..=65535 => Some(v as u32),
            _ => {
                return Err(Error::format(
                    lf.path,
                    line,
                    format!("label {v} is neither -1 nor a class in 0..65536"),
                ));
            }
        });
    }
    let classes = labels.iter().flatten().max().map_or(0, |&m| m as usize + 1);

    let ff = files.features;
    let feature_rows = lines(ff.bytes, ff.path)?;
    if feature_rows.len() != nodes {
        return Err(Error::Count {
            path: ff.path.to_path_buf(),
            what: "feature rows",
            found: feature_rows.len(),
            expected: nodes,
            of: "nodes (the lines of the label file)",
        });
    }
    let mut active = Vec::with_capacity(nodes);
    let mut feat_dim = 0usize;
    for (line, row) in feature_rows {
        let mut cols = Vec::new();
        for field in row.split_whitespace() {
            let c = int(field, ff.path, line, "feature index")?;
            if !(0..1 << 20).contains(&c) {
                return Err(Error::format(
                    ff.path,
                    line,
                    format!("feature index {c} is outside 0..{}", 1 << 20),
                ));
            }
            feat_dim = feat_dim.max(c as usize + 1);
            cols.push(c as usize);
        }
        active.push(cols);
    }
    let mut x = vec![0.0f32; nodes * feat_dim];
    for (i, cols) in active.iter().enumerate() {
        for &c in cols {
            x[i * feat_dim + c] = 1.0;
        }
    }

    let ef = files.edges;
    let mut edges = Vec::new();
    for (line, row) in records(ef.bytes, ef.path)? {
        let mut fields = row.split_whitespace();
        let (Some(u), Some(v), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(Error::format(
                ef.path,
                line,
                format!("expected `u v`, found `{row}`"),
            ));
        };
        let (u, v) = (node(u, ef, line, nodes)?, node(v, ef, line, nodes)?);
        edges.push((u, v));
    }
    let edges = undirected(edges);

    Ok(Planetoid {
        name: name.to_string(),
        nodes,
        feat_dim,
        x,
        edges,
        labels,
        classes,
        train: split(files.train, nodes)?,
        val: split(files.val, nodes)?,
        test: split(files.test, nodes)?,
    })
}

/// Reads a Planetoid set from its plain-text folder (`features.txt`, `labels.txt`,
/// `edges.txt`, `train_idx.txt`, `val_idx.txt`, `test_idx.txt`), named after the folder.
///
/// # Errors
/// As [`parse_planetoid`], plus [`Error::Io`].
pub fn load_planetoid(dir: &Path) -> Result<Planetoid, Error> {
    let names = [
        "features.txt",
        "labels.txt",
        "edges.txt",
        "train_idx.txt",
        "val_idx.txt",
        "test_idx.txt",
    ];
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    let bytes = paths
        .iter()
        .map(|p| read_file(p))
        .collect::<Result<Vec<_>, _>>()?;
    let f = |i: usize| PlanetoidFile {
        bytes: &bytes[i],
        path: &paths[i],
    };
    let name = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    parse_planetoid(
        &name,
        &PlanetoidFiles {
            features: f(0),
            labels: f(1),
            edges: f(2),
            train: f(3),
            val: f(4),
            test: f(5),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn f<'a>(bytes: &'a [u8], name: &'static str) -> PlanetoidFile<'a> {
        PlanetoidFile {
            bytes,
            path: Path::new(name),
        }
    }

    fn files<'a>(
        feat: &'a [u8],
        labels: &'a [u8],
        edges: &'a [u8],
        split: &'a [u8],
    ) -> PlanetoidFiles<'a> {
        PlanetoidFiles {
            features: f(feat, "features.txt"),
            labels: f(labels, "labels.txt"),
            edges: f(edges, "edges.txt"),
            train: f(split, "train_idx.txt"),
            val: f(b"1\n", "val_idx.txt"),
            test: f(b"2\n", "test_idx.txt"),
        }
    }

    #[test]
    fn a_small_graph_parses() {
        let p = parse_planetoid(
            "t",
            &files(b"0 3\n\n1\n", b"2\n-1\n0\n", b"0 1\n1 2\n0 1\n", b"0\n"),
        )
        .unwrap();
        assert_eq!((p.nodes, p.feat_dim, p.classes), (3, 4, 3));
        assert_eq!(
            p.x,
            vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
        );
        assert_eq!(p.labels, vec![Some(2), None, Some(0)]);
        assert_eq!(p.edges, vec![(0, 1), (1, 0), (1, 2), (2, 1)]);
        assert_eq!((p.train, p.val, p.test), (vec![0], vec![1], vec![2]));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = |fs: PlanetoidFiles<'_>| parse_planetoid("t", &fs).unwrap_err().to_string();
        assert_eq!(
            e(files(b"0\n0\n", b"0\n1\n", b"0 1\n", b"0\n1\n7\n")),
            "train_idx.txt:3: node 7 does not exist (the dataset has 2 nodes)"
        );
        assert_eq!(
            e(files(b"0\n0\n", b"0\n1\n", b"0 2\n", b"0\n")),
            "edges.txt:1: node 2 does not exist (the dataset has 2 nodes)"
        );
        assert_eq!(
            e(files(b"0\n", b"0\n1\n", b"", b"0\n")),
            "features.txt: 1 feature rows for 2 nodes (the lines of the label file)"
        );
        assert_eq!(
            e(files(b"0\n0\n", b"0\n-2\n", b"", b"0\n")),
            "labels.txt:2: label -2 is neither -1 nor a class in 0..65536"
        );
        assert_eq!(
            e(files(b"0\nx\n", b"0\n1\n", b"", b"0\n")),
            "features.txt:2: feature index `x` is not an integer"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn the_parser_never_panics(
            feat in proptest::collection::vec(any::<u8>(), 0..48),
            labels in "[0-9\n-]{0,16}",
            edges in proptest::collection::vec(any::<u8>(), 0..48),
            split in "[0-9 \nx-]{0,16}",
        ) {
            let _ = parse_planetoid("t", &files(&feat, labels.as_bytes(), &edges, split.as_bytes()));
            let _ = parse_planetoid("t", &files(&edges, &feat, labels.as_bytes(), &feat));
        }
    }
}
