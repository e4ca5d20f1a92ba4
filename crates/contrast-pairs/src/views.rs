//! The views of image-caption pairs for the training loop: one augmented view of each image
//! (random resized crop, as CLIP trains) and one of its captions, drawn per (seed, epoch,
//! image), from a caption source that is either tokens (a text tower that trains) or feature
//! rows (a locked tower whose outputs were computed once).

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use contrast_core::{CrossModal, HostTokens, Labels, TokenBatch, ViewMode, Views, mix_seed};
use contrast_text::TokenizedCorpus;
use contrast_vision::{
    ImageDataset, ImageShape, SimClrAugment, images_to_tensor, normalized_batch,
};

/// Where a batch's captions come from.
pub trait Captions: Sync {
    /// A batch of captions on the host.
    type Host: Send;
    /// A batch of captions on a device: the text tower's input.
    type Batch<B: Backend>;

    /// Number of captions.
    fn len(&self) -> usize;

    /// True without captions.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The captions `ids`, in order.
    fn host(&self, ids: &[usize]) -> Self::Host;

    /// Moves a host batch to `device`.
    fn to_device<B: Backend>(&self, host: Self::Host, device: &B::Device) -> Self::Batch<B>;
}

impl Captions for TokenizedCorpus {
    type Host = HostTokens;
    type Batch<B: Backend> = TokenBatch<B>;

    fn len(&self) -> usize {
        TokenizedCorpus::len(self)
    }

    fn host(&self, ids: &[usize]) -> HostTokens {
        self.batch(ids)
    }

    fn to_device<B: Backend>(&self, host: HostTokens, device: &B::Device) -> TokenBatch<B> {
        TokenBatch::from_host(&host, device)
    }
}

/// Captions as rows of features: the outputs of a locked text tower, computed once.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionFeatures {
    /// Row-major `[captions, dim]`.
    pub rows: Vec<f32>,
    /// Width of a row.
    pub dim: usize,
}

impl Captions for CaptionFeatures {
    type Host = Vec<f32>;
    type Batch<B: Backend> = Tensor<B, 2>;

    fn len(&self) -> usize {
        self.rows.len() / self.dim.max(1)
    }

    fn host(&self, ids: &[usize]) -> Vec<f32> {
        ids.iter()
            .flat_map(|&i| self.rows[i * self.dim..(i + 1) * self.dim].iter().copied())
            .collect()
    }

    fn to_device<B: Backend>(&self, host: Vec<f32>, device: &B::Device) -> Tensor<B, 2> {
        let n = host.len() / self.dim.max(1);
        Tensor::from_data(TensorData::new(host, [n, self.dim]), device)
    }
}

/// A batch of pairs on the host.
#[derive(Debug)]
pub struct HostPairs<H> {
    /// One augmented view per image, `[batch, c, h, w]` floats.
    pub images: Vec<f32>,
    /// Images in the batch.
    pub batch: usize,
    /// Shape of each image.
    pub shape: ImageShape,
    /// Each image's caption, same order.
    pub captions: H,
}

/// Image-caption pairs seen by the training loop; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct PairViews<'a, C> {
    /// The images.
    pub images: &'a ImageDataset,
    /// Whether the images' labels are real classes (for kNN and diagnostics).
    pub labelled: bool,
    /// The augmentation of the image side (CLIP: random resized crop only).
    pub augment: &'a SimClrAugment,
    /// The captions.
    pub captions: &'a C,
    /// For each image, the captions it may be paired with.
    pub caption_of: &'a [Vec<usize>],
    /// Seed of the caption draws.
    pub seed: u64,
}

impl<C> PairViews<'_, C> {
    /// The caption paired with image `i` in `epoch`.
    pub fn caption(&self, i: usize, epoch: usize) -> usize {
        let options = &self.caption_of[i];
        let draw = mix_seed(mix_seed(self.seed, epoch as u64), i as u64);
        options[(draw % options.len() as u64) as usize]
    }
}

