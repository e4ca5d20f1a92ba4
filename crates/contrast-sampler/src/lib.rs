//! BatchSampler (Zhang et al., *BatchSampler: Sampling Mini-Batches for Contrastive Learning in
//! Vision, Language, and Graphs*, KDD 2023): instead of looking for hard negatives inside a
//! random batch, sample the batch itself so that its instances are hard to tell apart.
//!
//! 1. A [`ProximityGraph`]: each instance links to its K most similar of M candidates drawn
//!    uniformly from the whole dataset (M controls hardness against false negatives: M = N is
//!    the exact kNN graph, small M is close to random).
//! 2. Batches are random walks with restart on that graph ([`BatchSampler`]), which implements
//!    `contrast_core::IndexSampler`, so it replaces the shuffled sampler in any training loop,
//!    for images, sentences or graphs alike: it only sees embeddings.
//!
//! Neighbour search uses a k-d tree (`kiddo`) at low dimension and a blocked matrix product
//! (`gemm`) otherwise ([`NeighbourSearch`]); both return the same neighbours on tie-free data.
//!
//! ```
//! use contrast_core::IndexSampler;
//! use contrast_sampler::{BatchSampler, BatchSamplerConfig, same_class_pair_share};
//!
//! // Two well separated clusters of 100 points in 4 dimensions.
//! let emb: Vec<f32> = (0..200).flat_map(|i| {
//!     let c = (i % 2) as f32;
//!     [c, 1.0 - c, 0.01 * (i as f32).sin(), 0.01 * (i as f32).cos()]
//! }).collect();
//! let labels: Vec<u32> = (0..200).map(|i| i % 2).collect();
//! let mut config = BatchSamplerConfig::new(20);
//! config.candidates = 200;
//! config.neighbours = 10;
//! config.warmup_epochs = 0;
//! let mut sampler = BatchSampler::new(config, 200)?;
//! sampler.set_embeddings(emb, 4)?;
//! sampler.begin_epoch(0);
//! let batch = sampler.next_batch().unwrap();
//! assert_eq!(batch.len(), 20);
//! assert!(same_class_pair_share(&batch, &labels) > 0.9); // random batches: about 0.47
//! # Ok::<(), contrast_core::Error>(())
//! ```
#![warn(missing_docs)]

mod diagnostics;
mod graph;
mod sampler;

pub use diagnostics::{mean_pairwise_similarity, same_class_pair_share};
pub use graph::{NeighbourSearch, ProximityGraph};
pub use sampler::{BatchSampler, BatchSamplerConfig, Coverage, WalkStats};
