use burn::config::Config;
use burn::module::{Module, Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use contrast_core::{Error, to_vec_f32};
use contrast_kernels::{edit_f32, set_int};

use crate::host::edit_in_host_memory;

use crate::util::{Staleness, check_dim, to_vec_i64};

/// Configuration of a [`KeyQueue`].
#[derive(Config, Debug)]
pub struct KeyQueueConfig {
    /// Capacity `k` (MoCo: 65536 on ImageNet, 4096 on small data).
    pub capacity: usize,
    /// Width of each key.
    pub dim: usize,
}

impl KeyQueueConfig {
    /// Checks the sizes.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero capacity or width.
    pub fn validate(&self) -> Result<(), Error> {
        if self.capacity == 0 {
            return Err(Error::invalid_config("capacity", 0, "must be at least 1"));
        }
        if self.dim == 0 {
            return Err(Error::invalid_config("dim", 0, "must be at least 1"));
        }
        Ok(())
    }

    /// A full queue of random unit keys drawn on the host from `seed`, entered at step 0, as
    /// MoCo's reference code starts (so the first batches already have `capacity` negatives).
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn init_random<B: Backend>(
        &self,
        device: &B::Device,
        seed: u64,
    ) -> Result<KeyQueue<B>, Error> {
        let values = crate::bank::random_unit_rows(self.capacity, self.dim, seed);
        let keys =
            Tensor::<B, 2>::from_data(TensorData::new(values, [self.capacity, self.dim]), device);
        self.init(device)?.enqueue(keys, 0)
    }

    /// An empty queue on `device`.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<KeyQueue<B>, Error> {
        self.validate()?;
        Ok(KeyQueue {
            keys: Param::from_tensor(Tensor::zeros([self.capacity, self.dim], device))
                .set_require_grad(false),
            entered_at: Param::initialized(
                ParamId::new(),
                Tensor::full([self.capacity], -1, device),
            ),
            cursor: Param::initialized(ParamId::new(), Tensor::zeros([2], device)),
        })
    }
}

/// MoCo's FIFO queue of detached keys: a ring buffer `[k, d]` whose oldest entries are
/// replaced by each new batch.
///
/// A batch of any size up to `k` enters whole, also when it does not divide `k` or wraps around
/// the end (lightly's buffer drops the part that would wrap; this one does not). Each slot
/// remembers the step its key entered, for [`staleness`](Self::staleness). The write position
/// and fill level live in a small `Int` parameter, so keys, ages and position are all saved
/// with the model.
///
/// He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020,
/// <https://arxiv.org/abs/1911.05722>.
#[derive(Module, Debug)]
pub struct KeyQueue<B: Backend> {
    /// `[k, d]` stored keys (rows past the fill level are zeros).
    pub keys: Param<Tensor<B, 2>>,
    /// `[k]` step at which each slot's key entered (-1 = never filled).
    pub entered_at: Param<Tensor<B, 1, Int>>,
    /// `[write position, number of filled slots]`.
    pub cursor: Param<Tensor<B, 1, Int>>,
}

impl<B: Backend> KeyQueue<B> {
    /// Capacity `k`.
    pub fn capacity(&self) -> usize {
        self.keys.dims()[0]
    }

    /// Key width `d`.
    pub fn dim(&self) -> usize {
        self.keys.dims()[1]
    }

    /// `(write position, filled slots)`, read from the device.
    pub fn position(&self) -> (usize, usize) {
        let c = to_vec_i64(self.cursor.val());
        (c[0] as usize, c[1] as usize)
    }

    /// Number of keys currently stored.
    pub fn len(&self) -> usize {
        self.position().1
    }

    /// Whether no key was enqueued yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stored keys as negatives, detached: all `k` once full, else the filled prefix.
    ///
    /// # Shapes
    /// - output: `[len, d]`
    pub fn negatives(&self) -> Tensor<B, 2> {
        let len = self.len();
        let keys = self.keys.val().detach();
        if len == self.capacity() {
            keys
        } else {
            keys.slice(0..len)
        }
    }

