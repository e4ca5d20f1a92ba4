use std::time::Instant;

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use contrast_core::{Error, IndexSampler, ShuffledSampler, ensure_in_range, mix_seed};

use crate::{NeighbourSearch, ProximityGraph};

/// Which instances a batch may take, and so when an epoch ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Coverage {
    /// Each instance appears exactly once per epoch: walks pass through covered nodes but only
    /// add uncovered ones; the epoch has `ceil(n / batch)` batches, the last one possibly
    /// smaller. Late in an epoch, uncovered neighbours grow scarce and more batches are topped
    /// up from the uncovered pool (counted in [`WalkStats::top_ups`]).
    ExactlyOnce,
    /// The reference implementation's rule: a batch may repeat instances of earlier batches
    /// (only its start must be uncovered), and the epoch ends when every instance appeared at
    /// least once, so an epoch has more than `n / batch` batches.
    Reference,
}

/// Settings of a [`BatchSampler`] (Zhang et al., KDD 2023). Defaults follow the reference
/// vision setup: M = 1000 candidates, K = 100 neighbours, restart probability 0.2 decaying by
/// 0.02 per epoch to 0.05, graph rebuilt every 100 batches, one warm-up epoch of shuffled
/// batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchSamplerConfig {
    /// Instances per batch.
    pub batch_size: usize,
    /// Candidates drawn per instance (M). M = n gives the exact kNN graph (hardest batches,
    /// most false negatives); small M is close to random batches.
    pub candidates: usize,
    /// Out-neighbours kept per instance (K).
    pub neighbours: usize,
    /// Restart probability at epoch 0 (p0).
    pub restart: f64,
    /// Decrease of the restart probability per epoch.
    pub restart_decay: f64,
    /// Floor of the restart probability.
    pub restart_min: f64,
    /// Rebuild the graph from the latest embeddings every this many batches.
    pub rebuild_every: usize,
    /// Epochs of plain shuffled batches first (the embeddings must mean something).
    pub warmup_epochs: usize,
    /// Coverage rule.
    pub coverage: Coverage,
    /// Neighbour search.
    pub search: NeighbourSearch,
    /// Seed.
    pub seed: u64,
}

impl BatchSamplerConfig {
    /// The reference defaults for batches of `batch_size`.
    pub fn new(batch_size: usize) -> Self {
        BatchSamplerConfig {
            batch_size,
            candidates: 1000,
            neighbours: 100,
            restart: 0.2,
            restart_decay: 0.02,
            restart_min: 0.05,
            rebuild_every: 100,
            warmup_epochs: 1,
            coverage: Coverage::ExactlyOnce,
            search: NeighbourSearch::Auto,
            seed: 0,
        }
    }

    /// Checks the settings against a dataset of `n` instances.
    ///
    /// # Errors
    /// `InvalidConfig` naming the field.
    pub fn validate(&self, n: usize) -> Result<(), Error> {
        if self.batch_size < 2 || self.batch_size > n {
            return Err(Error::invalid_config(
                "batch_size",
                self.batch_size,
                format!("must lie between 2 and the {n} instances"),
            ));
        }
        for (name, v) in [
            ("candidates", self.candidates),
            ("neighbours", self.neighbours),
            ("rebuild_every", self.rebuild_every),
        ] {
            if v == 0 {
                return Err(Error::invalid_config(name, 0, "must be at least 1"));
            }
        }
        ensure_in_range("restart", self.restart, 0.0, 1.0)?;
        ensure_in_range("restart_decay", self.restart_decay, 0.0, 1.0)?;
        ensure_in_range("restart_min", self.restart_min, 0.0, 1.0)?;
        Ok(())
    }

    /// Restart probability in `epoch`: `max(p0 - decay * epoch, floor)`.
    pub fn restart_at(&self, epoch: usize) -> f64 {
        (self.restart - self.restart_decay * epoch as f64).max(self.restart_min.min(self.restart))
    }
}

/// Counters for reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WalkStats {
    /// Batches produced by walks.
    pub batches: usize,
    /// Instances added from the uncovered pool because the walk stalled (fewer new nodes
    /// reachable than the batch needs).
    pub top_ups: usize,
    /// Batches that needed a top-up.
    pub stalled_batches: usize,
    /// Graph builds.
    pub graph_builds: usize,
    /// Seconds spent building graphs.
    pub graph_seconds: f64,
    /// Seconds spent walking.
    pub walk_seconds: f64,
}

