//! Evaluation of learned representations, on the host and independent of the backend: the
//! weighted kNN classifier (k = 200, temperature 0.1, as in InstDisc and the lightly and
//! solo-learn monitors), a linear probe (logistic regression on frozen features), STS Spearman
//! correlation (SentEval's protocol), cross-validated SVM accuracy for graph classification
//! (`linfa-svm`, the InfoGraph/GraphCL protocol), CLIP's zero-shot classification and
//! image-text retrieval recall, and a 2-D PCA projection for plots.
//!
//! Embeddings arrive as row-major `f32` slices (read back from the device once per
//! evaluation); products use `gemm` with rayon, as Burn's CPU backends do.
//!
//! ```
//! use contrast_eval::{Features, KnnClassifier, LinearProbe};
//!
//! let train = [1.0, 0.0, 0.9, 0.2, 0.0, 1.0, 0.1, 0.8];
//! let test = [0.8, 0.1, 0.2, 0.9];
//! let train = Features { data: &train, labels: &[0, 0, 1, 1], dim: 2 };
//! let test = Features { data: &test, labels: &[0, 1], dim: 2 };
//! let knn = KnnClassifier { k: 2, temperature: 0.1 }.evaluate(train, test, 2)?;
//! let probe = LinearProbe::default().evaluate(train, test, 2)?;
//! assert_eq!((knn.top1, probe.top1), (100.0, 100.0));
//! # Ok::<(), contrast_core::Error>(())
//! ```
#![warn(missing_docs)]

mod cross;
mod knn;
mod linear;
mod matmul;
mod pca;
mod sts;
mod svm;

pub use cross::{RetrievalRecall, retrieval_recall, zero_shot_top1};
pub use knn::{Accuracy, KnnClassifier};
pub use linear::LinearProbe;
pub use pca::pca_2d;
pub use sts::{paired_cosine, spearman, sts_spearman};
pub use svm::{CvAccuracy, FoldAssignment, SVM_C_GRID, SvmKernel, SvmProtocol, stratified_folds};

use contrast_core::Error;

/// Embeddings of a split with their labels: `labels.len()` rows of width `dim`.
#[derive(Debug, Clone, Copy)]
pub struct Features<'a> {
    /// Row-major `[rows, dim]`.
    pub data: &'a [f32],
    /// One label per row.
    pub labels: &'a [u32],
    /// Row width.
    pub dim: usize,
}

/// Checks a train/test pair for an evaluator named `op`.
pub(crate) fn check_pair(
    op: &'static str,
    train: &Features<'_>,
    test: &Features<'_>,
    num_classes: usize,
) -> Result<(), Error> {
    check_features("train", train, num_classes)?;
    check_features("test", test, num_classes)?;
    if train.dim != test.dim {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("test rows of width {}", train.dim),
            found: format!("width {}", test.dim),
        });
    }
    Ok(())
}

pub(crate) fn check_features(
    split: &str,
    f: &Features<'_>,
    num_classes: usize,
) -> Result<(), Error> {
    if f.dim == 0 || f.labels.is_empty() {
        return Err(Error::invalid_config(
            "features",
            format!("{split}: {} rows of width {}", f.labels.len(), f.dim),
            "need at least one row of width at least 1",
        ));
    }
    if f.data.len() != f.labels.len() * f.dim {
        return Err(Error::ShapeMismatch {
            op: "evaluation features",
            expected: format!(
                "{split}: {} rows x {} = {} floats",
                f.labels.len(),
                f.dim,
                f.labels.len() * f.dim
            ),
            found: format!("{} floats", f.data.len()),
        });
    }
    if let Some(l) = f.labels.iter().find(|&&l| l as usize >= num_classes) {
        return Err(Error::invalid_config(
            "labels",
            l,
            format!("{split} label is not below the {num_classes} classes"),
        ));
    }
    if let Some(i) = f.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid_config(
            "features",
            f.data[i],
            format!("{split} row {} holds a non-finite value", i / f.dim),
        ));
    }
    Ok(())
}
