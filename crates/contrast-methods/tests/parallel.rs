//! Data-parallel training: two peers (flex devices as threads, or two node processes on the
//! loopback address) against one device on the concatenated batch.

mod common;

use core::marker::PhantomData;
use std::sync::Mutex;
use std::time::Duration;

use burn::module::{AutodiffModule, Module, Param};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use contrast_core::{CrossModal, Encoder, EncoderConfig, FlexAutodiff, ViewPair, to_vec_f32};
use contrast_encoders::{ImageEncoder, PrecomputedConfig, ProjectedEncoder};
use contrast_methods::{
    ClipConfig, Error, HeadConfig, InstDiscConfig, Method, MethodInfo, MocoConfig, RunDir, SimClr,
    SimClrConfig, StepOutput, TrainConfig, train, train_on_peers,
};
use contrast_parallel::{GroupConfig, Peer, PeerError, Reduce, run_peers, sync_gradients};

use common::{batcher, config, data, seeded, tmp};

type B = FlexAutodiff;
type Inner = burn::backend::Flex;

/// burn-collective keeps one group per backend type in a process: the tests that form groups
/// take turns.
static GROUPS: Mutex<()> = Mutex::new(());

fn groups() -> std::sync::MutexGuard<'static, ()> {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// `n` rows of width `d`, deterministic and varied.
fn rows(n: usize, d: usize, salt: u32) -> Vec<f32> {
    (0..n * d)
        .map(|i| {
            (((i as u32).wrapping_mul(2654435761u32) ^ salt.wrapping_mul(40503)) % 1000) as f32
                / 500.0
                - 1.0
        })
        .collect()
}

fn tensor(v: &[f32], n: usize, d: usize) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(v.to_vec(), [n, d]), &Default::default())
}

/// Rows `share` of an `[n, d]` matrix held as a vector.
fn part(v: &[f32], d: usize, share: std::ops::Range<usize>) -> Vec<f32> {
    v[share.start * d..share.end * d].to_vec()
}

/// Two views of `n` deterministic feature rows of width `d` (seeds `salt`, `salt + 1`), any
/// range of instances as a batch.
fn view_pairs(
    n: usize,
    d: usize,
    salt: u32,
) -> impl Fn(std::ops::Range<usize>) -> ViewPair<Tensor<B, 2>> + Sync {
    let (x1, x2) = (rows(n, d, salt), rows(n, d, salt + 1));
    move |r: std::ops::Range<usize>| ViewPair {
        first: tensor(&part(&x1, d, r.clone()), r.len(), d),
        second: tensor(&part(&x2, d, r.clone()), r.len(), d),
    }
}

/// Every gradient of `model`'s parameters, in visiting order (zero-length for none).
fn grads_of<M: Module<B>>(model: &M, grads: &GradientsParams) -> Vec<f32> {
    struct Collect<'a>(&'a GradientsParams, Vec<f32>);
    impl burn::module::ModuleVisitor<B> for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            if let Some(g) = self.0.get::<Inner, D>(p.id) {
                self.1.extend(to_vec_f32(g));
            }
        }
    }
    let mut c = Collect(grads, Vec::new());
    model.visit(&mut c);
    c.1
}

fn weights<M: Module<B>>(m: &M) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl burn::module::ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            self.0.extend(to_vec_f32(p.val()));
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    assert!(!a.is_empty(), "{what}: nothing compared");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + x.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

/// One step of `method` on `split.len()` peers, peer `r` holding `split[r]` instances of
/// `batch_of(range)`: each peer's combined loss and gradients, and whatever `after` reads from
/// the method after the step.
fn peer_step<M, Me, T>(
    model: &M,
    make: impl Fn() -> Me + Sync,
    batch_of: impl Fn(std::ops::Range<usize>) -> Me::Batch + Sync,
    split: &[usize],
    gather: bool,
    after: impl Fn(&mut Me, &M) -> T + Sync,
) -> Vec<(f32, Vec<f32>, T)>
where
    M: AutodiffModule<B>,
    Me: Method<B, M>,
    T: Send,
{
    peer_step_at(model, make, batch_of, split, (0, gather, false), after)
}

/// [`peer_step`] on the dataset instances from `first` on (the batch's ranges stay relative),
/// with batch norm's statistics synchronised over the peers where `sync` (as the loop does with
/// [`TrainConfig::sync_batch_norm`]).
fn peer_step_at<M, Me, T>(
    model: &M,
    make: impl Fn() -> Me + Sync,
    batch_of: impl Fn(std::ops::Range<usize>) -> Me::Batch + Sync,
    split: &[usize],
    (first, gather, sync): (usize, bool, bool),
    after: impl Fn(&mut Me, &M) -> T + Sync,
) -> Vec<(f32, Vec<f32>, T)>
where
    M: AutodiffModule<B>,
    Me: Method<B, M>,
    T: Send,
{
    let _turn = groups();
    // Forked: each peer's parameters are leaves of its own graph.
    let world = split.len();
    let models: Vec<Mutex<Option<M>>> = (0..world)
        .map(|_| Mutex::new(Some(model.clone().fork(&Default::default()))))
        .collect();
    let work = |peer: Peer| -> Result<(f32, Vec<f32>, T), PeerError> {
        let device = Default::default();
        peer.register::<Inner>(&device)?;
        peer.set_split(split.to_vec());
        let model = models[peer.rank()].lock().unwrap().take().unwrap();
        let mut method = make();
        let reduce = method.join(&peer, gather).unwrap();
        let r = peer.rank();
        let start = split[..r].iter().sum::<usize>();
        let idx: Vec<usize> = (first + start..first + start + split[r]).collect();
        let batch = batch_of(start..start + split[r]);
        let out = match sync {
            true => contrast_core::with_peer_sum(
                contrast_parallel::batch_statistics_sum::<B>(&peer),
                || method.step(&model, batch, &idx),
            ),
            false => method.step(&model, batch, &idx),
        };
        if let Some(e) = peer.take_error() {
            return Err(e);
        }
        // As the loop does: a share's own loss weighs by its size, so that the mean over the
        // peers is the global batch's mean.
        let total = split.iter().sum::<usize>();
        let weight = match reduce {
            Reduce::Sum => 1.0,
            Reduce::Mean => (world * split[r]) as f32 / total as f32,
        };
        let loss = if weight == 1.0 {
            out.loss
        } else {
            out.loss.mul_scalar(weight)
        };
        let value = to_vec_f32(loss.clone())[0];
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let (grads, combined) = sync_gradients(&peer, grads, &model, reduce, &[value])?;
        let loss = match reduce {
            Reduce::Sum => combined[0] / world as f32,
            Reduce::Mean => combined[0],
        };
        let t = after(&mut method, &model);
        peer.finish::<Inner>()?;
        Ok((loss, grads_of(&model, &grads), t))
    };
    run_peers::<Inner, _, PeerError, _, _>(
        Peer::group(GroupConfig::local(world)).unwrap(),
        work,
        work,
    )
    .unwrap()
}

