//! What data-parallel training costs on one machine: the SimCLR step of `training.rs` (global
//! batch 256, small ResNet, NT-Xent with gathered negatives, Adam) on 1 and 2 peers, and the
//! two collective operations of a step on their own.
//!
//! - `simclr_step_peers`: one step of the global batch split over `P` peers (threads, each
//!   with its own copy of the model on the flex backend), gradients summed in one all-reduce;
//!   on 2 peers also with synchronised batch norm (two all-reduces per batch-norm layer in each
//!   direction, and the tensor-operation batch norm instead of the host kernel).
//!   On a machine whose cores the peers share this measures the overhead of splitting, not a
//!   speed-up: the CPU backend already spreads one step over every core.
//! - `all_reduce`: the in-process all-reduce of burn-collective between 2 peers for the
//!   gradient of the small ResNet + head (one flat vector) and for the gathered embeddings of
//!   a batch (2 x 256 x 128): the communication of a step.
//!
//! The peers' threads live across iterations; an iteration releases them and waits for all.

use std::sync::mpsc::{Receiver, Sender, channel};

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Tensor};
use contrast_benches::sync;
use contrast_core::ViewPair;
use contrast_encoders::{ImageEncoder, ResNetConfig};
use contrast_methods::{HeadConfig, Method, SimClr, SimClrConfig};
use contrast_parallel::{GroupConfig, Peer, Reduce, batch_statistics_sum, sync_gradients};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const BATCH: usize = 256;

/// Peer threads that join the group, then run `work` once per round, and leave the group
/// when stopped.
struct Workers {
    go: Vec<Sender<bool>>,
    done: Receiver<()>,
}

impl Workers {
    fn start<I: Backend, W: FnMut() + Send + 'static>(
        peers: Vec<Peer>,
        workers: Vec<W>,
        device: &I::Device,
    ) -> Workers {
        let (done_tx, done) = channel();
        let go = peers
            .into_iter()
            .zip(workers)
            .map(|(peer, mut work)| {
                let (tx, rx) = channel::<bool>();
                let done = done_tx.clone();
                let device = device.clone();
                std::thread::spawn(move || {
                    peer.register::<I>(&device).expect("the peers join");
                    while let Ok(stop) = rx.recv() {
                        if stop {
                            peer.finish::<I>().expect("the peers leave");
                        } else {
                            work();
                        }
                        done.send(()).expect("the bench waits");
                        if stop {
                            break;
                        }
                    }
                });
                tx
            })
            .collect();
        Workers { go, done }
    }

    fn send(&self, stop: bool) {
        for g in &self.go {
            g.send(stop).expect("a worker per peer");
        }
        for _ in &self.go {
            self.done.recv().expect("a worker finished");
        }
    }

    fn round(&self) {
        self.send(false);
    }

    fn stop(self) {
        self.send(true);
    }
}

