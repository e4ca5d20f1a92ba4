//! Every method's training step on tiny inputs, on each backend built in: the loss falls on a
//! fixed batch, MoCo's key encoder gets no gradient and follows the EMA, the queue and the
//! memory bank change exactly as specified; MoCo and InstDisc resume to identical weights and
//! stores on flex.

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use contrast_core::testing::assert_close;
use contrast_core::{FlexAutodiff, ViewPair, Views, to_vec_f32};
use contrast_encoders::{ImageEncoder, ResNet};
use contrast_losses::{DecoupledLossConfig, MiEstimator};
use contrast_methods::{
    DimConfig, DimNet, HeadConfig, InstDisc, InstDiscConfig, InvaSpreadConfig, Method, Moco,
    MocoConfig, RunDir, SimClrConfig, TrainConfig, Trained,
};

mod common;
use common::{N, backbone, batcher, config as train_config, data, seeded, tmp, train_on_data};

fn moco_config() -> MocoConfig {
    MocoConfig::v2(&backbone(), 8)
        .with_queue_size(64)
        .with_shuffle_groups(2)
        .with_momentum(0.9)
}

fn instdisc_config() -> InstDiscConfig {
    let mut c = InstDiscConfig::for_backbone(&backbone(), 8, N).with_bank_momentum(0.5);
    c.nce.noise_samples = 16;
    c.nce.temperature = 0.5;
    c
}

/// Float parameters in tree order, and whether each requires a gradient.
fn params<Bk: AutodiffBackend, M: Module<Bk>>(m: &M) -> Vec<(Vec<f32>, bool)> {
    struct Collect<Bk: AutodiffBackend>(Vec<(Vec<f32>, bool)>, std::marker::PhantomData<Bk>);
    impl<Bk: AutodiffBackend> ModuleVisitor<Bk> for Collect<Bk> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<Bk, D>>) {
            let t = p.val();
            let grad = t.is_require_grad();
            self.0.push((to_vec_f32(t), grad));
        }
    }
    let mut c = Collect(Vec::new(), std::marker::PhantomData);
    m.visit(&mut c);
    c.0
}

fn dim_config() -> DimConfig {
    let b = backbone();
    DimConfig::for_widths(b.output_dim(), b.local_dim(), 8)
}

/// A few Adam steps of `method` on one fixed batch; returns the losses. With `stores` false,
/// `after_step` is not called, so a queue and a key encoder stay as they are.
fn fixed_batch_losses<Bk, M, Me>(
    method: &mut Me,
    mut model: M,
    steps: usize,
    stores: bool,
    device: &Bk::Device,
) -> Vec<f32>
where
    Bk: AutodiffBackend,
    M: AutodiffModule<Bk>,
    Me: Method<Bk, M, Batch = ViewPair<Tensor<Bk, 4>>>,
{
    let data = data();
    let batcher = batcher();
    let views = batcher.views_of(&data.train);
    let idx: Vec<usize> = (0..16).collect();
    let pair = views.to_device::<Bk>(views.host_views(method.views(), &idx, 0), device);
    let mut optim = AdamConfig::new().init::<Bk, M>();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let loss = method.step(&model, pair.clone(), &idx).loss;
        losses.push(to_vec_f32(loss.clone())[0]);
        let g = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.01, model, g);
        if stores {
            method.after_step(&model);
        }
    }
    losses
}

fn assert_falls(name: &str, losses: &[f32]) {
    let last = losses[losses.len() - 1];
    assert!(
        losses.iter().all(|l| l.is_finite()) && last < losses[0] - 0.02,
        "{name}: the loss should fall on a fixed batch: {losses:?}"
    );
}

/// The image network of `cfg` on the small backbone, seeded.
fn image_model<Bk: AutodiffBackend, C: HeadConfig>(
    cfg: &C,
    device: &Bk::Device,
) -> ImageEncoder<Bk> {
    seeded::<Bk, _>(device, || {
        cfg.init_model::<Bk, _>(&backbone(), device).unwrap()
    })
}

