use crate::Error;

/// Channels, height and width of every image of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageShape {
    /// 1 (grayscale) or 3 (RGB).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl ImageShape {
    /// Bytes (and pixels times channels) of one image.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// True for a zero-sized shape.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A labelled image dataset held in memory as `u8` pixels in `[n, channels, height, width]`
/// order (the layout Burn's convolutions expect).
#[derive(Debug, Clone)]
pub struct ImageDataset {
    pixels: Vec<u8>,
    labels: Vec<u32>,
    shape: ImageShape,
    class_names: Vec<String>,
}

impl ImageDataset {
    /// Builds a dataset, checking that pixels and labels agree with the shape and the classes.
    ///
    /// # Errors
    /// [`Error::Core`] (`InvalidConfig`) when `pixels.len()` is not `labels.len()` images of
    /// `shape`, or a label is not below `class_names.len()`.
    pub fn new(
        pixels: Vec<u8>,
        labels: Vec<u32>,
        shape: ImageShape,
        class_names: Vec<String>,
    ) -> Result<Self, Error> {
        if shape.is_empty() {
            return Err(contrast_core::Error::invalid_config(
                "image shape",
                format!("{shape:?}"),
                "every dimension must be at least 1",
            )
            .into());
        }
        if pixels.len() != labels.len() * shape.len() {
            return Err(contrast_core::Error::invalid_config(
                "pixels",
                pixels.len(),
                format!("expected {} images of {} bytes", labels.len(), shape.len()),
            )
            .into());
        }
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l as usize >= class_names.len())
        {
            return Err(contrast_core::Error::invalid_config(
                "labels",
                l,
                format!(
                    "label of image {i} is not below the {} classes",
                    class_names.len()
                ),
            )
            .into());
        }
        Ok(ImageDataset {
            pixels,
            labels,
            shape,
            class_names,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the dataset holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The shape shared by all images.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    /// Pixels of image `i`, `[channels, height, width]`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.shape.len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// All labels, one per image.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Class names; a label is an index into them.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// A new dataset holding the images at `indices`, in that order.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> ImageDataset {
        let mut pixels = Vec::with_capacity(indices.len() * self.shape.len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        ImageDataset {
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape,
            class_names: self.class_names.clone(),
        }
    }

    /// The first `n` images (all of them if `n` is larger).
    pub fn take(&self, n: usize) -> ImageDataset {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.subset(&idx)
    }

    /// Splits into `(train, test)` with a seeded shuffle; `test_fraction` of the images go to
    /// the test part (for datasets that ship without a test split, like image folders).
    ///
    /// # Errors
    /// `InvalidConfig` unless `0 < test_fraction < 1`.
    pub fn split(
        &self,
        test_fraction: f64,
        seed: u64,
    ) -> Result<(ImageDataset, ImageDataset), Error> {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        if !(test_fraction > 0.0 && test_fraction < 1.0) {
            return Err(contrast_core::Error::invalid_config(
                "test_fraction",
                test_fraction,
                "must lie strictly between 0 and 1",
            )
            .into());
        }
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(&mut rand_pcg::Pcg64Mcg::seed_from_u64(seed));
        let n_test = ((self.len() as f64) * test_fraction).round() as usize;
        let (test, train) = idx.split_at(n_test);
        Ok((self.subset(train), self.subset(test)))
    }

    /// Pixels scaled to `[0, 1]` as `f32`, image by image (for raw-pixel baselines).
    pub fn pixels_f32(&self) -> Vec<f32> {
        self.pixels.iter().map(|&p| p as f32 / 255.0).collect()
    }

    /// Per-channel mean and standard deviation of the pixels scaled to `[0, 1]`.
    pub fn channel_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let c = self.shape.channels;
        let plane = self.shape.height * self.shape.width;
        let mut sum = vec![0f64; c];
        let mut sq = vec![0f64; c];
        for img in self.pixels.chunks_exact(self.shape.len()) {
            for (ch, p) in img.chunks_exact(plane).enumerate() {
                for &v in p {
                    let v = v as f64 / 255.0;
                    sum[ch] += v;
                    sq[ch] += v * v;
                }
            }
        }
        let count = (self.len() * plane).max(1) as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / count) as f32).collect();
        let std = sq
            .iter()
            .zip(&sum)
            .map(|(q, s)| {
                let m = s / count;
                ((q / count - m * m).max(1e-12)).sqrt() as f32
            })
            .collect();
        (mean, std)
    }
}

/// A dataset's train and test splits.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Images for training (and the kNN memory / linear-probe training set).
    pub train: ImageDataset,
    /// Held-out images for evaluation.
    pub test: ImageDataset,
}