/// One step of `method` on one device over the instances `range`: its loss and gradients.
fn one_device_step<M, Me>(
    method: &mut Me,
    model: &M,
    batch: Me::Batch,
    range: std::ops::Range<usize>,
) -> (f32, Vec<f32>)
where
    M: AutodiffModule<B>,
    Me: Method<B, M>,
{
    let idx: Vec<usize> = range.collect();
    let out = method.step(model, batch, &idx);
    let loss = to_vec_f32(out.loss.clone())[0];
    let grads = GradientsParams::from_grads(out.loss.backward(), model);
    (loss, grads_of(model, &grads))
}

/// Every peer's loss and gradients equal one device's within 1e-5.
fn assert_peers_match<T>(
    what: &str,
    peers: &[(f32, Vec<f32>, T)],
    (loss, grads): &(f32, Vec<f32>),
) {
    for (l, g, _) in peers {
        assert!(
            (l - loss).abs() < 1e-5,
            "{what}: loss {l} vs one device's {loss}"
        );
        assert_close(what, g, grads, 1e-5);
    }
}

#[test]
fn nt_xent_on_two_peers_with_gathered_negatives_equals_one_device() {
    let device = Default::default();
    let (n, d) = (8, 6);
    let backbone = PrecomputedConfig { dim: d };
    let cfg = SimClrConfig::for_backbone(&backbone, 4).with_temperature(0.5);
    let model = seeded::<B, _>(&device, || {
        cfg.init_model::<B, _>(&backbone, &device).unwrap()
    });
    let batch = view_pairs(n, d, 1);

    let one = one_device_step(&mut cfg.init().unwrap(), &model, batch(0..n), 0..n);

    for split in [&[n / 2, n / 2][..], &[3, 3, 2]] {
        let peers = peer_step(
            &model,
            || cfg.init().unwrap(),
            &batch,
            split,
            true,
            |_, _| (),
        );
        assert_peers_match("NT-Xent", &peers, &one);
    }

    // Without gathering, each peer's negatives are its own: another loss.
    let local = peer_step(
        &model,
        || cfg.init().unwrap(),
        &batch,
        &[n / 2, n / 2],
        false,
        |_, _| (),
    );
    assert!(
        (local[0].0 - one.0).abs() > 1e-3,
        "{} should differ",
        local[0].0
    );
}

#[test]
fn clip_on_two_peers_with_gathered_negatives_equals_one_device() {
    let device = Default::default();
    let (n, di, dt) = (8, 6, 5);
    let (pi, pt) = (PrecomputedConfig { dim: di }, PrecomputedConfig { dim: dt });
    let cfg = ClipConfig::for_towers(di, dt, 4);
    let model = seeded::<B, _>(&device, || {
        cfg.init_model::<B, _, _>(&pi, &pt, &device).unwrap()
    });
    let (x, y) = (rows(n, di, 3), rows(n, dt, 4));
    let batch = |r: std::ops::Range<usize>| CrossModal {
        first: tensor(&part(&x, di, r.clone()), r.len(), di),
        second: tensor(&part(&y, dt, r.clone()), r.len(), dt),
    };

    let one = one_device_step(&mut cfg.init().unwrap(), &model, batch(0..n), 0..n);

    // The logit scale's gradient included: it is counted once, not once per peer.
    let peers = peer_step(
        &model,
        || cfg.init().unwrap(),
        &batch,
        &[n / 2, n / 2],
        true,
        |_, _| (),
    );
    assert_peers_match("CLIP", &peers, &one);
    // Each peer's rows only (open_clip's local_loss): the same sum and gradients.
    let local = cfg.clone().with_local_loss(true);
    for split in [&[n / 2, n / 2][..], &[5, 3], &[3, 3, 2]] {
        let peers = peer_step(
            &model,
            || local.init().unwrap(),
            &batch,
            split,
            true,
            |_, _| (),
        );
        assert_peers_match("CLIP local_loss", &peers, &one);
    }
}

#[test]
fn moco_on_two_peers_fills_the_queue_with_every_peers_keys() {
    let device = Default::default();
    let (n, d) = (8, 6);
    let backbone = PrecomputedConfig { dim: d };
    let cfg = MocoConfig::v2(&backbone, 4).with_queue_size(16);
    let model = seeded::<B, _>(&device, || {
        cfg.init_model::<B, _>(&backbone, &device).unwrap()
    });
    let batch = view_pairs(n, d, 5);
    // The key encoder's fresh module draws numbers: under the lock, like every draw.
    let make = || {
        seeded::<B, _>(&device, || {
            cfg.init::<B, _>(&backbone, &model, &device).unwrap()
        })
    };

    let mut method = make();
    let one = one_device_step(&mut method, &model, batch(0..n), 0..n);
    method.after_step(&model);
    let queue = to_vec_f32(method.queue().negatives());

    let peers = peer_step(&model, make, &batch, &[n / 2, n / 2], true, |m, model| {
        m.after_step(model);
        to_vec_f32(m.queue().negatives())
    });
    assert_peers_match("MoCo", &peers, &one);
    for (_, _, q) in &peers {
        assert_close("MoCo queue", q, &queue, 1e-6);
    }
}

