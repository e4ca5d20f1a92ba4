use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use contrast_core::{
    AutodiffEncoder, EncoderConfig, Error, NORM_EPS, ViewPair, ensure_in_range, index_tensor,
    l2_normalize, to_vec_f32,
};
use contrast_encoders::{ProjectedEncoder, ProjectionHeadConfig};
use contrast_losses::{NceLoss, NceLossConfig, PartitionEstimate};
use contrast_negatives::{MemoryBank, MemoryBankConfig};
use contrast_parallel::{Peer, Reduce, gathered};

use crate::method::{HeadConfig, Method, MethodInfo, Paradigm, StepOutput};

/// InstDisc (Wu et al. 2018, <https://arxiv.org/abs/1805.01978>), the memory-bank paradigm.
///
/// Every training instance is its own class. A memory bank stores one normalised 128-d
/// embedding per instance; the non-parametric softmax over all of them is approximated by NCE
/// against `m` rows drawn uniformly from the bank (paper: `m = 4096`, temperature 0.07), with
/// the partition function estimated on the first batch(es) and then frozen. After each step the
/// batch's rows are refreshed, `v <- normalise(0.5 v + 0.5 f)`; the optional proximal term
/// `lambda ||f - v||^2` keeps features near their previous embedding.
///
/// Only the first view of each pair is used (one augmented image per instance per step).
///
/// On several peers every peer keeps the whole bank: the global batch's indices and features
/// are gathered, so that every peer excludes the same rows from its noise draws (the same
/// generator on every peer draws the same rows), estimates the partition function on the same
/// batch and writes the same rows; each peer's loss is its share's, and the shares' losses are
/// averaged. The result is one device's on the global batch.
/// The bank is a ready-made feature set for kNN evaluation: [`bank_rows`](InstDisc::bank_rows).
#[derive(Config, Debug)]
pub struct InstDiscConfig {
    /// The embedding head (paper: linear to 128).
    pub head: ProjectionHeadConfig,
    /// NCE settings; `num_instances` must be the training split's size.
    pub nce: NceLossConfig,
    /// Memory-bank momentum (paper: 0.5).
    #[config(default = 0.5)]
    pub bank_momentum: f64,
    /// Batches whose partition-function estimates are averaged before it is frozen (the
    /// reference code uses the first batch).
    #[config(default = 1)]
    pub partition_warmup_batches: usize,
    /// Estimate the partition function again every this many steps (`None`: estimate once and
    /// freeze it, as the paper and its reference code do). Once bank rows become informative
    /// the frozen first estimate no longer normalises the NCE probabilities; re-estimating
    /// follows them.
    #[config(default = "None")]
    pub partition_refresh_steps: Option<usize>,
    /// Seed of the bank's initial rows and the noise draws.
    #[config(default = 0)]
    pub seed: u64,
}

impl InstDiscConfig {
    /// The paper's settings for a training split of `num_instances`: linear head to `out_dim`,
    /// `m = min(4096, n - 1)` noise samples, temperature 0.07, bank momentum 0.5, no proximal
    /// term.
    pub fn for_backbone<C: EncoderConfig>(
        backbone: &C,
        out_dim: usize,
        num_instances: usize,
    ) -> Self {
        let width = backbone.output_dim();
        InstDiscConfig::new(
            ProjectionHeadConfig::new(width, width, out_dim).with_layers(1),
            NceLossConfig::new(num_instances)
                .with_noise_samples(4096.min(num_instances.saturating_sub(1)).max(1)),
        )
    }

    fn bank_config(&self) -> MemoryBankConfig {
        MemoryBankConfig::new(self.nce.num_instances, self.head.output)
            .with_momentum(self.bank_momentum)
            .with_seed(self.seed)
    }

    /// The method with its memory bank on `device`.
    ///
    /// # Errors
    /// As [`validate`](Self::validate); [`Error::OutOfMemory`] when the bank does not fit.
    pub fn init<B: AutodiffBackend>(&self, device: &B::Device) -> Result<InstDisc<B>, Error> {
        HeadConfig::validate(self)?;
        Ok(InstDisc {
            nce: self.nce.init(),
            bank: Some(self.bank_config().init(device)?),
            pending: None,
            state: InstDiscState {
                step: 0,
                rng: Pcg64Mcg::seed_from_u64(self.seed ^ 0x006e_6f69_7365),
                partition: PartitionEstimate::new(self.partition_warmup_batches),
            },
            temperature: self.nce.temperature,
            proximal: self.nce.proximal_weight,
            partition_warmup: self.partition_warmup_batches,
            partition_refresh: self.partition_refresh_steps,
            peer: None,
        })
    }
}

