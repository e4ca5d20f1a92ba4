//! Citation graphs in the LINQS layout (`NAME.content`: paper id, binary features, class name;
//! `NAME.cites`: cited and citing paper ids), read as pygcn and DGL's `CoraDataset` read Cora:
//! nodes in the order of the content file, classes in the sorted order of their names, the
//! citations as undirected edges, and a split by position in the content file. This is the Cora
//! that MVGRL's node-level code trains and scores on; the Planetoid files
//! ([`parse_planetoid`](crate::parse_planetoid)) hold the same graph in another node order with
//! another split.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{lines, read_file};
use crate::planetoid::undirected;
use crate::{Error, Planetoid, PlanetoidFile};

/// pygcn's split of Cora by position in `cora.content` (training nodes 0-139, validation
/// 200-499, test 500-1499), which DGL's `CoraDataset` and so MVGRL's node-level code use.
pub const PYGCN_SPLIT: LinqsSplit = LinqsSplit {
    train: 0..140,
    val: 200..500,
    test: 500..1500,
};

/// A split of a LINQS graph by position in its content file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinqsSplit {
    /// Training nodes.
    pub train: Range<usize>,
    /// Validation nodes.
    pub val: Range<usize>,
    /// Test nodes.
    pub test: Range<usize>,
}

/// The two files of a LINQS graph, as bytes, for [`parse_linqs`].
#[derive(Debug, Clone, Copy)]
pub struct LinqsFiles<'a> {
    /// `NAME.content`: per line a paper id, its features (0 or 1), its class name, separated by
    /// tabs or spaces.
    pub content: PlanetoidFile<'a>,
    /// `NAME.cites`: per line the cited paper's id, then the citing paper's.
    pub cites: PlanetoidFile<'a>,
}

/// Parses a LINQS graph from the bytes of its files, with `split`. The result is a
/// [`Planetoid`]: node `i` is the `i`-th paper of the content file, the features its 0/1
/// columns, the label the rank of its class name among the sorted names, every citation an
/// undirected edge of weight 1 (a citation listed both ways kept once, as pygcn's symmetrised
/// matrix does; self-citations dropped and repeated lines counted once, where pygcn would keep
/// the one and weigh the other twice: Cora's file has neither).
///
/// # Errors
/// [`Error::Format`] naming the file and line for a line with fewer than three fields, a feature
/// that is neither 0 nor 1, another number of features than the first line's, a paper id seen
/// twice, a citation that is not two ids or names a paper absent from the content file;
/// [`Error::Empty`] for an empty content file; [`Error::Core`] when the split reaches past the
/// last node.
pub fn parse_linqs(
    name: &str,
    files: &LinqsFiles<'_>,
    split: &LinqsSplit,
) -> Result<Planetoid, Error> {
    let cf = files.content;
    let rows = lines(cf.bytes, cf.path)?;
    let rows: Vec<(usize, Vec<&str>)> = rows
        .into_iter()
        .map(|(n, l)| (n, l.split_whitespace().collect::<Vec<_>>()))
        .filter(|(_, f)| !f.is_empty())
        .collect();
    let Some((_, first)) = rows.first() else {
        return Err(Error::Empty {
            path: cf.path.to_path_buf(),
            reason: "no paper, the content file is empty".into(),
        });
    };
    let feat_dim = first.len().saturating_sub(2);
    let nodes = rows.len();
    // Filled row by row as each row passes its checks: the size of the first line alone must
    // not decide an allocation.
    let mut x: Vec<f32> = Vec::new();
    let mut index: HashMap<&str, u32> = HashMap::with_capacity(nodes);
    let mut first_line: Vec<usize> = Vec::with_capacity(nodes);
    let mut class_names: Vec<&str> = Vec::with_capacity(nodes);
    for (i, (line, fields)) in rows.iter().enumerate() {
        if fields.len() < 3 {
            return Err(Error::format(
                cf.path,
                *line,
                format!(
                    "expected a paper id, its features and its class, found {} field(s)",
                    fields.len()
                ),
            ));
        }
        if fields.len() - 2 != feat_dim {
            return Err(Error::format(
                cf.path,
                *line,
                format!(
                    "{} features where the first line has {feat_dim}",
                    fields.len() - 2
                ),
            ));
        }
        if let Some(&j) = index.get(fields[0]) {
            return Err(Error::format(
                cf.path,
                *line,
                format!(
                    "paper `{}` is already on line {}",
                    fields[0], first_line[j as usize]
                ),
            ));
        }
        index.insert(fields[0], i as u32);
        first_line.push(*line);
        for (c, v) in fields[1..fields.len() - 1].iter().enumerate() {
            x.push(match *v {
                "0" => 0.0,
                "1" => 1.0,
                other => {
                    return Err(Error::format(
                        cf.path,
                        *line,
                        format!("feature {} is `{other}`, neither 0 nor 1", c + 1),
                    ));
                }
            });
        }
        class_names.push(fields[fields.len() - 1]);
    }
    let mut sorted = class_names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let labels = class_names
        .iter()
        .map(|c| Some(sorted.binary_search(c).expect("a listed class") as u32))
        .collect();

    let ef = files.cites;
    let mut edges = Vec::new();
    for (line, row) in lines(ef.bytes, ef.path)? {
        let mut fields = row.split_whitespace();
        let (u, v) = match (fields.next(), fields.next(), fields.next()) {
            (None, ..) => continue,
            (Some(u), Some(v), None) => (u, v),
            _ => {
                return Err(Error::format(
                    ef.path,
                    line,
                    format!("expected `cited citing`, found `{}`", row.trim()),
                ));
            }
        };
        let node = |id: &str| {
            index.get(id).copied().ok_or_else(|| {
                Error::format(
                    ef.path,
                    line,
                    format!("paper `{id}` is not in {}", cf.path.display()),
                )
            })
        };
        let (u, v) = (node(u)?, node(v)?);
        edges.push((u, v));
    }
    let edges = undirected(edges);

    let end = split.train.end.max(split.val.end).max(split.test.end);
    if end > nodes {
        return Err(contrast_core::Error::invalid_config(
            "split",
            format!("{split:?}"),
            format!(
                "reaches node {end}, but {} lists {nodes}",
                cf.path.display()
            ),
        )
        .into());
    }
    let ids = |r: &Range<usize>| r.clone().map(|i| i as u32).collect();
    Ok(Planetoid {
        name: name.to_string(),
        nodes,
        feat_dim,
        x,
        edges,
        labels,
        classes: sorted.len(),
        train: ids(&split.train),
        val: ids(&split.val),
        test: ids(&split.test),
    })
}