#[test]
fn inst_disc_on_two_peers_keeps_one_bank_as_one_device_does() {
    // Two steps, the second on instances 4..12, half of which the first wrote (positives and
    // the proximal term read them); splits 4 + 4 and 5 + 3: loss and gradients equal one
    // device's, and every peer's bank equals one device's after the step.
    let device = Default::default();
    let d = 6;
    let backbone = PrecomputedConfig { dim: d };
    let mut cfg = InstDiscConfig::for_backbone(&backbone, 4, 24).with_bank_momentum(0.5);
    cfg.nce.noise_samples = 10;
    cfg.nce.temperature = 0.5;
    cfg.nce.proximal_weight = 0.5;
    let model = seeded::<B, _>(&device, || {
        let m = cfg.init_model::<B, _>(&backbone, &device).unwrap();
        weights(&m);
        m
    });
    let make = || seeded::<B, _>(&device, || cfg.init::<B>(&device).unwrap());
    let data = view_pairs(24, d, 11);
    let data = &data;
    let batch_at =
        |first: usize| move |r: std::ops::Range<usize>| data(first + r.start..first + r.end);
    for split in [[4, 4], [5, 3]] {
        for step in 0..2 {
            let first = 4 * step;
            let (mut one, mut peers_method) = (make(), make());
            // Both reach `step` steps through one-device steps on the earlier batches.
            for s in 0..step {
                let idx: Vec<usize> = (4 * s..4 * s + 8).collect();
                for m in [&mut one, &mut peers_method] {
                    let _ = m.step(&model, batch_at(4 * s)(0..8), &idx);
                    m.after_step(&model);
                }
            }
            let idx: Vec<usize> = (first..first + 8).collect();
            let out = one.step(&model, batch_at(first)(0..8), &idx);
            let loss = to_vec_f32(out.loss.clone())[0];
            let grads = GradientsParams::from_grads(out.loss.backward(), &model);
            let reference = (loss, grads_of(&model, &grads));
            one.after_step(&model);
            let (bank, _) = one.bank_rows();
            let peers = peer_step_at(
                &model,
                || peers_method.clone(),
                batch_at(first),
                &split,
                (first, true, false),
                |m, model| {
                    m.after_step(model);
                    m.bank_rows().0
                },
            );
            assert_peers_match("InstDisc", &peers, &reference);
            for (_, _, b) in &peers {
                assert_close("InstDisc bank", b, &bank, 1e-6);
            }
        }
    }
    // NaN features stop a run with a NaN loss that still back-propagates (on several peers
    // backward runs before the loop reads the value).
    let nan = |r: std::ops::Range<usize>| {
        let v = vec![f32::NAN; r.len() * d];
        ViewPair {
            first: tensor(&v, r.len(), d),
            second: tensor(&v, r.len(), d),
        }
    };
    let peers = peer_step(&model, make, nan, &[4, 4], true, |_, _| ());
    assert!(peers.iter().all(|(l, _, _)| l.is_nan()));
    // The noise comes from outside the global batch: a batch as large as the bank is refused.
    type Net = ProjectedEncoder<B, contrast_encoders::Precomputed<B>>;
    let validate = |batch| {
        <contrast_methods::InstDisc<B> as Method<B, Net>>::validate_batch(&make(), batch, 24)
    };
    assert!(validate(23).is_ok());
    let err = validate(24).unwrap_err().to_string();
    assert!(
        err.contains("batch_size") && err.contains("at most 23"),
        "{err}"
    );
}

/// A backbone with batch norm, so that which instances share a forward pass changes the
/// result: feature rows through one linear layer and batch norm over the batch.
#[derive(Module, Debug)]
struct Normed<B: Backend> {
    linear: Linear<B>,
    norm: BatchNorm<B>,
}

impl<B: Backend> Encoder<B> for Normed<B> {
    type Input = Tensor<B, 2>;
    fn embed(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.norm.forward(self.linear.forward(x))
    }
    fn output_dim(&self) -> usize {
        5
    }
}

struct NormedConfig;

impl EncoderConfig for NormedConfig {
    type Encoder<B: Backend> = Normed<B>;
    fn validate(&self) -> Result<(), contrast_core::Error> {
        Ok(())
    }
    fn init<B: Backend>(&self, device: &B::Device) -> Normed<B> {
        Normed {
            linear: LinearConfig::new(6, 5).init(device),
            norm: BatchNormConfig::new(5).init(device),
        }
    }
    fn output_dim(&self) -> usize {
        5
    }
}

#[test]
fn moco_shuffles_keys_across_two_peers_as_one_device_shuffles_two_groups() {
    // With batch norm, two peers shuffling keys across each other (the official code's
    // shuffle) compute what one device computes with two groups and the same permutation:
    // queries normalised per peer (per group), keys per slice of the shuffled batch. Even
    // shares (4 + 4) and uneven ones (8 + 7, as the loop splits 15).
    for split in [[4, 4], [8, 7]] {
        let n = split.iter().sum();
        moco_shuffle_across_peers(&NormedConfig, view_pairs(n, 6, 9), &split, true);
    }
}

#[test]
fn moco_shuffles_graphs_and_sentences_across_peers_as_one_device_does() {
    // Graphs and sentences travel between the peers as padded rows: every graph has its own
    // size and each peer pads its sentences to its own longest, so the rows differ in width
    // from peer to peer. GIN has batch norm (four groups give another loss); BERT has none
    // (its keys do not depend on the groups, but garbled sentences would change them).
    let gin = contrast_encoders::GinConfig::new(3)
        .with_hidden(4)
        .with_layers(2);
    moco_shuffle_across_peers(
        &gin.clone().with_batch_norm(false),
        graph_pairs,
        &[4, 4],
        false,
    );
    moco_shuffle_across_peers(&gin, graph_pairs, &[4, 4], true);
    moco_shuffle_across_peers(&gin, graph_pairs, &[5, 4], true);
    let bert = contrast_encoders::BertConfig::new(50)
        .with_hidden_size(8)
        .with_num_hidden_layers(1)
        .with_num_attention_heads(2)
        .with_intermediate_size(8)
        .with_max_position_embeddings(8)
        // Dropout draws would differ between one device and the peers.
        .with_hidden_dropout_prob(0.0)
        .with_attention_probs_dropout_prob(0.0);
    moco_shuffle_across_peers(&bert, sentence_pairs, &[4, 4], false);
}

