//! Host kernels of a post-LN transformer layer (BERT), on row-major host memory (f32):
//!
//! - multi-head self-attention from the projected `q`, `k`, `v` (`[batch * seq, hidden]`),
//!   per (sequence, head): scores `q k^T / sqrt(d) + key_bias`, softmax over keys, dropout,
//!   context `p v`, written straight into `[batch * seq, hidden]` (no head transposes);
//! - dropout, residual addition and layer norm in one pass: `ln(dropout(a) + x)`;
//! - GELU (erf form), element by element, for the dense kernel's activation (`dense.rs`).
//!
//! Each has its backward pass (GELU: its derivative, which the dense kernel's gradient applies).
//! Work is split over rayon's pool in fixed blocks (sequences, rows), and reductions across blocks
//! are summed in block order, so results do not depend on the number of threads. Dropout masks come
//! from a counter-based hash of (seed, element index): the backward pass regenerates them instead
//! of storing them, and they do not depend on thread timing either.

use rayon::prelude::*;

use crate::buffer::zeros;
use crate::matmul::{MatMut, MatRef, Threads, matmul};
use crate::nt_xent::exp_nonpositive;

/// Rows per parallel block of the row-wise kernels.
const BLOCK_ROWS: usize = 32;
/// Elements per parallel block of the element-wise kernels.
const BLOCK: usize = 1 << 14;

/// A dropout mask: element `i` is kept (and scaled by `1 / (1 - p)`) when the hash of
/// `(seed, i)` is at least `p`. `p = 0` keeps everything.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Dropout {
    pub prob: f64,
    pub seed: u64,
}

impl Dropout {
    pub(crate) const NONE: Dropout = Dropout { prob: 0.0, seed: 0 };

    fn active(&self) -> bool {
        self.prob > 0.0
    }

    /// The factor of element `i`: `0` or `1 / (1 - p)`.
    #[inline]
    fn factor(&self, i: usize) -> f32 {
        let mut z = self
            .seed
            .wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let u = (z >> 40) as f64 * (1.0 / (1u64 << 24) as f64);
        if u < self.prob {
            0.0
        } else {
            (1.0 / (1.0 - self.prob)) as f32
        }
    }
}

/// Shape of a multi-head attention: `batch` sequences of `seq` tokens, `heads` heads of
/// `hidden / heads` columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttentionGeometry {
    pub batch: usize,
    pub seq: usize,
    pub hidden: usize,
    pub heads: usize,
}

impl AttentionGeometry {
    fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    fn len(&self) -> usize {
        self.batch * self.seq * self.hidden
    }

    fn check(&self, q: &[f32], k: &[f32], v: &[f32], key_bias: &[f32]) {
        assert!(
            self.heads > 0 && self.hidden.is_multiple_of(self.heads),
            "attention: heads must divide hidden"
        );
        assert!(
            q.len() == self.len() && k.len() == self.len() && v.len() == self.len(),
            "attention: q, k, v must be [batch * seq, hidden]"
        );
        assert_eq!(key_bias.len(), self.batch * self.seq, "attention: key bias");
    }

    /// Head `h` of one sequence's rows (`[seq, hidden]`) as a `seq x d` matrix.
    fn head<'a>(&self, rows: &'a [f32], h: usize) -> MatRef<'a> {
        let d = self.head_dim();
        MatRef::strided(&rows[h * d..], self.seq, d, self.hidden, 1)
    }

    fn head_mut<'a>(&self, rows: &'a mut [f32], h: usize) -> MatMut<'a> {
        let d = self.head_dim();
        MatMut::strided(&mut rows[h * d..], self.seq, d, self.hidden, 1)
    }
}