    /// The stored keys from oldest to newest (for inspection and tests).
    pub fn ordered(&self) -> Tensor<B, 2> {
        let (ptr, len) = self.position();
        let keys = self.keys.val().detach();
        if len < self.capacity() || ptr == 0 {
            keys.slice(0..len)
        } else {
            let k = self.capacity();
            Tensor::cat(vec![keys.clone().slice(ptr..k), keys.slice(0..ptr)], 0)
        }
    }

    /// Enqueues a batch of keys (detached) entered at `step`; the oldest leave first.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] naming both sizes when the batch has more rows than the
    /// capacity or another width.
    pub fn enqueue(self, keys: Tensor<B, 2>, step: u64) -> Result<Self, Error> {
        check_dim("KeyQueue::enqueue", keys.dims(), self.dim())?;
        let [b, _] = keys.dims();
        let k = self.capacity();
        if b > k {
            return Err(Error::ShapeMismatch {
                op: "KeyQueue::enqueue",
                expected: format!("at most {k} keys (the queue's capacity)"),
                found: format!("{b} keys"),
            });
        }
        if b == 0 {
            return Ok(self);
        }
        let device = keys.device();
        let (ptr, len) = self.position();
        let keys = keys.detach();
        let (stored, entered) = if edit_in_host_memory::<B>() {
            let d = self.dim();
            let values = to_vec_f32(keys);
            let slot = |i: usize| (ptr + i) % k;
            let stored = self.keys.map(|t| {
                edit_f32(t, |data| {
                    for (i, row) in values.chunks(d).enumerate() {
                        data[slot(i) * d..(slot(i) + 1) * d].copy_from_slice(row);
                    }
                })
            });
            let entered = self
                .entered_at
                .map(|t| set_int(t, (0..b).map(|i| (slot(i), step as i64))));
            (stored, entered)
        } else {
            // Writes `values` at `ptr`, wrapping to the front; `Param::map` hands over the only
            // reference to the stored tensor, so a backend that can writes in place.
            fn write<B: Backend, const D: usize, K: burn::tensor::BasicOps<B>>(
                stored: Tensor<B, D, K>,
                values: Tensor<B, D, K>,
                ptr: usize,
                first: usize,
            ) -> Tensor<B, D, K> {
                let b = values.dims()[0];
                let stored = stored.slice_assign(ptr..ptr + first, values.clone().slice(0..first));
                if first < b {
                    stored.slice_assign(0..b - first, values.slice(first..b))
                } else {
                    stored
                }
            }
            let first = b.min(k - ptr);
            let stamps = Tensor::<B, 1, Int>::full([b], step as i64, &device);
            (
                self.keys.map(|stored| write(stored, keys, ptr, first)),
                self.entered_at
                    .map(|stored| write(stored, stamps, ptr, first)),
            )
        };
        let cursor = Tensor::<B, 1, Int>::from_data(
            TensorData::new(vec![((ptr + b) % k) as i64, (len + b).min(k) as i64], [2]),
            &device,
        );
        Ok(KeyQueue {
            keys: stored,
            entered_at: entered,
            cursor: self.cursor.map(|_| cursor),
        })
    }

