//! Contrastive methods and the loop that trains them, for any modality.
//!
//! A [`Method`] composes parts of the lower crates (an encoder from `contrast-encoders`, a loss
//! from `contrast-losses`, a store from `contrast-negatives`) and names the batch it trains on;
//! the data side of a modality is a [`contrast_core::Views`]. [`train`] owns everything else:
//! sampling, background view-making, optimiser and schedule (warm-up, then cosine, linear or no
//! [`Decay`]), [`Monitor`]s and the weights of a monitor's best evaluation
//! ([`TrainConfig::keep_best`]), atomic checkpoints (model and method state in one record),
//! resume, and a clear stop on a NaN loss.
//!
//! Methods, one per paradigm of negatives ([`Paradigm`]), each generic over its backbone:
//! - end-to-end: [`InvaSpread`], [`Dim`] (local Deep InfoMax);
//! - memory bank: [`InstDisc`] (NCE against bank rows, proximal term);
//! - momentum encoder: [`Moco`] v1 and v2 (EMA key encoder, FIFO queue, keys shuffled across
//!   peers or, on one device, in groups);
//! - in-batch negatives: [`SimClr`] (NT-Xent, or DCL with `SimClrConfig::decoupled`),
//!   [`SimCse`] and [`SupervisedSimCse`] (sentences: dropout views, NLI hard negatives),
//!   [`GraphCl`] (graphs: a graph against its augmentation).
//!
//! Batches come from the shuffled sampler or from `contrast_sampler::BatchSampler`
//! (`TrainConfig::batch_sampler`).
#![warn(missing_docs)]

pub mod checkpoint;
mod clip;
mod dim;
mod error;
mod graphcl;
mod inst_disc;
mod inva_spread;
mod method;
mod moco;
mod monitor;
mod mvgrl;
mod mvgrl_node;
mod optim;
mod record_check;
mod simclr;
mod simcse;
#[cfg(test)]
mod testing;
mod train;

pub use checkpoint::RunLock;
pub use clip::{
    Clip, ClipConfig, ClipNet, ClipNetOf, ZERO_SHOT_TOP1, ZeroShotMonitor, clip_embeddings,
};
pub use dim::{Dim, DimConfig, DimNet};
pub use error::Error;
pub use graphcl::{GraphCl, GraphClConfig};
pub use inst_disc::{InstDisc, InstDiscConfig, InstDiscState};
pub use inva_spread::{InvaSpread, InvaSpreadConfig};
pub use method::{HeadConfig, Method, MethodInfo, Paradigm, StepOutput};
pub use moco::{Moco, MocoConfig, MocoState};
pub use monitor::{
    KNN_TOP1, KnnMonitor, Monitor, NODE_ACCURACY, NodeMonitor, NodeSplit, SVM_ACCURACY, StsMonitor,
    StsPairs, SvmMonitor, embed, sts_score,
};
pub use mvgrl::{Mvgrl, MvgrlConfig, MvgrlNet, MvgrlOutputs};
pub use mvgrl_node::{MvgrlNode, MvgrlNodeConfig, MvgrlNodeNet};
pub use optim::{AnyOptimizer, Decay, OptimizerConfig, OptimizerKind};
pub use simclr::{SimClr, SimClrConfig};
pub use simcse::{SimCse, SimCseConfig, SupervisedSimCse};
pub use train::{
    BestRecord, BestWeights, EpochRecord, History, RunDir, StartEmbeddings, StepMonitors,
    TrainConfig, Trained, subset_indices, train, train_on_peers,
};
