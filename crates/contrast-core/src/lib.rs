//! The foundation of `contrast`: backend selection from a string, tensor helpers, the shared
//! error type and the small traits that losses, negative stores, samplers and methods build on.
//!
//! Everything numerical is generic over `B: Backend`. Programs pick the concrete backend at run
//! time with [`DeviceSpec`]: `flex` (default CPU), `ndarray`, `wgpu` and `cuda[:N]`, each behind
//! the cargo feature of the same name.
//!
//! ```
//! use burn::tensor::{Tensor, TensorData, backend::AutodiffBackend};
//! use contrast_core::{BackendTask, DeviceSpec, Error, cosine_similarity_matrix, to_vec_f32};
//!
//! struct SelfSimilarity;
//! impl BackendTask for SelfSimilarity {
//!     type Output = Vec<f32>;
//!     fn run<B: AutodiffBackend>(self, device: B::Device) -> Vec<f32> {
//!         let x = Tensor::<B, 2>::from_data(TensorData::new(vec![3.0f32, 4.0], [1, 2]), &device);
//!         to_vec_f32(cosine_similarity_matrix(x.clone(), x, 1e-12))
//!     }
//! }
//!
//! let device: DeviceSpec = "flex".parse()?;
//! let sim = device.run(SelfSimilarity)?;
//! assert!((sim[0] - 1.0).abs() < 1e-6);
//! assert!("tpu".parse::<DeviceSpec>().unwrap_err().to_string().contains("valid choices"));
//! # Ok::<(), Error>(())
//! ```
#![warn(missing_docs)]

mod alloc;
mod backend;
mod disk;
mod encoder;
mod error;
mod graph;
pub mod obtain;
mod peers;
mod sampler;
mod tensor;
#[cfg(feature = "flex")]
pub mod testing;
mod tokens;
mod views;

pub use alloc::{GLIBC_MALLOC_ENV, tune_allocator};
#[cfg(feature = "cuda")]
pub use backend::CudaAutodiff;
#[cfg(feature = "flex")]
pub use backend::FlexAutodiff;
#[cfg(feature = "ndarray")]
pub use backend::NdArrayAutodiff;
#[cfg(feature = "wgpu")]
pub use backend::WgpuAutodiff;
pub use backend::{BackendKind, BackendTask, DeviceSpec, available_devices, probe};
pub use disk::available_space;
pub use encoder::{
    AutodiffEncoder, CrossModal, Encoder, EncoderConfig, InstanceBatch, InstanceRows, LocalEncoder,
    ViewPair, ViewTriplet,
};
pub use error::{Error, ensure_finite, ensure_in_range, ensure_positive};
pub use graph::{DenseGraphViews, GraphBatch, HostDenseViews, HostGraphs};
pub use peers::{peer_sum_installed, sum_over_peers, with_peer_sum};
pub use sampler::{IndexSampler, ShuffledSampler, ShuffledSamplerState, mix_seed};
pub use tensor::{
    NORM_EPS, cosine_similarity_matrix, dot_similarity, index_tensor, l2_normalize,
    l2_normalize_row, row_norms, to_vec_f32,
};
pub use tokens::{HostTokens, TokenBatch};
pub use views::{Labels, ViewMode, Views};

/// Burn, re-exported so that users of `contrast` name the same version.
pub use burn;
