use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use contrast_core::Error;

/// Reads an `Int` tensor back as `i64`s.
pub(crate) fn to_vec_i64<B: Backend, const D: usize>(x: Tensor<B, D, Int>) -> Vec<i64> {
    x.into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .expect("an int tensor converts to i64")
}

/// Checks that a feature batch has `expected_dim` columns.
pub(crate) fn check_dim(
    op: &'static str,
    dims: [usize; 2],
    expected_dim: usize,
) -> Result<(), Error> {
    if dims[1] != expected_dim {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("[_, {expected_dim}]"),
            found: format!("{dims:?}"),
        });
    }
    Ok(())
}

/// Summary of how old stored entries are, in training steps.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Staleness {
    /// Entries counted (filled rows of a queue; every row of a bank).
    pub count: usize,
    /// Mean age in steps.
    pub mean: f64,
    /// Largest age in steps.
    pub max: u64,
    /// Histogram: `(upper bound of the bin in steps, entries)` with doubling bin widths
    /// `0, 1, 2-3, 4-7, ...`; the last bin holds everything older.
    pub histogram: Vec<(u64, usize)>,
}

impl Staleness {
    /// Summarises ages.
    pub fn from_ages(ages: impl IntoIterator<Item = u64>) -> Self {
        let mut histogram: Vec<(u64, usize)> = Vec::new();
        let (mut count, mut sum, mut max) = (0usize, 0f64, 0u64);
        for age in ages {
            count += 1;
            sum += age as f64;
            max = max.max(age);
            let bin = if age == 0 {
                0
            } else {
                64 - age.leading_zeros() as usize
            };
            if histogram.len() <= bin {
                let start = histogram.len();
                histogram
                    .extend((start..=bin).map(|b| (if b == 0 { 0 } else { (1u64 << b) - 1 }, 0)));
            }
            histogram[bin].1 += 1;
        }
        Staleness {
            count,
            mean: if count == 0 { 0.0 } else { sum / count as f64 },
            max,
            histogram,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_double() {
        let s = Staleness::from_ages([0, 1, 2, 3, 4, 9]);
        assert_eq!(s.count, 6);
        assert_eq!(s.max, 9);
        assert!((s.mean - 19.0 / 6.0).abs() < 1e-12);
        assert_eq!(s.histogram, vec![(0, 1), (1, 1), (3, 2), (7, 1), (15, 1)]);
    }
}
