use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use contrast_core::{
    AutodiffEncoder, EncoderConfig, Error, InstanceBatch, InstanceRows, NORM_EPS, ViewPair,
    ensure_in_range, l2_normalize,
};
use contrast_encoders::{ProjectedEncoder, ProjectionHeadConfig};
use contrast_losses::{InfoNceLoss, InfoNceLossConfig};
use contrast_negatives::{KeyQueue, KeyQueueConfig, update_momentum};

use contrast_parallel::{Peer, Reduce, gathered, gathered_instances, shared_permutation};

use crate::method::{HeadConfig, Method, MethodInfo, Paradigm, StepOutput};

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
/// **Shuffled batch norm.** With batch norm, a query and its key computed from the same batch
/// statistics let the network cheat (the statistics leak which sample belongs to the batch).
/// The official code shuffles keys across GPUs, and so does this one on several peers
/// (data-parallel training): every peer gathers the global batch's key views, encodes the
/// slice of a random permutation of them that falls to it (the lead's permutation, which every
/// peer also draws), and takes back its own instances' keys from every peer's; queries stay on
/// their peer. Batch norm then sees one peer's share at a time, as on the official GPUs. Images,
/// sentences and graphs travel between peers as rows ([`InstanceRows`]); an input type of
/// one's own that does not keeps the one-device scheme on each peer's share. On one device the
/// batch is split into [`shuffle_groups`](Self::shuffle_groups) groups instead (the first `n
/// mod groups` one instance larger, as peers share a batch), each normalised with its own
/// statistics, queries in batch order and keys in a random permutation (then unshuffled), which
/// gives every key group statistics from a different set of instances than its queries'; two
/// peers compute what one device computes with two groups. `1` turns shuffling off, on one
/// device or many.
#[derive(Config, Debug)]
pub struct MocoConfig {
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
    /// Groups of the shuffled batch-norm emulation on one device (1 = plain batch norm over the
    /// batch, no shuffle); on several peers any value above 1 shuffles across the peers, one
    /// group per peer.
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
    /// MoCo v1 for `backbone`: linear head to `out_dim`, temperature 0.07.
    pub fn v1<C: EncoderConfig>(backbone: &C, out_dim: usize) -> Self {
        let width = backbone.output_dim();
        MocoConfig::new(
            ProjectionHeadConfig::new(width, width, out_dim).with_layers(1),
            InfoNceLossConfig::new().with_temperature(0.07),
        )
        .with_version(1)
    }

    /// MoCo v2 for `backbone`: 2-layer MLP head (hidden = backbone width) to `out_dim`,
    /// temperature 0.2.
    pub fn v2<C: EncoderConfig>(backbone: &C, out_dim: usize) -> Self {
        let width = backbone.output_dim();
        MocoConfig::new(
            ProjectionHeadConfig::new(width, width, out_dim),
            InfoNceLossConfig::new().with_temperature(0.2),
        )
        .with_version(2)
    }

    /// The same with InfoNCE's temperature set to `t`.
    pub fn with_temperature(mut self, t: f64) -> Self {
        self.loss.temperature = t;
        self
    }

    /// The method for the query encoder `query` built from `backbone`: a key encoder with
    /// the query's weights (its own copy, batch-norm statistics included, requiring no
    /// gradient) and a queue filled with random unit keys, as in the reference code.
    ///
    /// # Errors
    /// As [`HeadConfig::validate`].
    pub fn init<B: AutodiffBackend, C: EncoderConfig>(
        &self,
        backbone: &C,
        query: &ProjectedEncoder<B, C::Encoder<B>>,
        device: &B::Device,
    ) -> Result<Moco<B, C::Encoder<B>>, Error> {
        // A fresh module loaded with the query's record: loading into a clone would share the
        // clone's batch-norm running statistics with the query encoder.
        let key = self
            .init_model::<B, C>(backbone, device)?
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
            peer: None,
        })
    }
}

impl HeadConfig for MocoConfig {
    fn head(&self) -> &ProjectionHeadConfig {
        &self.head
    }

    /// Checks every field.
    fn validate(&self) -> Result<(), Error> {
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
        Ok(())
    }
}

/// MoCo's counters, saved in checkpoints: the queue's clock and the key shuffles' generator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MocoState {
    /// Optimiser steps taken (the queue's clock).
    step: u64,
    /// Draws the key shuffles.
    rng: Pcg64Mcg,
}