/// Two views of the graphs `r`: graph `i` a path of `2 + i % 4` nodes (the second view one
/// node longer) with three features per node.
fn graph_pairs(r: std::ops::Range<usize>) -> ViewPair<contrast_core::GraphBatch<B>> {
    let view = |extra: usize| {
        let mut host = contrast_core::HostGraphs::new(3, false);
        for i in r.clone() {
            let nodes = 2 + i % 4 + extra;
            let x: Vec<f32> = (0..nodes * 3)
                .map(|k| ((i * 7 + k * 3 + extra) % 11) as f32 / 5.0 - 1.0)
                .collect();
            let edges: Vec<(u32, u32)> = (1..nodes as u32)
                .flat_map(|v| [(v - 1, v), (v, v - 1)])
                .collect();
            host.push(&x, nodes, &edges, None);
        }
        contrast_core::GraphBatch::from_host(&host, &Default::default())
    };
    ViewPair {
        first: view(0),
        second: view(1),
    }
}

/// Two views of the sentences `r`: sentence `i` has `1 + i % 5` tokens (the second view one
/// fewer, at least one), each batch padded to its own longest with id 0.
fn sentence_pairs(r: std::ops::Range<usize>) -> ViewPair<contrast_core::TokenBatch<B>> {
    let view = |shorter: usize| {
        let lens: Vec<usize> = r.clone().map(|i| (1 + i % 5 - shorter).max(1)).collect();
        let seq_len = lens.iter().copied().max().unwrap_or(0);
        let mut host = contrast_core::HostTokens {
            ids: vec![],
            type_ids: vec![],
            mask: vec![],
            batch: lens.len(),
            seq_len,
            pad_id: 0,
        };
        for (i, &len) in r.clone().zip(&lens) {
            for j in 0..seq_len {
                host.ids.push(if j < len {
                    1 + ((i * 5 + j) % 49) as u32
                } else {
                    0
                });
                host.type_ids.push(0);
                host.mask.push(u8::from(j < len));
            }
        }
        contrast_core::TokenBatch::from_host(&host, &Default::default())
    };
    ViewPair {
        first: view(0),
        second: view(1),
    }
}

/// MoCo v2 over `backbone` with keys shuffled in two groups: one step on the peers of `split`
/// (keys shuffled across them) against one device on the whole batch, and, where the backbone
/// has batch norm (`normed`), against four groups, which must differ.
fn moco_shuffle_across_peers<C>(
    backbone: &C,
    batch: impl Fn(std::ops::Range<usize>) -> ViewPair<<C::Encoder<B> as Encoder<B>>::Input> + Sync,
    split: &[usize],
    normed: bool,
) where
    C: EncoderConfig + Sync,
    C::Encoder<B>: contrast_core::AutodiffEncoder<B> + Sync,
    <C::Encoder<B> as Encoder<B>>::Input: contrast_core::InstanceRows<B>,
{
    let device = Default::default();
    let n = split.iter().sum::<usize>();
    let cfg = MocoConfig::v2(backbone, 4)
        .with_queue_size(16)
        .with_shuffle_groups(2);
    // Parameters materialise on first use: under the seed's lock, once.
    let model = seeded::<B, _>(&device, || {
        let m = cfg.init_model::<B, _>(backbone, &device).unwrap();
        weights(&m);
        m
    });
    let make_with = |cfg: &MocoConfig| {
        seeded::<B, _>(&device, || {
            cfg.init::<B, _>(backbone, &model, &device).unwrap()
        })
    };
    let make = || make_with(&cfg);

    let mut method = make();
    let one = one_device_step(&mut method, &model, batch(0..n), 0..n);
    method.after_step(&model);
    let queue = to_vec_f32(method.queue().negatives());
    if normed {
        // Other groups give another loss: the comparison below can tell.
        let four = one_device_step(
            &mut make_with(&cfg.clone().with_shuffle_groups(4)),
            &model,
            batch(0..n),
            0..n,
        );
        assert!((four.0 - one.0).abs() > 1e-3, "{} vs {}", four.0, one.0);
    }

    let peers = peer_step(&model, make, &batch, split, true, |m, model| {
        m.after_step(model);
        let description = Method::<B, _>::info(m, n).description;
        assert!(
            description.contains(&format!("keys shuffled across {} peers", split.len())),
            "{description}"
        );
        to_vec_f32(m.queue().negatives())
    });
    assert_peers_match("MoCo, keys shuffled across peers", &peers, &one);
    for (_, _, q) in &peers {
        assert_close("MoCo queue", q, &queue, 1e-6);
    }
}

/// A backbone without batch norm (whose statistics would stay per peer): the pixels through
/// one linear layer and a ReLU.
#[derive(Module, Debug)]
struct Flat<B: Backend> {
    linear: Linear<B>,
}

impl<B: Backend> Encoder<B> for Flat<B> {
    type Input = Tensor<B, 4>;
    fn embed(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        burn::tensor::activation::relu(self.linear.forward(x.flatten(1, 3)))
    }
    fn output_dim(&self) -> usize {
        self.linear.weight.dims()[1]
    }
}

struct FlatConfig;

impl EncoderConfig for FlatConfig {
    type Encoder<B: Backend> = Flat<B>;
    fn validate(&self) -> Result<(), contrast_core::Error> {
        Ok(())
    }
    fn init<B: Backend>(&self, device: &B::Device) -> Flat<B> {
        Flat {
            linear: LinearConfig::new(64, 12).init(device),
        }
    }
    fn output_dim(&self) -> usize {
        12
    }
}