impl<C: Captions> Views for PairViews<'_, C> {
    type Host = HostPairs<C::Host>;
    type Batch<B: Backend> = CrossModal<Tensor<B, 4>, C::Batch<B>>;
    type Input<B: Backend> = Tensor<B, 4>;

    fn len(&self) -> usize {
        self.images.len()
    }

    /// One view of each image and one drawn caption; CLIP has a single view per modality, so
    /// `mode` does not apply.
    fn host_views(&self, _mode: ViewMode, indices: &[usize], epoch: usize) -> Self::Host {
        let ids: Vec<usize> = indices.iter().map(|&i| self.caption(i, epoch)).collect();
        HostPairs {
            images: self.augment.one_view(self.images, indices, epoch, 0),
            batch: indices.len(),
            shape: self.images.shape(),
            captions: self.captions.host(&ids),
        }
    }

    fn to_device<B: Backend>(&self, host: Self::Host, device: &B::Device) -> Self::Batch<B> {
        CrossModal {
            first: images_to_tensor(host.images, host.batch, host.shape, device),
            second: self.captions.to_device(host.captions, device),
        }
    }

    fn plain<B: Backend>(&self, indices: &[usize], device: &B::Device) -> Tensor<B, 4> {
        let c = self.augment.config();
        let host = normalized_batch(self.images, indices, &c.mean, &c.std);
        images_to_tensor(host, indices.len(), self.images.shape(), device)
    }

    fn labels(&self) -> Option<Labels<'_>> {
        self.labelled.then(|| Labels {
            values: self.images.labels(),
            classes: self.images.num_classes(),
        })
    }
}

/// Captions alone, as evaluation input for the text tower (the prompts of zero-shot
/// classification, the captions of retrieval): `plain(ids)` is the captions `ids`.
#[derive(Debug, Clone, Copy)]
pub struct CaptionViews<'a, C> {
    /// The captions.
    pub captions: &'a C,
}

impl<C: Captions> Views for CaptionViews<'_, C> {
    type Host = C::Host;
    type Batch<B: Backend> = C::Batch<B>;
    type Input<B: Backend> = C::Batch<B>;

    fn len(&self) -> usize {
        self.captions.len()
    }

    fn host_views(&self, _mode: ViewMode, indices: &[usize], _epoch: usize) -> C::Host {
        self.captions.host(indices)
    }

    fn to_device<B: Backend>(&self, host: C::Host, device: &B::Device) -> C::Batch<B> {
        self.captions.to_device(host, device)
    }

    fn plain<B: Backend>(&self, indices: &[usize], device: &B::Device) -> C::Batch<B> {
        self.captions.to_device(self.captions.host(indices), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contrast_core::FlexAutodiff as B;
    use contrast_vision::SimClrAugmentConfig;

    #[test]
    fn a_batch_pairs_each_image_with_one_of_its_captions() {
        let shape = ImageShape {
            channels: 1,
            height: 4,
            width: 4,
        };
        let images = ImageDataset::new(
            (0..64).map(|i| i as u8).collect(),
            vec![0, 1, 0, 1],
            shape,
            vec!["a".into(), "b".into()],
        )
        .unwrap();
        let augment = SimClrAugmentConfig::new(vec![0.5], vec![0.25])
            .with_flip_prob(0.0)
            .with_jitter_prob(0.0)
            .with_gray_prob(0.0)
            .with_blur_prob(0.0)
            .init(3);
        let features = CaptionFeatures {
            rows: (0..8).map(|i| i as f32).collect(),
            dim: 2,
        };
        let caption_of = vec![vec![0, 2], vec![1], vec![0, 2], vec![3]];
        let views = PairViews {
            images: &images,
            labelled: true,
            augment: &augment,
            captions: &features,
            caption_of: &caption_of,
            seed: 5,
        };
        let device = Default::default();
        let host = views.host_views(ViewMode::TwoAugmented, &[3, 1, 0], 0);
        let ids: Vec<usize> = [3, 1, 0].iter().map(|&i| views.caption(i, 0)).collect();
        assert_eq!(&ids[..2], &[3, 1]);
        assert!(caption_of[0].contains(&ids[2]));
        let batch = views.to_device::<B>(host, &device);
        assert_eq!(batch.first.dims(), [3, 1, 4, 4]);
        assert_eq!(batch.second.dims(), [3, 2]);
        let rows = batch.second.into_data().to_vec::<f32>().unwrap();
        assert_eq!(&rows[..4], &[6.0, 7.0, 2.0, 3.0]);
        // Image 0's caption varies over epochs, deterministically.
        let drawn: Vec<usize> = (0..16).map(|e| views.caption(0, e)).collect();
        assert!(drawn.contains(&0) && drawn.contains(&2));
        assert_eq!(
            drawn,
            (0..16).map(|e| views.caption(0, e)).collect::<Vec<_>>()
        );
        let prompts = CaptionViews {
            captions: &features,
        };
        assert_eq!(prompts.plain::<B>(&[2], &device).dims(), [1, 2]);
    }
}
