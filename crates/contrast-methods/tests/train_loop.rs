//! The training loop on tiny synthetic images: resume reproduces an uninterrupted run exactly,
//! a NaN loss stops the run and keeps the last checkpoint, damaged checkpoints and checkpoints
//! of other runs are refused with a sentence (never a panic), and a checkpoint is never written
//! over without `overwrite`, and the best weights under a monitor are kept across a resume.

use core::marker::PhantomData;

use burn::module::{AutodiffModule, Module};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use contrast_core::{FlexAutodiff, ViewPair, to_vec_f32};
use contrast_encoders::ImageEncoder;
use contrast_methods::{
    BestRecord, Error, HeadConfig, Method, MethodInfo, Monitor, RunDir, SimClr, SimClrConfig,
    StartEmbeddings, StepOutput, TrainConfig,
};

mod common;
use common::{backbone, batcher, config, data, seeded, tmp, train_on_data};

type B = FlexAutodiff;
type Device = <B as burn::tensor::backend::BackendTypes>::Device;

fn simclr() -> SimClrConfig {
    SimClrConfig::for_backbone(&backbone(), 8).with_temperature(0.5)
}

fn weights<M: Module<B>>(m: &M) -> Vec<f32> {
    let mut out = Vec::new();
    struct Collect<'a>(&'a mut Vec<f32>);
    impl burn::module::ModuleVisitor<B> for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<B, D>>) {
            self.0.extend(to_vec_f32(p.val()));
        }
    }
    m.visit(&mut Collect(&mut out));
    out
}

fn seeded_model(device: &<B as burn::tensor::backend::BackendTypes>::Device) -> ImageEncoder<B> {
    seeded::<B, _>(device, || {
        simclr().init_model::<B, _>(&backbone(), device).unwrap()
    })
}

/// SimCLR from the seeded model on the test data, checkpoints in `dir`.
fn try_run(
    dir: &std::path::Path,
    cfg: &TrainConfig,
    resume: bool,
) -> Result<contrast_methods::Trained<ImageEncoder<B>>, Error> {
    try_run_in(dir, cfg, run_dir(dir, resume), simclr())
}

fn run_dir(dir: &std::path::Path, resume: bool) -> RunDir {
    RunDir {
        dir: Some(dir.to_path_buf()),
        resume,
        ..RunDir::default()
    }
}

/// As [`try_run`], with the run folder's settings and the method's config given.
fn try_run_in(
    dir: &std::path::Path,
    cfg: &TrainConfig,
    run: RunDir,
    simclr: SimClrConfig,
) -> Result<contrast_methods::Trained<ImageEncoder<B>>, Error> {
    assert_eq!(run.dir.as_deref(), Some(dir));
    let device = Default::default();
    let mut method = simclr.init().unwrap();
    let model = seeded::<B, _>(&device, || {
        simclr.init_model::<B, _>(&backbone(), &device).unwrap()
    });
    train_on_data(&mut method, model, cfg, &run, &device)
}

