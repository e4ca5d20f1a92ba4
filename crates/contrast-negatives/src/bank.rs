use burn::config::Config;
use burn::module::{Module, Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData};
use contrast_core::{
    Error, NORM_EPS, ensure_in_range, index_tensor, l2_normalize, l2_normalize_row, to_vec_f32,
};
use contrast_kernels::{edit_f32, set_int};
use rand::{Rng, RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::host::edit_in_host_memory;
use crate::util::{Staleness, check_dim, to_vec_i64};

/// Configuration of a [`MemoryBank`].
#[derive(Config, Debug)]
pub struct MemoryBankConfig {
    /// Rows: one per dataset instance.
    pub num_instances: usize,
    /// Width of each stored embedding.
    pub dim: usize,
    /// Update momentum: `v <- normalise(momentum * v + (1 - momentum) * f)` (InstDisc: 0.5;
    /// 0 replaces the row).
    #[config(default = 0.5)]
    pub momentum: f64,
    /// Seed of the random initialisation on the unit sphere.
    #[config(default = 0)]
    pub seed: u64,
    /// Largest allocation allowed, in bytes. `None` uses the memory this machine reports as
    /// available (`MemAvailable`), which is the right bound for the CPU backends and a lower
    /// bound's stand-in for GPUs.
    #[config(default = "None")]
    pub max_bytes: Option<u64>,
}

impl MemoryBankConfig {
    /// Bytes the bank will hold: `f32` rows plus one `i64` write step per row.
    pub fn bytes(&self) -> u64 {
        (self.num_instances as u64) * (self.dim as u64 * 4 + 8)
    }

    /// Checks sizes, momentum and the memory budget.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for zero sizes or a momentum outside `[0, 1)`;
    /// [`Error::OutOfMemory`] with the bytes asked for when the bank exceeds `max_bytes` (or the
    /// available memory).
    pub fn validate(&self) -> Result<(), Error> {
        if self.num_instances == 0 {
            return Err(Error::invalid_config(
                "num_instances",
                0,
                "must be at least 1",
            ));
        }
        if self.dim == 0 {
            return Err(Error::invalid_config("dim", 0, "must be at least 1"));
        }
        ensure_in_range("momentum", self.momentum, 0.0, 1.0)?;
        if self.momentum >= 1.0 {
            return Err(Error::invalid_config(
                "momentum",
                self.momentum,
                "must be < 1 (1 never writes)",
            ));
        }
        let limit = self.max_bytes.or_else(available_memory);
        if let Some(limit) = limit
            && self.bytes() > limit
        {
            return Err(Error::OutOfMemory {
                what: format!("a memory bank of {} x {} f32", self.num_instances, self.dim),
                requested_bytes: self.bytes(),
                limit_bytes: limit,
            });
        }
        Ok(())
    }

    /// Allocates the bank on `device`, every row an independent uniform point on the unit
    /// sphere, drawn on the host from `seed` so that every backend starts from the same bank.
    ///
    /// # Errors
    /// As [`validate`](Self::validate), which runs first: nothing is allocated on failure.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<MemoryBank<B>, Error> {
        self.validate()?;
        let (n, d) = (self.num_instances, self.dim);
        let values = random_unit_rows(n, d, self.seed);
        let rows = Tensor::<B, 2>::from_data(TensorData::new(values, [n, d]), device);
        Ok(MemoryBank {
            rows: Param::from_tensor(rows).set_require_grad(false),
            written_at: Param::initialized(ParamId::new(), Tensor::zeros([n], device)),
            momentum: self.momentum,
        })
    }
}

/// `n` independent uniform points on the unit sphere in `d` dimensions, row-major, drawn on the
/// host from `seed` (the same on every platform and backend).
pub(crate) fn random_unit_rows(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let mut values = Vec::with_capacity(n * d);
    for _ in 0..n {
        let start = values.len();
        let mut norm = 0f64;
        while norm < 1e-12 {
            values.truncate(start);
            norm = 0.0;
            for _ in 0..d {
                let g = gaussian(&mut rng);
                norm += g * g;
                values.push(g as f32);
            }
        }
        let inv = (1.0 / norm.sqrt()) as f32;
        values[start..].iter_mut().for_each(|v| *v *= inv);
    }
    values
}