impl HeadConfig for InstDiscConfig {
    fn head(&self) -> &ProjectionHeadConfig {
        &self.head
    }

    /// Checks every field.
    fn validate(&self) -> Result<(), Error> {
        self.nce.validate()?;
        if self.partition_refresh_steps == Some(0) {
            return Err(Error::invalid_config(
                "partition_refresh_steps",
                0,
                "must be at least 1 (None freezes the first estimate)",
            ));
        }
        ensure_in_range("bank_momentum", self.bank_momentum, 0.0, 1.0)?;
        self.bank_config().validate()
    }
}

/// InstDisc's counters, saved in checkpoints: the bank's clock, the noise draws' generator and
/// the partition-function estimate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstDiscState {
    step: u64,
    rng: Pcg64Mcg,
    partition: PartitionEstimate,
}

/// InstDisc's training state: the memory bank and the partition-function estimate. See
/// [`InstDiscConfig`].
#[derive(Debug, Clone)]
pub struct InstDisc<B: AutodiffBackend> {
    nce: NceLoss,
    bank: Option<MemoryBank<B>>,
    pending: Option<(Vec<usize>, Tensor<B, 2>)>,
    state: InstDiscState,
    temperature: f64,
    proximal: f64,
    partition_warmup: usize,
    partition_refresh: Option<usize>,
    /// The group whose batches every bank takes in, if any.
    peer: Option<Peer>,
}

impl<B: AutodiffBackend> InstDisc<B> {
    /// The memory bank.
    pub fn bank(&self) -> &MemoryBank<B> {
        self.bank
            .as_ref()
            .expect("the bank is present between steps")
    }

    /// The bank's rows on the host, `[n, d]` row-major, and `d`: the embedding of every
    /// training instance, usable directly as the kNN classifier's memory.
    pub fn bank_rows(&self) -> (Vec<f32>, usize) {
        (to_vec_f32(self.bank().all()), self.bank().dim())
    }

    /// The frozen partition-function estimate, once its warm-up is over.
    pub fn partition(&self) -> Option<f64> {
        self.state.partition.value()
    }

    /// Optimiser steps seen (the bank's clock).
    pub fn steps_taken(&self) -> u64 {
        self.state.step
    }
}

