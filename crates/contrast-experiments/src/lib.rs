//! Reproductions of contrastive methods: `cargo xtask reproduce <method>` and the paradigms
//! comparison, from data to a report with accuracy, time, memory and plots.
//!
//! Split by concern: [`options`](ReproduceOptions) (what a run can be told), the image recipe
//! per dataset, each method's config resolved once (its paper's defaults, the recipe, then a
//! JSON file and flags), the baselines (raw pixels, random initialisation), the run itself on
//! `contrast_methods::train`, [`Metrics`] and the report.
#![warn(missing_docs)]

mod clip;
mod error;
mod folder;
mod graph;
mod methods;
mod metrics;
mod node;
mod npy;
mod options;
mod peers;
mod plot;
mod recipe;
mod report;
mod run;
mod text;

pub use clip::{ClipMetrics, ClipOptions, ClipScores, reproduce_clip};
pub use error::Error;
pub use graph::{
    GRAPHCL_PUBLISHED, GraphMetrics, GraphOptions, GraphRecipe, MVGRL_PUBLISHED, MeanStd,
    MvgrlRecipe, SeedRun, reproduce_graphcl, reproduce_mvgrl,
};
pub use metrics::{Metrics, SamplerComparison, Scores, peak_memory_mib, read_metrics};
pub use node::{
    MVGRL_NODE_PUBLISHED, NodeMetrics, NodeRecipe, NodeSeedRun, is_node_dataset,
    reproduce_mvgrl_node,
};
pub use options::{DatasetKind, JobOptions, MethodKind, MethodOptions, ReproduceOptions};
pub use peers::PeerOptions;
pub use report::{TARGET_GAIN_OVER_PIXELS, TARGET_GAIN_OVER_RANDOM};
pub use run::{reproduce, reproduce_paradigms, reproduce_simclr};
pub use text::{
    STSB_DEV, StsScores, TextMetrics, TextOptions, TextRecipe, TextRun, reproduce_simcse,
};