/// A standard normal draw (Box-Muller), portable across platforms for a given generator.
fn gaussian(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `MemAvailable` from `/proc/meminfo`, where the OS reports it.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The memory bank of InstDisc: one L2-normalised embedding per dataset instance, read as
/// negatives without gradient and refreshed with the features of each batch.
///
/// ```text
/// v_i <- normalise(momentum * v_i + (1 - momentum) * f_i)      for i in the batch
/// ```
///
/// Rows also record the step of their last write, so [`staleness`](Self::staleness) can show
/// the weakness of the paradigm: most negatives were computed by an older encoder.
/// Both tensors are parameters without gradient, so the bank is saved with the model.
///
/// On wgpu one buffer is capped by the adapter's largest storage-buffer binding: Mesa's software
/// Vulkan cannot allocate a 1.28M x 128 bank (655 MB) and CubeCL panics in its runtime thread.
/// Use the CPU or CUDA backends for banks of that size.
///
/// Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance Discrimination",
/// CVPR 2018, <https://arxiv.org/abs/1805.01978>.
#[derive(Module, Debug)]
pub struct MemoryBank<B: Backend> {
    /// `[n, d]` normalised rows.
    pub rows: Param<Tensor<B, 2>>,
    /// `[n]` training step of each row's last write (0 = initialisation).
    pub written_at: Param<Tensor<B, 1, Int>>,
    /// Update momentum.
    pub momentum: f64,
}

impl<B: Backend> MemoryBank<B> {
    /// Number of rows.
    pub fn num_instances(&self) -> usize {
        self.rows.dims()[0]
    }

    /// Row width.
    pub fn dim(&self) -> usize {
        self.rows.dims()[1]
    }

    /// The rows at `indices`, detached.
    ///
    /// # Shapes
    /// - `indices`: `[k]` -> `[k, d]`
    pub fn read(&self, indices: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        self.rows.val().detach().select(0, indices)
    }

    /// The whole bank, detached (for kNN evaluation straight from the bank).
    pub fn all(&self) -> Tensor<B, 2> {
        self.rows.val().detach()
    }

    /// `m` indices drawn uniformly from the bank, avoiding `exclude` (e.g. the batch's own
    /// rows, so that no instance is its own noise sample).
    ///
    /// Draws are with replacement, as in InstDisc.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `exclude` covers every row.
    pub fn sample_noise(
        &self,
        rng: &mut impl Rng,
        m: usize,
        exclude: &[usize],
    ) -> Result<Vec<usize>, Error> {
        let n = self.num_instances();
        let mut excluded = vec![false; n];
        for &i in exclude {
            if i < n {
                excluded[i] = true;
            }
        }
        let allowed = excluded.iter().filter(|&&e| !e).count();
        if allowed == 0 && m > 0 {
            return Err(Error::invalid_config(
                "exclude",
                exclude.len(),
                "excludes every row of the bank",
            ));
        }
        let mut out = Vec::with_capacity(m);
        while out.len() < m {
            let i = rng.random_range(0..n);
            if !excluded[i] {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// Writes the batch's features into their rows with the bank's momentum and records `step`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `features` is not `[indices.len(), d]`, and
    /// [`Error::InvalidConfig`] for an index out of range or repeated (one batch may hold each
    /// instance once).
    pub fn update(
        self,
        indices: &[usize],
        features: Tensor<B, 2>,
        step: u64,
    ) -> Result<Self, Error> {
        let [k, _] = features.dims();
        check_dim("MemoryBank::update", features.dims(), self.dim())?;
        if k != indices.len() {
            return Err(Error::ShapeMismatch {
                op: "MemoryBank::update",
                expected: format!("[{}, {}] (one row per index)", indices.len(), self.dim()),
                found: format!("{:?}", features.dims()),
            });
        }
        let n = self.num_instances();
        let mut seen = vec![false; n];
        for &i in indices {
            if i >= n {
                return Err(Error::invalid_config(
                    "indices",
                    i,
                    format!("out of range for a bank of {n} rows"),
                ));
            }
            if std::mem::replace(&mut seen[i], true) {
                return Err(Error::invalid_config(
                    "indices",
                    i,
                    "appears twice in one update",
                ));
            }
        }
        let device = features.device();
        if edit_in_host_memory::<B>() {
            let d = self.dim();
            let momentum = self.momentum as f32;
            let features = to_vec_f32(features.detach());
            let rows = self.rows.map(|rows| {
                edit_f32(rows, |data| {
                    for (r, &i) in indices.iter().enumerate() {
                        let row = &mut data[i * d..(i + 1) * d];
                        for (v, &f) in row.iter_mut().zip(&features[r * d..(r + 1) * d]) {
                            *v = momentum * *v + (1.0 - momentum) * f;
                        }
                        l2_normalize_row(row, NORM_EPS);
                    }
                })
            });
            let written = self
                .written_at
                .map(|w| set_int(w, indices.iter().map(|&i| (i, step as i64))));
            return Ok(MemoryBank {
                rows,
                written_at: written,
                momentum: self.momentum,
            });
        }
        let idx = index_tensor::<B>(indices, &device);
        let old = self.read(idx.clone());
        let new = l2_normalize(
            old.clone() * self.momentum + features.detach() * (1.0 - self.momentum),
            NORM_EPS,
        );
        let old_steps = self.written_at.val().select(0, idx.clone());
        let steps = Tensor::<B, 1, Int>::full([k], step as i64, &device) - old_steps;
        // `Param::map` hands over the only reference to the stored tensor, so a backend that
        // writes in place when it can (CubeCL) does not copy the bank.
        let idx_rows = idx.clone();
        Ok(MemoryBank {
            rows: self
                .rows
                .map(|rows| rows.select_assign(0, idx_rows, new - old, IndexingUpdateOp::Add)),
            written_at: self
                .written_at
                .map(|w| w.select_assign(0, idx, steps, IndexingUpdateOp::Add)),
            momentum: self.momentum,
        })
    }

    /// How many steps ago each row was written, as of `step`.
    pub fn staleness(&self, step: u64) -> Staleness {
        let written = to_vec_i64(self.written_at.val());
        Staleness::from_ages(
            written
                .into_iter()
                .map(|w| step.saturating_sub(w.max(0) as u64)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
    use burn::tensor::backend::AutodiffBackend;
    use contrast_core::testing::assert_close;
    use contrast_core::to_vec_f32;

    fn rows<B: Backend>(bank: &MemoryBank<B>, idx: &[usize]) -> Vec<f32> {
        to_vec_f32(bank.read(index_tensor::<B>(idx, &bank.rows.device())))
    }

    /// Initial rows are unit vectors, and the same seed gives the same bank.
    fn bank_init_on_unit_sphere<B: AutodiffBackend>(device: &B::Device) {
        let cfg = MemoryBankConfig::new(50, 8).with_seed(3);
        let bank = cfg.init::<B>(device).unwrap();
        let all = to_vec_f32(bank.all());
        for row in all.chunks(8) {
            let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        }
        assert_eq!(all, to_vec_f32(cfg.init::<B>(device).unwrap().all()));
        assert_ne!(
            all,
            to_vec_f32(cfg.with_seed(4).init::<B>(device).unwrap().all())
        );
    }

    /// The update formula against rows computed by hand; untouched rows stay as they were.
    fn bank_update_matches_hand_rows<B: AutodiffBackend>(device: &B::Device) {
        crate::host::on_both_paths(|| bank_update_case::<B>(device));
    }

    fn bank_update_case<B: AutodiffBackend>(device: &B::Device) {
        let bank = MemoryBankConfig::new(4, 2)
            .with_momentum(0.5)
            .init::<B>(device)
            .unwrap();
        let before = to_vec_f32(bank.all());
        let f =
            Tensor::<B, 2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 2.0], [2, 2]), device);
        let bank = bank.update(&[2, 0], f, 7).unwrap();
        let mix = |old: &[f32], new: [f32; 2]| {
            let v = [0.5 * old[0] + 0.5 * new[0], 0.5 * old[1] + 0.5 * new[1]];
            let n = (v[0] * v[0] + v[1] * v[1]).sqrt();
            vec![v[0] / n, v[1] / n]
        };
        assert_close(&rows(&bank, &[2]), &mix(&before[4..6], [1.0, 0.0]), 1e-6);
        assert_close(&rows(&bank, &[0]), &mix(&before[0..2], [0.0, 2.0]), 1e-6);
        assert_close(
            &rows(&bank, &[1, 3]),
            &[&before[2..4], &before[6..8]].concat(),
            0.0,
        );
        // momentum 0 replaces the row by the normalised feature
        let mut bank = bank;
        bank.momentum = 0.0;
        let f = Tensor::<B, 2>::from_data(TensorData::new(vec![3.0f32, 4.0], [1, 2]), device);
        let bank = bank.update(&[1], f, 9).unwrap();
        assert_close(&rows(&bank, &[1]), &[0.6, 0.8], 1e-6);
        let s = bank.staleness(10);
        assert_eq!(s.count, 4);
        assert_eq!(s.max, 10); // row 3 was never written
        assert!((s.mean - (3.0 + 1.0 + 3.0 + 10.0) / 4.0).abs() < 1e-12);
    }

    /// Save -> load gives back identical rows and write steps.
    fn bank_save_load_roundtrip<B: AutodiffBackend>(device: &B::Device) {
        let cfg = MemoryBankConfig::new(6, 3);
        let f = Tensor::<B, 2>::ones([2, 3], device);
        let bank = cfg
            .init::<B>(device)
            .unwrap()
            .update(&[1, 4], f, 5)
            .unwrap();
        let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
        let bytes = recorder.record(bank.clone().into_record(), ()).unwrap();
        let fresh = cfg.with_seed(99).init::<B>(device).unwrap();
        let loaded = fresh.load_record(recorder.load(bytes, device).unwrap());
        assert_eq!(to_vec_f32(loaded.all()), to_vec_f32(bank.all()));
        assert_eq!(to_vec_i64(loaded.written_at.val()), vec![0, 5, 0, 0, 5, 0]);
        assert_eq!(loaded.staleness(8), bank.staleness(8));
    }

    contrast_core::backend_tests!(
        bank_init_on_unit_sphere,
        bank_update_matches_hand_rows,
        bank_save_load_roundtrip
    );

    type F = contrast_core::testing::Flex;

    #[test]
    fn update_rejects_bad_batches() {
        let device = Default::default();
        let bank = MemoryBankConfig::new(4, 2).init::<F>(&device).unwrap();
        let f = Tensor::<F, 2>::ones([2, 2], &device);
        let e = bank
            .clone()
            .update(&[1, 1], f.clone(), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("appears twice"), "{e}");
        let e = bank
            .clone()
            .update(&[1, 4], f.clone(), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of range"), "{e}");
        let e = bank.clone().update(&[1], f, 1).unwrap_err().to_string();
        assert!(e.contains("[1, 2]") && e.contains("[2, 2]"), "{e}");
        let e = bank
            .update(&[1], Tensor::<F, 2>::ones([1, 3], &device), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[_, 2]") && e.contains("[1, 3]"), "{e}");
    }

    #[test]
    fn oversized_bank_states_the_bytes() {
        let cfg = MemoryBankConfig::new(1_280_000, 128).with_max_bytes(Some(100 << 20));
        assert_eq!(cfg.bytes(), 1_280_000 * (128 * 4 + 8));
        let e = cfg.init::<F>(&Default::default()).unwrap_err().to_string();
        assert!(
            e.contains("665600000 bytes") && e.contains("104857600"),
            "{e}"
        );
        assert!(
            MemoryBankConfig::new(10, 2)
                .with_momentum(1.0)
                .validate()
                .is_err()
        );
        assert!(MemoryBankConfig::new(0, 2).validate().is_err());
    }

    #[test]
    fn noise_avoids_excluded_rows_and_repeats_with_seed() {
        let bank = MemoryBankConfig::new(10, 2)
            .init::<F>(&Default::default())
            .unwrap();
        let mut rng = Pcg64Mcg::seed_from_u64(1);
        let noise = bank.sample_noise(&mut rng, 500, &[0, 3, 9]).unwrap();
        assert_eq!(noise.len(), 500);
        assert!(noise.iter().all(|&i| i < 10 && ![0, 3, 9].contains(&i)));
        for allowed in [1, 2, 4, 5, 6, 7, 8] {
            assert!(
                noise.contains(&allowed),
                "uniform draws should reach row {allowed}"
            );
        }
        let again = bank
            .sample_noise(&mut Pcg64Mcg::seed_from_u64(1), 500, &[0, 3, 9])
            .unwrap();
        assert_eq!(noise, again);
        assert!(
            bank.sample_noise(&mut rng, 1, &(0..10).collect::<Vec<_>>())
                .is_err()
        );
    }
}