/// MoCo's training state: the key encoder, the queue and the keys waiting to enter it. See
/// [`MocoConfig`].
#[derive(Debug)]
pub struct Moco<B: AutodiffBackend, E> {
    loss: InfoNceLoss,
    key: Option<ProjectedEncoder<B, E>>,
    queue: Option<KeyQueue<B>>,
    pending: Option<Tensor<B, 2>>,
    state: MocoState,
    momentum: f64,
    groups: usize,
    temperature: f64,
    version: u8,
    /// The group whose keys all enter the queue, if any.
    peer: Option<Peer>,
}

impl<B: AutodiffBackend, E> Clone for Moco<B, E>
where
    ProjectedEncoder<B, E>: Clone,
{
    fn clone(&self) -> Self {
        Moco {
            loss: self.loss.clone(),
            key: self.key.clone(),
            queue: self.queue.clone(),
            pending: self.pending.clone(),
            state: self.state.clone(),
            momentum: self.momentum,
            groups: self.groups,
            temperature: self.temperature,
            version: self.version,
            peer: self.peer.clone(),
        }
    }
}

impl<B: AutodiffBackend, E> Moco<B, E> {
    /// The key encoder.
    pub fn key_encoder(&self) -> &ProjectedEncoder<B, E> {
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
    pub fn steps_taken(&self) -> u64 {
        self.state.step
    }

    /// The group that keys are shuffled across: shuffling on, several peers, and key views
    /// that travel between them (`as_rows`, [`InstanceRows::AS_ROWS`] of the input type).
    fn cross_device(&self, as_rows: bool) -> Option<&Peer> {
        self.peer
            .as_ref()
            .filter(|p| as_rows && self.groups > 1 && p.world() > 1)
    }
}

/// A random permutation of `0..n`.
fn shuffle(n: usize, rng: &mut Pcg64Mcg) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(rng);
    perm
}

/// The inverse of the permutation `perm`: `inverse[perm[j]] = j`.
fn invert(perm: &[usize]) -> Vec<usize> {
    let mut inverse = vec![0; perm.len()];
    for (pos, &i) in perm.iter().enumerate() {
        inverse[i] = pos;
    }
    inverse
}

/// `f` over `groups` contiguous slices of the batch, each forward seeing only its own slice
/// (so batch norm uses per-group statistics); groups hold at least two instances, and the
/// first `n mod groups` one more, as peers share a global batch.
fn grouped<B: Backend, I: InstanceBatch>(
    x: I,
    groups: usize,
    f: impl Fn(I) -> Tensor<B, 2>,
) -> Tensor<B, 2> {
    let n = x.instances();
    let g = groups.min(n / 2).max(1);
    if g == 1 {
        return f(x);
    }
    let start = |i: usize| i * (n / g) + i.min(n % g);
    let parts = (0..g)
        .map(|i| f(x.slice_instances(start(i)..start(i + 1))))
        .collect();
    Tensor::cat(parts, 0)
}