    /// Ages of the stored keys as of `step`.
    pub fn staleness(&self, step: u64) -> Staleness {
        let entered = to_vec_i64(self.entered_at.val());
        Staleness::from_ages(
            entered
                .into_iter()
                .filter(|&e| e >= 0)
                .map(|e| step.saturating_sub(e as u64)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
    use burn::tensor::backend::AutodiffBackend;
    use contrast_core::to_vec_f32;
    use proptest::prelude::*;

    /// `b` keys of width 2 whose first column is the key's global serial number.
    fn batch<B: Backend>(first: usize, b: usize, device: &B::Device) -> Tensor<B, 2> {
        let v: Vec<f32> = (first..first + b)
            .flat_map(|s| [s as f32, -(s as f32)])
            .collect();
        Tensor::from_data(TensorData::new(v, [b, 2]), device)
    }

    fn serials<B: Backend>(keys: Tensor<B, 2>) -> Vec<usize> {
        to_vec_f32(keys).chunks(2).map(|r| r[0] as usize).collect()
    }

    /// Batches of 3 into a queue of 5: the second batch wraps; every key enters, the oldest
    /// leave first, and ages follow the steps.
    fn queue_wraps_around<B: AutodiffBackend>(device: &B::Device) {
        crate::host::on_both_paths(|| queue_wraps_case::<B>(device));
    }

    fn queue_wraps_case<B: AutodiffBackend>(device: &B::Device) {
        let mut q = KeyQueueConfig::new(5, 2).init::<B>(device).unwrap();
        assert!(q.is_empty());
        q = q.enqueue(batch::<B>(0, 3, device), 1).unwrap();
        assert_eq!(serials(q.negatives()), vec![0, 1, 2]);
        q = q.enqueue(batch::<B>(3, 3, device), 2).unwrap();
        assert_eq!(q.position(), (1, 5));
        assert_eq!(serials(q.ordered()), vec![1, 2, 3, 4, 5]);
        assert_eq!(serials(q.negatives()), vec![5, 1, 2, 3, 4]);
        let s = q.staleness(4);
        assert_eq!((s.count, s.max), (5, 3));
        assert!((s.mean - (3.0 * 2.0 + 2.0 * 3.0) / 5.0).abs() < 1e-12);
        // a batch as large as the queue replaces everything
        q = q.enqueue(batch::<B>(6, 5, device), 3).unwrap();
        assert_eq!(serials(q.ordered()), vec![6, 7, 8, 9, 10]);
    }

    fn queue_save_load_roundtrip<B: AutodiffBackend>(device: &B::Device) {
        let cfg = KeyQueueConfig::new(4, 2);
        let q = cfg
            .init::<B>(device)
            .unwrap()
            .enqueue(batch::<B>(0, 3, device), 1)
            .unwrap();
        let q = q.enqueue(batch::<B>(3, 2, device), 2).unwrap();
        let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
        let bytes = recorder.record(q.clone().into_record(), ()).unwrap();
        let loaded = cfg
            .init::<B>(device)
            .unwrap()
            .load_record(recorder.load(bytes, device).unwrap());
        assert_eq!(loaded.position(), q.position());
        assert_eq!(serials(loaded.ordered()), serials(q.ordered()));
        assert_eq!(loaded.staleness(5), q.staleness(5));
        // and it keeps going from where it stood
        let next = loaded.enqueue(batch::<B>(5, 1, device), 3).unwrap();
        assert_eq!(serials(next.ordered()), vec![2, 3, 4, 5]);
    }

    contrast_core::backend_tests!(queue_wraps_around, queue_save_load_roundtrip);

    type F = contrast_core::testing::Flex;

    #[test]
    fn oversized_or_misshaped_batches_name_both_sizes() {
        let device = Default::default();
        let q = KeyQueueConfig::new(4, 2).init::<F>(&device).unwrap();
        let e = q
            .clone()
            .enqueue(Tensor::<F, 2>::zeros([5, 2], &device), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 4 keys") && e.contains("5 keys"), "{e}");
        let e = q
            .enqueue(Tensor::<F, 2>::zeros([1, 3], &device), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[_, 2]") && e.contains("[1, 3]"), "{e}");
        assert!(KeyQueueConfig::new(0, 2).validate().is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Against a VecDeque model: after any sequence of batch sizes, the queue holds the
        /// newest min(total, k) keys in arrival order.
        #[test]
        fn fifo_matches_a_model(
            capacity in 1usize..9,
            sizes in proptest::collection::vec(0usize..9, 1..8),
            tensor_path: bool,
        ) {
            crate::host::FORCE_TENSOR_PATH.with(|f| f.set(tensor_path));
            let device = Default::default();
            let mut q = KeyQueueConfig::new(capacity, 2).init::<F>(&device).unwrap();
            let mut model = std::collections::VecDeque::new();
            let mut next = 0;
            for (step, &b) in sizes.iter().enumerate() {
                let b = b.min(capacity);
                q = q.enqueue(batch::<F>(next, b, &device), step as u64).unwrap();
                for s in next..next + b {
                    model.push_back(s);
                    if model.len() > capacity { model.pop_front(); }
                }
                next += b;
                prop_assert_eq!(serials(q.ordered()), model.iter().copied().collect::<Vec<_>>());
                prop_assert_eq!(q.len(), model.len());
            }
        }
    }
}