/// Attention forward: `(context [batch * seq, hidden], probabilities [batch, heads, seq,
/// seq])`, the probabilities before dropout (the backward pass needs them).
pub(crate) fn attention_forward(
    g: &AttentionGeometry,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    key_bias: &[f32],
    dropout: Dropout,
) -> (Vec<f32>, Vec<f32>) {
    g.check(q, k, v, key_bias);
    let (s, hd) = (g.seq, g.hidden);
    let scale = 1.0 / (g.head_dim() as f32).sqrt();
    let mut out = zeros(g.len());
    let mut probs = zeros(g.batch * g.heads * s * s);
    out.par_chunks_mut(s * hd)
        .zip(probs.par_chunks_mut(g.heads * s * s))
        .enumerate()
        .for_each(|(b, (out, probs))| {
            let rows = b * s * hd..(b + 1) * s * hd;
            let (qb, kb, vb) = (&q[rows.clone()], &k[rows.clone()], &v[rows]);
            let bias = &key_bias[b * s..(b + 1) * s];
            let mut dropped = vec![0.0f32; s * s];
            for (h, p) in probs.chunks_exact_mut(s * s).enumerate() {
                matmul(
                    MatMut::row_major(p, s, s),
                    g.head(qb, h),
                    g.head(kb, h).t(),
                    false,
                    Threads::One,
                );
                for row in p.chunks_exact_mut(s) {
                    let mut max = f32::NEG_INFINITY;
                    for (x, bi) in row.iter_mut().zip(bias) {
                        *x = *x * scale + bi;
                        max = max.max(*x);
                    }
                    let mut sum = 0.0f32;
                    for x in row.iter_mut() {
                        *x = (*x - max).exp();
                        sum += *x;
                    }
                    let inv = 1.0 / sum;
                    row.iter_mut().for_each(|x| *x *= inv);
                }
                let pd: &[f32] = if dropout.active() {
                    let base = (b * g.heads + h) * s * s;
                    for (i, (o, x)) in dropped.iter_mut().zip(p.iter()).enumerate() {
                        *o = x * dropout.factor(base + i);
                    }
                    &dropped
                } else {
                    p
                };
                matmul(
                    g.head_mut(out, h),
                    MatRef::row_major(pd, s, s),
                    g.head(vb, h),
                    false,
                    Threads::One,
                );
            }
        });
    (out, probs)
}

/// Gradients of [`attention_forward`] with respect to `q`, `k` and `v`, from the output's
/// gradient `dout` and the saved probabilities.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_backward(
    g: &AttentionGeometry,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    probs: &[f32],
    dout: &[f32],
    dropout: Dropout,
) -> [Vec<f32>; 3] {
    let (s, hd) = (g.seq, g.hidden);
    assert_eq!(dout.len(), g.len(), "attention backward: output gradient");
    assert_eq!(probs.len(), g.batch * g.heads * s * s, "attention backward");
    let scale = 1.0 / (g.head_dim() as f32).sqrt();
    let (mut dq, mut dk, mut dv) = (zeros(g.len()), zeros(g.len()), zeros(g.len()));
    dq.par_chunks_mut(s * hd)
        .zip(dk.par_chunks_mut(s * hd))
        .zip(dv.par_chunks_mut(s * hd))
        .enumerate()
        .for_each(|(b, ((dq, dk), dv))| {
            let rows = b * s * hd..(b + 1) * s * hd;
            let (qb, kb, vb, db) = (
                &q[rows.clone()],
                &k[rows.clone()],
                &v[rows.clone()],
                &dout[rows],
            );
            let mut pd = vec![0.0f32; s * s];
            let mut dp = vec![0.0f32; s * s];
            let mut mask = vec![1.0f32; s * s];
            for h in 0..g.heads {
                let base = (b * g.heads + h) * s * s;
                let p = &probs[base..base + s * s];
                if dropout.active() {
                    for (i, m) in mask.iter_mut().enumerate() {
                        *m = dropout.factor(base + i);
                    }
                }
                for ((o, x), m) in pd.iter_mut().zip(p).zip(&mask) {
                    *o = x * m;
                }
                // dV = Pd^T dC; dPd = dC V^T.
                matmul(
                    g.head_mut(dv, h),
                    MatRef::row_major(&pd, s, s).t(),
                    g.head(db, h),
                    false,
                    Threads::One,
                );
                matmul(
                    MatMut::row_major(&mut dp, s, s),
                    g.head(db, h),
                    g.head(vb, h).t(),
                    false,
                    Threads::One,
                );
                // dS = P (dP - rowsum(dP P)) / sqrt(d), dP = dPd * mask.
                for ((dr, pr), mr) in dp
                    .chunks_exact_mut(s)
                    .zip(p.chunks_exact(s))
                    .zip(mask.chunks_exact(s))
                {
                    let mut dot = 0.0f32;
                    for ((d, x), m) in dr.iter_mut().zip(pr).zip(mr) {
                        *d *= m;
                        dot += *d * x;
                    }
                    for (d, x) in dr.iter_mut().zip(pr) {
                        *d = x * (*d - dot) * scale;
                    }
                }
                matmul(
                    g.head_mut(dq, h),
                    MatRef::row_major(&dp, s, s),
                    g.head(kb, h),
                    false,
                    Threads::One,
                );
                matmul(
                    g.head_mut(dk, h),
                    MatRef::row_major(&dp, s, s).t(),
                    g.head(qb, h),
                    false,
                    Threads::One,
                );
            }
        });
    [dq, dk, dv]
}

