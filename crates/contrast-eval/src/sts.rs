//! Semantic textual similarity: how well the cosine similarity of two sentences' embeddings
//! ranks pairs as human annotators did (SentEval's protocol, as SimCSE reports it).

use contrast_core::Error;

/// Ranks of `values` (1-based), ties sharing the mean of the ranks they span.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end (0-based) hold equal values: ranks start+1..=end, mean below.
        let mean = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = mean;
        }
        start = end;
    }
    ranks
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        cov += (x - ma) * (y - mb);
        va += (x - ma) * (x - ma);
        vb += (y - mb) * (y - mb);
    }
    if va == 0.0 || vb == 0.0 {
        return 0.0;
    }
    cov / (va.sqrt() * vb.sqrt())
}

/// Spearman's rank correlation of `a` and `b` (Pearson's of their tie-averaged ranks, as
/// `scipy.stats.spearmanr`); 0 when either is constant.
///
/// # Errors
/// `ShapeMismatch` when the lengths differ; `InvalidConfig` with fewer than two values or a
/// value that is not finite.
pub fn spearman(a: &[f64], b: &[f64]) -> Result<f64, Error> {
    if a.len() != b.len() {
        return Err(Error::ShapeMismatch {
            op: "spearman",
            expected: format!("{} values", a.len()),
            found: format!("{} values", b.len()),
        });
    }
    if a.len() < 2 {
        return Err(Error::invalid_config(
            "spearman",
            a.len(),
            "needs at least two pairs",
        ));
    }
    if let Some(x) = a.iter().chain(b).find(|x| !x.is_finite()) {
        return Err(Error::invalid_config(
            "spearman",
            x,
            "values must be finite",
        ));
    }
    Ok(pearson(&ranks(a), &ranks(b)))
}

/// Cosine similarity of row `i` of `first` with row `i` of `second` (`[rows, dim]` each).
///
/// # Errors
/// `ShapeMismatch` when the slices do not hold the same number of `dim`-wide rows.
pub fn paired_cosine(first: &[f32], second: &[f32], dim: usize) -> Result<Vec<f64>, Error> {
    if dim == 0 || first.len() != second.len() || !first.len().is_multiple_of(dim) {
        return Err(Error::ShapeMismatch {
            op: "paired_cosine",
            expected: format!("two equal [rows, {dim}] arrays"),
            found: format!("{} and {} values", first.len(), second.len()),
        });
    }
    Ok(first
        .chunks(dim)
        .zip(second.chunks(dim))
        .map(|(x, y)| {
            let (mut dot, mut nx, mut ny) = (0.0f64, 0.0f64, 0.0f64);
            for (&a, &b) in x.iter().zip(y) {
                let (a, b) = (f64::from(a), f64::from(b));
                dot += a * b;
                nx += a * a;
                ny += b * b;
            }
            dot / (nx.sqrt() * ny.sqrt()).max(1e-12)
        })
        .collect())
}

/// STS score: Spearman correlation x 100 of the pairs' cosine similarities with the gold
/// scores. For a task made of several subsets (STS12-16), pass all subsets' pairs at once:
/// that is SentEval's "all" aggregation, which SimCSE reports.
///
/// # Errors
/// As [`paired_cosine`] and [`spearman`] (one gold score per pair).
pub fn sts_spearman(first: &[f32], second: &[f32], dim: usize, gold: &[f64]) -> Result<f64, Error> {
    let predicted = paired_cosine(first, second, dim)?;
    Ok(100.0 * spearman(&predicted, gold)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_scipy_on_ties() {
        // scipy.stats.spearmanr([1, 2, 2, 3, 5], [2, 1, 4, 4, 6]).statistic
        let rho = spearman(&[1.0, 2.0, 2.0, 3.0, 5.0], &[2.0, 1.0, 4.0, 4.0, 6.0]).unwrap();
        assert!((rho - 0.763_157_894_736_842_1).abs() < 1e-12, "{rho}");
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn perfect_ranking_scores_100_and_errors_name_the_problem() {
        let first = [1.0f32, 0.0, 1.0, 0.0, 1.0, 0.0];
        let second = [1.0f32, 0.0, 1.0, 1.0, 0.0, 1.0];
        let score = sts_spearman(&first, &second, 2, &[5.0, 2.5, 0.0]).unwrap();
        assert!((score - 100.0).abs() < 1e-9, "{score}");
        assert!(spearman(&[1.0], &[1.0]).is_err());
        assert!(
            spearman(&[1.0, 2.0], &[1.0])
                .unwrap_err()
                .to_string()
                .contains("spearman")
        );
        assert!(spearman(&[1.0, f64::NAN], &[1.0, 2.0]).is_err());
        assert!(paired_cosine(&first, &second[..4], 2).is_err());
    }

    proptest! {
        #[test]
        fn bounded_and_invariant_to_monotone_maps(v in prop::collection::vec((-1e3f64..1e3, -1e3f64..1e3), 2..40)) {
            let (a, b): (Vec<f64>, Vec<f64>) = v.into_iter().unzip();
            let rho = spearman(&a, &b).unwrap();
            prop_assert!((-1.0 - 1e-9..=1.0 + 1e-9).contains(&rho));
            let cubed: Vec<f64> = a.iter().map(|x| x * x * x + 2.0 * x).collect();
            let rho2 = spearman(&cubed, &b).unwrap();
            prop_assert!((rho - rho2).abs() < 1e-9);
        }
    }
}