fn dim_model<Bk: AutodiffBackend>(cfg: &DimConfig, device: &Bk::Device) -> DimNet<Bk, ResNet<Bk>> {
    seeded::<Bk, _>(device, || {
        cfg.init_model::<Bk, _>(&backbone(), device).unwrap()
    })
}

fn every_method_lowers_its_loss_on_a_fixed_batch<Bk: AutodiffBackend>(device: &Bk::Device) {
    let simclr = SimClrConfig::for_backbone(&backbone(), 8).with_temperature(0.5);
    let model = image_model::<Bk, _>(&simclr, device);
    assert_falls(
        "simclr",
        &fixed_batch_losses(&mut simclr.init().unwrap(), model, 8, true, device),
    );

    let dcl = simclr
        .clone()
        .with_decoupled(Some(DecoupledLossConfig::new()));
    let model = image_model::<Bk, _>(&dcl, device);
    let mut m = dcl.init().unwrap();
    assert_eq!(Method::<Bk, ImageEncoder<Bk>>::info(&m, 16).name, "dcl");
    assert_falls("dcl", &fixed_batch_losses(&mut m, model, 8, true, device));

    let inva = InvaSpreadConfig::for_backbone(&backbone(), 8);
    let model = image_model::<Bk, _>(&inva, device);
    assert_falls(
        "invaspread",
        &fixed_batch_losses(&mut inva.init().unwrap(), model, 8, true, device),
    );

    for estimator in [
        MiEstimator::JensenShannon,
        MiEstimator::DonskerVaradhan,
        MiEstimator::InfoNce,
    ] {
        let dim = dim_config().with_estimator(estimator);
        let model = dim_model::<Bk>(&dim, device);
        assert_falls(
            &format!("dim {estimator:?}"),
            &fixed_batch_losses(&mut dim.init().unwrap(), model, 8, true, device),
        );
    }

    let cfg = instdisc_config();
    let model = image_model::<Bk, _>(&cfg, device);
    let mut m = cfg.init::<Bk>(device).unwrap();
    assert_falls(
        "instdisc",
        &fixed_batch_losses(&mut m, model, 8, true, device),
    );

    // Repeating one batch fills MoCo's queue with keys of the same instances (false negatives
    // by construction), so its fixed-batch check holds the queue and the key encoder still:
    // the query encoder's steps must lower InfoNCE against fixed keys and negatives. The
    // stores' updates have their own test below.
    let cfg = moco_config();
    let model = image_model::<Bk, _>(&cfg, device);
    let mut m = cfg.init(&backbone(), &model, device).unwrap();
    assert_falls(
        "moco-v2",
        &fixed_batch_losses(&mut m, model, 8, false, device),
    );
}

