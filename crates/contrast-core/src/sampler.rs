use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Produces the batches of dataset indices of a training epoch.
///
/// The training loop calls [`begin_epoch`](IndexSampler::begin_epoch) and then
/// [`next_batch`](IndexSampler::next_batch) until it returns `None`. A sampler may adapt to what
/// the model learned during the epoch (the BatchSampler reads embeddings), so batches are drawn
/// one at a time rather than as a precomputed list.
pub trait IndexSampler {
    /// Number of instances in the dataset; every index is below it.
    fn num_instances(&self) -> usize;
    /// The number of indices in a full batch.
    fn batch_size(&self) -> usize;
    /// Starts epoch `epoch` (0-based).
    fn begin_epoch(&mut self, epoch: usize);
    /// The next batch of the current epoch, or `None` when the epoch is over.
    fn next_batch(&mut self) -> Option<Vec<usize>>;

    /// Batches the current epoch will have (an estimate for samplers whose epochs vary; the
    /// training loop uses it for the learning-rate schedule and progress).
    fn batches_per_epoch(&self) -> usize {
        self.num_instances() / self.batch_size().max(1)
    }

    /// True when the sampler reads embeddings through [`observe`](IndexSampler::observe), so
    /// the loop knows to pass them.
    fn wants_embeddings(&self) -> bool {
        false
    }

    /// The embeddings (row-major `[indices.len(), dim]`) that the model produced for the batch
    /// `indices` it just trained on.
    fn observe(&mut self, _indices: &[usize], _embeddings: &[f32], _dim: usize) {}

    /// One line of counters for reports (empty for samplers without any).
    fn summary(&self) -> String {
        String::new()
    }

    /// Everything needed to resume the sequence of batches, for checkpoints.
    fn state_bytes(&self) -> Vec<u8> {
        Vec::new()
    }

    /// Restores what [`state_bytes`](IndexSampler::state_bytes) saved.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the bytes do not belong to this sampler.
    fn load_state_bytes(&mut self, _bytes: &[u8]) -> Result<(), Error> {
        Ok(())
    }
}

/// Where a [`ShuffledSampler`] stands, for checkpoints: restoring it resumes the same sequence
/// of batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShuffledSamplerState {
    /// The current epoch.
    pub epoch: usize,
    /// How many batches of the epoch were already handed out.
    pub batches_done: usize,
}

/// The plain sampler: a fresh seeded permutation every epoch, cut into batches.
///
/// Epoch `e`'s permutation depends only on `(seed, e)`, so the state is just a position and a
/// resumed run sees exactly the batches an uninterrupted run would.
#[derive(Debug, Clone)]
pub struct ShuffledSampler {
    num_instances: usize,
    batch_size: usize,
    drop_last: bool,
    seed: u64,
    order: Vec<usize>,
    state: ShuffledSamplerState,
}

impl ShuffledSampler {
    /// A sampler over `num_instances` indices in batches of `batch_size`; with `drop_last` the
    /// final short batch of an epoch is skipped (as contrastive training usually does).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `batch_size` is 0, or larger than the dataset with `drop_last`
    /// (the epoch would be empty).
    pub fn new(
        num_instances: usize,
        batch_size: usize,
        drop_last: bool,
        seed: u64,
    ) -> Result<Self, Error> {
        if batch_size == 0 {
            return Err(Error::invalid_config("batch_size", 0, "must be at least 1"));
        }
        if drop_last && batch_size > num_instances {
            return Err(Error::invalid_config(
                "batch_size",
                batch_size,
                format!("exceeds the {num_instances} instances, so every batch would be dropped"),
            ));
        }
        let mut sampler = ShuffledSampler {
            num_instances,
            batch_size,
            drop_last,
            seed,
            order: Vec::new(),
            state: ShuffledSamplerState {
                epoch: 0,
                batches_done: 0,
            },
        };
        sampler.begin_epoch(0);
        Ok(sampler)
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        if self.drop_last {
            self.num_instances / self.batch_size
        } else {
            self.num_instances.div_ceil(self.batch_size)
        }
    }

    /// The position to save in a checkpoint.
    pub fn state(&self) -> ShuffledSamplerState {
        self.state
    }

    /// Restores a position saved by [`state`](Self::state).
    pub fn restore(&mut self, state: ShuffledSamplerState) {
        self.begin_epoch(state.epoch);
        self.state.batches_done = state.batches_done.min(self.batches_per_epoch());
    }
}

