//! Encoders for contrastive learning on Burn: ResNet-18 and ResNet-50 with the ImageNet stem
//! (7x7 conv + max-pool) or SimCLR's CIFAR stem (3x3 conv, no pool), a small ResNet for 28x28
//! images, and the MLP projection head.
//!
//! [`ProjectedEncoder`] pairs a backbone with its head and exposes both the representation
//! (before the head, for downstream tasks) and the projection (after it, for the loss).
//!
//! ```
//! use burn::tensor::Tensor;
//! use contrast_core::{Encoder, EncoderConfig, Error, testing::Flex};
//! use contrast_encoders::{ProjectedEncoder, ProjectionHeadConfig, ResNetConfig};
//!
//! let device = Default::default();
//! let backbone = ResNetConfig::small(1);
//! backbone.validate()?;
//! let head = ProjectionHeadConfig::new(backbone.output_dim(), 128, 64);
//! let net = ProjectedEncoder::<Flex, _>::init(&backbone, &head, &device)?;
//! let images = Tensor::<Flex, 4>::zeros([2, 1, 28, 28], &device);
//! assert_eq!(net.embed(images.clone()).dims(), [2, 128]);
//! assert_eq!(net.projection(images).dims(), [2, 64]);
//! # Ok::<(), Error>(())
//! ```
#![warn(missing_docs)]

mod bert;
mod bert_io;
mod conv;
mod dense;
mod gcn;
mod gin;
mod head;
mod init;
mod layout;
mod net;
mod norm;
mod precomputed;
mod resnet;

pub use bert::{Bert, BertConfig, BertEmbeddings, BertLayer, BertPooling, BertStack};
pub use bert_io::{WEIGHTS_FILE, load_bert, read_bert_config, save_bert};
pub use contrast_kernels::{
    host_kernel_serves, host_kernels_enabled, set_host_kernels, set_winograd,
};
pub use conv::conv2d;
pub use gcn::{
    BilinearScore, BilinearScoreConfig, Gcn, GcnConfig, GcnLayer, ShortcutMlp, ShortcutMlpConfig,
};
pub use gin::{Gin, GinConfig, GinLayer, sum_neighbours, sum_readout};
pub use head::{ProjectionHead, ProjectionHeadConfig};
pub use net::{ImageEncoder, ProjectedEncoder, check_head};
pub use norm::BatchNorm2d;
pub use precomputed::{Precomputed, PrecomputedConfig};
pub use resnet::{BasicBlock, BlockKind, Bottleneck, Downsample, ResNet, ResNetConfig, Stem};