/// One MoCo step: gradients reach the query encoder only; the key encoder then equals
/// `m * key + (1 - m) * query` parameter by parameter; the batch's keys enter the queue at the
/// write position and the oldest keys leave.
fn moco_step_follows_the_specification<Bk: AutodiffBackend>(device: &Bk::Device) {
    let cfg = moco_config();
    let data = data();
    let model = image_model::<Bk, _>(&cfg, device);
    let mut moco: Moco<Bk, ResNet<Bk>> = cfg.init(&backbone(), &model, device).unwrap();
    assert_eq!(params(moco.key_encoder()), {
        let q = params(&model);
        q.into_iter().map(|(v, _)| (v, false)).collect::<Vec<_>>()
    });
    let queue_before = to_vec_f32(moco.queue().ordered());
    assert_eq!(moco.queue().len(), 64);
    let key_before = params(moco.key_encoder());

    let idx: Vec<usize> = (0..16).collect();
    let pair = batcher().views::<Bk>(&data.train, &idx, 0, device);
    let out = moco.step(&model, pair, &idx);
    let mut grads = out.loss.backward();
    let key_grads = GradientsParams::from_module(&mut grads, moco.key_encoder());
    assert_eq!(
        key_grads.len(),
        0,
        "the key encoder must receive no gradient"
    );
    let query_grads = GradientsParams::from_grads(grads, &model);
    assert!(!query_grads.is_empty());

    let mut optim = AdamConfig::new().init::<Bk, ImageEncoder<Bk>>();
    let model = optim.step(0.01, model, query_grads);
    let width = out.embeddings.dims()[1];
    let kept = to_vec_f32(out.embeddings);
    moco.after_step(&model);

    // EMA on every trainable parameter.
    let query = params(&model);
    let key_after = params(moco.key_encoder());
    assert_eq!(query.len(), key_after.len());
    let mut averaged = 0;
    for ((q, trainable), ((k0, _), (k1, grad))) in
        query.iter().zip(key_before.iter().zip(&key_after))
    {
        assert!(
            !grad,
            "key parameters must not require gradients after the update"
        );
        if *trainable {
            let expected: Vec<f32> = k0.iter().zip(q).map(|(k, q)| 0.9 * k + 0.1 * q).collect();
            assert_close(k1, &expected, 1e-5);
            averaged += 1;
        }
    }
    assert!(averaged > 4);

    // Queue: the 16 keys (the second half of each kept row) are now the newest entries, the
    // 16 oldest are gone, the others kept their order.
    let d = 8;
    assert_eq!(width, 2 * d);
    let keys: Vec<f32> = kept.chunks(width).flat_map(|r| r[d..].to_vec()).collect();
    let after = to_vec_f32(moco.queue().ordered());
    assert_eq!(after.len(), 64 * d);
    assert_close(&after[(64 - 16) * d..], &keys, 1e-6);
    assert_eq!(&after[..(64 - 16) * d], &queue_before[16 * d..]);
    assert_eq!(moco.queue().position(), (16, 64));
    let info = Method::<Bk, ImageEncoder<Bk>>::info(&moco, 16);
    let s = info.staleness.unwrap();
    assert_eq!((s.count, s.max), (64, 1));
    assert_eq!(info.negatives_per_anchor, 64);
}

/// One InstDisc step: the batch's rows become `normalise(0.5 v + 0.5 f)` of their feature,
/// every other row is untouched, and the rows record the step.
fn instdisc_bank_follows_the_specification<Bk: AutodiffBackend>(device: &Bk::Device) {
    let cfg = instdisc_config();
    let data = data();
    let model = image_model::<Bk, _>(&cfg, device);
    let mut m: InstDisc<Bk> = cfg.init(device).unwrap();
    let (before, d) = m.bank_rows();
    assert_eq!(before.len(), N * d);
    let idx: Vec<usize> = vec![3, 10, 17, 40];
    let pair = batcher().views::<Bk>(&data.train, &idx, 0, device);
    let out = m.step(&model, pair, &idx);
    assert!(to_vec_f32(out.loss)[0].is_finite());
    assert!(
        m.partition().is_some(),
        "Z is frozen after one warm-up batch"
    );
    let width = out.embeddings.dims()[1];
    let features = to_vec_f32(out.embeddings);
    assert_eq!(width, d);
    m.after_step(&model);
    let (after, _) = m.bank_rows();
    for i in 0..N {
        let row = &after[i * d..(i + 1) * d];
        match idx.iter().position(|&j| j == i) {
            Some(r) => {
                let f = &features[r * d..(r + 1) * d];
                let mixed: Vec<f32> = before[i * d..(i + 1) * d]
                    .iter()
                    .zip(f)
                    .map(|(v, f)| 0.5 * v + 0.5 * f)
                    .collect();
                let norm = mixed.iter().map(|v| v * v).sum::<f32>().sqrt();
                let expected: Vec<f32> = mixed.iter().map(|v| v / norm).collect();
                assert_close(row, &expected, 1e-5);
            }
            None => assert_eq!(row, &before[i * d..(i + 1) * d], "row {i} changed"),
        }
    }
    let s = Method::<Bk, ImageEncoder<Bk>>::info(&m, 4)
        .staleness
        .unwrap();
    assert_eq!(s.count, N);
    // 4 rows written at step 1 (age 0), the others never (age 1).
    assert!((s.mean - (N - 4) as f64 / N as f64).abs() < 1e-12);
}