/// Mixes a seed and an epoch into an independent seed (SplitMix64 finaliser).
pub fn mix_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl IndexSampler for ShuffledSampler {
    fn num_instances(&self) -> usize {
        self.num_instances
    }

    fn batches_per_epoch(&self) -> usize {
        ShuffledSampler::batches_per_epoch(self)
    }

    fn state_bytes(&self) -> Vec<u8> {
        let mut out = (self.state.epoch as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&(self.state.batches_done as u64).to_le_bytes());
        out
    }

    fn load_state_bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if bytes.len() != 16 {
            return Err(Error::invalid_config(
                "sampler state",
                bytes.len(),
                "a shuffled sampler's state is 16 bytes",
            ));
        }
        let word =
            |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes")) as usize;
        self.restore(ShuffledSamplerState {
            epoch: word(0),
            batches_done: word(8),
        });
        Ok(())
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    fn begin_epoch(&mut self, epoch: usize) {
        let mut rng = Pcg64Mcg::seed_from_u64(mix_seed(self.seed, epoch as u64));
        self.order = (0..self.num_instances).collect();
        self.order.shuffle(&mut rng);
        self.state = ShuffledSamplerState {
            epoch,
            batches_done: 0,
        };
    }

    fn next_batch(&mut self) -> Option<Vec<usize>> {
        if self.state.batches_done >= self.batches_per_epoch() {
            return None;
        }
        let start = self.state.batches_done * self.batch_size;
        let end = (start + self.batch_size).min(self.num_instances);
        self.state.batches_done += 1;
        Some(self.order[start..end].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn epoch(s: &mut ShuffledSampler, e: usize) -> Vec<Vec<usize>> {
        s.begin_epoch(e);
        std::iter::from_fn(|| s.next_batch()).collect()
    }

    #[test]
    fn rejects_impossible_batch_sizes() {
        assert!(ShuffledSampler::new(10, 0, false, 0).is_err());
        let e = ShuffledSampler::new(10, 11, true, 0).unwrap_err();
        assert!(e.to_string().contains("`batch_size` = 11"), "{e}");
        assert!(ShuffledSampler::new(10, 11, false, 0).is_ok());
    }

    #[test]
    fn epochs_differ_and_repeat_with_the_seed() {
        let mut a = ShuffledSampler::new(100, 10, true, 7).unwrap();
        let mut b = ShuffledSampler::new(100, 10, true, 7).unwrap();
        assert_eq!(epoch(&mut a, 0), epoch(&mut b, 0));
        assert_ne!(epoch(&mut a, 0), epoch(&mut a, 1));
        let mut c = ShuffledSampler::new(100, 10, true, 8).unwrap();
        assert_ne!(epoch(&mut a, 0), epoch(&mut c, 0));
    }

    #[test]
    fn restore_resumes_the_same_batches() {
        let mut a = ShuffledSampler::new(50, 8, false, 3).unwrap();
        a.begin_epoch(2);
        a.next_batch();
        a.next_batch();
        let saved = a.state();
        let rest: Vec<_> = std::iter::from_fn(|| a.next_batch()).collect();
        let mut b = ShuffledSampler::new(50, 8, false, 3).unwrap();
        b.restore(saved);
        let resumed: Vec<_> = std::iter::from_fn(|| b.next_batch()).collect();
        assert_eq!(rest, resumed);
        assert_eq!(rest.len(), 5);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Every index appears exactly once per epoch (or at most once with drop_last), in range.
        #[test]
        fn epoch_is_a_partition(n in 1usize..300, bs in 1usize..64, drop_last: bool, seed: u64) {
            prop_assume!(!drop_last || bs <= n);
            let mut s = ShuffledSampler::new(n, bs, drop_last, seed).unwrap();
            let batches = epoch(&mut s, 0);
            prop_assert_eq!(batches.len(), s.batches_per_epoch());
            let mut seen = vec![0u8; n];
            for b in &batches {
                prop_assert!(b.len() <= bs && !b.is_empty());
                if drop_last { prop_assert_eq!(b.len(), bs); }
                for &i in b { prop_assert!(i < n); seen[i] += 1; }
            }
            prop_assert!(seen.iter().all(|&c| c <= 1));
            if !drop_last { prop_assert!(seen.iter().all(|&c| c == 1)); }
        }
    }
}