impl<B, E> Method<B, ProjectedEncoder<B, E>> for InstDisc<B>
where
    B: AutodiffBackend,
    E: AutodiffEncoder<B>,
{
    type Batch = ViewPair<E::Input>;
    type State = MemoryBank<B>;
    type Counters = InstDiscState;

    fn info(&self, _batch_size: usize) -> MethodInfo {
        MethodInfo {
            name: "instdisc".into(),
            paradigm: Paradigm::MemoryBank,
            negatives_per_anchor: self.nce.noise_samples(),
            staleness: Some(self.bank().staleness(self.state.step)),
            description: format!(
                "NCE against {} memory-bank rows per step, temperature {}, bank momentum {}, proximal weight {}, partition function {}",
                self.nce.noise_samples(),
                self.temperature,
                self.bank().momentum,
                self.proximal,
                self.partition_refresh
                    .map_or("frozen after the first estimate".to_string(), |r| {
                        format!("re-estimated every {r} steps")
                    })
            ),
        }
    }

    /// The bank holds one row per training instance, and more than a (global) batch: the
    /// batch's own rows are kept out of the noise draws.
    fn validate_batch(&self, batch_size: usize, train_len: usize) -> Result<(), Error> {
        let rows = self.bank().num_instances();
        if rows != train_len {
            return Err(Error::invalid_config(
                "nce.num_instances",
                rows,
                format!("the memory bank needs one row per training instance ({train_len})"),
            ));
        }
        if batch_size >= rows {
            return Err(Error::invalid_config(
                "batch_size",
                batch_size,
                format!(
                    "InstDisc draws its noise from the bank rows outside the batch: at most {} \
                     for {rows} training instances",
                    rows.saturating_sub(1)
                ),
            ));
        }
        Ok(())
    }

    /// Every peer keeps the whole bank and takes in every peer's rows; the peers' losses are
    /// averaged.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bank of 2^24 rows or more: instance indices travel
    /// between peers as `f32`.
    fn join(&mut self, peer: &Peer, _gather_negatives: bool) -> Result<Reduce, Error> {
        let rows = self.bank().num_instances();
        if peer.world() > 1 && rows >= contrast_parallel::EXACT_INDICES {
            return Err(Error::invalid_config(
                "nce.num_instances",
                rows,
                "on several peers instance indices travel as f32, exact below 2^24",
            ));
        }
        self.peer = Some(peer.clone());
        Ok(Reduce::Mean)
    }

    /// NCE of the first view's embeddings against their bank rows and `m` noise rows; the
    /// second view is not used.
    fn step(
        &mut self,
        model: &ProjectedEncoder<B, E>,
        batch: Self::Batch,
        indices: &[usize],
    ) -> StepOutput<B> {
        let f = model.projection(batch.first);
        let device = f.device();
        // What the step hands the loop, and on one device also what the bank takes in.
        let normalized = l2_normalize(f.clone().detach(), NORM_EPS);
        // The global batch: its instances are kept out of the noise, and its rows enter the
        // bank, on every peer alike.
        let (all_indices, all_features) = match &self.peer {
            None => (indices.to_vec(), f.clone().detach()),
            Some(peer) => {
                // One gather: each row's instance index (exact in f32, `join` checks) travels
                // as an extra column of its features.
                let [rows, dim] = f.dims();
                let local: Vec<f32> = indices.iter().map(|&i| i as f32).collect();
                let local =
                    Tensor::<B, 1>::from_floats(local.as_slice(), &device).reshape([rows, 1]);
                let all = gathered(Some(peer), Tensor::cat(vec![f.clone().detach(), local], 1));
                let total = all.dims()[0];
                let ids = to_vec_f32(all.clone().slice([0..total, dim..dim + 1]));
                let ids = ids.iter().map(|v| v.round() as usize).collect();
                (ids, all.slice([0..total, 0..dim]))
            }
        };
        let bank = self.bank.as_ref().expect("the bank is present");
        let positives = bank.read(index_tensor::<B>(indices, &device));
        let noise_rows = bank
            .sample_noise(&mut self.state.rng, self.nce.noise_samples(), &all_indices)
            .expect("validate_batch keeps the bank larger than a batch");
        let noise = bank.read(index_tensor::<B>(&noise_rows, &device));
        if let Some(every) = self.partition_refresh
            && self.state.step > 0
            && self.state.step.is_multiple_of(every as u64)
        {
            self.state.partition = PartitionEstimate::new(self.partition_warmup);
        }
        let z = match self.state.partition.value() {
            Some(z) => z,
            None => {
                let estimate = self
                    .nce
                    .partition_estimate(all_features.clone(), noise.clone());
                if !(estimate.is_finite() && estimate > 0.0) {
                    // NaN features: hand the loop a NaN loss, which stops the run cleanly. It
                    // keeps the features' graph: on several peers backward runs before the
                    // loop sees the value.
                    let loss = f.clone().sum().mul_scalar(f32::NAN);
                    return StepOutput::new(loss, vec![normalized]);
                }
                self.state.partition.observe(estimate)
            }
        };
        let bank_rows = match self.peer {
            Some(_) => l2_normalize(all_features, NORM_EPS),
            None => normalized.clone(),
        };
        self.pending = Some((all_indices, bank_rows));
        let loss = self.nce.forward(f, positives, noise, z);
        StepOutput::new(loss, vec![normalized])
    }

    /// The batch's bank rows take in their new features.
    fn after_step(&mut self, _model: &ProjectedEncoder<B, E>) {
        if let Some((indices, features)) = self.pending.take() {
            self.state.step += 1;
            let bank = self.bank.take().expect("the bank is present");
            self.bank = Some(
                bank.update(&indices, features, self.state.step)
                    .expect("a batch holds distinct, in-range instances"),
            );
        }
    }

    fn state(&self) -> (MemoryBank<B>, InstDiscState) {
        (self.bank().clone(), self.state.clone())
    }

    fn load_state(&mut self, bank: MemoryBank<B>, counters: InstDiscState) {
        self.bank = Some(bank);
        self.state = counters;
        self.pending = None;
    }
}
