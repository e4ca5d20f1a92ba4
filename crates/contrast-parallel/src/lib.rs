//! Data-parallel training for `contrast`: one peer per device, in one process or across
//! machines, on Burn's `burn-collective`.
//!
//! A [`Peer`] is one device's place in the group ([`GroupConfig`]). Peers meet in three
//! operations, each an all-reduce of burn-collective (which has no all-gather):
//! [`gather_rows`] gives the loss every peer's embeddings (the in-batch negatives of the global
//! batch, this peer's rows still differentiable), [`sync_gradients`] combines the gradients
//! before each optimiser step in one message, and [`broadcast_module`] starts every peer from
//! the lead peer's weights. Every wait is bounded: a peer that fails stops the others of its
//! process at once ([`run_peers`]), a silent peer or node is named after the group's timeout.
//!
//! ```
//! use burn::tensor::Tensor;
//! use contrast_core::FlexAutodiff as B;
//! use contrast_parallel::{GroupConfig, Peer, PeerError, gather_rows, run_peers};
//!
//! let peers = Peer::group(GroupConfig::local(2))?;
//! let work = |peer: Peer| -> Result<Vec<f32>, PeerError> {
//!     let device = Default::default();
//!     peer.register::<burn::backend::Flex>(&device)?;
//!     peer.set_split(vec![1, 1]);
//!     let mine = Tensor::<B, 2>::from_floats([[peer.rank() as f32, 1.0]], &device);
//!     let all = gather_rows(&peer, mine)?;
//!     peer.finish::<burn::backend::Flex>()?;
//!     Ok(contrast_core::to_vec_f32(all))
//! };
//! let gathered = run_peers::<burn::backend::Flex, _, _, _, _>(peers, work, work)?;
//! assert_eq!(gathered[0], vec![0.0, 1.0, 1.0, 1.0]);
//! assert_eq!(gathered[1], gathered[0]);
//! # Ok::<(), PeerError>(())
//! ```
#![warn(missing_docs)]

mod error;
mod group;
mod nodes;
mod ops;
mod sum;

pub use error::PeerError;
pub use group::{Busy, GroupConfig, Peer, Reduce, run_peers};
pub use ops::{
    EXACT_INDICES, broadcast_module, check_same_parameters, gather_rows, gathered,
    gathered_instances, share_indices, shared_permutation, sync_gradients,
};
pub use sum::{batch_statistics_sum, summed, sums_with_gradient};