type FlatNet = ProjectedEncoder<B, Flat<B>>;

fn flat_simclr() -> SimClrConfig {
    SimClrConfig::for_backbone(&FlatConfig, 8).with_temperature(0.5)
}

fn flat_model() -> FlatNet {
    let device = Default::default();
    seeded::<B, _>(&device, || {
        let m = flat_simclr()
            .init_model::<B, _>(&FlatConfig, &device)
            .unwrap();
        // Parameters are drawn on first use: draw them now, under the seed.
        weights(&m);
        m
    })
}

/// SimCLR over the test images, on one device (`peers` = 1) or on `peers` flex peers.
fn simclr_run<Me>(
    method: Me,
    peers: usize,
    cfg: &TrainConfig,
    run: &RunDir,
) -> Result<contrast_methods::Trained<FlatNet>, Error>
where
    Me: Method<B, FlatNet, Batch = ViewPair<Tensor<B, 4>>> + Clone + Send,
{
    run_on(method, flat_model(), peers, cfg, run)
}

/// `method` from `model` over the test images, on one device or on `peers` flex peers.
fn run_on<M, Me>(
    method: Me,
    model: M,
    peers: usize,
    cfg: &TrainConfig,
    run: &RunDir,
) -> Result<contrast_methods::Trained<M>, Error>
where
    M: AutodiffModule<B>,
    Me: Method<B, M, Batch = ViewPair<Tensor<B, 4>>> + Clone + Send,
{
    if peers == 1 {
        let _turn = groups();
        let data = data();
        let batcher = batcher();
        let views = batcher.views_of(&data.train);
        let mut method = method;
        let device = Default::default();
        return train(&mut method, model, &views, &mut [], cfg, run, &device);
    }
    let mut group = GroupConfig::local(peers);
    group.timeout = Duration::from_secs(20);
    run_in(method, model, group, cfg, run)
}

/// `method` from `model` over the test images, on this process's flex peers of `group`.
fn run_in<M, Me>(
    method: Me,
    model: M,
    group: GroupConfig,
    cfg: &TrainConfig,
    run: &RunDir,
) -> Result<contrast_methods::Trained<M>, Error>
where
    M: AutodiffModule<B>,
    Me: Method<B, M, Batch = ViewPair<Tensor<B, 4>>> + Clone + Send,
{
    let _turn = groups();
    let data = data();
    let batcher = batcher();
    let views = batcher.views_of(&data.train);
    let mut method = method;
    let devices = vec![Default::default(); group.local_peers];
    let peers = Peer::group(group).unwrap();
    train_on_peers(
        peers,
        &devices,
        &mut method,
        model,
        &views,
        &mut [],
        cfg,
        run,
    )
}

/// Two runs that must be one: `steps` step losses each, equal within 1e-5, and the weights
/// they end with within 1e-4.
fn assert_same_run<M: Module<B>>(
    two: &contrast_methods::Trained<M>,
    one: &contrast_methods::Trained<M>,
    steps: usize,
) {
    assert_eq!(one.history.step_losses.len(), steps);
    assert_close(
        "step losses",
        &two.history.step_losses,
        &one.history.step_losses,
        1e-5,
    );
    assert_close("weights", &weights(&two.model), &weights(&one.model), 1e-4);
}

#[test]
fn a_two_peer_simclr_run_ends_with_the_weights_of_the_one_device_run() {
    let cfg = config(2);
    let one = simclr_run(flat_simclr().init().unwrap(), 1, &cfg, &RunDir::default()).unwrap();
    let two = simclr_run(flat_simclr().init().unwrap(), 2, &cfg, &RunDir::default()).unwrap();
    assert_same_run(&two, &one, 6);
    // The run moved: the comparison is not between two untouched models.
    let start = weights(&flat_model());
    let moved = weights(&one.model)
        .iter()
        .zip(&start)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(moved > 1e-3, "weights moved by {moved}");
}

/// Pairs of views of `n` random one-channel 8x8 images.
fn image_pairs(
    n: usize,
    salt: u32,
) -> impl Fn(std::ops::Range<usize>) -> ViewPair<Tensor<B, 4>> + Sync {
    let pairs = view_pairs(n, 64, salt);
    move |r: std::ops::Range<usize>| {
        let (len, p) = (r.len(), pairs(r));
        ViewPair {
            first: p.first.reshape([len, 1, 8, 8]),
            second: p.second.reshape([len, 1, 8, 8]),
        }
    }
}

/// The test ResNet (batch norm after every convolution) and its SimCLR head, seeded.
fn resnet_model(cfg: &SimClrConfig) -> ImageEncoder<B> {
    let device = Default::default();
    seeded::<B, _>(&device, || {
        let m = cfg
            .init_model::<B, _>(&common::backbone(), &device)
            .unwrap();
        weights(&m);
        m
    })
}