/// The partition function is frozen after its first estimate (the reference's behaviour) or,
/// with `partition_refresh_steps`, estimated again on schedule.
#[test]
fn instdisc_partition_function_is_frozen_or_refreshed_on_schedule() {
    let device = Default::default();
    let data = data();
    let z_after_steps = |refresh: Option<usize>| -> Vec<f64> {
        let cfg = instdisc_config().with_partition_refresh_steps(refresh);
        let mut model = image_model::<B, _>(&cfg, &device);
        let mut m: InstDisc<B> = cfg.init(&device).unwrap();
        let mut optim = burn::optim::AdamConfig::new().init::<B, ImageEncoder<B>>();
        (0..3)
            .map(|step| {
                let idx: Vec<usize> = (step * 8..step * 8 + 8).collect();
                let pair = batcher().views::<B>(&data.train, &idx, 0, &device);
                let out = m.step(&model, pair, &idx);
                let grads = burn::optim::GradientsParams::from_grads(out.loss.backward(), &model);
                model = burn::optim::Optimizer::step(&mut optim, 0.05, model.clone(), grads);
                m.after_step(&model);
                m.partition().unwrap()
            })
            .collect()
    };
    let frozen = z_after_steps(None);
    assert!(frozen.iter().all(|&z| z == frozen[0]), "{frozen:?}");
    let refreshed = z_after_steps(Some(2));
    assert_eq!(refreshed[0], refreshed[1], "{refreshed:?}");
    assert_ne!(refreshed[2], refreshed[0], "{refreshed:?}");
    assert!(
        instdisc_config()
            .with_partition_refresh_steps(Some(0))
            .validate()
            .is_err()
    );
}

contrast_core::backend_tests!(
    every_method_lowers_its_loss_on_a_fixed_batch,
    moco_step_follows_the_specification,
    instdisc_bank_follows_the_specification
);

type B = FlexAutodiff;

/// Trains from scratch in `dir` (resuming from its checkpoint if any) with a fresh method and
/// model from `make`.
fn run_in<M, Me>(
    dir: &std::path::Path,
    cfg: TrainConfig,
    make: &impl Fn() -> (Me, M),
) -> (Trained<M>, Me)
where
    M: AutodiffModule<B>,
    M::InnerModule: contrast_core::Encoder<
            <B as AutodiffBackend>::InnerBackend,
            Input = Tensor<<B as AutodiffBackend>::InnerBackend, 4>,
        >,
    Me: Method<B, M, Batch = ViewPair<Tensor<B, 4>>>,
{
    let device = Default::default();
    let (mut method, model) = make();
    let run = RunDir {
        dir: Some(dir.to_path_buf()),
        resume: true,
        ..RunDir::default()
    };
    let t = train_on_data(&mut method, model, &cfg, &run, &device).unwrap();
    (t, method)
}

/// Kills a run after `stop` steps, resumes it, and checks it against an uninterrupted run:
/// identical losses and weights; returns both methods for checks of their state.
fn resume_matches<M, Me>(name: &str, stop: usize, make: impl Fn() -> (Me, M)) -> (Me, Me)
where
    M: AutodiffModule<B>,
    M::InnerModule: contrast_core::Encoder<
            <B as AutodiffBackend>::InnerBackend,
            Input = Tensor<<B as AutodiffBackend>::InnerBackend, 4>,
        >,
    Me: Method<B, M, Batch = ViewPair<Tensor<B, 4>>>,
{
    let straight_dir = tmp(&format!("{name}-straight"));
    let (straight, sm) = run_in(&straight_dir, train_config(3), &make);
    let dir = tmp(&format!("{name}-resumed"));
    let (first, _) = run_in(
        &dir,
        train_config(3).with_stop_after_steps(Some(stop)),
        &make,
    );
    assert!(first.interrupted, "{name}");
    let (resumed, rm) = run_in(&dir, train_config(3), &make);
    assert_eq!(resumed.resumed_at_epoch, stop / 3, "{name}");
    assert_eq!(
        resumed.history.step_losses, straight.history.step_losses,
        "{name}"
    );
    assert_eq!(params(&resumed.model), params(&straight.model), "{name}");
    for d in [straight_dir, dir] {
        std::fs::remove_dir_all(d).unwrap();
    }
    (rm, sm)
}