/// A SimCLR step of the peer's share of a batch of 256, ready to run again and again, with
/// batch norm's statistics synchronised over the peers where `synchronised`.
fn step_worker<F: AutodiffBackend>(
    peer: Peer,
    model: ImageEncoder<F>,
    device: F::Device,
    synchronised: bool,
) -> impl FnMut() + Send + 'static {
    let backbone = ResNetConfig::small(1);
    let cfg = SimClrConfig::for_backbone(&backbone, 128).with_temperature(0.5);
    let mut method = cfg.init().expect("valid config");
    let world = peer.world();
    let reduce = <SimClr as Method<F, ImageEncoder<F>>>::join(&mut method, &peer, true)
        .expect("SimCLR joins");
    let n = BATCH / world;
    let v1 = Tensor::<F, 4>::random([n, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    let v2 = Tensor::<F, 4>::random([n, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    let mut optim = AdamConfig::new().init::<F, ImageEncoder<F>>();
    let mut model = Some(model.fork(&device));
    move || {
        peer.set_split(vec![n; world]);
        let m = model.take().expect("the model between steps");
        let pair = ViewPair {
            first: v1.clone(),
            second: v2.clone(),
        };
        let out = match synchronised {
            true => contrast_core::with_peer_sum(batch_statistics_sum::<F>(&peer), || {
                method.step(&m, pair, &[])
            }),
            false => method.step(&m, pair, &[]),
        };
        let grads = GradientsParams::from_grads(out.loss.backward(), &m);
        let (grads, _) = sync_gradients(&peer, grads, &m, reduce, &[0.0]).expect("peers answer");
        model = Some(optim.step(1e-3, m, grads));
        sync::<F>(&device);
    }
}

fn simclr_step_peers<F: AutodiffBackend>(c: &mut Criterion, label: &str, device: &F::Device) {
    let backbone = ResNetConfig::small(1);
    let cfg = SimClrConfig::for_backbone(&backbone, 128).with_temperature(0.5);
    let model = cfg
        .init_model::<F, _>(&backbone, device)
        .expect("valid config");
    let mut group = c.benchmark_group("simclr_step_peers");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    for (peers, synchronised) in [(1, false), (2, false), (2, true)] {
        let group_peers = Peer::group(GroupConfig::local(peers)).expect("a local group");
        let work = group_peers
            .iter()
            .map(|p| step_worker::<F>(p.clone(), model.clone(), device.clone(), synchronised))
            .collect();
        let workers = Workers::start::<F::InnerBackend, _>(group_peers, work, device);
        let norm = if synchronised {
            " synchronised batch norm"
        } else {
            ""
        };
        group.bench_function(
            BenchmarkId::new(
                format!("{label} x{peers}{norm}"),
                format!("small-resnet global batch {BATCH}, gathered negatives"),
            ),
            |b| b.iter(|| workers.round()),
        );
        workers.stop();
    }
    group.finish();
}

fn all_reduce<F: AutodiffBackend>(c: &mut Criterion, label: &str, device: &F::Device) {
    let backbone = ResNetConfig::small(1);
    let cfg = SimClrConfig::for_backbone(&backbone, 128).with_temperature(0.5);
    let params = cfg
        .init_model::<F, _>(&backbone, device)
        .expect("valid config")
        .num_params();
    let mut group = c.benchmark_group("all_reduce");
    for (what, len) in [
        ("gradient of small-resnet + head", params),
        ("embeddings 2x256x128", 2 * BATCH * 128),
    ] {
        let peers = Peer::group(GroupConfig::local(2)).expect("a local group");
        let work = peers
            .iter()
            .map(|p| {
                let p = p.clone();
                let t = Tensor::<F::InnerBackend, 1>::random([len], Distribution::Default, device);
                let device = device.clone();
                move || {
                    p.all_reduce("bench", t.clone(), Reduce::Sum)
                        .expect("peers answer");
                    sync::<F::InnerBackend>(&device);
                }
            })
            .collect();
        let workers = Workers::start::<F::InnerBackend, _>(peers, work, device);
        group.throughput(Throughput::Bytes(4 * len as u64));
        group.bench_function(
            BenchmarkId::new(
                format!("{label} x2 (threads)"),
                format!("{what}, {len} floats"),
            ),
            |b| b.iter(|| workers.round()),
        );
        workers.stop();
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    contrast_core::tune_allocator();
    type F = contrast_core::FlexAutodiff;
    let cpu = Default::default();
    all_reduce::<F>(c, "flex", &cpu);
    simclr_step_peers::<F>(c, "flex", &cpu);
    // On one GPU two peers share it: the rows measure burn-collective's path on CUDA tensors,
    // not a speed-up (that needs one GPU per peer: cuda:0,cuda:1).
    #[cfg(feature = "cuda")]
    {
        type C = contrast_core::CudaAutodiff;
        let gpu = Default::default();
        all_reduce::<C>(c, "cuda", &gpu);
        simclr_step_peers::<C>(c, "cuda", &gpu);
    }
}

criterion_group!(group, benches);
criterion_main!(group);
