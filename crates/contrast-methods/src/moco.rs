use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use contrast_core::{Error, NORM_EPS, ensure_in_range, index_tensor, l2_normalize};
use contrast_encoders::{ProjectedEncoder, ProjectionHeadConfig, ResNetConfig};
use contrast_losses::{InfoNceLoss, InfoNceLossConfig};
use contrast_negatives::{KeyQueue, KeyQueueConfig, Staleness, update_momentum};

use crate::method::{
    InnerModel, KeptEmbeddings, Method, Paradigm, load_module, module_bytes, pack, unpack,
};

/// MoCo v1 and v2 (He et al. 2020, <https://arxiv.org/abs/1911.05722>; Chen et al. 2020,
/// <https://arxiv.org/abs/2003.04297>), the momentum-encoder paradigm.
///
/// The query encoder is trained; the key encoder is its exponential moving average
/// (`m = 0.999`) and receives no gradient. Keys of past batches wait in a FIFO queue of `K`
/// entries and serve as negatives for InfoNCE, so the number of negatives is decoupled from the
/// batch size at the price of keys computed by slightly older encoders.
///
/// v1: a linear 128-d head, temperature 0.07. v2: a 2-layer MLP head, temperature 0.2 and
/// stronger augmentation, which belongs to the data pipeline: `reproduce moco-v2` adds Gaussian
/// blur (p = 0.5) to a recipe that has none; `reproduce paradigms` gives every method the same
/// augmentation.
///
/// **Shuffled batch norm on one device.** With batch norm, a query and its key computed from
/// the same batch statistics let the network cheat (the statistics leak which sample belongs to
/// the batch). The official code shuffles keys across GPUs; here the batch is split into
/// [`shuffle_groups`](Self::shuffle_groups) groups, each normalised with its own statistics,
/// queries in batch order and keys in a random permutation (then unshuffled), which gives every
/// key group statistics from a different set of instances than its queries'. `1` turns it off.
#[derive(Config, Debug)]
pub struct MocoConfig {
    /// The backbone.
    pub backbone: ResNetConfig,
    /// The head (v1: one linear layer; v2: two layers).
    pub head: ProjectionHeadConfig,
    /// InfoNCE settings (v1: temperature 0.07; v2: 0.2).
    pub loss: InfoNceLossConfig,
    /// Queue length `K` (4096 on small data, 65536 on ImageNet).
    #[config(default = 4096)]
    pub queue_size: usize,
    /// Key-encoder momentum `m`.
    #[config(default = 0.999)]
    pub momentum: f64,
    /// Groups of the shuffled batch-norm emulation (1 = plain batch norm over the batch).
    #[config(default = 4)]
    pub shuffle_groups: usize,
    /// 1 or 2, for names in reports.
    #[config(default = 2)]
    pub version: u8,
    /// Seed of the key shuffles and of the queue's initial random keys.
    #[config(default = 0)]
    pub seed: u64,
}

impl MocoConfig {
    /// MoCo v1: linear head to `out_dim`, temperature 0.07.
    pub fn v1(backbone: ResNetConfig, out_dim: usize) -> Self {
        let width = backbone.output_dim();
        MocoConfig::new(
            backbone,
            ProjectionHeadConfig::new(width, width, out_dim).with_layers(1),
            InfoNceLossConfig::new().with_temperature(0.07),
        )
        .with_version(1)
    }

    /// MoCo v2: 2-layer MLP head (hidden = backbone width) to `out_dim`, temperature 0.2.
    pub fn v2(backbone: ResNetConfig, out_dim: usize) -> Self {
        let width = backbone.output_dim();
        MocoConfig::new(
            backbone,
            ProjectionHeadConfig::new(width, width, out_dim),
            InfoNceLossConfig::new().with_temperature(0.2),
        )
        .with_version(2)
    }

