//! Queue enqueue, memory-bank update and EMA update, beside this machine's memory-copy
//! bandwidth measured in the same run.
//!
//! - `memcpy`: `copy_from_slice` of 256 MiB, the bandwidth ceiling of the CPU rows.
//! - `queue_enqueue`: a 256 x 128 batch into a 65536 x 128 queue (bytes = the batch).
//! - `bank_update`: 256 rows of a 1.28M x 128 bank (bytes = rows read + written).
//! - `ema_update`: 25M parameters in 10 linear layers, ResNet-50's size (bytes = 2 reads +
//!   1 write of every parameter).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use contrast_benches::{randn, sync};
use contrast_negatives::{KeyQueueConfig, MemoryBankConfig, update_momentum};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const D: usize = 128;
const BATCH: usize = 256;

fn memcpy(c: &mut Criterion) {
    let len = 64 << 20; // 64M f32 = 256 MiB
    let src = vec![1.0f32; len];
    let mut dst = vec![0.0f32; len];
    let mut group = c.benchmark_group("memcpy");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((2 * len * 4) as u64));
    group.bench_function(BenchmarkId::new("host", "256MiB"), |b| {
        b.iter(|| {
            dst.copy_from_slice(&src);
            std::hint::black_box(&dst);
        })
    });
    group.finish();
}

fn queue<B: Backend>(c: &mut Criterion, backend: &str, device: &B::Device) {
    let capacity = 65536;
    let mut q = Some(KeyQueueConfig::new(capacity, D).init::<B>(device).unwrap());
    let keys = randn::<B>(BATCH, D, device);
    let mut step = 0u64;
    let mut group = c.benchmark_group("queue_enqueue");
    group.throughput(Throughput::Bytes((BATCH * D * 4) as u64));
    group.bench_function(
        BenchmarkId::new(backend, format!("{BATCH}x{D} into {capacity}x{D}")),
        |b| {
            b.iter(|| {
                step += 1;
                let next = q.take().unwrap().enqueue(keys.clone(), step).unwrap();
                sync::<B>(device);
                q = Some(next);
            })
        },
    );
    group.finish();
}

fn bank<B: Backend>(c: &mut Criterion, backend: &str, device: &B::Device, rows: usize) {
    let mut bank = Some(MemoryBankConfig::new(rows, D).init::<B>(device).unwrap());
    let features = randn::<B>(BATCH, D, device);
    let stride = rows / BATCH;
    let mut step = 0u64;
    let mut group = c.benchmark_group("bank_update");
    group.sample_size(20);
    group.throughput(Throughput::Bytes((2 * BATCH * D * 4) as u64));
    group.bench_function(
        BenchmarkId::new(backend, format!("{BATCH}x{D} into {rows}x{D}")),
        |b| {
            b.iter(|| {
                step += 1;
                let offset = (step as usize) % stride;
                let idx: Vec<usize> = (0..BATCH).map(|i| i * stride + offset).collect();
                let next = bank
                    .take()
                    .unwrap()
                    .update(&idx, features.clone(), step)
                    .unwrap();
                sync::<B>(device);
                bank = Some(next);
            })
        },
    );
    group.finish();
}

#[derive(Module, Debug)]
struct Params<B: Backend> {
    layers: Vec<Linear<B>>,
}

fn ema<B: Backend>(c: &mut Criterion, backend: &str, device: &B::Device) {
    let width = 1580; // 10 x (1580^2 + 1580) = 24.98M parameters
    let make = || Params {
        layers: (0..10)
            .map(|_| LinearConfig::new(width, width).init::<B>(device))
            .collect(),
    };
    let online = make();
    let mut target = Some(make());
    let params = online.num_params();
    let mut group = c.benchmark_group("ema_update");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((3 * params * 4) as u64));
    group.bench_function(
        BenchmarkId::new(backend, format!("{:.1}M params", params as f64 / 1e6)),
        |b| {
            b.iter(|| {
                let next = update_momentum(target.take().unwrap(), &online, 0.999).unwrap();
                // touch one value so lazy backends materialise the update
                let probe: Tensor<B, 1, Int> =
                    Tensor::from_data(TensorData::new(vec![0i64], [1]), device);
                let _ = next.layers[9].weight.val().select(0, probe);
                sync::<B>(device);
                target = Some(next);
            })
        },
    );
    group.finish();
}

fn benches(c: &mut Criterion) {
    contrast_core::tune_allocator();
    memcpy(c);
    type F = burn::backend::Flex;
    let cpu = Default::default();
    queue::<F>(c, "flex", &cpu);
    bank::<F>(c, "flex", &cpu, 1_280_000);
    ema::<F>(c, "flex", &cpu);
    #[cfg(feature = "wgpu")]
    {
        type W = burn::backend::Wgpu;
        let label = contrast_benches::wgpu_label();
        let device = Default::default();
        queue::<W>(c, &label, &device);
        // A wgpu buffer is capped by the adapter's max storage-buffer binding size; Mesa's
        // lavapipe cannot hold the 655 MB bank, so without a GPU label the bank is 200k rows.
        let rows = if std::env::var_os("CONTRAST_WGPU_LABEL").is_some() {
            1_280_000
        } else {
            200_000
        };
        bank::<W>(c, &label, &device, rows);
        ema::<W>(c, &label, &device);
    }
    #[cfg(feature = "cuda")]
    {
        type C = burn::backend::Cuda;
        let device = Default::default();
        queue::<C>(c, "cuda", &device);
        bank::<C>(c, "cuda", &device, 1_280_000);
        ema::<C>(c, "cuda", &device);
    }
}

criterion_group!(group, benches);
criterion_main!(group);