#[test]
fn resumed_run_matches_uninterrupted_run() {
    let run =
        |dir: &std::path::Path, cfg: TrainConfig, resume: bool| try_run(dir, &cfg, resume).unwrap();
    // The monitors also run every 2 steps: within epochs, and once at step 6, which ends an
    // epoch whose monitors run anyway.
    let config = |epochs| config(epochs).with_monitor_every_steps(2);
    let straight_dir = tmp("straight");
    let straight = run(&straight_dir, config(3), false);
    assert!(!straight.interrupted);
    assert_eq!(straight.history.epochs.len(), 3);
    assert!(straight.history.epochs[2].knn_top1().is_some());
    let measured: Vec<(usize, usize)> = straight
        .history
        .step_monitors
        .iter()
        .map(|m| (m.epoch, m.step))
        .collect();
    assert_eq!(measured, [(0, 2), (1, 4), (2, 8)]);
    assert!(
        straight
            .history
            .step_monitors
            .iter()
            .all(|m| m.monitors.contains_key(contrast_methods::KNN_TOP1))
    );

    // Killed in the middle of the second epoch (3 steps per epoch), then resumed: the
    // step-4 measurement made before the kill was not checkpointed and is made again.
    let dir = tmp("resumed");
    let first = run(&dir, config(3).with_stop_after_steps(Some(4)), true);
    assert!(first.interrupted);
    let resumed = run(&dir, config(3), true);
    assert_eq!(resumed.resumed_at_epoch, 1);
    assert!(!resumed.interrupted);
    assert_eq!(resumed.history.step_losses, straight.history.step_losses);
    assert_eq!(
        resumed.history.step_monitors,
        straight.history.step_monitors
    );
    assert_eq!(
        weights(&resumed.model),
        weights(&straight.model),
        "weights differ after resume"
    );

    // A checkpoint written by other settings is refused with a sentence naming each
    // difference, and left in place.
    let other = try_run(&dir, &config(3).with_batch_size(8), true).unwrap_err();
    assert!(
        other
            .to_string()
            .contains("batch size: checkpoint 16, this run 8"),
        "{other}"
    );

    // A damaged checkpoint is refused, not loaded.
    let path = dir.join("checkpoint.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&path, &bytes).unwrap();
    let err = try_run(&dir, &config(3), true).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    std::fs::remove_dir_all(&straight_dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SimCLR whose loss turns NaN at a given global step.
struct Poisoned {
    inner: SimClr,
    step: usize,
    at: usize,
}

impl<Bk: AutodiffBackend> Method<Bk, ImageEncoder<Bk>> for Poisoned {
    type Batch = ViewPair<Tensor<Bk, 4>>;
    type State = PhantomData<Bk>;
    type Counters = ();

    fn info(&self, batch_size: usize) -> MethodInfo {
        // The inner method's, so that its checkpoint resumes as plain SimCLR.
        Method::<Bk, ImageEncoder<Bk>>::info(&self.inner, batch_size)
    }

    fn step(
        &mut self,
        model: &ImageEncoder<Bk>,
        batch: Self::Batch,
        indices: &[usize],
    ) -> StepOutput<Bk> {
        self.step += 1;
        let mut out = self.inner.step(model, batch, indices);
        if self.step > self.at {
            out.loss = out.loss * f32::NAN;
        }
        out
    }

    fn state(&self) -> (PhantomData<Bk>, ()) {
        (PhantomData, ())
    }

    fn load_state(&mut self, _: PhantomData<Bk>, _: ()) {}
}

#[test]
fn nan_loss_stops_with_step_and_keeps_checkpoint() {
    let device = Default::default();
    let dir = tmp("nan");
    let mut method = Poisoned {
        inner: simclr().init().unwrap(),
        step: 0,
        at: 4,
    };
    let run = run_dir(&dir, false);
    let err = train_on_data(
        &mut method,
        seeded_model(&device),
        &config(3),
        &run,
        &device,
    )
    .unwrap_err();
    match &err {
        Error::NonFiniteLoss {
            epoch,
            step,
            global_step,
            ..
        } => assert_eq!((*epoch, *step, *global_step), (1, 1, 4)),
        other => panic!("expected NonFiniteLoss, got {other}"),
    }
    let msg = err.to_string();
    // The advice is one the program accepts: a resume with other settings is refused.
    assert!(
        msg.contains("NaN") && msg.contains("after epoch 1") && msg.contains("--overwrite"),
        "{msg}"
    );
    // The checkpoint of epoch 1 is intact and resumable.
    let t = try_run(&dir, &config(3), true).unwrap();
    assert_eq!(t.resumed_at_epoch, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_is_never_silently_replaced_or_resumed_by_another_run() {
    let dir = tmp("guarded");
    let first = try_run(&dir, &config(1), false).unwrap();
    assert_eq!(first.history.epochs.len(), 1);

    // Forgetting --resume: refused, the checkpoint is untouched.
    let path = dir.join("checkpoint.bin");
    let before = std::fs::read(&path).unwrap();
    let err = try_run(&dir, &config(1), false).unwrap_err().to_string();
    assert!(
        err.contains("--resume") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // Another number of epochs (a different schedule): refused, naming it.
    let err = try_run(&dir, &config(2), true).unwrap_err().to_string();
    assert!(err.contains("epochs: checkpoint 1, this run 2"), "{err}");

    // Another head (another model): refused before Burn sees the record.
    let wider = SimClrConfig::for_backbone(&backbone(), 16).with_temperature(0.5);
    let err = try_run_in(&dir, &config(1), run_dir(&dir, true), wider)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model and method state: checkpoint"), "{err}");

    // What the caller says about the data is compared too.
    let with_identity = |dataset: &str, resume: bool, overwrite: bool| RunDir {
        identity: vec![("dataset".into(), dataset.into())],
        overwrite,
        ..run_dir(&dir, resume)
    };
    try_run_in(&dir, &config(1), with_identity("a", false, true), simclr()).unwrap();
    let err = try_run_in(&dir, &config(1), with_identity("b", true, false), simclr())
        .unwrap_err()
        .to_string();
    assert!(err.contains("dataset: checkpoint a, this run b"), "{err}");
    try_run_in(&dir, &config(1), with_identity("a", true, false), simclr()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn undecodable_sections_with_a_valid_checksum_are_errors_not_panics() {
    use contrast_methods::checkpoint;
    let dir = tmp("garbage");
    try_run(&dir, &config(1), false).unwrap();
    let path = dir.join("checkpoint.bin");
    let good = checkpoint::read(&path).unwrap();
    let garbage: Vec<u8> = (0..good.model.len().max(64))
        .map(|i| ((i * 2_654_435_761usize) >> 7) as u8)
        .collect();
    for (section, damage) in [
        ("model and method state", 0usize),
        ("optimizer", 1),
        ("sampler state", 2),
    ] {
        let mut data = good.clone();
        match damage {
            0 => data.model = garbage.clone(),
            1 => data.optimizer = garbage.clone(),
            _ => data.sampler = garbage.clone(),
        }
        checkpoint::write_atomic(&path, &data).unwrap();
        let err = try_run(&dir, &config(1), true).unwrap_err().to_string();
        assert!(err.contains(section), "{section}: {err}");
    }
    // A well-formed model section of another head width under this run's header: Burn would
    // load it into the smaller parameters without a word.
    let other = tmp("garbage-other");
    let wider = SimClrConfig::for_backbone(&backbone(), 16).with_temperature(0.5);
    try_run_in(&other, &config(1), run_dir(&other, false), wider).unwrap();
    let foreign = checkpoint::read(&other.join("checkpoint.bin")).unwrap();
    let mut data = good.clone();
    data.model = foreign.model;
    checkpoint::write_atomic(&path, &data).unwrap();
    let err = try_run(&dir, &config(1), true).unwrap_err().to_string();
    assert!(err.contains("model and method state"), "{err}");
    std::fs::remove_dir_all(&other).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A few Adam steps on one fixed batch lower the SimCLR loss, on every backend built in.
fn loss_decreases_on_a_fixed_batch<Bk: AutodiffBackend>(device: &Bk::Device) {
    use burn::optim::{AdamConfig, GradientsParams, Optimizer};
    let data = data();
    let mut model = seeded::<Bk, _>(device, || {
        simclr().init_model::<Bk, _>(&backbone(), device).unwrap()
    });
    let mut method = simclr().init().unwrap();
    let idx: Vec<usize> = (0..16).collect();
    let pair = batcher().views::<Bk>(&data.train, &idx, 0, device);
    let mut optim = AdamConfig::new().init::<Bk, ImageEncoder<Bk>>();
    let mut losses = Vec::new();
    for _ in 0..8 {
        let loss =
            Method::<Bk, ImageEncoder<Bk>>::step(&mut method, &model, pair.clone(), &idx).loss;
        losses.push(to_vec_f32(loss.clone())[0]);
        let g = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.01, model, g);
    }
    assert!(losses[7] < losses[0] - 0.05, "{losses:?}");
}

contrast_core::backend_tests!(loss_decreases_on_a_fixed_batch);

#[test]
fn resume_with_batch_sampler_matches_uninterrupted_run() {
    let mut bs = contrast_sampler::BatchSamplerConfig::new(16);
    bs.candidates = 20;
    bs.neighbours = 4;
    bs.rebuild_every = 2;
    let cfg = || config(3).with_batch_sampler(Some(bs.clone()));
    let run = |dir: &std::path::Path, cfg: TrainConfig| try_run(dir, &cfg, true).unwrap();
    let straight_dir = tmp("bs-straight");
    let straight = run(&straight_dir, cfg());
    assert!(
        straight.sampler_summary.contains("graph builds"),
        "{}",
        straight.sampler_summary
    );
    // Epochs after the warm-up use walks: exactly once per instance, 3 batches of 16.
    assert_eq!(straight.history.epochs[2].batches, 3);
    let dir = tmp("bs-resumed");
    assert!(run(&dir, cfg().with_stop_after_steps(Some(7))).interrupted);
    let resumed = run(&dir, cfg());
    assert_eq!(resumed.resumed_at_epoch, 2);
    assert_eq!(resumed.history.step_losses, straight.history.step_losses);
    assert_eq!(weights(&resumed.model), weights(&straight.model));
    std::fs::remove_dir_all(&straight_dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exactly_once_epochs_longer_than_the_schedule_finish() {
    // 48 images in batches of 10: the schedule counts 4 batches per epoch, BatchSampler's
    // exactly-once walk epochs have 5 (the last one of 8).
    let mut bs = contrast_sampler::BatchSamplerConfig::new(10);
    bs.candidates = 20;
    bs.neighbours = 4;
    let cfg = config(3).with_batch_size(10).with_batch_sampler(Some(bs));
    let dir = tmp("bs-long");
    let t = try_run(&dir, &cfg, false).unwrap();
    assert_eq!(t.history.epochs[2].batches, 5);
    assert_eq!(t.history.step_losses.len(), 4 + 5 + 5);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn start_embeddings_let_batch_sampler_walk_from_the_first_step() {
    let mut bs = contrast_sampler::BatchSamplerConfig::new(16);
    bs.candidates = 20;
    bs.neighbours = 4;
    bs.warmup_epochs = 0;
    let device: Device = Default::default();
    // The seeded model's projections of the plain training images, as a pretrained model's
    // would be given.
    let (data, batcher) = (data(), batcher());
    let start = StartEmbeddings::from_projections(
        &seeded_model(&device).valid(),
        &batcher.views_of(&data.train),
        2,
        10,
        &device,
        "the test's model",
    );
    // Two views of an 8-wide projection, each normalised.
    assert_eq!((start.values.len(), start.dim), (data.train.len() * 16, 16));
    let row = &start.values[..16];
    assert_eq!(row[..8], row[8..]);
    let norm: f32 = row[..8].iter().map(|v| v * v).sum();
    assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    let with = |start: &StartEmbeddings, bs: &contrast_sampler::BatchSamplerConfig| {
        let dir = tmp("bs-start");
        let run = RunDir {
            start_embeddings: Some(start.clone()),
            ..run_dir(&dir, false)
        };
        let cfg = config(1).with_batch_sampler(Some(bs.clone()));
        let out = try_run_in(&dir, &cfg, run, simclr());
        let _ = std::fs::remove_dir_all(&dir);
        out
    };
    // One epoch, no warm-up: the first graph comes from the given embeddings.
    let t = with(&start, &bs).unwrap();
    assert!(
        t.sampler_summary
            .starts_with("3 walk batches, 1 graph builds"),
        "{}",
        t.sampler_summary
    );

    // A warm-up would replace them before the first walk; a shuffled run has no use for them;
    // a wrong length is named.
    let mut warm = bs.clone();
    warm.warmup_epochs = 1;
    let err = with(&start, &warm).unwrap_err().to_string();
    assert!(err.contains("warmup_epochs"), "{err}");
    let dir = tmp("bs-start-shuffled");
    let run = RunDir {
        start_embeddings: Some(start.clone()),
        ..run_dir(&dir, false)
    };
    let err = try_run_in(&dir, &config(1), run, simclr())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("start_embeddings") && err.contains("shuffles"),
        "{err}"
    );
    let short = StartEmbeddings {
        values: std::sync::Arc::new(vec![0.5; 7]),
        ..start.clone()
    };
    let err = with(&short, &bs).unwrap_err().to_string();
    assert!(
        err.contains("set_embeddings") && err.contains("7 floats"),
        "{err}"
    );
    // Rows of another layout than the method's (one view where SimCLR passes two) would be
    // replaced at the first step: refused there.
    let one_view = StartEmbeddings {
        values: std::sync::Arc::new(
            start
                .values
                .chunks(16)
                .flat_map(|r| r[..8].to_vec())
                .collect(),
        ),
        dim: 8,
        ..start
    };
    let err = with(&one_view, &bs).unwrap_err().to_string();
    assert!(
        err.contains("rows of 8") && err.contains("rows of 16"),
        "{err}"
    );
}

/// A monitor that reports a fixed sequence of values, from its `next`-th on.
struct Scripted {
    values: &'static [f64],
    next: usize,
}

impl Monitor<B, ImageEncoder<B>> for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }

    fn measure(&mut self, _: &ImageEncoder<B>, _: &Device) -> Result<f64, Error> {
        self.next += 1;
        Ok(self.values[self.next - 1])
    }
}

#[test]
fn the_best_weights_are_kept_on_disk_and_survive_a_resume() {
    // Measured after each of 9 steps (3 epochs of 3): the best is step 5's, between the
    // checkpoints of steps 3 and 6; a NaN is never the best.
    const VALUES: [f64; 9] = [1.0, 2.0, 3.0, 5.0, 9.0, f64::NAN, 6.0, 9.0, 7.0];
    let config = || {
        config(3)
            .with_monitor_every_steps(1)
            .with_keep_best(Some("scripted".into()))
    };
    let device = Device::default();
    let data = data();
    let batcher = batcher();
    let views = batcher.views_of(&data.train);
    let run_in = |run: RunDir, cfg: TrainConfig, calls_done: usize| {
        let mut method = simclr().init().unwrap();
        let mut monitors: Vec<Box<dyn Monitor<B, ImageEncoder<B>>>> = vec![Box::new(Scripted {
            values: &VALUES,
            next: calls_done,
        })];
        contrast_methods::train(
            &mut method,
            seeded_model(&device),
            &views,
            &mut monitors,
            &cfg,
            &run,
            &device,
        )
    };
    let run = |dir: &std::path::Path, cfg, calls_done| run_in(run_dir(dir, true), cfg, calls_done);
    let straight_dir = tmp("best-straight");
    let straight = run(&straight_dir, config(), 0).unwrap();
    let best = straight.history.best.clone().expect("a best evaluation");
    let want = BestRecord {
        monitor: "scripted".into(),
        value: 9.0,
        epoch: 1,
        step: 5,
    };
    assert_eq!(best, want);
    assert!(straight_dir.join("best.bin").exists());

    // The kept weights are those of a run stopped at that step, batch-norm statistics
    // included (a clone of the model would share them with the model trained on).
    let stopped_dir = tmp("best-stopped");
    let stopped = run(&stopped_dir, config().with_stop_after_steps(Some(5)), 0).unwrap();
    let kept = straight.best.as_ref().expect("best weights");
    assert_eq!(kept.record, want);
    let kept = weights(&kept.load_into(seeded_model(&device), &device).unwrap());
    assert_eq!(kept, weights(&stopped.model));
    assert_ne!(kept, weights(&straight.model));

    // Killed after step 6, resumed from the checkpoint of step 3: the best (step 5) was written
    // after that checkpoint, read back, and measured again at the same value.
    let dir = tmp("best-resumed");
    assert!(
        run(&dir, config().with_stop_after_steps(Some(6)), 0)
            .unwrap()
            .interrupted
    );
    let resumed = run(&dir, config(), 3).unwrap();
    assert_eq!(resumed.resumed_at_epoch, 1);
    assert_eq!(resumed.history.best, Some(want.clone()));
    let again = resumed.best.as_ref().unwrap();
    assert_eq!(again.record, want);
    assert_eq!(
        weights(&again.load_into(resumed.model, &device).unwrap()),
        kept
    );

    // The finished run resumes with nothing left to train: the NaN measured at step 6 came
    // back from the checkpoint's JSON (as null) and the best from best.bin.
    let done = run(&dir, config(), 9).unwrap();
    assert!(done.history.epochs[1].monitors["scripted"].is_nan());
    assert_eq!(done.best.unwrap().record, want);

    // An older best.bin (another run's: best at step 4) and a missing one are refused with a
    // sentence.
    let older_dir = tmp("best-older");
    run(&older_dir, config().with_stop_after_steps(Some(4)), 0).unwrap();
    std::fs::copy(older_dir.join("best.bin"), dir.join("best.bin")).unwrap();
    let err = run(&dir, config(), 9).unwrap_err().to_string();
    assert!(err.contains("best.bin") && err.contains("older"), "{err}");
    std::fs::remove_file(dir.join("best.bin")).unwrap();
    let err = run(&dir, config(), 9).unwrap_err().to_string();
    assert!(err.contains("best.bin") && err.contains("missing"), "{err}");

    // A run without keep_best over the first one (overwrite) keeps no best weights and
    // removes the replaced run's best.bin with its first checkpoint.
    let over = RunDir {
        overwrite: true,
        ..run_dir(&straight_dir, false)
    };
    let plain = run_in(over, config().with_keep_best(None), 0).unwrap();
    assert!(plain.best.is_none() && plain.history.best.is_none());
    assert!(!straight_dir.join("best.bin").exists());

    // A monitor name the run does not measure is refused before training.
    let err = try_run(
        &tmp("best-unknown"),
        &config().with_keep_best(Some("stsb_dev".into())),
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("keep_best") && err.contains(contrast_methods::KNN_TOP1),
        "{err}"
    );
    for d in [straight_dir, stopped_dir, dir, older_dir] {
        std::fs::remove_dir_all(&d).unwrap();
    }
}
