//! What a sentence-embedding step costs: unsupervised SimCSE on the MiniLM-L6 architecture
//! (6 layers, hidden 384, 12 heads; random weights: the cost does not depend on them) and
//! encoding throughput for STS evaluation.
//!
//! - `simcse_step`: batch 64 x 32 tokens, the two dropout views as one pass of 128 sequences,
//!   mean pooling, the tanh head, SimCSE's loss at T = 0.05, backward, Adam.
//! - `text_encode`: batch 128 x 32 tokens, inference (no autodiff, no dropout); throughput in
//!   sentences.
//! - `clip_step`: one CLIP step with both towers training: the small ResNet on 256 images of
//!   28x28 and MiniLM-L6 on their 256 captions of 32 tokens (mean pooling), linear projections
//!   to 128, the symmetric cross-entropy with the learnable logit scale, backward, Adam.
//!
//! The PyTorch peer is `benches/peers/text_bench.py`; `cargo xtask bench --rounds N` runs both.

use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Tensor};
use contrast_benches::sync;
use contrast_core::{CrossModal, Encoder, EncoderConfig, HostTokens, TokenBatch, ViewPair};
use contrast_encoders::{Bert, BertConfig, ProjectedEncoder, ResNet, ResNetConfig};
use contrast_methods::{ClipConfig, ClipNet, HeadConfig, Method, SimCseConfig};
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

fn clip_step<B: AutodiffBackend>(c: &mut Criterion, backend: &str, device: &B::Device) {
    const BATCH: usize = 256;
    let (image, text) = (ResNetConfig::small(1), BertConfig::mini_lm_l6());
    let config = ClipConfig::for_towers(image.output_dim(), text.output_dim(), 128);
    let mut method = config.init().expect("valid config");
    let mut model = Some(
        config
            .init_model::<B, _, _>(&image, &text, device)
            .expect("valid config"),
    );
    let mut optim = AdamConfig::new().init::<B, ClipNet<B, ResNet<B>, Bert<B>>>();
    let images = Tensor::<B, 4>::random([BATCH, 1, 28, 28], Distribution::Default, device);
    let host = tokens(BATCH);
    let mut group = c.benchmark_group("clip_step");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(
        BenchmarkId::new(
            backend,
            format!("small resnet {BATCH}x1x28x28 + minilm-l6 {BATCH}x{SEQ} tokens"),
        ),
        |b| {
            b.iter(|| {
                let m = model.take().unwrap();
                let batch = CrossModal {
                    first: images.clone(),
                    second: TokenBatch::<B>::from_host(&host, device),
                };
                let out = method.step(&m, batch, &[]);
                let grads = GradientsParams::from_grads(out.loss.backward(), &m);
                let m = optim.step(1e-3, m, grads);
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
    clip_step::<F>(c, "flex", &cpu);
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
