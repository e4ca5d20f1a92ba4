use core::ops::Range;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::{InstanceBatch, index_tensor};

/// Tokenised sentences on the host, padded to the longest one: what a text data crate builds on
/// its prefetch thread and [`TokenBatch::from_host`] moves to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTokens {
    /// Token ids, row-major `[batch, seq_len]`; `pad_id` after each sentence's last token.
    pub ids: Vec<u32>,
    /// Token type (segment) ids, row-major `[batch, seq_len]`.
    pub type_ids: Vec<u32>,
    /// 1 for a real token, 0 for padding, row-major `[batch, seq_len]`.
    pub mask: Vec<u8>,
    /// Number of sentences.
    pub batch: usize,
    /// Length of every row (the longest sentence of the batch, after truncation).
    pub seq_len: usize,
    /// The id that pads short rows.
    pub pad_id: u32,
}

impl HostTokens {
    /// Checks that the three arrays are `batch * seq_len` long.
    ///
    /// # Panics
    /// If they are not.
    fn check(&self) {
        let n = self.batch * self.seq_len;
        assert!(
            self.ids.len() == n && self.type_ids.len() == n && self.mask.len() == n,
            "HostTokens: ids/type_ids/mask have {}/{}/{} entries, batch {} x seq_len {} needs {n}",
            self.ids.len(),
            self.type_ids.len(),
            self.mask.len(),
            self.batch,
            self.seq_len
        );
    }
}

/// A batch of tokenised sentences on a device: the input of text encoders (BERT).
///
/// Rows are padded to the longest sentence of the batch ("dynamic padding"); `mask` marks the
/// real tokens. As an [`InstanceBatch`], batches of different lengths join by padding the
/// shorter rows, so SimCLR-style methods can run two views in one pass.
#[derive(Debug, Clone)]
pub struct TokenBatch<B: Backend> {
    /// Token ids `[batch, seq_len]`.
    pub ids: Tensor<B, 2, Int>,
    /// Token type (segment) ids `[batch, seq_len]`.
    pub type_ids: Tensor<B, 2, Int>,
    /// Attention mask `[batch, seq_len]`: 1 for a real token, 0 for padding.
    pub mask: Tensor<B, 2, Int>,
    /// The id that pads short rows (used when batches of different lengths join).
    pub pad_id: u32,
}

impl<B: Backend> TokenBatch<B> {
    /// Moves host tokens to `device`.
    ///
    /// # Panics
    /// If the arrays of `host` do not have `batch * seq_len` entries.
    pub fn from_host(host: &HostTokens, device: &B::Device) -> Self {
        host.check();
        let shape = [host.batch, host.seq_len];
        let int = |v: Vec<i64>| Tensor::<B, 2, Int>::from_data(TensorData::new(v, shape), device);
        Self {
            ids: int(host.ids.iter().map(|&x| i64::from(x)).collect()),
            type_ids: int(host.type_ids.iter().map(|&x| i64::from(x)).collect()),
            mask: int(host.mask.iter().map(|&x| i64::from(x)).collect()),
            pad_id: host.pad_id,
        }
    }

    /// `[batch, seq_len]`.
    pub fn dims(&self) -> [usize; 2] {
        self.ids.dims()
    }

    /// The batch padded on the right to `seq_len` tokens.
    ///
    /// # Panics
    /// If `seq_len` is shorter than the batch's rows.
    pub fn pad_to(self, seq_len: usize) -> Self {
        let [batch, len] = self.dims();
        assert!(
            seq_len >= len,
            "TokenBatch::pad_to: {seq_len} < current length {len}"
        );
        if seq_len == len {
            return self;
        }
        let device = self.ids.device();
        let fill = |t: Tensor<B, 2, Int>, value: i64| {
            let pad = Tensor::<B, 2, Int>::full([batch, seq_len - len], value, &device);
            Tensor::cat(vec![t, pad], 1)
        };
        Self {
            ids: fill(self.ids, i64::from(self.pad_id)),
            type_ids: fill(self.type_ids, 0),
            mask: fill(self.mask, 0),
            pad_id: self.pad_id,
        }
    }
}

/// A sentence is one row `[id, type, mask]` per token, `3 * seq_len` wide. Ragged: each batch
/// pads to its own longest sentence; a row padded with zeros reads as more padding tokens
/// (mask 0), whose ids become `pad_id` again. Ids travel as `f32`, exact below 2^24.
impl<B: Backend> crate::InstanceRows<B> for TokenBatch<B> {
    const AS_ROWS: bool = true;
    const RAGGED: bool = true;

    fn to_rows(&self) -> Option<Tensor<B, 2>> {
        let [batch, len] = self.dims();
        let tokens = Tensor::stack::<3>(
            vec![self.ids.clone(), self.type_ids.clone(), self.mask.clone()],
            2,
        );
        Some(tokens.float().reshape([batch, 3 * len]))
    }

    /// # Panics
    /// If the rows' width is not a multiple of 3.
    fn from_rows(rows: Tensor<B, 2>, like: &Self) -> Option<Self> {
        let [batch, width] = rows.dims();
        assert!(
            width % 3 == 0,
            "TokenBatch::from_rows: rows of {width} values are not [id, type, mask] triples"
        );
        let len = width / 3;
        let tokens = rows.reshape([batch, len, 3]).round().int();
        let part = |k: usize| {
            tokens
                .clone()
                .slice([0..batch, 0..len, k..k + 1])
                .reshape([batch, len])
        };
        let mask = part(2);
        Some(Self {
            ids: part(0).mask_fill(mask.clone().equal_elem(0), i64::from(like.pad_id)),
            type_ids: part(1),
            mask,
            pad_id: like.pad_id,
        })
    }
}

