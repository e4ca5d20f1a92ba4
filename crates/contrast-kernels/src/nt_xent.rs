//! A fused CPU kernel for the in-batch softmax losses: value and exact gradient of NT-Xent
//! computed on host memory in row blocks, with one `exp` per logit.
//!
//! Burn's CPU backends evaluate `exp` one scalar at a time and materialise every intermediate
//! `2n x 2n` matrix of the autodiff graph, which made NT-Xent several times slower than
//! PyTorch on the CPU (`docs/performance.md`). This kernel keeps only a `block x 2n` tile at a
//! time, computes the three products with `gemm` (the matrix library Burn's `flex` backend
//! uses) and the softmax with a polynomial `exp` that the compiler vectorises. The caller folds
//! value and gradient back into the autodiff graph with a surrogate (see
//! `contrast_losses::NtXentLoss::forward`).

use rayon::prelude::*;

use crate::matmul::{MatMut, MatRef, Threads, matmul};

/// Rows per tile: large enough for efficient products, small enough to stay in cache.
const BLOCK: usize = 256;

/// `exp(x)` for `x <= 0` (values below -87 flush to 0), relative error below 2e-7.
///
/// Range reduction `x = k ln2 + r`, `|r| <= ln2 / 2`, a degree-7 Taylor polynomial for `e^r`,
/// and `2^k` built in the exponent bits. Branch-free, so loops over it vectorise.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting it rounds to nearest
    let x = x.max(-87.0);
    let k = (x * LOG2E + ROUND) - ROUND;
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let scale = f32::from_bits(((k as i32 + 127) as u32) << 23);
    p * scale
}

/// Largest entry of a row (8 running maxima, so the loop vectorises).
fn row_max(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    tail.iter()
        .chain(acc.iter())
        .fold(f32::NEG_INFINITY, |a, &v| if v > a { v } else { a })
}

/// Replaces each entry `s` by `exp(s - max)` (0 for `-inf`) and returns their sum.
fn exp_shifted(row: &mut [f32], max: f32) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = row.chunks_exact_mut(8);
    for c in &mut chunks {
        for (a, s) in acc.iter_mut().zip(c.iter_mut()) {
            let e = if *s == f32::NEG_INFINITY {
                0.0
            } else {
                exp_nonpositive(*s - max)
            };
            *s = e;
            *a += e;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for s in chunks.into_remainder() {
        let e = if *s == f32::NEG_INFINITY {
            0.0
        } else {
            exp_nonpositive(*s - max)
        };
        *s = e;
        sum += e;
    }
    sum
}

/// Value and gradient of NT-Xent with respect to the stacked, already normalised rows `z`
/// (`m = 2n` rows of width `d`, view 1 above view 2), at inverse temperature `inv_t`:
/// `(mean loss over the m anchors, gradient [m, d] row-major)`.
///
/// ```text
/// l_i = -s_{i,p(i)} + log sum_{j != i, not excluded} exp(s_ij),  s_ij = inv_t <z_i, z_j>,
/// p(i) = (i + n) mod m
/// ```
///
/// `exclude(i, j)` removes column `j` from row `i`'s denominator in addition to `j == i`
/// (known false negatives); it is never asked about the positive. Rows are processed in tiles
/// of 256 in a fixed order, so the result does not depend on the number of threads.
///
/// # Panics
/// If `z.len() != 2 n d`.
pub fn nt_xent_host(
    z: &[f32],
    n: usize,
    d: usize,
    inv_t: f32,
    exclude: Option<&(dyn Fn(usize, usize) -> bool + Sync)>,
) -> (f64, Vec<f32>) {
    let m = 2 * n;
    assert_eq!(
        z.len(),
        m * d,
        "nt_xent_host: z has {} values, expected {m} x {d}",
        z.len()
    );
    let mut grad_rows = vec![0f32; m * d];
    let mut grad_cols = vec![0f32; m * d];
    let mut tile = vec![0f32; BLOCK.min(m) * m];
    let mut total = 0f64;
    for start in (0..m).step_by(BLOCK) {
        let b = BLOCK.min(m - start);
        let tile = &mut tile[..b * m];
        // tile [b, m] = z[start..start+b] [b, d] times z^T [d, m].
        let rows = &z[start * d..(start + b) * d];
        matmul(
            MatMut::row_major(tile, b, m),
            MatRef::row_major(rows, b, d),
            MatRef::row_major(z, m, d).t(),
            false,
            Threads::Pool,
        );
        total += tile
            .par_chunks_mut(m)
            .enumerate()
            .map(|(r, row)| {
                let i = start + r;
                let pos = (i + n) % m;
                row.iter_mut().for_each(|s| *s *= inv_t);
                let s_pos = row[pos];
                row[i] = f32::NEG_INFINITY;
                if let Some(f) = exclude {
                    for (j, s) in row.iter_mut().enumerate() {
                        if j != pos && f(i, j) {
                            *s = f32::NEG_INFINITY;
                        }
                    }
                }
                let max = row_max(row);
                let sum = exp_shifted(row, max);
                let inv = 1.0 / sum;
                row.iter_mut().for_each(|s| *s *= inv);
                (max + sum.ln()) as f64 - s_pos as f64
            })
            .sum::<f64>();
        // grad_rows[start..] [b, d] = P [b, m] z [m, d]; grad_cols [m, d] += P^T [m, b] z[start..] [b, d].
        let p = MatRef::row_major(tile, b, m);
        matmul(
            MatMut::row_major(&mut grad_rows[start * d..(start + b) * d], b, d),
            p,
            MatRef::row_major(z, m, d),
            false,
            Threads::Pool,
        );
        matmul(
            MatMut::row_major(&mut grad_cols, m, d),
            p.t(),
            MatRef::row_major(rows, b, d),
            true,
            Threads::Pool,
        );
    }
    let scale = inv_t / m as f32;
    let grad = (0..m * d)
        .map(|k| {
            let (i, c) = (k / d, k % d);
            let partner = (i + n) % m;
            ((grad_rows[k] + grad_cols[k]) - 2.0 * z[partner * d + c]) * scale
        })
        .collect();
    (total / m as f64, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0f64;
        for k in 0..200_000 {
            let x = -(k as f32) * 4.4e-4; // 0 down to -88
            let want = (x as f64).exp();
            let got = exp_nonpositive(x) as f64;
            if want > 1e-37 {
                worst = worst.max(((got - want) / want).abs());
            }
        }
        assert!(worst < 2e-7, "worst relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1000.0) < 1e-37);
    }

    #[test]
    fn row_helpers() {
        let mut row: Vec<f32> = (0..19).map(|v| -(v as f32) / 4.0).collect();
        row[3] = f32::NEG_INFINITY;
        assert_eq!(row_max(&row), 0.0);
        let want: f32 = row.iter().filter(|v| v.is_finite()).map(|v| v.exp()).sum();
        let got = exp_shifted(&mut row, 0.0);
        assert!((got - want).abs() < 1e-5 * want, "{got} vs {want}");
        assert_eq!(row[3], 0.0);
    }
}
