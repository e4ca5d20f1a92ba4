//! Negatives kept between training steps: the memory-bank and momentum-encoder paradigms.
//!
//! - [`MemoryBank`]: one normalised embedding per dataset instance (InstDisc), read without
//!   gradient, refreshed with momentum, with per-row staleness.
//! - [`KeyQueue`]: MoCo's FIFO ring buffer of keys; whole batches enter, also across the wrap.
//! - [`update_momentum`] and [`MomentumSchedule`]: the EMA target encoder for any Burn module.
//!
//! Every store is a Burn [`Module`](burn::module::Module) whose state (rows, keys, ages, write
//! position) is a parameter without gradient, so it is saved and restored with the model.
//!
//! ```
//! use burn::tensor::Tensor;
//! use contrast_core::{Error, FlexAutodiff as B};
//! use contrast_negatives::KeyQueueConfig;
//!
//! let device = Default::default();
//! let mut queue = KeyQueueConfig::new(8, 4).init::<B>(&device)?;
//! for step in 0..3 {
//!     queue = queue.enqueue(Tensor::<B, 2>::ones([3, 4], &device), step)?;
//! }
//! assert_eq!(queue.len(), 8); // 9 keys entered, the oldest one left
//! assert_eq!(queue.negatives().dims(), [8, 4]);
//! assert_eq!(queue.staleness(3).max, 3);
//! # Ok::<(), Error>(())
//! ```
#![warn(missing_docs)]

mod bank;
mod host;
mod momentum;
mod queue;
mod util;

pub use bank::{MemoryBank, MemoryBankConfig};
pub use momentum::{MomentumSchedule, momentum_target, update_momentum};
pub use queue::{KeyQueue, KeyQueueConfig};
pub use util::Staleness;
