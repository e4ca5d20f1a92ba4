//! What a sentence-embedding step costs: unsupervised SimCSE on the MiniLM-L6 architecture
//! (6 layers, hidden 384, 12 heads; random weights: the cost does not depend on them) and
//! encoding throughput for STS evaluation.
//!
//! - `simcse_step`: batch 64 x 32 tokens, the two dropout views as one pass of 128 sequences,
//!   mean pooling, the tanh head, SimCSE's loss at T = 0.05, backward, Adam.
//! - `text_encode`: batch 128 x 32 tokens, inference (no autodiff, no dropout); throughput in
//!   sentences.
//!
//! The PyTorch peer is `benches/peers/text_bench.py`; `cargo xtask bench --rounds N` runs both.

use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use contrast_benches::sync;
use contrast_core::{Encoder, EncoderConfig, HostTokens, TokenBatch, ViewPair};
use contrast_encoders::{Bert, BertConfig, ProjectedEncoder};
use contrast_methods::{HeadConfig, Method, SimCseConfig};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const SEQ: usize = 32;

/// `batch` sentences of `SEQ` tokens, ids spread over the vocabulary, no padding.
fn tokens(batch: usize) -> HostTokens {
    HostTokens {
        ids: (0..batch * SEQ)
            .map(|i| (101 + i * 7919 % 30000) as u32)
            .collect(),
        type_ids: vec![0; batch * SEQ],
        mask: vec![1; batch * SEQ],
        batch,
        seq_len: SEQ,
        pad_id: 0,
    }
}

fn simcse_step<B: AutodiffBackend>(c: &mut Criterion, backend: &str, device: &B::Device) {
    let bert = BertConfig::mini_lm_l6();
    let config = SimCseConfig::for_backbone(&bert);
    let mut method = config.init().expect("valid config");
    let mut model = Some(
        config
            .init_model::<B, _>(&bert, device)
            .expect("valid config"),
    );
    let mut optim = AdamConfig::new().init::<B, ProjectedEncoder<B, Bert<B>>>();
    let host = tokens(64);
    let mut group = c.benchmark_group("simcse_step");
    group.sample_size(10);
    group.throughput(Throughput::Elements(64));
    group.bench_function(
        BenchmarkId::new(
            backend,
            format!("minilm-l6 mean batch 64 (128 views of {SEQ} tokens)"),
        ),
        |b| {
            b.iter(|| {
                let m = model.take().unwrap();
                let t = TokenBatch::<B>::from_host(&host, device);
                let pair = ViewPair {
                    first: t.clone(),
                    second: t,
                };
                let out = method.step(&m, pair, &[]);
                let grads = GradientsParams::from_grads(out.loss.backward(), &m);
                let m = optim.step(3e-5, m, grads);
                sync::<B>(device);
                model = Some(m);
            })
        },
    );
    group.finish();
}

fn encode<B: AutodiffBackend>(c: &mut Criterion, backend: &str, device: &B::Device) {
    let bert = BertConfig::mini_lm_l6().init::<B>(device).valid();
    let host = tokens(128);
    let mut group = c.benchmark_group("text_encode");
    group.sample_size(10);
    group.throughput(Throughput::Elements(128));
    group.bench_function(
        BenchmarkId::new(backend, format!("minilm-l6 128x{SEQ} tokens")),
        |b| {
            b.iter(|| {
                let e = bert.embed(TokenBatch::from_host(&host, device));
                let _ = e.into_data();
            })
        },
    );
    group.finish();
}

fn benches(c: &mut Criterion) {
    contrast_core::tune_allocator();
    type F = contrast_core::FlexAutodiff;
    let cpu = Default::default();
    simcse_step::<F>(c, "flex", &cpu);
    encode::<F>(c, "flex", &cpu);
    #[cfg(feature = "ndarray")]
    {
        type N = contrast_core::NdArrayAutodiff;
        simcse_step::<N>(c, "ndarray", &Default::default());
        encode::<N>(c, "ndarray", &Default::default());
    }
    #[cfg(feature = "cuda")]
    {
        type C = contrast_core::CudaAutodiff;
        let device = Default::default();
        simcse_step::<C>(c, "cuda", &device);
        encode::<C>(c, "cuda", &device);
    }
}

criterion_group!(group, benches);
criterion_main!(group);