/// A run killed mid-epoch and resumed ends with the weights, key encoder, queue and bank of an
/// uninterrupted run, for every method.
#[test]
fn every_method_resumes_to_identical_state() {
    let device = Default::default();
    let (rm, sm) = resume_matches("moco", 4, || {
        let model = image_model::<B, _>(&moco_config(), &device);
        let m = moco_config().init(&backbone(), &model, &device).unwrap();
        (m, model)
    });
    assert_eq!(params(rm.key_encoder()), params(sm.key_encoder()));
    assert_eq!(
        to_vec_f32(rm.queue().ordered()),
        to_vec_f32(sm.queue().ordered())
    );
    assert_eq!(rm.steps_taken(), 9);
    let info = |m: &Moco<B, ResNet<B>>| Method::<B, ImageEncoder<B>>::info(m, 16);
    assert_eq!(info(&rm).staleness, info(&sm).staleness);

    let (rm, sm) = resume_matches("inst", 5, || {
        let model = image_model::<B, _>(&instdisc_config(), &device);
        (instdisc_config().init::<B>(&device).unwrap(), model)
    });
    assert_eq!(rm.bank_rows(), sm.bank_rows());
    assert_eq!(rm.partition(), sm.partition());

    let inva = InvaSpreadConfig::for_backbone(&backbone(), 8);
    resume_matches("inva", 4, || {
        (inva.init().unwrap(), image_model::<B, _>(&inva, &device))
    });
    let dcl =
        SimClrConfig::for_backbone(&backbone(), 8).with_decoupled(Some(DecoupledLossConfig::new()));
    resume_matches("dcl", 5, || {
        (dcl.init().unwrap(), image_model::<B, _>(&dcl, &device))
    });
    resume_matches("dim", 4, || {
        (
            dim_config().init().unwrap(),
            dim_model::<B>(&dim_config(), &device),
        )
    });
}

/// Settings a method cannot train with are refused before the first step, naming the field.
#[test]
fn impossible_settings_are_refused() {
    let device = Default::default();
    let model = image_model::<B, _>(&moco_config(), &device);
    let mut m = moco_config()
        .with_queue_size(8)
        .init(&backbone(), &model, &device)
        .unwrap();
    let e = refusal(&mut m, model);
    assert!(e.contains("batch_size") && e.contains("queue of 8"), "{e}");

    let mut cfg = instdisc_config();
    cfg.nce.num_instances = 100;
    let model = image_model::<B, _>(&cfg, &device);
    let mut m = cfg.init::<B>(&device).unwrap();
    let e = refusal(&mut m, model);
    assert!(e.contains("one row per training instance (48)"), "{e}");

    let e = HeadConfig::validate(&moco_config().with_momentum(1.5)).unwrap_err();
    assert!(e.to_string().contains("momentum"), "{e}");
    let mut bad = instdisc_config();
    bad.nce.noise_samples = N;
    assert!(
        HeadConfig::validate(&bad)
            .unwrap_err()
            .to_string()
            .contains("noise_samples")
    );
    let mut bad = dim_config();
    bad.local.output = 3;
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("local.output")
    );
    let mut bad = dim_config();
    bad.local.input = 5;
    let e = bad
        .init_model::<B, _>(&backbone(), &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("local.input"), "{e}");
}

/// The error message of a run that must be refused before its first step.
fn refusal<Me: Method<B, ImageEncoder<B>, Batch = ViewPair<Tensor<B, 4>>>>(
    method: &mut Me,
    model: ImageEncoder<B>,
) -> String {
    let device = Default::default();
    train_on_data(method, model, &train_config(1), &RunDir::default(), &device)
        .unwrap_err()
        .to_string()
}
