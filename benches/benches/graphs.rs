//! What a graph step costs: GIN as GraphCL's unsupervised TU code configures it (3 layers of 32,
//! a 2-layer MLP per layer, batch norm, the sum readouts of every layer concatenated) on the
//! first 128 graphs of PROTEINS (one-hot node labels).
//!
//! - `gin_fwd_bwd`: the batch's graph embeddings, summed, backward.
//! - `graphcl_step`: GIN and GraphCL's head (96 -> 96 -> 96) on the batch as both views (the
//!   augmentations are data-side work, made on the prefetch thread while the device trains),
//!   GraphCL's loss at T = 0.2, backward, Adam.
//!
//! PROTEINS is read from `$CONTRAST_SHARED_DATASETS/tu/PROTEINS` or from the shared datasets
//! folder beside the workspace (`../shared/datasets/tu/PROTEINS`); without it these benchmarks are skipped with a message. The
//! peer is `benches/peers/pytorch_bench.py` with PyTorch Geometric (`GINConv`,
//! `global_add_pool`) on the same graphs; `cargo xtask bench --peer pytorch --rounds N` runs
//! both.

use std::path::PathBuf;

use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use contrast_benches::sync;
use contrast_core::{Encoder, EncoderConfig, GraphBatch, HostGraphs, ViewPair};
use contrast_encoders::{Gin, GinConfig, ProjectedEncoder};
use contrast_graph::{TuDataset, TuOptions, host_graphs, load_tu};
use contrast_methods::{GraphClConfig, HeadConfig, Method};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const BATCH: usize = 128;

/// PROTEINS from the shared datasets folder, if this machine has it.
fn proteins() -> Option<TuDataset> {
    let root = std::env::var_os("CONTRAST_SHARED_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets"));
    let dir = root.join("tu/PROTEINS");
    match load_tu(&dir, "PROTEINS", &TuOptions::default()) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!(
                "graphs benchmarks skipped: PROTEINS not readable at {}: {e}",
                dir.display()
            );
            None
        }
    }
}

/// The first `BATCH` graphs and the size label both peers print.
fn batch(data: &TuDataset) -> (HostGraphs, String) {
    let host = host_graphs(&data.graphs[..BATCH], data.feat_dim);
    let label = format!(
        "PROTEINS first {BATCH} graphs ({} nodes, {} directed edges, {} features), GIN 3x32",
        host.nodes(),
        host.edges(),
        data.feat_dim
    );
    (host, label)
}

/// GraphCL's unsupervised TU encoder for node features of width `input`.
fn gin(input: usize) -> GinConfig {
    GinConfig::new(input).with_layers(3).with_hidden(32)
}

fn gin_fwd_bwd<B: AutodiffBackend>(
    c: &mut Criterion,
    backend: &str,
    data: &TuDataset,
    device: &B::Device,
) {
    let config = gin(data.feat_dim);
    let net: Gin<B> = config.init(device);
    let (host, label) = batch(data);
    let graphs = GraphBatch::<B>::from_host(&host, device);
    let mut group = c.benchmark_group("gin_fwd_bwd");
    group.sample_size(20);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(BenchmarkId::new(backend, label), |b| {
        b.iter(|| {
            let grads = net.embed(graphs.clone()).sum().backward();
            std::hint::black_box(grads);
            sync::<B>(device);
        })
    });
    group.finish();
}

fn graphcl_step<B: AutodiffBackend>(
    c: &mut Criterion,
    backend: &str,
    data: &TuDataset,
    device: &B::Device,
) {
    let backbone = gin(data.feat_dim);
    let config = GraphClConfig::for_backbone(&backbone);
    let mut method = config.init().expect("valid config");
    let mut model = Some(
        config
            .init_model::<B, _>(&backbone, device)
            .expect("valid config"),
    );
    let mut optim = AdamConfig::new().init::<B, ProjectedEncoder<B, Gin<B>>>();
    let (host, label) = batch(data);
    let graphs = GraphBatch::<B>::from_host(&host, device);
    let mut group = c.benchmark_group("graphcl_step");
    group.sample_size(20);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(BenchmarkId::new(backend, label), |b| {
        b.iter(|| {
            let m = model.take().unwrap();
            let pair = ViewPair {
                first: graphs.clone(),
                second: graphs.clone(),
            };
            let out = method.step(&m, pair, &[]);
            let grads = GradientsParams::from_grads(out.loss.backward(), &m);
            let m = optim.step(1e-2, m, grads);
            sync::<B>(device);
            model = Some(m);
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    contrast_core::tune_allocator();
    let Some(data) = proteins() else {
        return;
    };
    type F = contrast_core::FlexAutodiff;
    let cpu = Default::default();
    gin_fwd_bwd::<F>(c, "flex", &data, &cpu);
    graphcl_step::<F>(c, "flex", &data, &cpu);
    #[cfg(feature = "ndarray")]
    {
        type N = contrast_core::NdArrayAutodiff;
        gin_fwd_bwd::<N>(c, "ndarray", &data, &Default::default());
        graphcl_step::<N>(c, "ndarray", &data, &Default::default());
    }
    #[cfg(feature = "cuda")]
    {
        type C = contrast_core::CudaAutodiff;
        let device = Default::default();
        gin_fwd_bwd::<C>(c, "cuda", &data, &device);
        graphcl_step::<C>(c, "cuda", &data, &device);
    }
}

criterion_group!(group, benches);
criterion_main!(group);
