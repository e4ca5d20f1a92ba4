use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use contrast_core::{Labels, ViewMode, ViewPair, Views};

use crate::{HostViews, ImageDataset, ImageShape, SimClrAugment, normalized_batch};

/// Turns host images (`[batch, c, h, w]` floats) into a device tensor.
///
/// # Panics
/// If `data.len()` is not `batch * shape.len()`.
pub fn images_to_tensor<B: Backend>(
    data: Vec<f32>,
    batch: usize,
    shape: ImageShape,
    device: &B::Device,
) -> Tensor<B, 4> {
    assert_eq!(
        data.len(),
        batch * shape.len(),
        "images_to_tensor: {} floats are not {batch} images of {shape:?}",
        data.len()
    );
    Tensor::from_data(
        TensorData::new(data, [batch, shape.channels, shape.height, shape.width]),
        device,
    )
}

/// Turns batches of indices, from any [`contrast_core::IndexSampler`], into device tensors:
/// two augmented views for training, or plain normalised images for evaluation.
#[derive(Debug, Clone)]
pub struct ImageBatcher {
    augment: SimClrAugment,
}

impl ImageBatcher {
    /// A batcher that augments with `augment` (whose mean and std also normalise plain batches).
    pub fn new(augment: SimClrAugment) -> Self {
        ImageBatcher { augment }
    }

    /// The augmentation pipeline.
    pub fn augment(&self) -> &SimClrAugment {
        &self.augment
    }

    /// Two views of the images at `indices`, on the host (cheap to run on another thread while
    /// the device computes).
    pub fn host_views(&self, data: &ImageDataset, indices: &[usize], epoch: usize) -> HostViews {
        self.augment.two_views(data, indices, epoch)
    }

    /// The pair of images `mode` asks for, on the host.
    pub fn host_views_as(
        &self,
        mode: ViewMode,
        data: &ImageDataset,
        indices: &[usize],
        epoch: usize,
    ) -> HostViews {
        match mode {
            ViewMode::TwoAugmented => self.host_views(data, indices, epoch),
            ViewMode::PlainAndAugmented => {
                let c = self.augment.config();
                HostViews {
                    first: normalized_batch(data, indices, &c.mean, &c.std),
                    second: self.augment.one_view(data, indices, epoch, 1),
                    batch: indices.len(),
                    shape: data.shape(),
                }
            }
        }
    }

    /// Moves host views to the device.
    pub fn to_device<B: Backend>(
        &self,
        views: HostViews,
        device: &B::Device,
    ) -> ViewPair<Tensor<B, 4>> {
        ViewPair {
            first: images_to_tensor(views.first, views.batch, views.shape, device),
            second: images_to_tensor(views.second, views.batch, views.shape, device),
        }
    }

    /// The [`Views`] of `data` through this batcher.
    pub fn views_of<'a>(&'a self, data: &'a ImageDataset) -> ImageViews<'a> {
        ImageViews {
            batcher: self,
            data,
        }
    }

    /// Two augmented views of the images at `indices`, on `device`.
    pub fn views<B: Backend>(
        &self,
        data: &ImageDataset,
        indices: &[usize],
        epoch: usize,
        device: &B::Device,
    ) -> ViewPair<Tensor<B, 4>> {
        self.to_device(self.host_views(data, indices, epoch), device)
    }

    /// The images at `indices`, normalised but not augmented, on `device`.
    pub fn plain<B: Backend>(
        &self,
        data: &ImageDataset,
        indices: &[usize],
        device: &B::Device,
    ) -> Tensor<B, 4> {
        let c = self.augment.config();
        let host = normalized_batch(data, indices, &c.mean, &c.std);
        images_to_tensor(host, indices.len(), data.shape(), device)
    }
}

/// One split of images seen through an [`ImageBatcher`]: the image modality's [`Views`].
#[derive(Debug, Clone, Copy)]
pub struct ImageViews<'a> {
    /// The augmentations.
    pub batcher: &'a ImageBatcher,
    /// The split.
    pub data: &'a ImageDataset,
}

impl Views for ImageViews<'_> {
    type Host = HostViews;
    type Batch<B: Backend> = ViewPair<Tensor<B, 4>>;
    type Input<B: Backend> = Tensor<B, 4>;

    fn len(&self) -> usize {
        self.data.len()
    }

    fn host_views(&self, mode: ViewMode, indices: &[usize], epoch: usize) -> HostViews {
        self.batcher.host_views_as(mode, self.data, indices, epoch)
    }

    fn to_device<B: Backend>(&self, host: HostViews, device: &B::Device) -> ViewPair<Tensor<B, 4>> {
        self.batcher.to_device(host, device)
    }

    fn plain<B: Backend>(&self, indices: &[usize], device: &B::Device) -> Tensor<B, 4> {
        self.batcher.plain(self.data, indices, device)
    }

    fn labels(&self) -> Option<Labels<'_>> {
        Some(Labels {
            values: self.data.labels(),
            classes: self.data.num_classes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimClrAugmentConfig;
    use contrast_core::Views;
    use contrast_core::testing::Flex;

    #[test]
    fn batches_have_the_expected_shapes() {
        let shape = ImageShape {
            channels: 1,
            height: 4,
            width: 4,
        };
        let ds = ImageDataset::new(vec![9; 5 * 16], vec![0; 5], shape, vec!["x".into()]).unwrap();
        let batcher = ImageBatcher::new(SimClrAugmentConfig::new(vec![0.5], vec![0.5]).init(0));
        let device = Default::default();
        let pair = batcher.views::<Flex>(&ds, &[4, 1, 3], 0, &device);
        assert_eq!(pair.first.dims(), [3, 1, 4, 4]);
        assert_eq!(pair.second.dims(), [3, 1, 4, 4]);
        let views = batcher.views_of(&ds);
        assert_eq!(views.len(), 5);
        assert_eq!(views.labels().map(|l| l.classes), Some(1));
        let p = batcher.plain::<Flex>(&ds, &[0, 2], &device);
        let v: Vec<f32> = p.into_data().to_vec().unwrap();
        assert!(
            v.iter()
                .all(|&x| (x - (9.0 / 255.0 - 0.5) / 0.5).abs() < 1e-6)
        );
    }
}