/// Reads `NAME.content` and `NAME.cites` from `dir` and parses them with `split`.
///
/// # Errors
/// As [`parse_linqs`], plus [`Error::Io`].
pub fn load_linqs(dir: &Path, name: &str, split: &LinqsSplit) -> Result<Planetoid, Error> {
    let paths: [PathBuf; 2] = [
        dir.join(format!("{name}.content")),
        dir.join(format!("{name}.cites")),
    ];
    let content = read_file(&paths[0])?;
    let cites = read_file(&paths[1])?;
    parse_linqs(
        name,
        &LinqsFiles {
            content: PlanetoidFile {
                bytes: &content,
                path: &paths[0],
            },
            cites: PlanetoidFile {
                bytes: &cites,
                path: &paths[1],
            },
        },
        split,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn files<'a>(content: &'a [u8], cites: &'a [u8]) -> LinqsFiles<'a> {
        LinqsFiles {
            content: PlanetoidFile {
                bytes: content,
                path: Path::new("t.content"),
            },
            cites: PlanetoidFile {
                bytes: cites,
                path: Path::new("t.cites"),
            },
        }
    }

    const SPLIT: LinqsSplit = LinqsSplit {
        train: 0..1,
        val: 1..2,
        test: 2..3,
    };

    #[test]
    fn nodes_keep_the_content_order_and_classes_sort_by_name() {
        let content = b"31\t1\t0\tTheory\n7\t0\t1\tCase_Based\n1200\t1\t1\tTheory\n";
        // 31 -> 7 and 7 -> 31 are one edge; 1200 cites itself.
        let cites = b"31\t7\n7\t31\n1200\t7\n1200\t1200\n";
        let p = parse_linqs("t", &files(content, cites), &SPLIT).unwrap();
        assert_eq!((p.nodes, p.feat_dim, p.classes), (3, 2, 2));
        assert_eq!(p.x, vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        assert_eq!(p.labels, vec![Some(1), Some(0), Some(1)]);
        assert_eq!(p.edges, vec![(0, 1), (1, 0), (1, 2), (2, 1)]);
        assert_eq!((p.train, p.val, p.test), (vec![0], vec![1], vec![2]));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = |c: &[u8], s: &[u8]| {
            parse_linqs("t", &files(c, s), &SPLIT)
                .unwrap_err()
                .to_string()
        };
        let ok = b"1 0 A\n2 1 B\n3 1 A\n";
        assert_eq!(
            e(ok, b"1 2\n2 9\n"),
            "t.cites:2: paper `9` is not in t.content"
        );
        assert_eq!(
            e(ok, b"1 2 3\n"),
            "t.cites:1: expected `cited citing`, found `1 2 3`"
        );
        assert_eq!(
            e(b"1 0 A\n2 0 1 B\n", b""),
            "t.content:2: 2 features where the first line has 1"
        );
        assert_eq!(
            e(b"1 0 A\n1 1 B\n", b""),
            "t.content:2: paper `1` is already on line 1"
        );
        assert_eq!(
            e(b"1 0 A\n2 x B\n", b""),
            "t.content:2: feature 1 is `x`, neither 0 nor 1"
        );
        assert_eq!(
            e(b"1 A\n", b""),
            "t.content:1: expected a paper id, its features and its class, found 2 field(s)"
        );
        assert!(e(b"", b"").contains("empty"));
        assert!(e(b"1 0 A\n2 1 B\n", b"").contains("reaches node 3"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn the_parser_never_panics(
            content in proptest::collection::vec(any::<u8>(), 0..64),
            text in "[0-9 \tAB\n]{0,48}",
            cites in "[0-9 \t\nx]{0,24}",
        ) {
            let _ = parse_linqs("t", &files(&content, cites.as_bytes()), &SPLIT);
            let _ = parse_linqs("t", &files(text.as_bytes(), cites.as_bytes()), &SPLIT);
            let _ = parse_linqs("t", &files(text.as_bytes(), &content), &SPLIT);
        }
    }
}