#[test]
fn synchronised_batch_norm_on_two_peers_equals_one_device() {
    // A ResNet under SimCLR (a head with batch norm, gathered negatives, the peers' gradients
    // summed), GIN on graphs, and InstDisc
    // (each peer's own loss, the gradients averaged by share): with batch norm's statistics
    // synchronised, the peers' loss and gradients equal one device's on the whole batch, even
    // split or not; with each peer's own statistics they do not.
    let device = Default::default();
    let backbone = common::backbone();
    let mut simclr = SimClrConfig::for_backbone(&backbone, 4).with_temperature(0.5);
    // The head's batch norm too.
    simclr.head.batch_norm = true;
    let model = resnet_model(&simclr);
    let images = image_pairs(8, 3);
    let one = one_device_step(&mut simclr.init().unwrap(), &model, images(0..8), 0..8);
    let make = || simclr.init().unwrap();
    for split in [[4, 4], [5, 3]] {
        let peers = peer_step_at(&model, make, &images, &split, (0, true, true), |_, _| ());
        assert_peers_match("SimCLR, synchronised batch norm", &peers, &one);
    }
    let own = peer_step(&model, make, &images, &[4, 4], true, |_, _| ());
    assert!(
        (own[0].0 - one.0).abs() > 1e-4,
        "each peer's own statistics give another loss: {} vs {}",
        own[0].0,
        one.0
    );

    // GIN's batch norm over the nodes of graphs of different sizes: the peers normalise
    // different numbers of rows.
    let gin = contrast_encoders::GinConfig::new(3)
        .with_hidden(4)
        .with_layers(2);
    let graphs = SimClrConfig::for_backbone(&gin, 4).with_temperature(0.5);
    let model = seeded::<B, _>(&device, || {
        let m = graphs.init_model::<B, _>(&gin, &device).unwrap();
        weights(&m);
        m
    });
    let make = || graphs.init().unwrap();
    let one = one_device_step(&mut make(), &model, graph_pairs(0..9), 0..9);
    let peers = peer_step_at(
        &model,
        make,
        graph_pairs,
        &[5, 4],
        (0, true, true),
        |_, _| (),
    );
    assert_peers_match("GIN, synchronised batch norm", &peers, &one);

    let mut inst_disc = InstDiscConfig::for_backbone(&backbone, 4, 16);
    inst_disc.nce.noise_samples = 6;
    let make = || seeded::<B, _>(&device, || inst_disc.init::<B>(&device).unwrap());
    let model = seeded::<B, _>(&device, || {
        let m = inst_disc.init_model::<B, _>(&backbone, &device).unwrap();
        weights(&m);
        m
    });
    let one = one_device_step(&mut make(), &model, images(0..8), 0..8);
    let peers = peer_step_at(&model, make, &images, &[5, 3], (0, true, true), |_, _| ());
    assert_peers_match("InstDisc, synchronised batch norm", &peers, &one);
}

/// Synchronised batch norm on backend `T` (its sum over the peers and that sum's backward
/// step): rows split 5 + 3 over two peers give one device's output, input gradient and running
/// statistics, and the peers' gamma gradients summed give one device's.
fn synchronised_batch_norm_on_two_peers_of<T: burn::tensor::backend::AutodiffBackend>(
    device: &T::Device,
) {
    let (n, c, split) = (8, 3, [5, 3]);
    let (x, w) = (rows(n, c, 4), rows(n, c, 5));
    let input = |r: std::ops::Range<usize>| {
        let len = r.len();
        let t = |v: &[f32]| {
            Tensor::<T, 2>::from_data(TensorData::new(part(v, c, r.clone()), [len, c]), device)
        };
        (t(&x).require_grad(), t(&w))
    };
    // Output, input gradient, running mean and variance, gamma's gradient of sum(w * norm(x))
    // (beta's is the sum of w, synchronised or not).
    let forward = |r: std::ops::Range<usize>, sum: Option<&Peer>| {
        let norm = contrast_encoders::BatchNorm2d::<T>::new(c, device);
        let (x, w) = input(r);
        let y = match sum {
            Some(p) => contrast_core::with_peer_sum(
                contrast_parallel::batch_statistics_sum::<T>(p),
                || norm.forward_rows(x.clone()),
            ),
            None => norm.forward_rows(x.clone()),
        };
        let grads = (y.clone() * w).sum().backward();
        let running = [
            norm.running_mean.value_sync(),
            norm.running_var.value_sync(),
        ];
        (
            to_vec_f32(y),
            to_vec_f32(x.grad(&grads).expect("a gradient")),
            to_vec_f32(Tensor::cat(running.to_vec(), 0)),
            norm.gamma.grad(&grads).expect("a gradient"),
        )
    };
    let (y, dx, running, dgamma) = forward(0..n, None);
    let _turn = groups();
    let work = |peer: Peer| -> Result<_, PeerError> {
        peer.register::<T::InnerBackend>(device)?;
        peer.set_split(split.to_vec());
        let start = split[..peer.rank()].iter().sum::<usize>();
        let (y, dx, running, dgamma) = forward(start..start + split[peer.rank()], Some(&peer));
        let dgamma = to_vec_f32(peer.all_reduce("summing", dgamma, Reduce::Sum)?);
        if let Some(e) = peer.take_error() {
            return Err(e);
        }
        peer.finish::<T::InnerBackend>()?;
        Ok((y, dx, running, dgamma))
    };
    let peers = run_peers::<T::InnerBackend, _, PeerError, _, _>(
        Peer::group(GroupConfig::local(2)).unwrap(),
        work,
        work,
    )
    .unwrap();
    // Every peer's rows of the output (0) or of the input gradient (1), in rank order.
    let whole =
        |k: usize| -> Vec<f32> { peers.iter().flat_map(|p| [&p.0, &p.1][k].clone()).collect() };
    assert_close("synchronised output", &whole(0), &y, 1e-4);
    assert_close("synchronised input gradient", &whole(1), &dx, 1e-4);
    let dgamma = to_vec_f32(dgamma);
    for p in &peers {
        assert_close("running statistics", &p.2, &running, 1e-5);
        assert_close("summed gamma gradients", &p.3, &dgamma, 1e-4);
    }
}

/// [`synchronised_batch_norm_on_two_peers_of`] on flex. Not on wgpu: two peer threads on one
/// wgpu device meet the lavapipe fault that `contrast_core::testing::wgpu_turn` keeps tests
/// apart for (results of one thread's work overwritten by another's), which one test's own
/// threads cannot take turns around; run by hand on lavapipe it passed twice.
#[test]
fn synchronised_batch_norm_on_two_flex_peers() {
    synchronised_batch_norm_on_two_peers_of::<B>(&Default::default());
}

