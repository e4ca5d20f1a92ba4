//! Test data and helpers shared by the integration tests of this crate.
#![allow(dead_code)]

use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use contrast_core::{Encoder, ViewPair};
use contrast_encoders::{BlockKind, ResNetConfig, Stem};
use contrast_methods::{
    Error, KnnMonitor, Method, Monitor, OptimizerConfig, RunDir, TrainConfig, Trained, train,
};
use contrast_vision::{ImageBatcher, ImageDataset, ImageShape, SimClrAugmentConfig, Splits};

/// Training images in [`data`].
pub const N: usize = 48;

/// Tiny 8x8 two-class images: stripes one way or the other, with per-pixel and per-image
/// variation.
pub fn data() -> Splits {
    let shape = ImageShape {
        channels: 1,
        height: 8,
        width: 8,
    };
    let make = |n: usize, salt: usize| {
        let labels: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
        let pixels = (0..n * 64)
            .map(|p| {
                let (i, px) = (p / 64, p % 64);
                let bright = if labels[i] == 0 {
                    px % 8 < 4
                } else {
                    px / 8 < 4
                };
                (if bright { 200 } else { 30 } + (p * 7 + salt + i * 13) % 40) as u8
            })
            .collect();
        ImageDataset::new(pixels, labels, shape, vec!["a".into(), "b".into()]).unwrap()
    };
    Splits {
        train: make(N, 0),
        test: make(16, 5),
    }
}

/// A two-stage ResNet of widths 4 and 8.
pub fn backbone() -> ResNetConfig {
    ResNetConfig::new(1, BlockKind::Basic, vec![1, 1], vec![4, 8], Stem::Cifar, 4)
}

/// Augmentation without blur, seeded.
pub fn batcher() -> ImageBatcher {
    ImageBatcher::new(
        SimClrAugmentConfig::new(vec![0.5], vec![0.25])
            .with_blur_prob(0.0)
            .init(9),
    )
}

/// Adam at 0.01, batch 16.
pub fn config(epochs: usize) -> TrainConfig {
    TrainConfig::new(OptimizerConfig::new().with_learning_rate(0.01))
        .with_epochs(epochs)
        .with_batch_size(16)
}

/// Trains `method` from `model` on [`data`] through [`batcher`], with the kNN monitor on every
/// image.
pub fn train_on_data<Bk, M, Me>(
    method: &mut Me,
    model: M,
    cfg: &TrainConfig,
    run: &RunDir,
    device: &Bk::Device,
) -> Result<Trained<M>, Error>
where
    Bk: AutodiffBackend,
    M: AutodiffModule<Bk>,
    M::InnerModule: Encoder<Bk::InnerBackend, Input = Tensor<Bk::InnerBackend, 4>>,
    Me: Method<Bk, M, Batch = ViewPair<Tensor<Bk, 4>>>,
{
    let data = data();
    let batcher = batcher();
    let (train_views, test_views) = (batcher.views_of(&data.train), batcher.views_of(&data.test));
    let knn = KnnMonitor::new(&train_views, &test_views, (0, 0), cfg.seed, 512)?;
    let mut monitors: Vec<Box<dyn Monitor<Bk, M> + '_>> = vec![Box::new(knn)];
    train(method, model, &train_views, &mut monitors, cfg, run, device)
}

/// A fresh folder under the system's temporary directory.
pub fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("contrast-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Tests of one file run in parallel and Burn's backend generator is global: seeding and
/// initialising happen under one lock so that no other test draws numbers in between.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` (which builds a model) right after seeding the backend with 7, under the lock.
pub fn seeded<Bk: AutodiffBackend, T>(device: &Bk::Device, f: impl FnOnce() -> T) -> T {
    let _guard = RNG.lock().unwrap_or_else(|e| e.into_inner());
    Bk::seed(device, 7);
    f()
}
