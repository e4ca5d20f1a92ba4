//! Image data for contrastive learning: loaders for IDX (MNIST, Fashion-MNIST), CIFAR-10/100,
//! STL-10 and image folders, SimCLR's seeded augmentations run in parallel on the CPU, and a
//! batcher that turns sampled indices into device tensors.
//!
//! Loaders return [`Splits`] of [`ImageDataset`]s (`u8` pixels, `[n, c, h, w]`) and never panic
//! on bad files: a truncated or corrupt file gives an [`Error`] naming the path, the byte offset
//! and the sizes expected and found.
//!
//! ```
//! use contrast_vision::{Error, ImageDataset, ImageShape, SimClrAugmentConfig, parse_idx};
//! use std::path::Path;
//!
//! let shape = ImageShape { channels: 1, height: 8, width: 8 };
//! let data = ImageDataset::new(vec![128; 4 * 64], vec![0, 1, 0, 1], shape, vec!["a".into(), "b".into()])?;
//! let augment = SimClrAugmentConfig::new(vec![0.5], vec![0.5]).init(42);
//! let views = augment.two_views(&data, &[3, 0], 0);
//! assert_eq!(views.first.len(), 2 * 64);
//!
//! // A truncated file is an error, not a panic.
//! let err = parse_idx(&[0, 0, 8, 1, 0, 0, 0, 9, 1, 2], Path::new("labels.idx")).unwrap_err();
//! assert!(err.to_string().contains("truncated"));
//! # Ok::<(), Error>(())
//! ```
#![warn(missing_docs)]

mod augment;
mod batcher;
mod cifar;
mod dataset;
mod error;
mod folder;
mod idx;
mod obtain;
mod stl10;

pub use augment::{HostViews, SimClrAugment, SimClrAugmentConfig, normalized_batch};
pub use batcher::{ImageBatcher, ImageViews, images_to_tensor};
pub use cifar::{CIFAR10_CLASSES, load_cifar10, load_cifar100, parse_cifar_records};
pub use dataset::{ImageDataset, ImageShape, Splits};
pub use error::Error;
pub use folder::{decode_image, decode_image_bytes, load_image_folder};
pub use idx::{
    FASHION_MNIST_CLASSES, IdxArray, encode_idx, load_idx_pair, load_mnist_format, maybe_gunzip,
    parse_idx, read_idx,
};
pub use obtain::{SYSTEM_FASHION_MNIST, fashion_mnist_dir, load_fashion_mnist};
pub use stl10::{STL10_CLASSES, load_stl10, parse_stl10_images, parse_stl10_labels};
