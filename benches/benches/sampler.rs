//! BatchSampler costs on the host: the proximity-graph build (N = 100,000 embeddings of width
//! 128, M = 1000 candidates, K = 100 neighbours) and one epoch of random-walk batches
//! (batch 256) on that graph, in both coverage modes. The PyTorch peer runs the reference
//! implementation's algorithm at the same sizes.

use contrast_core::IndexSampler;
use contrast_sampler::{
    BatchSampler, BatchSamplerConfig, Coverage, NeighbourSearch, ProximityGraph,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const N: usize = 100_000;
const D: usize = 128;
const M: usize = 1000;
const K: usize = 100;
const B: usize = 256;

fn embeddings() -> Vec<f32> {
    // A cheap deterministic pseudo-random fill (an LCG): values only need to be generic.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..N * D)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    contrast_core::tune_allocator();
    let emb = embeddings();
    let mut group = c.benchmark_group("batch_sampler_graph_build");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function(
        BenchmarkId::new("host", format!("N={N},d={D},M={M},K={K}")),
        |b| {
            b.iter(|| {
                std::hint::black_box(
                    ProximityGraph::build(&emb, D, M, K, NeighbourSearch::Auto, 1).unwrap(),
                )
            })
        },
    );
    group.finish();

    let mut group = c.benchmark_group("batch_sampler_epoch");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N as u64));
    for (name, coverage) in [
        ("exactly-once", Coverage::ExactlyOnce),
        ("reference", Coverage::Reference),
    ] {
        let mut config = BatchSamplerConfig::new(B);
        config.candidates = M;
        config.neighbours = K;
        config.warmup_epochs = 0;
        config.coverage = coverage;
        // Rebuilds are measured above; here the walks alone.
        config.rebuild_every = usize::MAX;
        let mut s = BatchSampler::new(config, N).unwrap();
        s.set_embeddings(emb.clone(), D).unwrap();
        s.begin_epoch(0);
        let mut epoch = 0;
        group.bench_function(
            BenchmarkId::new("host", format!("{name} N={N},B={B},K={K}")),
            |b| {
                b.iter(|| {
                    // begin_epoch rebuilds the graph; walk a whole epoch on the current one.
                    epoch += 1;
                    let mut batches = 0;
                    while let Some(batch) = s.next_batch() {
                        batches += batch.len();
                    }
                    std::hint::black_box(batches);
                    reset(&mut s, epoch);
                })
            },
        );
    }
    group.finish();
}

/// Starts a new epoch without rebuilding the graph (the walk benchmark measures walks only).
fn reset(s: &mut BatchSampler, epoch: usize) {
    s.restart_epoch_without_rebuild(epoch);
}

criterion_group!(group, benches);
criterion_main!(group);