/// BatchSampler: batches of mutually similar instances, drawn by random walks with restart on a
/// proximity graph of the latest embeddings. Implements [`IndexSampler`], so any training loop
/// of the workspace can use it in place of [`ShuffledSampler`].
///
/// The loop feeds it the projections of every trained batch through
/// [`IndexSampler::observe`]; after the warm-up epochs, each epoch starts from a fresh graph,
/// which is rebuilt every `rebuild_every` batches.
///
/// Walk step: with probability `p` the walker returns to the batch's start node, then it moves
/// to a uniformly chosen out-neighbour and the node joins the batch if allowed. (The reference
/// code spends a whole step on a restart; with `p = 1` its walk never moves and never ends.)
/// When 20 x batch-size steps in a row add nothing, the batch is topped up from uncovered
/// instances.
#[derive(Debug, Clone)]
pub struct BatchSampler {
    config: BatchSamplerConfig,
    n: usize,
    shuffled: ShuffledSampler,
    dim: usize,
    embeddings: Vec<f32>,
    graph: Option<ProximityGraph>,
    epoch: usize,
    covered: Vec<bool>,
    /// Uncovered nodes (order irrelevant) and each node's position in it.
    pool: Vec<u32>,
    pool_pos: Vec<u32>,
    since_rebuild: usize,
    rng: Pcg64Mcg,
    mark: Vec<u32>,
    stamp: u32,
    stats: WalkStats,
}

const NOT_IN_POOL: u32 = u32::MAX;

impl BatchSampler {
    /// A sampler over `n` instances.
    ///
    /// # Errors
    /// As [`BatchSamplerConfig::validate`].
    pub fn new(config: BatchSamplerConfig, n: usize) -> Result<Self, Error> {
        config.validate(n)?;
        let shuffled = ShuffledSampler::new(n, config.batch_size, true, config.seed)?;
        let mut s = BatchSampler {
            rng: Pcg64Mcg::seed_from_u64(mix_seed(config.seed, 0xb5)),
            config,
            n,
            shuffled,
            dim: 0,
            embeddings: Vec::new(),
            graph: None,
            epoch: 0,
            covered: vec![false; n],
            pool: Vec::new(),
            pool_pos: vec![NOT_IN_POOL; n],
            since_rebuild: 0,
            mark: vec![0; n],
            stamp: 0,
            stats: WalkStats::default(),
        };
        s.begin_epoch(0);
        Ok(s)
    }

    /// The configuration.
    pub fn config(&self) -> &BatchSamplerConfig {
        &self.config
    }

    /// Counters since creation.
    pub fn stats(&self) -> &WalkStats {
        &self.stats
    }

    /// The current graph, if one was built.
    pub fn graph(&self) -> Option<&ProximityGraph> {
        self.graph.as_ref()
    }

    /// Sets every embedding at once (`n` rows of width `dim`), e.g. from a forward pass over the
    /// dataset, and drops the graph so that the next walk epoch rebuilds it.
    ///
    /// # Errors
    /// `ShapeMismatch` when the length is not `n * dim`.
    pub fn set_embeddings(&mut self, embeddings: Vec<f32>, dim: usize) -> Result<(), Error> {
        if dim == 0 || embeddings.len() != self.n * dim {
            return Err(Error::ShapeMismatch {
                op: "BatchSampler::set_embeddings",
                expected: format!("{} rows of width {dim}", self.n),
                found: format!("{} floats", embeddings.len()),
            });
        }
        self.dim = dim;
        self.embeddings = embeddings;
        self.graph = None;
        Ok(())
    }

    /// Starts walk epoch `epoch` on the current graph, without rebuilding it (for benchmarks
    /// that time the walks alone).
    pub fn restart_epoch_without_rebuild(&mut self, epoch: usize) {
        self.epoch = epoch.max(self.config.warmup_epochs);
        self.rng = Pcg64Mcg::seed_from_u64(mix_seed(self.config.seed, epoch as u64 + 1));
        self.covered.fill(false);
        self.pool = (0..self.n as u32).collect();
        self.pool_pos = (0..self.n as u32).collect();
        self.since_rebuild = 0;
    }

    fn walking(&self) -> bool {
        self.epoch >= self.config.warmup_epochs
    }