impl<B, E> Method<B, ProjectedEncoder<B, E>> for Moco<B, E>
where
    B: AutodiffBackend,
    E: AutodiffEncoder<B>,
    E::Input: InstanceRows<B>,
{
    type Batch = ViewPair<E::Input>;
    type State = (ProjectedEncoder<B, E>, KeyQueue<B>);
    type Counters = MocoState;

    fn info(&self, _batch_size: usize) -> MethodInfo {
        MethodInfo {
            name: if self.version == 1 {
                "moco-v1"
            } else {
                "moco-v2"
            }
            .into(),
            paradigm: Paradigm::MomentumEncoder,
            negatives_per_anchor: self.queue().capacity(),
            staleness: Some(self.queue().staleness(self.state.step)),
            description: format!(
                "InfoNCE against a queue of {} keys, temperature {}, key-encoder momentum {}, {}",
                self.queue().capacity(),
                self.temperature,
                self.momentum,
                // On one device the words are those of checkpoints written before peers
                // shuffled keys, which `--resume` compares.
                match self.cross_device(<E::Input as InstanceRows<B>>::AS_ROWS) {
                    Some(peer) => format!("keys shuffled across {} peers", peer.world()),
                    None if self.groups > 1
                        && self.peer.as_ref().is_some_and(|p| p.world() > 1) =>
                        format!(
                            "shuffled batch norm over {} groups on each peer (these inputs cannot \
                         travel between peers)",
                            self.groups
                        ),
                    None => format!("shuffled batch norm over {} groups", self.groups),
                }
            ),
        }
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

    /// Every peer's keys enter every peer's queue, so the queues stay equal; the queries meet
    /// their own share's keys and the queue, and the peers' losses are averaged. With shuffling
    /// on, keys are shuffled across the peers where the key views travel as rows
    /// ([`InstanceRows`]: images, sentences, graphs); other inputs keep the groups on each
    /// peer's share (the report's description says so).
    fn join(&mut self, peer: &Peer, _gather_negatives: bool) -> Result<Reduce, Error> {
        self.peer = Some(peer.clone());
        Ok(Reduce::Mean)
    }

    /// Refused: MoCo keeps batch norm's statistics per peer and shuffles the keys across the
    /// peers (shuffle BN), so that a query and its key never share statistics; statistics over
    /// the whole batch would undo that.
    fn validate_sync_batch_norm(&self) -> Result<(), Error> {
        Err(Error::invalid_config(
            "sync_batch_norm",
            true,
            "does not apply to MoCo: it keeps batch norm per peer, its keys shuffled across the \
             peers (shuffle BN), which statistics over the whole batch would undo",
        ))
    }

    /// Queries from `first` (with gradient), keys from `second` through the key encoder on a
    /// shuffled order (no gradient), InfoNCE against the queue.
    fn step(
        &mut self,
        model: &ProjectedEncoder<B, E>,
        batch: Self::Batch,
        _indices: &[usize],
    ) -> StepOutput<B> {
        let ViewPair { first, second } = batch;
        let n = first.instances();
        let key = self
            .key
            .as_ref()
            .expect("the key encoder is present between steps");
        let cross = self
            .cross_device(<E::Input as InstanceRows<B>>::AS_ROWS)
            .cloned();
        let (q, k, pending) = if let Some(peer) = cross {
            // The official cross-device shuffle: this peer encodes its slice of the shuffled
            // global batch, every peer's keys are gathered, and each instance's key is taken
            // back from where the shuffle put it. Queries stay on their peer.
            let q = model.projection(first);
            let split = peer.split();
            let offset = split[..peer.rank()].iter().sum::<usize>();
            let perm = shuffle(split.iter().sum(), &mut self.state.rng);
            let perm = shared_permutation::<B>(&peer, perm, &q.device());
            let inverse = invert(&perm);
            let all = gathered_instances(&peer, &second)
                .expect("cross_device requires key views that travel as rows");
            let slice = all.select_instances(&perm[offset..offset + n]);
            let keys = gathered(
                Some(&peer),
                l2_normalize(key.projection(slice).detach(), NORM_EPS),
            );
            let k = keys.select_instances(&inverse[offset..offset + n]);
            (q, k, keys.select_instances(&inverse))
        } else {
            let q = grouped(first, self.groups, |x| model.projection(x));
            let k = if self.groups > 1 {
                let perm = shuffle(n, &mut self.state.rng);
                let shuffled = second.select_instances(&perm);
                grouped(shuffled, self.groups, |x| key.projection(x))
                    .select_instances(&invert(&perm))
            } else {
                key.projection(second)
            };
            let k = l2_normalize(k.detach(), NORM_EPS);
            let pending = gathered(self.peer.as_ref(), k.clone());
            (q, k, pending)
        };
        let loss = self
            .loss
            .forward(q.clone(), k.clone(), self.queue().negatives());
        self.pending = Some(pending);
        StepOutput::new(loss, vec![q, k])
    }

    /// The key encoder moves toward the updated query encoder; the batch's keys enter the
    /// queue (the oldest leave).
    fn after_step(&mut self, model: &ProjectedEncoder<B, E>) {
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

    fn state(&self) -> (Self::State, MocoState) {
        (
            (self.key_encoder().clone(), self.queue().clone()),
            self.state.clone(),
        )
    }

    fn load_state(&mut self, (key, queue): Self::State, counters: MocoState) {
        self.key = Some(key.no_grad());
        self.queue = Some(queue);
        self.state = counters;
        self.pending = None;
    }
}