    /// Checks every field.
    ///
    /// # Errors
    /// `InvalidConfig` naming the field.
    pub fn validate(&self) -> Result<(), Error> {
        self.loss.validate()?;
        if self.loss.in_batch_negatives {
            return Err(Error::invalid_config(
                "loss.in_batch_negatives",
                true,
                "MoCo's negatives are the queue's keys",
            ));
        }
        ensure_in_range("momentum", self.momentum, 0.0, 1.0)?;
        if self.queue_size == 0 {
            return Err(Error::invalid_config("queue_size", 0, "must be at least 1"));
        }
        if self.shuffle_groups == 0 {
            return Err(Error::invalid_config(
                "shuffle_groups",
                0,
                "must be at least 1 (1 = no shuffling)",
            ));
        }
        if !matches!(self.version, 1 | 2) {
            return Err(Error::invalid_config(
                "version",
                self.version,
                "must be 1 or 2",
            ));
        }
        crate::method::check_encoder(&self.backbone, &self.head)
    }

    /// The query encoder, initialised on `device`.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails.
    pub fn init_model<B: Backend>(&self, device: &B::Device) -> ProjectedEncoder<B> {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        crate::method::build_encoder(&self.backbone, &self.head, device)
    }

    /// The method for the query encoder `query`: a key encoder with the query's weights (its
    /// own copy, batch-norm statistics included, requiring no gradient) and a queue filled
    /// with random unit keys, as in the reference code.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn init<B: AutodiffBackend>(
        &self,
        query: &ProjectedEncoder<B>,
        device: &B::Device,
    ) -> Result<Moco<B>, Error> {
        self.validate()?;
        // A fresh module loaded with the query's record: loading into a clone would share the
        // clone's batch-norm running statistics with the query encoder.
        let key = self
            .init_model::<B>(device)
            .load_record(query.clone().into_record())
            .no_grad();
        let queue = KeyQueueConfig::new(self.queue_size, self.head.output)
            .init_random::<B>(device, self.seed ^ 0x7175_6575)?;
        Ok(Moco {
            loss: self.loss.init(),
            key: Some(key),
            queue: Some(queue),
            pending: None,
            state: MocoState {
                step: 0,
                rng: Pcg64Mcg::seed_from_u64(self.seed),
            },
            momentum: self.momentum,
            groups: self.shuffle_groups,
            temperature: self.loss.temperature,
            version: self.version,
            kept: KeptEmbeddings::default(),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MocoState {
    /// Optimiser steps taken (the queue's clock).
    step: u64,
    /// Draws the key shuffles.
    rng: Pcg64Mcg,
}

/// MoCo's training state: the key encoder, the queue and the keys waiting to enter it. See
/// [`MocoConfig`].
#[derive(Debug)]
pub struct Moco<B: AutodiffBackend> {
    loss: InfoNceLoss,
    key: Option<ProjectedEncoder<B>>,
    queue: Option<KeyQueue<B>>,
    pending: Option<Tensor<B, 2>>,
    state: MocoState,
    momentum: f64,
    groups: usize,
    temperature: f64,
    version: u8,
    kept: KeptEmbeddings,
}

impl<B: AutodiffBackend> Moco<B> {
    /// The key encoder.
    pub fn key_encoder(&self) -> &ProjectedEncoder<B> {
        self.key
            .as_ref()
            .expect("the key encoder is present between steps")
    }

    /// The queue.
    pub fn queue(&self) -> &KeyQueue<B> {
        self.queue
            .as_ref()
            .expect("the queue is present between steps")
    }

    /// Optimiser steps seen.
    pub fn step(&self) -> u64 {
        self.state.step
    }
}

/// `f` over `groups` contiguous slices of the batch, each forward seeing only its own slice
/// (so batch norm uses per-group statistics); groups hold at least two samples.
fn grouped<B: Backend>(
    x: Tensor<B, 4>,
    groups: usize,
    f: impl Fn(Tensor<B, 4>) -> Tensor<B, 2>,
) -> Tensor<B, 2> {
    let n = x.dims()[0];
    let g = groups.min(n / 2).max(1);
    if g == 1 {
        return f(x);
    }
    let parts = (0..g)
        .map(|i| f(x.clone().slice(i * n / g..(i + 1) * n / g)))
        .collect();
    Tensor::cat(parts, 0)
}

impl<B: AutodiffBackend> Method<B> for Moco<B> {
    type Model = ProjectedEncoder<B>;

    fn name(&self) -> &'static str {
        if self.version == 1 {
            "moco-v1"
        } else {
            "moco-v2"
        }
    }

    fn paradigm(&self) -> Paradigm {
        Paradigm::MomentumEncoder
    }

    fn negatives_per_anchor(&self, _batch_size: usize) -> usize {
        self.queue().capacity()
    }

    fn staleness(&self) -> Option<Staleness> {
        Some(self.queue().staleness(self.state.step))
    }

    fn describe(&self) -> String {
        format!(
            "InfoNCE against a queue of {} keys, temperature {}, key-encoder momentum {}, shuffled batch norm over {} groups",
            self.queue().capacity(),
            self.temperature,
            self.momentum,
            self.groups
        )
    }

    fn validate_batch(&self, batch_size: usize, _train_len: usize) -> Result<(), Error> {
        if batch_size > self.queue().capacity() {
            return Err(Error::invalid_config(
                "batch_size",
                batch_size,
                format!(
                    "exceeds MoCo's queue of {} keys (a batch of keys must fit in the queue)",
                    self.queue().capacity()
                ),
            ));
        }
        Ok(())
    }

    /// Queries from `first` (with gradient), keys from `second` through the key encoder on a
    /// shuffled order (no gradient), InfoNCE against the queue.
    fn loss(
        &mut self,
        model: &Self::Model,
        first: Tensor<B, 4>,
        second: Tensor<B, 4>,
        _indices: &[usize],
    ) -> Tensor<B, 1> {
        let n = first.dims()[0];
        let device = first.device();
        let q = grouped(first, self.groups, |x| model.projection(x));
        let key = self
            .key
            .as_ref()
            .expect("the key encoder is present between steps");
        let k = if self.groups > 1 {
            let mut perm: Vec<usize> = (0..n).collect();
            perm.shuffle(&mut self.state.rng);
            let mut inverse = vec![0; n];
            for (pos, &i) in perm.iter().enumerate() {
                inverse[i] = pos;
            }
            let shuffled = second.select(0, index_tensor::<B>(&perm, &device));
            grouped(shuffled, self.groups, |x| key.projection(x))
                .select(0, index_tensor::<B>(&inverse, &device))
        } else {
            key.projection(second)
        };
        let k = l2_normalize(k.detach(), NORM_EPS);
        self.kept.record(q.clone(), Some(k.clone()));
        let loss = self.loss.forward(q, k.clone(), self.queue().negatives());
        self.pending = Some(k);
        loss
    }

    /// The key encoder moves toward the updated query encoder; the batch's keys enter the
    /// queue (the oldest leave).
    fn after_step(&mut self, model: &Self::Model) {
        let key = self.key.take().expect("the key encoder is present");
        self.key = Some(
            update_momentum(key, model, self.momentum)
                .expect("the key encoder has the query encoder's structure"),
        );
        if let Some(k) = self.pending.take() {
            self.state.step += 1;
            let queue = self.queue.take().expect("the queue is present");
            self.queue = Some(
                queue
                    .enqueue(k, self.state.step)
                    .expect("validate_batch keeps a batch within the queue"),
            );
        }
    }

    fn kept(&mut self) -> Option<&mut KeptEmbeddings> {
        Some(&mut self.kept)
    }

    fn represent(
        &self,
        model: &InnerModel<B, Self>,
        images: Tensor<B::InnerBackend, 4>,
    ) -> Tensor<B::InnerBackend, 2> {
        model.representation(images)
    }

    fn state_bytes(&self) -> Result<Vec<u8>, String> {
        let header = serde_json::to_vec(&self.state).map_err(|e| e.to_string())?;
        Ok(pack(&[
            &header,
            &module_bytes(self.key_encoder())?,
            &module_bytes(self.queue())?,
        ]))
    }

    fn load_state_bytes(&mut self, bytes: Vec<u8>, device: &B::Device) -> Result<(), String> {
        let mut parts = unpack(&bytes, 3)?.into_iter();
        let mut next = || parts.next().expect("three sections");
        let state: MocoState =
            serde_json::from_slice(&next()).map_err(|e| format!("MoCo state: {e}"))?;
        let key = self.key.take().expect("the key encoder is present");
        let key = load_module(key, next(), device).map_err(|e| format!("key encoder: {e}"))?;
        let queue = self.queue.take().expect("the queue is present");
        let queue = load_module(queue, next(), device).map_err(|e| format!("queue: {e}"))?;
        self.key = Some(key.no_grad());
        self.queue = Some(queue);
        self.state = state;
        self.pending = None;
        Ok(())
    }
}