    fn rebuild(&mut self) {
        if self.dim == 0 {
            return;
        }
        let t = Instant::now();
        let seed = mix_seed(
            self.config.seed,
            (self.stats.graph_builds as u64) << 20 | 0x9a,
        );
        self.graph = ProximityGraph::build(
            &self.embeddings,
            self.dim,
            self.config.candidates,
            self.config.neighbours,
            self.config.search,
            seed,
        )
        .ok();
        self.stats.graph_builds += 1;
        self.stats.graph_seconds += t.elapsed().as_secs_f64();
        self.since_rebuild = 0;
    }

    fn cover(&mut self, node: usize) {
        self.covered[node] = true;
        let p = self.pool_pos[node];
        if p != NOT_IN_POOL {
            let last = *self.pool.last().expect("pool holds node");
            self.pool.swap_remove(p as usize);
            if (p as usize) < self.pool.len() {
                self.pool_pos[last as usize] = p;
            }
            self.pool_pos[node] = NOT_IN_POOL;
        }
    }

    fn walk_batch(&mut self) -> Vec<usize> {
        let t = Instant::now();
        let b = self.config.batch_size;
        let p = self.config.restart_at(self.epoch);
        let exactly_once = self.config.coverage == Coverage::ExactlyOnce;
        let want = if exactly_once {
            b.min(self.pool.len())
        } else {
            b
        };
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.mark.fill(0);
            self.stamp = 1;
        }
        let start = self.pool[self.rng.random_range(0..self.pool.len())] as usize;
        let mut batch = vec![start];
        self.mark[start] = self.stamp;
        if let Some(g) = &self.graph {
            let mut cur = start;
            let mut idle = 0usize;
            while batch.len() < want && idle < 20 * b {
                if self.rng.random::<f64>() < p {
                    cur = start;
                }
                let nb = g.neighbours_of(cur);
                cur = nb[self.rng.random_range(0..nb.len())] as usize;
                let allowed = self.mark[cur] != self.stamp && !(exactly_once && self.covered[cur]);
                if allowed {
                    self.mark[cur] = self.stamp;
                    batch.push(cur);
                    idle = 0;
                } else {
                    idle += 1;
                }
            }
        }
        // Top up from the uncovered pool, then (only when that is empty) from anything.
        let before = batch.len();
        // Pool members already in the batch: while fewer than the pool holds, an unmarked
        // pool member exists (the pool does not change until the batch is covered).
        let mut pool_in_batch = batch
            .iter()
            .filter(|&&i| self.pool_pos[i] != NOT_IN_POOL)
            .count();
        while batch.len() < want {
            let node = if pool_in_batch < self.pool.len() {
                pool_in_batch += 1;
                loop {
                    let u = self.pool[self.rng.random_range(0..self.pool.len())] as usize;
                    if self.mark[u] != self.stamp {
                        break u;
                    }
                }
            } else {
                loop {
                    let u = self.rng.random_range(0..self.n);
                    if self.mark[u] != self.stamp {
                        break u;
                    }
                }
            };
            self.mark[node] = self.stamp;
            batch.push(node);
        }
        if batch.len() > before {
            self.stats.top_ups += batch.len() - before;
            self.stats.stalled_batches += 1;
        }
        for &i in &batch {
            self.cover(i);
        }
        self.stats.batches += 1;
        self.since_rebuild += 1;
        self.stats.walk_seconds += t.elapsed().as_secs_f64();
        batch
    }
}

/// Serialised sampler state: JSON of the small parts, raw little-endian embeddings and graph.
#[derive(Serialize, Deserialize)]
struct State {
    config: BatchSamplerConfig,
    epoch: usize,
    shuffled: contrast_core::ShuffledSamplerState,
    dim: usize,
    k: usize,
    pool: Vec<u32>,
    since_rebuild: usize,
    rng: Pcg64Mcg,
    stats: WalkStats,
}

impl IndexSampler for BatchSampler {
    fn num_instances(&self) -> usize {
        self.n
    }

    fn batch_size(&self) -> usize {
        self.config.batch_size
    }

    fn batches_per_epoch(&self) -> usize {
        if self.walking() {
            self.n.div_ceil(self.config.batch_size)
        } else {
            self.shuffled.batches_per_epoch()
        }
    }