/// `y = ln(dropout(a) + x)` over rows of `width`: `(y, xhat, 1 / std per row)`.
pub(crate) fn add_norm_forward(
    a: &[f32],
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    dropout: Dropout,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let w = gamma.len();
    assert!(
        w > 0 && beta.len() == w && a.len() == x.len() && a.len().is_multiple_of(w),
        "add_norm: shapes"
    );
    let rows = a.len() / w;
    let (mut y, mut xhat, mut rstd) = (zeros(a.len()), zeros(a.len()), zeros(rows));
    let block = BLOCK_ROWS * w;
    y.par_chunks_mut(block)
        .zip(xhat.par_chunks_mut(block))
        .zip(rstd.par_chunks_mut(BLOCK_ROWS))
        .enumerate()
        .for_each(|(bi, ((y, xh), rs))| {
            let at = bi * block;
            for (r, ((yr, xr), rs)) in y
                .chunks_exact_mut(w)
                .zip(xh.chunks_exact_mut(w))
                .zip(rs.iter_mut())
                .enumerate()
            {
                let row = at + r * w;
                let (ar, resr) = (&a[row..row + w], &x[row..row + w]);
                if dropout.active() {
                    for (j, (o, (av, xv))) in xr.iter_mut().zip(ar.iter().zip(resr)).enumerate() {
                        *o = av * dropout.factor(row + j) + xv;
                    }
                } else {
                    for (o, (av, xv)) in xr.iter_mut().zip(ar.iter().zip(resr)) {
                        *o = av + xv;
                    }
                }
                let mean = xr.iter().sum::<f32>() / w as f32;
                let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / w as f32;
                let r = 1.0 / (var + eps as f32).sqrt();
                *rs = r;
                for (((o, xv), gm), bt) in yr.iter_mut().zip(xr.iter_mut()).zip(gamma).zip(beta) {
                    *xv = (*xv - mean) * r;
                    *o = *xv * gm + bt;
                }
            }
        });
    (y, xhat, rstd)
}

