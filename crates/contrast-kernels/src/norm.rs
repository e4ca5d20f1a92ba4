//! Batch normalisation in training mode on host memory in channels-last order (`[rows,
//! channels]`, rows = batch * h * w, f32), with the residual addition and ReLU that follow it
//! in a ResNet fused in: batch statistics per channel, the output, and the backward pass.
//!
//! ```text
//! mean_c = avg(x[:, c]),  var_c = avg((x[:, c] - mean_c)^2)  (biased),  s_c = 1/sqrt(var_c + eps)
//! y = relu?(gamma_c (x - mean_c) s_c + beta_c + residual?)
//! dz = dy * [y > 0] (with relu) or dy;  dresidual = dz
//! dbeta_c = sum(dz[:, c]),  dgamma_c = sum(dz[:, c] xhat[:, c]),  xhat = (x - mean_c) s_c
//! dx = gamma_c s_c (dz - dbeta_c / M - xhat dgamma_c / M),  M = rows
//! ```
//!
//! Memory passes: one for the statistics (each block of rows is read twice while it sits in
//! cache: block mean, then squared deviations from it, blocks combined in f64 with Chan's
//! formula) and one for the output; two for the backward pass. Without the fusion the ReLU and
//! the residual addition would add five more passes over the activation, forward and backward,
//! on one thread each (Burn's `flex` runs element-wise operations serially).
//!
//! Blocks have a fixed number of rows and are combined in order, so results do not depend on
//! the number of threads.

use rayon::prelude::*;

use crate::buffer::zeros;

/// Rows per block of the reductions and element-wise passes.
const BLOCK_ROWS: usize = 256;

/// Shape `[rows, channels]` of a batch-norm input in channels-last order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NormGeometry {
    pub rows: usize,
    pub channels: usize,
}

/// What follows the normalisation: `y = relu?(bn(x) + residual?)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Epilogue {
    pub residual: bool,
    pub relu: bool,
}

impl NormGeometry {
    fn len(&self) -> usize {
        self.rows * self.channels
    }

    /// `f(offset, block)` for every block of rows of `data` (`offset` being the block's first
    /// element), in parallel, results in order.
    fn blocks<T: Send>(&self, data: &[f32], f: impl Fn(usize, &[f32]) -> T + Sync) -> Vec<T> {
        let len = BLOCK_ROWS * self.channels.max(1);
        data.par_chunks(len)
            .enumerate()
            .map(|(b, block)| f(b * len, block))
            .collect()
    }
}

/// Adds every row of `block` (rows of `acc.len()` values), mapped by `f(value, column)`, into
/// `acc`.
fn add_rows(acc: &mut [f32], block: &[f32], f: impl Fn(f32, usize) -> f32) {
    for row in block.chunks_exact(acc.len()) {
        for (j, (a, v)) in acc.iter_mut().zip(row).enumerate() {
            *a += f(*v, j);
        }
    }
}

/// The gradient that reaches the normalisation: `dy`, zeroed where the ReLU output `y` (when
/// there is one) is not positive.
fn masked<'a>(dy: &'a [f32], y: Option<&[f32]>) -> std::borrow::Cow<'a, [f32]> {
    match y {
        Some(y) => dy
            .iter()
            .zip(y)
            .map(|(d, y)| if *y > 0.0 { *d } else { 0.0 })
            .collect(),
        None => dy.into(),
    }
}