    fn begin_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
        self.rng = Pcg64Mcg::seed_from_u64(mix_seed(self.config.seed, epoch as u64 + 1));
        if !self.walking() {
            self.shuffled.begin_epoch(epoch);
            return;
        }
        self.restart_epoch_without_rebuild(epoch);
        self.rebuild();
    }

    fn next_batch(&mut self) -> Option<Vec<usize>> {
        if !self.walking() {
            return self.shuffled.next_batch();
        }
        if self.pool.is_empty() {
            return None;
        }
        if self.since_rebuild >= self.config.rebuild_every {
            self.rebuild();
        }
        Some(self.walk_batch())
    }

    fn wants_embeddings(&self) -> bool {
        true
    }

    fn summary(&self) -> String {
        let s = &self.stats;
        format!(
            "{} walk batches, {} graph builds ({:.2} s), walks {:.2} s, {} of them topped up with {} instances",
            s.batches,
            s.graph_builds,
            s.graph_seconds,
            s.walk_seconds,
            s.stalled_batches,
            s.top_ups
        )
    }

    fn observe(&mut self, indices: &[usize], embeddings: &[f32], dim: usize) {
        if dim == 0 || embeddings.len() != indices.len() * dim {
            return;
        }
        if self.dim != dim {
            self.dim = dim;
            self.embeddings = vec![0.0; self.n * dim];
        }
        for (r, &i) in indices.iter().enumerate() {
            if i < self.n {
                self.embeddings[i * dim..(i + 1) * dim]
                    .copy_from_slice(&embeddings[r * dim..(r + 1) * dim]);
            }
        }
    }

    fn state_bytes(&self) -> Vec<u8> {
        let st = State {
            config: self.config.clone(),
            epoch: self.epoch,
            shuffled: self.shuffled.state(),
            dim: self.dim,
            k: self.graph.as_ref().map_or(0, |g| g.k),
            pool: self.pool.clone(),
            since_rebuild: self.since_rebuild,
            rng: self.rng.clone(),
            stats: self.stats.clone(),
        };
        let json = serde_json::to_vec(&st).expect("sampler state serialises");
        let mut out = Vec::new();
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&(self.embeddings.len() as u64).to_le_bytes());
        self.embeddings
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        let g: &[u32] = self.graph.as_ref().map_or(&[], |g| &g.neighbours);
        out.extend_from_slice(&(g.len() as u64).to_le_bytes());
        g.iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        out
    }

    fn load_state_bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let bad = |why: &str| Error::invalid_config("sampler state", bytes.len(), why.to_string());
        let mut pos = 0usize;
        let mut take = |len: usize| -> Result<&[u8], Error> {
            let s = bytes.get(pos..pos + len).ok_or_else(|| bad("truncated"))?;
            pos += len;
            Ok(s)
        };
        let len = u64::from_le_bytes(take(8)?.try_into().expect("8")) as usize;
        let st: State = serde_json::from_slice(take(len)?).map_err(|e| bad(&e.to_string()))?;
        if st.config != self.config {
            return Err(bad("it was saved with other BatchSampler settings"));
        }
        let ne = u64::from_le_bytes(take(8)?.try_into().expect("8")) as usize;
        let emb: Vec<f32> = take(ne.checked_mul(4).ok_or_else(|| bad("size overflow"))?)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
            .collect();
        let ng = u64::from_le_bytes(take(8)?.try_into().expect("8")) as usize;
        let graph: Vec<u32> = take(ng.checked_mul(4).ok_or_else(|| bad("size overflow"))?)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
            .collect();
        if (st.dim > 0 && emb.len() != self.n * st.dim)
            || (st.k > 0 && graph.len() != self.n * st.k)
        {
            return Err(bad("its sizes do not match this dataset"));
        }
        self.epoch = st.epoch;
        self.shuffled.restore(st.shuffled);
        self.dim = st.dim;
        self.embeddings = emb;
        self.graph = (st.k > 0).then_some(ProximityGraph {
            neighbours: graph,
            k: st.k,
        });
        if st.pool.iter().any(|&i| i as usize >= self.n) {
            return Err(bad("it names instances beyond this dataset"));
        }
        let walking = st.epoch >= self.config.warmup_epochs;
        self.covered = vec![walking; self.n];
        self.pool_pos = vec![NOT_IN_POOL; self.n];
        for (p, &i) in st.pool.iter().enumerate() {
            self.covered[i as usize] = false;
            self.pool_pos[i as usize] = p as u32;
        }
        self.pool = st.pool;
        self.since_rebuild = st.since_rebuild;
        self.rng = st.rng;
        self.stats = st.stats;
        Ok(())
    }
}