/// Gradients of [`add_norm_forward`]: `(da, dx, dgamma, dbeta)`.
pub(crate) fn add_norm_backward(
    dy: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    dropout: Dropout,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let w = gamma.len();
    assert!(
        dy.len() == xhat.len() && dy.len() == rstd.len() * w,
        "add_norm backward"
    );
    let block = BLOCK_ROWS * w;
    let mut dx = zeros(dy.len());
    let partial: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(block)
        .enumerate()
        .map(|(bi, dxb)| {
            let at = bi * block;
            let (mut dg, mut db) = (vec![0.0f32; w], vec![0.0f32; w]);
            for (r, dxr) in dxb.chunks_exact_mut(w).enumerate() {
                let row = at + r * w;
                let (dyr, xr) = (&dy[row..row + w], &xhat[row..row + w]);
                let (mut s1, mut s2) = (0.0f32, 0.0f32);
                for (((d, x), gm), (g_acc, b_acc)) in dyr
                    .iter()
                    .zip(xr)
                    .zip(gamma)
                    .zip(dg.iter_mut().zip(db.iter_mut()))
                {
                    let dxh = d * gm;
                    s1 += dxh;
                    s2 += dxh * x;
                    *g_acc += d * x;
                    *b_acc += d;
                }
                let (m1, m2) = (s1 / w as f32, s2 / w as f32);
                let rs = rstd[at / w + r];
                for (((o, d), x), gm) in dxr.iter_mut().zip(dyr).zip(xr).zip(gamma) {
                    *o = rs * (d * gm - m1 - x * m2);
                }
            }
            (dg, db)
        })
        .collect();
    let (mut dgamma, mut dbeta) = (vec![0.0f32; w], vec![0.0f32; w]);
    for (dg, db) in &partial {
        dgamma.iter_mut().zip(dg).for_each(|(a, b)| *a += b);
        dbeta.iter_mut().zip(db).for_each(|(a, b)| *a += b);
    }
    let da = if dropout.active() {
        let mut da = zeros(dx.len());
        da.par_chunks_mut(BLOCK).enumerate().for_each(|(bi, out)| {
            let at = bi * BLOCK;
            for (i, (o, d)) in out.iter_mut().zip(&dx[at..]).enumerate() {
                *o = d * dropout.factor(at + i);
            }
        });
        da
    } else {
        dx.clone()
    };
    (da, dx, dgamma, dbeta)
}

const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// `erf(x)` as a rational function of `x` on `[-4, 4]` (clamped outside, where it gives
/// `1 - 2^-23` for erf's `1 - 1.5e-8`), with the coefficients XLA and Eigen use for f32: one
/// division and no `exp`, branch-free so that loops over it vectorise, where libm's `erff` is a
/// call per element. Absolute error below 1e-6 against libm.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = (((((-2.726_142_3e-10 * x2 + 2.770_681_4e-8) * x2 - 2.101_024e-6) * x2
        - 5.692_506_4e-5)
        * x2
        - 7.349_906e-4)
        * x2
        - 2.954_600_1e-3)
        * x2
        - 1.609_603_3e-2;
    let q = (((-1.456_607_2e-5 * x2 - 2.133_740_6e-4) * x2 - 1.682_827e-3) * x2 - 7.373_329e-3)
        * x2
        - 1.426_474e-2;
    x * p / q
}

/// The standard normal distribution function `(1 + erf(x / sqrt 2)) / 2`.
#[inline(always)]
fn normal_cdf(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU (erf form): `x / 2 (1 + erf(x / sqrt(2)))`, one element; the dense kernel applies
/// it to a block of its output while the block is in cache (`dense.rs`).
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    x * normal_cdf(x)
}

/// The derivative of [`gelu`] at `x`: `Phi(x) + x phi(x)`.
#[inline(always)]
pub(crate) fn gelu_grad(x: f32) -> f32 {
    normal_cdf(x) + x * FRAC_1_SQRT_2PI * exp_nonpositive(-0.5 * x * x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_erf_matches_libm() {
        let mut worst = (0.0f32, 0.0f32);
        for i in -40_000..=40_000 {
            let x = i as f32 * 1e-4 * 6.0;
            let e = (erf(x) - libm::erff(x)).abs();
            worst.0 = worst.0.max(e);
            let c = (normal_cdf(x) - 0.5 * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2)))
                .abs();
            worst.1 = worst.1.max(c);
        }
        assert!(worst.0 < 1e-6 && worst.1 < 1e-6, "{worst:?}");
        assert_eq!(erf(0.0), 0.0);
        assert!((erf(10.0) - 1.0).abs() < 1e-6 && (erf(-10.0) + 1.0).abs() < 1e-6);
    }

    #[test]
    fn dropout_keeps_about_one_minus_p() {
        let d = Dropout {
            prob: 0.1,
            seed: 42,
        };
        let kept = (0..100_000).filter(|&i| d.factor(i) > 0.0).count();
        assert!((89_000..91_000).contains(&kept), "{kept}");
        assert!((d.factor(3) == 0.0) || (d.factor(3) - 1.0 / 0.9).abs() < 1e-6);
    }
}
