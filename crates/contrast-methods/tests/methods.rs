//! Every method's training step on tiny inputs, on each backend built in: the loss falls on a
//! fixed batch, MoCo's key encoder gets no gradient and follows the EMA, the queue and the
//! memory bank change exactly as specified; MoCo and InstDisc resume to identical weights and
//! stores on flex.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use contrast_core::testing::assert_close;
use contrast_core::{FlexAutodiff, to_vec_f32};
use contrast_encoders::ProjectedEncoder;
use contrast_losses::DecoupledLossConfig;
use contrast_methods::{
    InstDisc, InstDiscConfig, InvaSpreadConfig, Method, Moco, MocoConfig, RunDir, SimClrConfig,
    TrainConfig, train,
};

mod common;
use common::{N, backbone, batcher, config as train_config, data, seeded, tmp};

fn moco_config() -> MocoConfig {
    MocoConfig::v2(backbone(), 8)
        .with_queue_size(64)
        .with_shuffle_groups(2)
        .with_momentum(0.9)
}

fn instdisc_config() -> InstDiscConfig {
    let mut c = InstDiscConfig::with_backbone(backbone(), 8, N).with_bank_momentum(0.5);
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

/// A few Adam steps of `method` on one fixed batch; returns the losses. With `stores` false,
/// `after_step` is not called, so a queue and a key encoder stay as they are.
fn fixed_batch_losses<Bk: AutodiffBackend, M: Method<Bk, Model = ProjectedEncoder<Bk>>>(
    method: &mut M,
    mut model: ProjectedEncoder<Bk>,
    steps: usize,
    stores: bool,
    device: &Bk::Device,
) -> Vec<f32> {
    let data = data();
    let idx: Vec<usize> = (0..16).collect();
    let views = batcher().host_views_as(method.views(), &data.train, &idx, 0);
    let (a, b) = batcher().to_device::<Bk>(views, device);
    let mut optim = AdamConfig::new().init::<Bk, ProjectedEncoder<Bk>>();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let loss = method.loss(&model, a.clone(), b.clone(), &idx);
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

fn every_method_lowers_its_loss_on_a_fixed_batch<Bk: AutodiffBackend>(device: &Bk::Device) {
    let simclr = SimClrConfig::with_backbone(backbone(), 8, 0.5);
    let model = seeded::<Bk, _>(device, || simclr.init_model::<Bk>(device));
    assert_falls(
        "simclr",
        &fixed_batch_losses(&mut simclr.init(), model, 8, true, device),
    );

    let dcl = simclr
        .clone()
        .with_decoupled(Some(DecoupledLossConfig::new()));
    let model = seeded::<Bk, _>(device, || dcl.init_model::<Bk>(device));
    let mut m = dcl.init();
    assert_eq!(Method::<Bk>::name(&m), "dcl");
    assert_falls("dcl", &fixed_batch_losses(&mut m, model, 8, true, device));

    let inva = InvaSpreadConfig::with_backbone(backbone(), 8, 0.1);
    let model = seeded::<Bk, _>(device, || inva.init_model::<Bk>(device));
    assert_falls(
        "invaspread",
        &fixed_batch_losses(&mut inva.init(), model, 8, true, device),
    );

    let cfg = instdisc_config();
    let model = seeded::<Bk, _>(device, || cfg.init_model::<Bk>(device));
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
    let model = seeded::<Bk, _>(device, || cfg.init_model::<Bk>(device));
    let mut m = cfg.init(&model, device).unwrap();
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
    let model = seeded::<Bk, _>(device, || cfg.init_model::<Bk>(device));
    let mut moco: Moco<Bk> = cfg.init(&model, device).unwrap();
    assert_eq!(params(moco.key_encoder()), {
        let q = params(&model);
        q.into_iter().map(|(v, _)| (v, false)).collect::<Vec<_>>()
    });
    let queue_before = to_vec_f32(moco.queue().ordered());
    assert_eq!(moco.queue().len(), 64);
    let key_before = params(moco.key_encoder());

    Method::<Bk>::keep_embeddings(&mut moco, true);
    let idx: Vec<usize> = (0..16).collect();
    let (a, b) = batcher().views::<Bk>(&data.train, &idx, 0, device);
    let loss = moco.loss(&model, a, b, &idx);
    let mut grads = loss.backward();
    let key_grads = GradientsParams::from_module(&mut grads, moco.key_encoder());
    assert_eq!(
        key_grads.len(),
        0,
        "the key encoder must receive no gradient"
    );
    let query_grads = GradientsParams::from_grads(grads, &model);
    assert!(!query_grads.is_empty());

    let mut optim = AdamConfig::new().init::<Bk, ProjectedEncoder<Bk>>();
    let model = optim.step(0.01, model, query_grads);
    let (kept, width) = Method::<Bk>::take_embeddings(&mut moco).unwrap();
    Method::<Bk>::after_step(&mut moco, &model);

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
    let s = Method::<Bk>::staleness(&moco).unwrap();
    assert_eq!((s.count, s.max), (64, 1));
    assert_eq!(Method::<Bk>::negatives_per_anchor(&moco, 16), 64);
}

/// One InstDisc step: the batch's rows become `normalise(0.5 v + 0.5 f)` of their feature,
/// every other row is untouched, and the rows record the step.
fn instdisc_bank_follows_the_specification<Bk: AutodiffBackend>(device: &Bk::Device) {
    let cfg = instdisc_config();
    let data = data();
    let model = seeded::<Bk, _>(device, || cfg.init_model::<Bk>(device));
    let mut m: InstDisc<Bk> = cfg.init(device).unwrap();
    let (before, d) = m.bank_rows();
    assert_eq!(before.len(), N * d);
    Method::<Bk>::keep_embeddings(&mut m, true);
    let idx: Vec<usize> = vec![3, 10, 17, 40];
    let (a, b) = batcher().views::<Bk>(&data.train, &idx, 0, device);
    let loss = m.loss(&model, a, b, &idx);
    assert!(to_vec_f32(loss)[0].is_finite());
    assert!(
        m.partition().is_some(),
        "Z is frozen after one warm-up batch"
    );
    let (features, width) = Method::<Bk>::take_embeddings(&mut m).unwrap();
    assert_eq!(width, d);
    Method::<Bk>::after_step(&mut m, &model);
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
    let s = Method::<Bk>::staleness(&m).unwrap();
    assert_eq!(s.count, N);
    // 4 rows written at step 1 (age 0), the others never (age 1).
    assert!((s.mean - (N - 4) as f64 / N as f64).abs() < 1e-12);
}

contrast_core::backend_tests!(
    every_method_lowers_its_loss_on_a_fixed_batch,
    moco_step_follows_the_specification,
    instdisc_bank_follows_the_specification
);

type B = FlexAutodiff;

/// A run killed mid-epoch and resumed ends with the weights, key encoder, queue and bank of an
/// uninterrupted run.
#[test]
fn moco_and_instdisc_resume_to_identical_state() {
    let device = Default::default();
    let data = data();
    let run = |dir: &std::path::Path, cfg: TrainConfig| {
        let r = RunDir {
            dir: Some(dir.to_path_buf()),
            resume: true,
            progress: false,
        };
        (r, cfg)
    };

    // MoCo
    let moco_run = |dir: &std::path::Path, cfg: TrainConfig| {
        let model = seeded::<B, _>(&device, || moco_config().init_model::<B>(&device));
        let mut m = moco_config().init(&model, &device).unwrap();
        let (r, cfg) = run(dir, cfg);
        let t = train(&mut m, model, &data, &batcher(), &cfg, &r, &device).unwrap();
        (t, m)
    };
    let straight_dir = tmp("moco-straight");
    let (straight, sm) = moco_run(&straight_dir, train_config(3));
    let dir = tmp("moco-resumed");
    let (first, _) = moco_run(&dir, train_config(3).with_stop_after_steps(Some(4)));
    assert!(first.interrupted);
    let (resumed, rm) = moco_run(&dir, train_config(3));
    assert_eq!(resumed.resumed_at_epoch, 1);
    assert_eq!(resumed.history.step_losses, straight.history.step_losses);
    assert_eq!(params(&resumed.model), params(&straight.model));
    assert_eq!(params(rm.key_encoder()), params(sm.key_encoder()));
    assert_eq!(
        to_vec_f32(rm.queue().ordered()),
        to_vec_f32(sm.queue().ordered())
    );
    assert_eq!(rm.step(), 9);
    assert_eq!(Method::<B>::staleness(&rm), Method::<B>::staleness(&sm));
    for d in [straight_dir, dir] {
        std::fs::remove_dir_all(d).unwrap();
    }

    // InstDisc
    let inst_run = |dir: &std::path::Path, cfg: TrainConfig| {
        let model = seeded::<B, _>(&device, || instdisc_config().init_model::<B>(&device));
        let mut m = instdisc_config().init::<B>(&device).unwrap();
        let (r, cfg) = run(dir, cfg);
        let t = train(&mut m, model, &data, &batcher(), &cfg, &r, &device).unwrap();
        (t, m)
    };
    let straight_dir = tmp("inst-straight");
    let (straight, sm) = inst_run(&straight_dir, train_config(3));
    let dir = tmp("inst-resumed");
    let (first, _) = inst_run(&dir, train_config(3).with_stop_after_steps(Some(5)));
    assert!(first.interrupted);
    let (resumed, rm) = inst_run(&dir, train_config(3));
    assert_eq!(resumed.history.step_losses, straight.history.step_losses);
    assert_eq!(params(&resumed.model), params(&straight.model));
    assert_eq!(rm.bank_rows(), sm.bank_rows());
    assert_eq!(rm.partition(), sm.partition());
    for d in [straight_dir, dir] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// Settings a method cannot train with are refused before the first step, naming the field.
#[test]
fn impossible_settings_are_refused() {
    let device = Default::default();
    let data = data();
    let model = seeded::<B, _>(&device, || moco_config().init_model::<B>(&device));
    let mut m = moco_config()
        .with_queue_size(8)
        .init(&model, &device)
        .unwrap();
    let e = refusal(&mut m, model, &data);
    assert!(e.contains("batch_size") && e.contains("queue of 8"), "{e}");

    let mut cfg = instdisc_config();
    cfg.nce.num_instances = 100;
    let model = seeded::<B, _>(&device, || cfg.init_model::<B>(&device));
    let mut m = cfg.init::<B>(&device).unwrap();
    let e = refusal(&mut m, model, &data);
    assert!(e.contains("one row per training image (48)"), "{e}");

    let e = moco_config().with_momentum(1.5).validate().unwrap_err();
    assert!(e.to_string().contains("momentum"), "{e}");
    let mut bad = instdisc_config();
    bad.nce.noise_samples = N;
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("noise_samples")
    );
}

/// The error message of a run that must be refused before its first step.
fn refusal<M: Method<B, Model = ProjectedEncoder<B>>>(
    method: &mut M,
    model: ProjectedEncoder<B>,
    data: &contrast_vision::Splits,
) -> String {
    let device = Default::default();
    train(
        method,
        model,
        data,
        &batcher(),
        &train_config(1),
        &RunDir::default(),
        &device,
    )
    .unwrap_err()
    .to_string()
}
