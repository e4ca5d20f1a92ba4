//! Batch normalisation in training mode on host memory (NCHW, f32): batch statistics per
//! channel, the normalised output, and the backward pass.
//!
//! ```text
//! mean_c = avg(x[:, c]),  var_c = avg((x[:, c] - mean_c)^2)  (biased),  s_c = 1/sqrt(var_c + eps)
//! y = gamma_c (x - mean_c) s_c + beta_c
//! dbeta_c = sum(dy[:, c]),  dgamma_c = sum(dy[:, c] xhat[:, c]),  xhat = (x - mean_c) s_c
//! dx = gamma_c s_c (dy - dbeta_c / M - xhat dgamma_c / M),  M = batch * h * w
//! ```
//!
//! Reductions run per channel in parallel (f32 within a plane, f64 across planes); the
//! element-wise passes run per sample in parallel, each sample's `[c, h, w]` block being
//! contiguous.

use rayon::prelude::*;

/// Shape `[batch, channels, plane]` of a batch-norm input (plane = h * w).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NormGeometry {
    pub batch: usize,
    pub channels: usize,
    pub plane: usize,
}

impl NormGeometry {
    fn count(&self) -> f64 {
        (self.batch * self.plane) as f64
    }

    /// `f(sample plane of channel c)` summed over the batch, per channel.
    fn per_channel<const K: usize>(
        &self,
        f: impl Fn(usize, usize) -> [f64; K] + Sync,
    ) -> Vec<[f64; K]> {
        (0..self.channels)
            .into_par_iter()
            .map(|c| {
                let mut acc = [0.0f64; K];
                for n in 0..self.batch {
                    let v = f(c, (n * self.channels + c) * self.plane);
                    for (a, b) in acc.iter_mut().zip(v) {
                        *a += b;
                    }
                }
                acc
            })
            .collect()
    }

    /// `out[i] = a_c * u[i] + b_c * v[i] + d_c` for every element, `coef[c] = (a, b, d)`.
    fn affine2(&self, u: &[f32], v: &[f32], coef: &[(f32, f32, f32)], out: &mut [f32]) {
        let sample = self.channels * self.plane;
        out.par_chunks_mut(sample)
            .zip(u.par_chunks(sample).zip(v.par_chunks(sample)))
            .for_each(|(out, (u, v))| {
                for (c, &(a, b, d)) in coef.iter().enumerate() {
                    let range = c * self.plane..(c + 1) * self.plane;
                    for ((o, &x), &y) in out[range.clone()]
                        .iter_mut()
                        .zip(&u[range.clone()])
                        .zip(&v[range])
                    {
                        *o = a * x + b * y + d;
                    }
                }
            });
    }
}

/// `sum(f(v))` over `xs` in eight independent f32 lanes (so that it vectorises).
fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut chunks = xs.chunks_exact(8);
    for chunk in &mut chunks {
        for (l, v) in lanes.iter_mut().zip(chunk) {
            *l += f(*v);
        }
    }
    chunks.remainder().iter().map(|v| f(*v)).sum::<f32>() + lanes.iter().sum::<f32>()
}

/// `sum(u * f(v))` over paired slices in eight f32 lanes.
fn lane_dot(us: &[f32], vs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (mut cu, mut cv) = (us.chunks_exact(8), vs.chunks_exact(8));
    for (a, b) in (&mut cu).zip(&mut cv) {
        for ((l, u), v) in lanes.iter_mut().zip(a).zip(b) {
            *l += u * f(*v);
        }
    }
    cu.remainder()
        .iter()
        .zip(cv.remainder())
        .map(|(u, v)| u * f(*v))
        .sum::<f32>()
        + lanes.iter().sum::<f32>()
}

/// Forward pass: `(y, mean, biased variance)`.
pub(crate) fn forward(
    g: &NormGeometry,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(
        x.len(),
        g.batch * g.channels * g.plane,
        "batch_norm: input length"
    );
    assert!(
        gamma.len() == g.channels && beta.len() == g.channels,
        "batch_norm: one gamma and beta per channel"
    );
    let m = g.count();
    let mean: Vec<f64> = g
        .per_channel(|_, at| [lane_sum(&x[at..at + g.plane], |v| v) as f64])
        .into_iter()
        .map(|[s]| s / m)
        .collect();
    let var: Vec<f64> = g
        .per_channel(|c, at| {
            let mu = mean[c] as f32;
            [lane_sum(&x[at..at + g.plane], |v| (v - mu) * (v - mu)) as f64]
        })
        .into_iter()
        .map(|[s]| s / m)
        .collect();
    let coef: Vec<(f32, f32, f32)> = (0..g.channels)
        .map(|c| {
            let scale = gamma[c] as f64 / (var[c] + eps).sqrt();
            (scale as f32, 0.0, (beta[c] as f64 - mean[c] * scale) as f32)
        })
        .collect();
    let mut y = vec![0.0f32; x.len()];
    g.affine2(x, x, &coef, &mut y);
    (
        y,
        mean.iter().map(|&v| v as f32).collect(),
        var.iter().map(|&v| v as f32).collect(),
    )
}