#[test]
fn a_two_peer_resnet_run_with_synchronised_batch_norm_ends_with_the_one_device_weights() {
    // Six steps of SimCLR on a ResNet through the loop: with `sync_batch_norm` two peers end
    // where one device ends, running statistics included (the evaluation embeddings agree);
    // without it they drift apart.
    let simclr = SimClrConfig::for_backbone(&common::backbone(), 4).with_temperature(0.5);
    let synced = config(2).with_sync_batch_norm(true);
    let run = |peers: usize, cfg: &TrainConfig| {
        run_on(
            simclr.init().unwrap(),
            resnet_model(&simclr),
            peers,
            cfg,
            &RunDir::default(),
        )
        .unwrap()
    };
    let (one, two) = (run(1, &synced), run(2, &synced));
    assert_same_run(&two, &one, 6);
    let test = image_pairs(8, 21)(0..8).first.inner();
    let embed = |m: &ImageEncoder<B>| to_vec_f32(m.valid().embed(test.clone()));
    assert_close(
        "evaluation embeddings",
        &embed(&two.model),
        &embed(&one.model),
        1e-4,
    );
    let own = run(2, &config(2));
    let drift = own
        .history
        .step_losses
        .iter()
        .zip(&one.history.step_losses)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(drift > 1e-4, "each peer's own statistics drift by {drift}");
}

#[test]
fn two_peers_share_the_lead_peers_batch_sampler_and_draw_the_one_device_batches() {
    let mut bs = contrast_sampler::BatchSamplerConfig::new(16);
    bs.candidates = 20;
    bs.neighbours = 4;
    bs.rebuild_every = 2;
    let cfg = config(3).with_batch_sampler(Some(bs));
    let one = simclr_run(flat_simclr().init().unwrap(), 1, &cfg, &RunDir::default()).unwrap();
    let two = simclr_run(flat_simclr().init().unwrap(), 2, &cfg, &RunDir::default()).unwrap();
    // The walks read the embeddings: equal losses mean equal batches, step after step.
    assert!(
        one.sampler_summary.contains("graph builds"),
        "{}",
        one.sampler_summary
    );
    assert_eq!(two.sampler_summary, one.sampler_summary);
    assert_close(
        "step losses",
        &two.history.step_losses,
        &one.history.step_losses,
        1e-5,
    );
    assert_close("weights", &weights(&two.model), &weights(&one.model), 1e-4);
}

#[test]
fn a_two_peer_moco_run_on_an_uneven_split_ends_with_the_weights_of_the_one_device_run() {
    // Batches of 15 split 8 + 7: the shares' losses weigh by their size.
    let cfg = config(1).with_batch_size(15);
    let moco = MocoConfig::v2(&FlatConfig, 8).with_queue_size(60);
    let device = Default::default();
    let run = |peers: usize, cfg: &TrainConfig| {
        let model = seeded::<B, _>(&device, || {
            let m = moco.init_model::<B, _>(&FlatConfig, &device).unwrap();
            weights(&m);
            m
        });
        let method = seeded::<B, _>(&device, || {
            moco.init::<B, _>(&FlatConfig, &model, &device).unwrap()
        });
        run_on(method, model, peers, cfg, &RunDir::default())
    };
    let (one, two) = (run(1, &cfg).unwrap(), run(2, &cfg).unwrap());
    assert_same_run(&two, &one, 3);
    // Its batch norm stays per peer, the keys shuffled across the peers.
    let Err(err) = run(2, &cfg.clone().with_sync_batch_norm(true)) else {
        panic!("MoCo refuses synchronised batch norm");
    };
    let err = err.to_string();
    assert!(
        err.contains("sync_batch_norm") && err.contains("shuffle BN"),
        "{err}"
    );
}

/// SimCLR that fails on one peer at one global step: a panic, or a stall of `stall` before
/// carrying on.
#[derive(Clone)]
struct Faulty {
    inner: SimClr,
    rank: usize,
    at_step: usize,
    steps: usize,
    stall: Option<Duration>,
}

impl Method<B, FlatNet> for Faulty {
    type Batch = ViewPair<Tensor<B, 4>>;
    type State = PhantomData<B>;
    type Counters = ();

    fn info(&self, batch_size: usize) -> MethodInfo {
        <SimClr as Method<B, FlatNet>>::info(&self.inner, batch_size)
    }

    fn join(&mut self, peer: &Peer, gather: bool) -> Result<Reduce, contrast_core::Error> {
        self.rank = peer.rank();
        <SimClr as Method<B, FlatNet>>::join(&mut self.inner, peer, gather)
    }

    fn step(&mut self, model: &FlatNet, batch: Self::Batch, idx: &[usize]) -> StepOutput<B> {
        self.steps += 1;
        if self.rank == 1 && self.steps == self.at_step {
            match self.stall {
                None => panic!("simulated failure of peer 1"),
                Some(d) => std::thread::sleep(d),
            }
        }
        self.inner.step(model, batch, idx)
    }

    fn state(&self) -> (PhantomData<B>, ()) {
        (PhantomData, ())
    }

    fn load_state(&mut self, _: PhantomData<B>, _: ()) {}
}

fn faulty(at_step: usize, stall: Option<Duration>) -> Faulty {
    Faulty {
        inner: flat_simclr().init().unwrap(),
        rank: 0,
        at_step,
        steps: 0,
        stall,
    }
}

#[test]
fn a_peer_that_dies_stops_the_others_and_the_run_resumes_on_as_many_peers() {
    let dir = tmp("parallel-dies");
    let run = |resume: bool| RunDir {
        dir: Some(dir.clone()),
        resume,
        ..RunDir::default()
    };
    let cfg = config(3);
    // Three steps per epoch: peer 1 dies in the second epoch.
    let err = simclr_run(faulty(5, None), 2, &cfg, &run(false))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("peer 1 of 2 panicked: simulated failure"),
        "{err}"
    );
    let checkpoint = std::fs::read(dir.join("checkpoint.bin")).unwrap();

    // One device cannot continue a two-peer run.
    let err = simclr_run(flat_simclr().init().unwrap(), 1, &cfg, &run(true))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("peers: checkpoint 2, this run not recorded"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.join("checkpoint.bin")).unwrap(),
        checkpoint
    );

    // Two peers continue it, to the weights of a run that was never interrupted.
    let resumed = simclr_run(flat_simclr().init().unwrap(), 2, &cfg, &run(true)).unwrap();
    assert_eq!(resumed.resumed_at_epoch, 1);
    let whole = simclr_run(flat_simclr().init().unwrap(), 2, &cfg, &RunDir::default()).unwrap();
    assert_eq!(weights(&resumed.model), weights(&whole.model));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_peer_that_hangs_is_named_after_the_timeout() {
    let data = data();
    let batcher = batcher();
    let views = batcher.views_of(&data.train);
    let mut group = GroupConfig::local(2);
    group.timeout = Duration::from_secs(1);
    let mut method = faulty(2, Some(Duration::from_secs(4)));
    let err = {
        let _turn = groups();
        train_on_peers(
            Peer::group(group).unwrap(),
            &[Default::default(), Default::default()],
            &mut method,
            flat_model(),
            &views,
            &mut [],
            &config(1),
            &RunDir::default(),
        )
        .unwrap_err()
        .to_string()
    };
    assert!(
        err.contains("peer 0 of 2 waited") && err.contains("without an answer from peer 1 of 2"),
        "{err}"
    );
}

