//! Image-caption pairs for cross-modal contrastive learning (CLIP, Radford et al. 2021).
//!
//! - [`parse_pairs`] / [`load_pairs`]: a pairs file (open_clip's `CsvDataset` convention: a
//!   header, an image-path column and a caption column, tab-separated by default) and its
//!   images, decoded and resized once; typed errors name the file and line of a bad row, a
//!   missing or undecodable image, an empty caption, a header without the named columns.
//! - [`ImageCaptions::from_labels`]: captions made from class names and templates
//!   ([`TRAIN_TEMPLATES`], [`EVAL_TEMPLATES`]), for datasets that have labels but no captions.
//! - [`PairViews`]: the training loop's views (one random-resized crop of each image, one of
//!   its captions per epoch) over a [`Captions`] source: tokens for a text tower that trains,
//!   [`CaptionFeatures`] for a locked tower computed once; [`CaptionViews`] for prompts.
//!
//! Data only: no loss and no training loop here.
#![warn(missing_docs)]

mod csv;
mod data;
mod error;
mod templates;
mod views;

pub use csv::{PairRow, PairsFormat, parse_pairs};
pub use data::{ImageCaptions, class_prompts, load_pairs};
pub use error::Error;
pub use templates::{EVAL_TEMPLATES, TRAIN_TEMPLATES};
pub use views::{CaptionFeatures, CaptionViews, Captions, HostPairs, PairViews};
