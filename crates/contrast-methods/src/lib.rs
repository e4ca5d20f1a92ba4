//! Contrastive methods and the loop that trains them.
//!
//! A [`Method`] composes parts of the lower crates (an encoder from `contrast-encoders`, a loss
//! from `contrast-losses`, a store from `contrast-negatives`); [`train`] owns everything else:
//! sampling, background augmentation, optimiser and warm-up + cosine schedule, the kNN monitor,
//! atomic checkpoints, resume, and a clear stop on a NaN loss.
//!
//! Methods, one per paradigm of negatives ([`Paradigm`]):
//! - end-to-end: [`InvaSpread`];
//! - memory bank: [`InstDisc`] (NCE against bank rows, proximal term);
//! - momentum encoder: [`Moco`] v1 and v2 (EMA key encoder, FIFO queue, shuffled batch norm
//!   emulated on one device);
//! - in-batch negatives: [`SimClr`] (NT-Xent, or DCL with `SimClrConfig::decoupled`).
//!
//! Batches come from the shuffled sampler or from `contrast_sampler::BatchSampler`
//! (`TrainConfig::batch_sampler`).
#![warn(missing_docs)]

mod checkpoint;
mod error;
mod experiment;
mod inst_disc;
mod inva_spread;
mod method;
mod moco;
mod optim;
mod plot;
mod report;
mod simclr;
mod train;

pub use checkpoint::{CheckpointData, decode as decode_checkpoint, encode as encode_checkpoint};
pub use error::Error;
pub use experiment::{
    DatasetKind, MethodKind, MethodOptions, Metrics, ReproduceOptions, SamplerComparison, Scores,
    peak_memory_mib, read_metrics, reproduce, reproduce_paradigms, reproduce_simclr,
};
pub use inst_disc::{InstDisc, InstDiscConfig};
pub use inva_spread::{InvaSpread, InvaSpreadConfig};
pub use method::{InnerModel, KeptEmbeddings, Method, Paradigm};
pub use moco::{Moco, MocoConfig};
pub use optim::{AnyOptimizer, OptimizerConfig, OptimizerKind};
pub use plot::{Series, font_available, line_chart, scatter_by_class};
pub use report::TARGET_GAIN_OVER_RANDOM;
pub use simclr::{SimClr, SimClrConfig};
pub use train::{
    EpochRecord, History, RunDir, TrainConfig, Trained, embed, knn_monitor, subset_indices,
    subset_knn_top1, train,
};