/// Forward pass: `(y, mean, biased variance)`. `residual` must be given exactly when
/// `epilogue.residual` is set.
pub(crate) fn forward(
    g: &NormGeometry,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    residual: Option<&[f32]>,
    epilogue: Epilogue,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let c = g.channels;
    assert_eq!(x.len(), g.len(), "batch_norm: input length");
    assert!(
        gamma.len() == c && beta.len() == c,
        "batch_norm: one gamma and beta per channel"
    );
    assert_eq!(
        residual.map(<[f32]>::len),
        epilogue.residual.then_some(x.len()),
        "batch_norm: residual length"
    );
    // Per block: rows, mean, sum of squared deviations from that mean.
    let blocks = g.blocks(x, |_, block| {
        let n = block.len() / c;
        let mut mean = vec![0.0f32; c];
        add_rows(&mut mean, block, |v, _| v);
        mean.iter_mut().for_each(|m| *m /= n as f32);
        let mut m2 = vec![0.0f32; c];
        add_rows(&mut m2, block, |v, j| (v - mean[j]) * (v - mean[j]));
        (n as f64, mean, m2)
    });
    let m = g.rows as f64;
    let mut mean = vec![0.0f64; c];
    for (n, bm, _) in &blocks {
        for (a, b) in mean.iter_mut().zip(bm) {
            *a += n * *b as f64 / m;
        }
    }
    let mut var = vec![0.0f64; c];
    for (n, bm, m2) in &blocks {
        for j in 0..c {
            let d = bm[j] as f64 - mean[j];
            var[j] += (m2[j] as f64 + n * d * d) / m;
        }
    }
    let scale: Vec<f32> = (0..c)
        .map(|j| (gamma[j] as f64 / (var[j] + eps).sqrt()) as f32)
        .collect();
    let shift: Vec<f32> = (0..c)
        .map(|j| (beta[j] as f64 - mean[j] * scale[j] as f64) as f32)
        .collect();
    let mut y = zeros(x.len());
    let relu = |v: f32| if epilogue.relu { v.max(0.0) } else { v };
    y.par_chunks_mut(BLOCK_ROWS * c.max(1))
        .enumerate()
        .for_each(|(b, out)| {
            let at = b * BLOCK_ROWS * c;
            let xs = &x[at..at + out.len()];
            for (o, xr) in out.chunks_exact_mut(c).zip(xs.chunks_exact(c)) {
                for (((o, v), a), d) in o.iter_mut().zip(xr).zip(&scale).zip(&shift) {
                    *o = a * v + d;
                }
            }
            if let Some(res) = residual {
                for (o, r) in out.iter_mut().zip(&res[at..]) {
                    *o = relu(*o + r);
                }
            } else if epilogue.relu {
                out.iter_mut().for_each(|o| *o = relu(*o));
            }
        });
    (
        y,
        mean.iter().map(|&v| v as f32).collect(),
        var.iter().map(|&v| v as f32).collect(),
    )
}

/// The gradients of [`forward`].
pub(crate) struct NormGrads {
    pub dx: Vec<f32>,
    pub dgamma: Vec<f32>,
    pub dbeta: Vec<f32>,
    /// The residual's gradient, when the forward pass added one.
    pub dresidual: Option<Vec<f32>>,
}

