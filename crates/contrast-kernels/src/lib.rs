//! contrast's CPU host kernels: plain-Rust implementations, on host memory, of the operations
//! where Burn 0.21's CPU backends (`flex`, `ndarray`) spend most of a contrastive training
//! step, and the one test that decides whether a backend gets them.
//!
//! - Convolution ([`try_conv2d`], geometry [`ConvGeometry`]): channels-last im2col and one
//!   `gemm` product per chunk of samples for the forward pass, the weight gradient and the
//!   input gradient; Winograd's F(2x2, 3x3) for the forward pass and input gradient of the 3x3
//!   stride-1 padding-1 layers ([`set_winograd`] turns it off).
//! - Batch normalisation in training mode ([`try_batch_norm`]), with the residual addition and
//!   ReLU that follow it in a ResNet fused in, forward and backward.
//! - GIN's neighbourhood sum `x + A x` ([`try_add_neighbours`]), one pass over the edges
//!   grouped by target forward and by source backward.
//! - Dense layers with their bias and an optional ReLU or GELU ([`try_dense`]): blocks of
//!   rows, each one single-threaded product with the bias and activation applied in cache
//!   (GIN's MLPs, BERT's linears and feed-forward GELU).
//! - A post-LN transformer layer's attention ([`try_attention`]) and dropout + residual +
//!   layer norm ([`try_add_layer_norm`]), per sequence and row block (BERT).
//! - NT-Xent's value and exact gradient in row blocks ([`nt_xent_host`]), for
//!   `contrast-losses`.
//! - In-place edits of stored rows ([`edit_f32`], [`set_int`]), for the memory bank and key
//!   queue of `contrast-negatives`.
//! - Matrix products through `gemm` on bounds-checked strided views ([`matmul`], [`MatRef`],
//!   [`MatMut`]), which the kernels above, the sampler's proximity graph and the evaluation
//!   classifiers share.
//!
//! The layers above (convolution, batch norm, the neighbourhood sum, dense layers, attention,
//! add & norm) are autodiff operations with backward steps of their own, so a
//! model stays generic over `B: Backend`: the backend is recognised at run time from its type
//! ([`is_host_backend`]: `Flex`, `NdArray` and their `Autodiff`, each when this crate's feature
//! of the same name is on), and every other backend, dtype or option gets its inputs back to
//! run on Burn's kernels. Results agree with Burn's to rounding; the kernels' own summation
//! orders do not depend on the number of threads, so a training run repeats bit for bit.
//! `docs/performance.md` gives the measurements behind each kernel's design.
//!
//! ```
//! use contrast_kernels::{MatMut, MatRef, Threads, matmul};
//!
//! // [1 2; 3 4] times its transpose.
//! let a = [1.0, 2.0, 3.0, 4.0];
//! let mut c = [0.0; 4];
//! matmul(
//!     MatMut::row_major(&mut c, 2, 2),
//!     MatRef::row_major(&a, 2, 2),
//!     MatRef::row_major(&a, 2, 2).t(),
//!     false,
//!     Threads::One,
//! );
//! assert_eq!(c, [5.0, 11.0, 11.0, 25.0]);
//! ```
#![warn(missing_docs)]
// Without `flex` or `ndarray` no backend is served: the kernels behind the dispatch are unused.
#![cfg_attr(not(any(feature = "flex", feature = "ndarray")), allow(dead_code))]

mod backend;
mod buffer;
mod conv;
mod dense;
mod graph;
mod matmul;
mod norm;
mod nt_xent;
mod ops;
mod store;
mod transformer;
mod transformer_ops;
mod winograd;

pub use backend::{
    host_kernel_serves, host_kernels_enabled, is_host_backend, set_host_kernels, set_winograd,
};
pub use conv::ConvGeometry;
pub use dense::Activation;
pub use graph::try_add_neighbours;
pub use matmul::{MatMut, MatRef, Threads, matmul};
pub use nt_xent::nt_xent_host;
pub use ops::{NormInputs, NormOutput, try_batch_norm, try_conv2d};
pub use store::{edit_f32, set_int};
pub use transformer_ops::{try_add_layer_norm, try_attention, try_dense};
