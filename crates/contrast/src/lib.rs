//! `contrast`: contrastive representation learning on Burn, in one dependency.
//!
//! Re-exports the workspace crates under short names; the `contrast` program (`src/main.rs`)
//! runs reproductions from the command line.
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`core`] | `contrast-core` | backends from a string, tensor helpers, traits, errors |
//! | [`kernels`] | `contrast-kernels` | CPU host kernels: convolution, batch norm, NT-Xent, `gemm` products |
//! | [`losses`] | `contrast-losses` | NT-Xent, InfoNCE, NCE, InvaSpread, CLIP, SimCSE, DCL, HCL, DIM, SupCon |
//! | [`negatives`] | `contrast-negatives` | memory bank, key queue, momentum encoder |
//! | [`encoders`] | `contrast-encoders` | ResNets, BERT (Hugging Face checkpoints in and out), GIN, projection heads |
//! | [`vision`] | `contrast-vision` | image datasets, SimCLR augmentations, batching |
//! | [`text`] | `contrast-text` | tokenizer, sentence and STS datasets, SimCSE views |
//! | [`graph`] | `contrast-graph` | TU and Planetoid loaders, GraphCL augmentations, PPR diffusion, graph views (GraphCL's, MVGRL's) |
//! | [`eval`] | `contrast-eval` | kNN, linear probe, STS Spearman, SVM cross-validation, PCA |
//! | [`sampler`] | `contrast-sampler` | BatchSampler: proximity graph, random walks with restart |
//! | [`methods`] | `contrast-methods` | the `Method` trait, InvaSpread, DIM, InstDisc, MoCo, SimCLR/DCL, SimCSE, GraphCL, MVGRL, the training loop, monitors, checkpoints |
//! | [`experiments`] | `contrast-experiments` | `reproduce`: recipes, baselines, metrics, reports, plots |
#![warn(missing_docs)]

pub use contrast_core as core;
pub use contrast_encoders as encoders;
pub use contrast_eval as eval;
pub use contrast_experiments as experiments;
pub use contrast_graph as graph;
pub use contrast_kernels as kernels;
pub use contrast_losses as losses;
pub use contrast_methods as methods;
pub use contrast_negatives as negatives;
pub use contrast_pairs as pairs;
pub use contrast_sampler as sampler;
pub use contrast_text as text;
pub use contrast_vision as vision;
