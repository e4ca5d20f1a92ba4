//! Contrastive objectives for Burn, one per paradigm of contrastive learning, each a config
//! beside its loss, documented with its formula, paper, shapes and panics.
//!
//! | loss | paradigm | negatives |
//! |---|---|---|
//! | [`NtXentLoss`] (SimCLR) | in-batch | the other `2n - 2` views; optional label mask; a row-blocked, memory-bounded form |
//! | [`DecoupledLoss`] (DCL, DCLW) | in-batch | as NT-Xent, positive removed from the denominator |
//! | [`HardNegativeLoss`] (HCL, debiased) | in-batch | importance-weighted by hardness, false negatives subtracted |
//! | [`SupConLoss`] | in-batch | rows of other labels; same-label rows are positives |
//! | [`ClipLoss`] | in-batch, two modalities | the other pairs, both directions, learnable temperature |
//! | [`SimCseLoss`] | in-batch, sentences | the other sentences, plus hard negatives when supervised |
//! | [`GraphClLoss`] | in-batch, graphs | the other graphs' second views (positive left out of the denominator) |
//! | [`InfoNceLoss`] | momentum encoder / memory bank | an external `[k, d]` set without gradient |
//! | [`NceLoss`] (InstDisc) | memory bank | `m` uniform noise rows, NCE with an estimated `Z` |
//! | [`InvaSpreadLoss`] | end-to-end | instance-wise binary classification over the batch |
//! | [`LocalGlobalLoss`] (DIM, MVGRL) | end-to-end | JSD / DV / InfoNCE mutual-information bounds |
//!
//! Every log-sum-exp subtracts the row maximum, so temperatures as low as 0.05 with cosine
//! logits near 1 do not overflow. Each config has `validate()`; `init()` panics with the same
//! message when it fails, so programs call `validate()` first.
//!
//! ```
//! use burn::tensor::{Tensor, TensorData};
//! use contrast_core::{Error, FlexAutodiff as B, to_vec_f32};
//! use contrast_losses::NtXentLossConfig;
//!
//! let config = NtXentLossConfig::new().with_temperature(0.5);
//! config.validate()?;
//! let loss = config.init();
//! let device = Default::default();
//! let z1 = Tensor::<B, 2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0], [2, 2]), &device);
//! let z2 = z1.clone() + 0.1;
//! let value = to_vec_f32(loss.forward(z1, z2))[0];
//! assert!(value > 0.0 && value.is_finite());
//! # Ok::<(), Error>(())
//! ```
#![warn(missing_docs)]

mod clip;
mod decoupled;
mod dim;
mod graphcl;
mod hard_negative;
mod info_nce;
mod inva_spread;
mod mvgrl;
mod nce;
mod nt_xent;
#[cfg(test)]
mod properties;
mod simcse;
mod supcon;
#[cfg(test)]
mod testing;
mod util;

pub use clip::{ClipLoss, ClipLossConfig};
pub use decoupled::{DecoupledLoss, DecoupledLossConfig};
pub use dim::{LocalGlobalLoss, LocalGlobalLossConfig, MiEstimator};
pub use graphcl::{GraphClLoss, GraphClLossConfig};
pub use hard_negative::{HardNegativeLoss, HardNegativeLossConfig};
pub use info_nce::{InfoNceLoss, InfoNceLossConfig};
pub use inva_spread::{InvaSpreadLoss, InvaSpreadLossConfig};
pub use mvgrl::{MvgrlLoss, MvgrlLossConfig, discriminator_loss, node_owners};
pub use nce::{NceLoss, NceLossConfig, PartitionEstimate};
pub use nt_xent::{NtXentLoss, NtXentLossConfig};
pub use simcse::{SimCseLoss, SimCseLossConfig};
pub use supcon::{SupConLoss, SupConLossConfig};
pub use util::{Kernel, cross_entropy, log_sum_exp, softplus};