/// Backward pass from the forward's statistics and, with a ReLU, its output `y` (the mask).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    g: &NormGeometry,
    x: &[f32],
    dy: &[f32],
    y: Option<&[f32]>,
    gamma: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f64,
    epilogue: Epilogue,
) -> NormGrads {
    let c = g.channels;
    assert!(
        x.len() == g.len() && dy.len() == g.len(),
        "batch_norm backward: input and gradient lengths"
    );
    assert_eq!(
        y.map(<[f32]>::len),
        epilogue.relu.then_some(x.len()),
        "batch_norm backward: the output is needed exactly with a ReLU"
    );
    // sum(dz) and sum(dz * (x - mean)) per channel and block.
    let sums = g.blocks(dy, |at, dyb| {
        let dz = masked(dyb, y.map(|y| &y[at..at + dyb.len()]));
        let (mut s, mut sx) = (vec![0.0f32; c], vec![0.0f32; c]);
        for (dzr, xr) in dz.chunks_exact(c).zip(x[at..].chunks_exact(c)) {
            for ((((s, sx), d), v), mu) in s.iter_mut().zip(&mut sx).zip(dzr).zip(xr).zip(mean) {
                *s += d;
                *sx += d * (v - mu);
            }
        }
        (s, sx)
    });
    let (mut sdz, mut sdzx) = (vec![0.0f64; c], vec![0.0f64; c]);
    for (s, sx) in &sums {
        for j in 0..c {
            sdz[j] += s[j] as f64;
            sdzx[j] += sx[j] as f64;
        }
    }
    let m = g.rows as f64;
    let inv_std: Vec<f64> = var.iter().map(|&v| 1.0 / (v as f64 + eps).sqrt()).collect();
    let dbeta: Vec<f32> = sdz.iter().map(|&v| v as f32).collect();
    let dgamma: Vec<f32> = sdzx
        .iter()
        .zip(&inv_std)
        .map(|(s, is)| (s * is) as f32)
        .collect();
    // dx = k dz + bx x + d, with k = gamma s, bx = -k s^2 sum(dz (x - mean)) / M,
    // d = -k sum(dz) / M - bx mean.
    let coef: Vec<(f32, f32, f32)> = (0..c)
        .map(|j| {
            let s = inv_std[j];
            let k = gamma[j] as f64 * s;
            let bx = -k * s * s * sdzx[j] / m;
            let d = -k * sdz[j] / m - bx * mean[j] as f64;
            (k as f32, bx as f32, d as f32)
        })
        .collect();
    let mut dx = zeros(x.len());
    let mut dres = epilogue.residual.then(|| zeros(x.len()));
    let block = BLOCK_ROWS * c.max(1);
    let apply = |b: usize, out: &mut [f32], res: Option<&mut [f32]>| {
        let at = b * block;
        let dz = masked(&dy[at..at + out.len()], y.map(|y| &y[at..at + out.len()]));
        for ((o, dzr), xr) in out
            .chunks_exact_mut(c)
            .zip(dz.chunks_exact(c))
            .zip(x[at..].chunks_exact(c))
        {
            for (((o, d), v), &(k, bx, e)) in o.iter_mut().zip(dzr).zip(xr).zip(&coef) {
                *o = k * d + bx * v + e;
            }
        }
        if let Some(res) = res {
            res.copy_from_slice(&dz);
        }
    };
    match dres.as_mut() {
        Some(dres) => dx
            .par_chunks_mut(block)
            .zip(dres.par_chunks_mut(block))
            .enumerate()
            .for_each(|(b, (out, res))| apply(b, out, Some(res))),
        None => dx
            .par_chunks_mut(block)
            .enumerate()
            .for_each(|(b, out)| apply(b, out, None)),
    }
    NormGrads {
        dx,
        dgamma,
        dbeta,
        dresidual: dres,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 + seed) * 0.7311).sin() * 2.0 + 0.5)
            .collect()
    }

    /// Loss `L = sum(w * y)`: the output against the f64 definition and the gradients against
    /// its finite differences, with and without the residual and the ReLU. Enough rows for
    /// several blocks, the last one partial.
    #[test]
    fn forward_and_gradients_match_the_definition() {
        let g = NormGeometry {
            rows: 2 * BLOCK_ROWS + 37,
            channels: 3,
        };
        let (len, c) = (g.len(), g.channels);
        let x = values(len, 0.0);
        let w = values(len, 7.0);
        let res = values(len, 3.0);
        let gamma = [1.5f32, -0.5, 0.8];
        let beta = [0.25f32, 1.0, -0.3];
        let eps = 1e-5;
        let to64 = |v: &[f32]| v.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        for (residual, relu) in [(false, false), (false, true), (true, false), (true, true)] {
            let e = Epilogue { residual, relu };
            let reference = |x: &[f64], gamma: &[f64], beta: &[f64], r: &[f64]| {
                let mut y = vec![0.0; len];
                for j in 0..c {
                    let col = (0..g.rows).map(|i| x[i * c + j]);
                    let mean = col.clone().sum::<f64>() / g.rows as f64;
                    let var = col.map(|v| (v - mean).powi(2)).sum::<f64>() / g.rows as f64;
                    for i in 0..g.rows {
                        let k = i * c + j;
                        let mut v = gamma[j] * (x[k] - mean) / (var + eps).sqrt() + beta[j];
                        if residual {
                            v += r[k];
                        }
                        y[k] = if relu { v.max(0.0) } else { v };
                    }
                }
                let loss: f64 = y.iter().zip(&w).map(|(a, b)| a * *b as f64).sum();
                (y, loss)
            };
            let (x64, g64, b64, r64) = (to64(&x), to64(&gamma), to64(&beta), to64(&res));
            let (y_ref, base) = reference(&x64, &g64, &b64, &r64);
            let (y, mean, var) =
                forward(&g, &x, &gamma, &beta, eps, residual.then_some(&res[..]), e);
            for (a, b) in y.iter().zip(&y_ref) {
                assert!((*a as f64 - b).abs() < 1e-5, "{e:?}: {a} vs {b}");
            }
            let grads = backward(
                &g,
                &x,
                &w,
                relu.then_some(&y[..]),
                &gamma,
                &mean,
                &var,
                eps,
                e,
            );
            assert_eq!(grads.dresidual.is_some(), residual);
            let h = 1e-6;
            let fd = |i: usize, which: usize| {
                let (mut xp, mut gp, mut bp, mut rp) =
                    (x64.clone(), g64.clone(), b64.clone(), r64.clone());
                [&mut xp, &mut gp, &mut bp, &mut rp][which][i] += h;
                (reference(&xp, &gp, &bp, &rp).1 - base) / h
            };
            for i in (0..len).step_by(13) {
                let want = fd(i, 0);
                assert!(
                    (grads.dx[i] as f64 - want).abs() < 2e-3,
                    "{e:?} dx[{i}]: {} vs {want}",
                    grads.dx[i]
                );
                if let Some(dr) = &grads.dresidual {
                    let want = fd(i, 3);
                    assert!(
                        (dr[i] as f64 - want).abs() < 2e-3,
                        "{e:?} dres[{i}]: {} vs {want}",
                        dr[i]
                    );
                }
            }
            for j in 0..c {
                let want = fd(j, 1);
                assert!(
                    (grads.dgamma[j] as f64 - want).abs() < 5e-2,
                    "{e:?} dgamma[{j}]: {} vs {want}",
                    grads.dgamma[j]
                );
                let want = fd(j, 2);
                assert!(
                    (grads.dbeta[j] as f64 - want).abs() < 5e-2,
                    "{e:?} dbeta[{j}]: {} vs {want}",
                    grads.dbeta[j]
                );
            }
        }
    }
}
