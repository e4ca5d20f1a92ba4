use contrast_core::{NORM_EPS, l2_normalize_row};

/// Share of the pairs of a batch whose two instances have the same label: the false-negative
/// rate of in-batch negatives when labels are the truth. A uniformly random batch over `c`
/// balanced classes gives about `1 / c`.
pub fn same_class_pair_share(batch: &[usize], labels: &[u32]) -> f64 {
    let n = batch.len();
    if n < 2 {
        return 0.0;
    }
    let classes = labels.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut counts = vec![0u64; classes];
    for &i in batch {
        counts[labels[i] as usize] += 1;
    }
    let same: u64 = counts.iter().map(|&c| c * c.saturating_sub(1) / 2).sum();
    same as f64 / (n * (n - 1) / 2) as f64
}

/// Mean cosine similarity over the distinct pairs of a batch's embeddings (row-major, width
/// `dim`): how hard the batch's negatives are.
pub fn mean_pairwise_similarity(embeddings: &[f32], dim: usize) -> f64 {
    let n = embeddings.len().checked_div(dim).unwrap_or(0);
    if n < 2 {
        return 0.0;
    }
    let mut x = embeddings.to_vec();
    x.chunks_mut(dim)
        .for_each(|r| l2_normalize_row(r, NORM_EPS));
    // sum_{i != j} x_i . x_j = |sum_i x_i|^2 - sum_i |x_i|^2
    let mut total = vec![0f64; dim];
    let mut self_dots = 0f64;
    for r in x.chunks(dim) {
        for (t, v) in total.iter_mut().zip(r) {
            *t += *v as f64;
        }
        self_dots += r.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>();
    }
    let sum_sq: f64 = total.iter().map(|t| t * t).sum();
    (sum_sq - self_dots) / (n * (n - 1)) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_share_and_similarity() {
        let labels = [0, 0, 1, 1, 2];
        assert_eq!(same_class_pair_share(&[0, 1, 2, 3], &labels), 2.0 / 6.0);
        assert_eq!(same_class_pair_share(&[0, 2, 4], &labels), 0.0);
        let e = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        // pairs: (0,1) = 1, (0,2) = 0, (1,2) = 0
        assert!((mean_pairwise_similarity(&e, 2) - 1.0 / 3.0).abs() < 1e-9);
    }
}