/// The role of a child process of [`two_processes_train_as_one_device_and_stop_when_one_dies`],
/// from `CONTRAST_NODE_ROLE`: `RANK:PORT0,PORT1:OUT_FILE:PEERS`, with `:fail` for a run whose
/// node 1 panics at its second step. The node trains SimCLR over the test images as node `RANK`
/// of two, with `PEERS` peers, twice in turn (once with `fail`), and writes `ok`, the second
/// run's step losses and weights, or `err` and the error. Not a test of its own: the parent
/// runs it with `--ignored`.
#[test]
#[ignore = "a child process of two_processes_train_as_one_device_and_stop_when_one_dies"]
fn node_process() {
    let Ok(role) = std::env::var("CONTRAST_NODE_ROLE") else {
        return;
    };
    let parts: Vec<&str> = role.split(':').collect();
    let local_peers: usize = parts[3].parse().unwrap();
    let group = GroupConfig {
        local_peers,
        nodes: 2,
        node_rank: parts[0].parse().unwrap(),
        node_addresses: parts[1]
            .split(',')
            .map(|port| format!("127.0.0.1:{port}"))
            .collect(),
        timeout: Duration::from_secs(60),
    };
    let (cfg, run) = (config(2), RunDir::default());
    let trained = if parts.get(4) == Some(&"fail") {
        run_in(faulty(2, None), flat_model(), group, &cfg, &run)
    } else {
        // Two groups in turn, as a job with two seeds forms them: the second meets the other
        // node on the same link, whichever node finished the first sooner.
        let once = || {
            run_in(
                flat_simclr().init().unwrap(),
                flat_model(),
                group.clone(),
                &cfg,
                &run,
            )
        };
        once().and_then(|_| once())
    };
    let text = match trained {
        Ok(t) => {
            let mut values = t.history.step_losses.clone();
            values.extend(weights(&t.model));
            let values: Vec<String> = values.iter().map(f32::to_string).collect();
            format!("ok {} {}", t.history.step_losses.len(), values.join(" "))
        }
        Err(e) => format!("err {e}"),
    };
    std::fs::write(parts[2], text).unwrap();
}

/// A free TCP port on the loopback address.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child processes when the test ends, however it ends.
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the two node processes of [`node_process`], `peers` peers each (`fail`: node 1 panics
/// at its second step), on fresh loopback ports and returns what each wrote, within two
/// minutes.
fn two_nodes(dir: &std::path::Path, peers: usize, fail: bool) -> [String; 2] {
    let first = free_port();
    let second = std::iter::repeat_with(free_port)
        .find(|&p| p != first)
        .unwrap();
    let ports = format!("{first},{second}");
    let exe = std::env::current_exe().unwrap();
    let outs = [dir.join("node0.txt"), dir.join("node1.txt")];
    let mut children = Children(Vec::new());
    for (rank, out) in outs.iter().enumerate() {
        let mut role = format!("{rank}:{ports}:{}:{peers}", out.display());
        if fail {
            role.push_str(":fail");
        }
        children.0.push(
            std::process::Command::new(&exe)
                .args(["--ignored", "--exact", "node_process", "--nocapture"])
                .env("CONTRAST_NODE_ROLE", role)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    for (rank, child) in children.0.iter_mut().enumerate() {
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {rank} did not finish"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    outs.map(|o| std::fs::read_to_string(o).unwrap_or_default())
}

#[test]
fn two_processes_train_as_one_device_and_stop_when_one_dies() {
    let dir = tmp("parallel-processes");
    std::fs::create_dir_all(&dir).unwrap();
    // Two processes on the loopback address, with one peer each and with two: every step's
    // gathered negatives, gradients and the start's weights cross between them, as between two
    // machines.
    let one = simclr_run(
        flat_simclr().init().unwrap(),
        1,
        &config(2),
        &RunDir::default(),
    )
    .unwrap();
    let steps = one.history.step_losses.len();
    for peers in [1, 2] {
        let outs = two_nodes(&dir, peers, false);
        for (rank, out) in outs.iter().enumerate() {
            let values: Vec<&str> = out.split(' ').collect();
            let what = format!("node {rank} of 2 with {peers} peer(s)");
            assert_eq!(values.first(), Some(&"ok"), "{what}: {out}");
            assert_eq!(values[1], steps.to_string(), "{what}: steps");
            let values: Vec<f32> = values[2..].iter().map(|v| v.parse().unwrap()).collect();
            assert_close(&what, &values[..steps], &one.history.step_losses, 1e-5);
            assert_close(&what, &values[steps..], &weights(&one.model), 1e-4);
        }
    }
    // Node 1 dies at its second step: node 0 names it and stops instead of waiting.
    let outs = two_nodes(&dir, 1, true);
    assert!(
        outs[1].starts_with("err") && outs[1].contains("simulated failure"),
        "{}",
        outs[1]
    );
    assert!(
        outs[0].starts_with("err") && outs[0].contains("node 1 of 2 (127.0.0.1:"),
        "{}",
        outs[0]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