/// Backward pass from the forward's statistics: `(dx, dgamma, dbeta)`.
pub(crate) fn backward(
    g: &NormGeometry,
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(
        x.len(),
        dy.len(),
        "batch_norm backward: input and gradient lengths"
    );
    let m = g.count();
    let inv_std: Vec<f64> = var.iter().map(|&v| 1.0 / (v as f64 + eps).sqrt()).collect();
    // sum(dy) and sum(dy * (x - mean)) per channel.
    let sums = g.per_channel(|c, at| {
        let mu = mean[c];
        let (dy, x) = (&dy[at..at + g.plane], &x[at..at + g.plane]);
        [
            lane_sum(dy, |d| d) as f64,
            lane_dot(dy, x, |v| v - mu) as f64,
        ]
    });
    let dbeta: Vec<f32> = sums.iter().map(|s| s[0] as f32).collect();
    let dgamma: Vec<f32> = sums
        .iter()
        .zip(&inv_std)
        .map(|(s, is)| (s[1] * is) as f32)
        .collect();
    // dx = k dy - k s^2 sdyx/M (x - mean) - k sdy/M, k = gamma s.
    let coef: Vec<(f32, f32, f32)> = (0..g.channels)
        .map(|c| {
            let s = inv_std[c];
            let k = gamma[c] as f64 * s;
            let bx = -k * s * s * sums[c][1] / m;
            let d = -k * sums[c][0] / m - bx * mean[c] as f64;
            (k as f32, bx as f32, d as f32)
        })
        .collect();
    let mut dx = vec![0.0f32; x.len()];
    g.affine2(dy, x, &coef, &mut dx);
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 + seed) * 0.7311).sin() * 2.0 + 0.5)
            .collect()
    }

    /// Loss `L = sum(w * y)`: the gradients against finite differences of the f64 definition.
    #[test]
    fn forward_and_gradients_match_the_definition() {
        let g = NormGeometry {
            batch: 3,
            channels: 2,
            plane: 5,
        };
        let len = g.batch * g.channels * g.plane;
        let x = values(len, 0.0);
        let w = values(len, 7.0);
        let gamma = [1.5f32, -0.5];
        let beta = [0.25f32, 1.0];
        let eps = 1e-5;
        let reference = |x: &[f64], gamma: &[f64], beta: &[f64]| -> (Vec<f64>, f64) {
            let mut y = vec![0.0; len];
            for c in 0..g.channels {
                let idx: Vec<usize> = (0..g.batch)
                    .flat_map(|n| (0..g.plane).map(move |p| (n * g.channels + c) * g.plane + p))
                    .collect();
                let mean = idx.iter().map(|&i| x[i]).sum::<f64>() / idx.len() as f64;
                let var =
                    idx.iter().map(|&i| (x[i] - mean).powi(2)).sum::<f64>() / idx.len() as f64;
                for &i in &idx {
                    y[i] = gamma[c] * (x[i] - mean) / (var + eps).sqrt() + beta[c];
                }
            }
            let loss = y.iter().zip(&w).map(|(a, b)| a * *b as f64).sum();
            (y, loss)
        };
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let g64: Vec<f64> = gamma.iter().map(|&v| v as f64).collect();
        let b64: Vec<f64> = beta.iter().map(|&v| v as f64).collect();
        let (y_ref, base) = reference(&x64, &g64, &b64);
        let (y, mean, var) = forward(&g, &x, &gamma, &beta, eps);
        for (a, b) in y.iter().zip(&y_ref) {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
        }
        let (dx, dgamma, dbeta) = backward(&g, &x, &w, &gamma, &mean, &var, eps);
        let h = 1e-6;
        for i in 0..len {
            let mut xp = x64.clone();
            xp[i] += h;
            let want = (reference(&xp, &g64, &b64).1 - base) / h;
            assert!(
                (dx[i] as f64 - want).abs() < 1e-3,
                "dx[{i}]: {} vs {want}",
                dx[i]
            );
        }
        for c in 0..g.channels {
            let mut gp = g64.clone();
            gp[c] += h;
            let want = (reference(&x64, &gp, &b64).1 - base) / h;
            assert!(
                (dgamma[c] as f64 - want).abs() < 1e-3,
                "dgamma[{c}]: {} vs {want}",
                dgamma[c]
            );
            let mut bp = b64.clone();
            bp[c] += h;
            let want = (reference(&x64, &g64, &bp).1 - base) / h;
            assert!(
                (dbeta[c] as f64 - want).abs() < 1e-3,
                "dbeta[{c}]: {} vs {want}",
                dbeta[c]
            );
        }
    }
}