impl<B: Backend> InstanceBatch for TokenBatch<B> {
    fn instances(&self) -> usize {
        self.dims()[0]
    }

    fn slice_instances(&self, range: Range<usize>) -> Self {
        Self {
            ids: self.ids.clone().slice(range.clone()),
            type_ids: self.type_ids.clone().slice(range.clone()),
            mask: self.mask.clone().slice(range),
            pad_id: self.pad_id,
        }
    }

    fn select_instances(&self, order: &[usize]) -> Self {
        let index = index_tensor::<B>(order, &self.ids.device());
        Self {
            ids: self.ids.clone().select(0, index.clone()),
            type_ids: self.type_ids.clone().select(0, index.clone()),
            mask: self.mask.clone().select(0, index),
            pad_id: self.pad_id,
        }
    }

    /// Joins the parts, padding shorter rows to the longest part.
    ///
    /// # Panics
    /// If `parts` is empty.
    fn concat(parts: Vec<Self>) -> Self {
        assert!(!parts.is_empty(), "TokenBatch::concat: no parts");
        let len = parts.iter().map(|p| p.dims()[1]).max().unwrap_or(0);
        let pad_id = parts[0].pad_id;
        let parts: Vec<Self> = parts.into_iter().map(|p| p.pad_to(len)).collect();
        let (mut ids, mut type_ids, mut mask) = (Vec::new(), Vec::new(), Vec::new());
        for p in parts {
            ids.push(p.ids);
            type_ids.push(p.type_ids);
            mask.push(p.mask);
        }
        Self {
            ids: Tensor::cat(ids, 0),
            type_ids: Tensor::cat(type_ids, 0),
            mask: Tensor::cat(mask, 0),
            pad_id,
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn host(rows: &[&[u32]]) -> HostTokens {
        let seq_len = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut h = HostTokens {
            ids: vec![],
            type_ids: vec![],
            mask: vec![],
            batch: rows.len(),
            seq_len,
            pad_id: 0,
        };
        for r in rows {
            for j in 0..seq_len {
                h.ids.push(r.get(j).copied().unwrap_or(0));
                h.type_ids.push(0);
                h.mask.push(u8::from(j < r.len()));
            }
        }
        h
    }

    fn ids(t: &TokenBatch<Flex>) -> Vec<i64> {
        t.ids.clone().into_data().convert::<i64>().to_vec().unwrap()
    }

    #[test]
    fn concat_pads_the_shorter_part_and_select_reorders() {
        let device = Default::default();
        let a = TokenBatch::<Flex>::from_host(&host(&[&[5, 6, 7]]), &device);
        let b = TokenBatch::<Flex>::from_host(&host(&[&[8], &[9, 10]]), &device);
        let joined = TokenBatch::concat(vec![a, b]);
        assert_eq!(joined.dims(), [3, 3]);
        assert_eq!(ids(&joined), vec![5, 6, 7, 8, 0, 0, 9, 10, 0]);
        let mask: Vec<i64> = joined
            .mask
            .clone()
            .into_data()
            .convert::<i64>()
            .to_vec()
            .unwrap();
        assert_eq!(mask, vec![1, 1, 1, 1, 0, 0, 1, 1, 0]);
        assert_eq!(
            ids(&joined.select_instances(&[2, 0])),
            vec![9, 10, 0, 5, 6, 7]
        );
        assert_eq!(ids(&joined.slice_instances(1..2)), vec![8, 0, 0]);
    }

    #[test]
    fn sentences_written_as_rows_and_padded_read_back_with_their_pad_id() {
        use crate::InstanceRows;
        let device = Default::default();
        let mut h = host(&[&[5, 6, 7], &[8]]);
        h.pad_id = 3;
        for id in &mut h.ids[4..] {
            *id = 3;
        }
        h.type_ids[1] = 1;
        let b = TokenBatch::<Flex>::from_host(&h, &device);
        let rows = b.to_rows().unwrap();
        assert_eq!(rows.dims(), [2, 9]);
        // A peer with longer sentences pads every row to its width with zeros.
        let rows = Tensor::cat(vec![rows, Tensor::zeros([2, 6], &device)], 1);
        let back = TokenBatch::from_rows(rows, &b).unwrap();
        assert_eq!(back.dims(), [2, 5]);
        assert_eq!(ids(&back), vec![5, 6, 7, 3, 3, 8, 3, 3, 3, 3]);
        let int = |t: &Tensor<Flex, 2, Int>| -> Vec<i64> {
            t.clone().into_data().convert::<i64>().to_vec().unwrap()
        };
        assert_eq!(int(&back.type_ids), vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(int(&back.mask), vec![1, 1, 1, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(back.pad_id, 3);
    }

    #[test]
    #[should_panic(expected = "needs 4")]
    fn mismatched_host_arrays_panic_with_the_sizes() {
        let mut h = host(&[&[1, 2], &[3, 4]]);
        h.mask.pop();
        let _ = TokenBatch::<Flex>::from_host(&h, &Default::default());
    }
}
