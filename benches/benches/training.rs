//! What a training step costs: the augmentation pipeline, encoder forward + backward, and one
//! whole SimCLR step (two views through encoder + head, NT-Xent, backward, Adam).
//!
//! - `augment_two_views`: SimCLR augmentations of 256 images of 28x28x1 and 32x32x3, two views
//!   each, on the host with rayon (throughput in images).
//! - `encoder_fwd_bwd`: the small ResNet at 28x28 and ResNet-18 (CIFAR stem) at 32x32, batch
//!   256. ResNet-18 on a CPU backend takes tens of seconds per iteration: it runs only with
//!   `CONTRAST_BENCH_LARGE=1`.
//! - `simclr_step`: batch 256 (512 views of 28x28), small ResNet, 128-128-128 head, NT-Xent,
//!   Adam; the step whose ratio to PyTorch the benchmark report tracks.

use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Tensor};
use contrast_benches::sync;
use contrast_core::ViewPair;
use contrast_encoders::{ResNetConfig, Stem, set_host_kernels};
use contrast_methods::{HeadConfig, Method, SimClrConfig};
use contrast_vision::{ImageDataset, ImageShape, SimClrAugmentConfig};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const BATCH: usize = 256;

/// Label of the flex rows that bypass contrast's host kernels (convolution, batch norm).
const BURN_KERNELS: &str = "flex (Burn kernels)";

fn augment(c: &mut Criterion) {
    let mut group = c.benchmark_group("augment_two_views");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (channels, side) in [(1usize, 28usize), (3, 32)] {
        let shape = ImageShape {
            channels,
            height: side,
            width: side,
        };
        let pixels: Vec<u8> = (0..BATCH * shape.len())
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let data = ImageDataset::new(pixels, vec![0; BATCH], shape, vec!["x".into()]).unwrap();
        let aug = SimClrAugmentConfig::cifar(vec![0.5; channels], vec![0.25; channels]).init(1);
        let idx: Vec<usize> = (0..BATCH).collect();
        let mut epoch = 0;
        group.bench_function(
            BenchmarkId::new("host", format!("{BATCH}x{channels}x{side}x{side}")),
            |b| {
                b.iter(|| {
                    epoch += 1;
                    std::hint::black_box(aug.two_views(&data, &idx, epoch));
                })
            },
        );
    }
    group.finish();
}

fn encoder<B: AutodiffBackend>(c: &mut Criterion, backend: &str, device: &B::Device, large: bool) {
    let mut group = c.benchmark_group("encoder_fwd_bwd");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut cases = vec![("small-resnet", ResNetConfig::small(1), 1, 28)];
    if large {
        cases.push((
            "resnet18-cifar",
            ResNetConfig::resnet18(3, Stem::Cifar),
            3,
            32,
        ));
    }
    for (name, cfg, ch, side) in cases {
        let net = cfg.init::<B>(device);
        let x = Tensor::<B, 4>::random(
            [BATCH, ch, side, side],
            Distribution::Normal(0.0, 1.0),
            device,
        );
        group.bench_function(
            BenchmarkId::new(backend, format!("{name} {BATCH}x{ch}x{side}x{side}")),
            |b| {
                b.iter(|| {
                    let grads = net.forward(x.clone()).sum().backward();
                    std::hint::black_box(grads);
                    sync::<B>(device);
                })
            },
        );
    }
    group.finish();
}

fn simclr_step<B: AutodiffBackend>(c: &mut Criterion, backend: &str, device: &B::Device) {
    let backbone = ResNetConfig::small(1);
    let cfg = SimClrConfig::for_backbone(&backbone, 128).with_temperature(0.5);
    let mut method = cfg.init().expect("valid config");
    let mut model = Some(
        cfg.init_model::<B, _>(&backbone, device)
            .expect("valid config"),
    );
    let mut optim = AdamConfig::new().init::<B, contrast_encoders::ImageEncoder<B>>();
    let v1 = Tensor::<B, 4>::random([BATCH, 1, 28, 28], Distribution::Normal(0.0, 1.0), device);
    let v2 = Tensor::<B, 4>::random([BATCH, 1, 28, 28], Distribution::Normal(0.0, 1.0), device);
    let mut group = c.benchmark_group("simclr_step");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(
        BenchmarkId::new(
            backend,
            format!("small-resnet batch {BATCH} (512 views of 28x28)"),
        ),
        |b| {
            b.iter(|| {
                let m = model.take().unwrap();
                let pair = ViewPair {
                    first: v1.clone(),
                    second: v2.clone(),
                };
                let out = method.step(&m, pair, &[]);
                let grads = GradientsParams::from_grads(out.loss.backward(), &m);
                let m = optim.step(1e-3, m, grads);
                sync::<B>(device);
                model = Some(m);
            })
        },
    );
    group.finish();
}

fn benches(c: &mut Criterion) {
    contrast_core::tune_allocator();
    let large = std::env::var_os("CONTRAST_BENCH_LARGE").is_some();
    augment(c);
    type F = contrast_core::FlexAutodiff;
    let cpu = Default::default();
    encoder::<F>(c, "flex", &cpu, large);
    simclr_step::<F>(c, "flex", &cpu);
    // The same backend with every convolution and batch norm on Burn's own kernels: what the
    // host kernels of contrast-encoders buy.
    set_host_kernels(false);
    encoder::<F>(c, BURN_KERNELS, &cpu, large);
    simclr_step::<F>(c, BURN_KERNELS, &cpu);
    set_host_kernels(true);
    #[cfg(feature = "ndarray")]
    {
        type N = contrast_core::NdArrayAutodiff;
        encoder::<N>(c, "ndarray", &Default::default(), large);
        simclr_step::<N>(c, "ndarray", &Default::default());
    }
    #[cfg(feature = "wgpu")]
    {
        // On Mesa's software Vulkan one encoder step of batch 256 takes tens of seconds:
        // these rows run only when CONTRAST_WGPU_LABEL names a real GPU.
        if std::env::var_os("CONTRAST_WGPU_LABEL").is_some() {
            type W = contrast_core::WgpuAutodiff;
            let label = contrast_benches::wgpu_label();
            let device = Default::default();
            encoder::<W>(c, &label, &device, true);
            simclr_step::<W>(c, &label, &device);
        }
    }
    #[cfg(feature = "cuda")]
    {
        type C = contrast_core::CudaAutodiff;
        let device = Default::default();
        encoder::<C>(c, "cuda", &device, true);
        simclr_step::<C>(c, "cuda", &device);
    }
}

criterion_group!(group, benches);
criterion_main!(group);
