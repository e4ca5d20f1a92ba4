//! 2-D convolution on host memory in channels-last order (NHWC, f32, no groups, no
//! dilation) as im2col + matrix products, forward and backward.
//!
//! Samples are processed in chunks of `nb` (so that one chunk's im2col matrix takes about
//! [`CHUNK_BYTES`]), chunks in parallel on rayon's pool. With `W'` the weight in patch order
//! `[C_out, kh, kw, C_in]`, per chunk:
//!
//! ```text
//! col  [nb*P x K]     = im2col(x[chunk])        K = kh*kw*C_in, P = H_out*W_out
//! y    [nb*P x C_out] = col W'^T                (forward)
//! dW' += dY^T col                               (weight gradient, one partial per chunk)
//! dcol [nb*P x K]     = dY W',  dx[chunk] = col2im(dcol)   (input gradient)
//! ```
//!
//! Channels last makes a chunk's input, output and output gradient contiguous blocks that the
//! products read and write in place (no transposes), each patch row a few runs of `kw * C_in`
//! consecutive values, and a 1x1 convolution with stride 1 a product with no im2col at all.
//! The products are also the shapes `gemm` runs fastest: the channels-first formulation
//! (`[C_out x K] [K x nb*P]`) has a narrow output that makes `gemm` read the im2col matrix
//! with a stride of a whole row per step (`docs/performance.md` has the throughputs).
//!
//! Burn 0.21's CPU backends compute the weight gradient as a convolution of the transposed
//! input by the transposed output gradient (a kernel as large as the feature map, with the batch
//! as channels) and the input gradient as a transposed convolution, which dominated a SimCLR
//! step on `flex`. Here all three are one product each per chunk.

use rayon::prelude::*;

use crate::buffer::{with_scratch, zeros};
use crate::matmul::{MatMut, MatRef, Threads, matmul};
use crate::winograd;

/// Size of one chunk's im2col matrix that samples per chunk aim at: about a core's L2 cache,
/// so that the product reads back what im2col just wrote from there (faster than larger
/// chunks on wide patches, see `docs/performance.md`); between `MIN_ROWS` and `MAX_ROWS` rows
/// in any case.
const CHUNK_BYTES: usize = 1 << 20;
const MIN_ROWS: usize = 256;
const MAX_ROWS: usize = 2048;

/// Shape of one convolution: input `[batch, height, width, in_channels]` (channels last),
/// weight `[out_channels, in_channels, kernel[0], kernel[1]]` (Burn's order), zero padding
/// `pad_begin` before and `pad_end` after each spatial dimension. No groups, no dilation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Samples in the batch.
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Zero rows above and columns left of the input.
    pub pad_begin: [usize; 2],
    /// Zero rows below and columns right of the input.
    pub pad_end: [usize; 2],
}

impl ConvGeometry {
    /// Output height and width; `None` when the kernel does not fit the padded input or a
    /// stride is zero.
    pub fn output(&self) -> Option<[usize; 2]> {
        let side = |i: usize, len: usize| {
            let padded = len + self.pad_begin[i] + self.pad_end[i];
            (self.stride[i] > 0 && self.kernel[i] > 0 && padded >= self.kernel[i])
                .then(|| (padded - self.kernel[i]) / self.stride[i] + 1)
        };
        Some([side(0, self.height)?, side(1, self.width)?])
    }

    fn out(&self) -> [usize; 2] {
        self.output()
            .expect("convolution geometry checked by the caller")
    }

    /// Columns of the im2col matrix (one patch).
    fn patch(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    /// Output positions per sample.
    fn plane(&self) -> usize {
        let [ho, wo] = self.out();
        ho * wo
    }

    fn in_sample(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    /// A 1x1 convolution with stride 1 and no padding: the input is its own im2col matrix.
    fn pointwise(&self) -> bool {
        self.kernel == [1, 1]
            && self.stride == [1, 1]
            && self.pad_begin == [0, 0]
            && self.pad_end == [0, 0]
    }

    /// Samples per chunk (an im2col matrix of about CHUNK_BYTES) and the threads each
    /// chunk's products may use; see [`split_batch`].
    fn chunk(&self) -> (usize, Threads) {
        let target = (CHUNK_BYTES / (4 * self.patch().max(1))).clamp(MIN_ROWS, MAX_ROWS);
        split_batch(self.batch, target / self.plane().max(1))
    }

    /// Whether this convolution's forward pass and input gradient go to Winograd's F(2x2, 3x3).
    fn winograd(&self) -> bool {
        crate::backend::winograd_enabled() && winograd::applies(self)
    }

    /// Kernel taps `k` (along dimension `dim`, input length `len`) that read inside the input
    /// from output position `o`: `0 <= o*stride + k - pad < len`, as a range.
    fn taps(&self, dim: usize, o: usize, len: usize) -> (usize, usize) {
        let at = o * self.stride[dim];
        let p = self.pad_begin[dim];
        let lo = p.saturating_sub(at).min(self.kernel[dim]);
        let hi = (len + p).saturating_sub(at).min(self.kernel[dim]);
        (lo, hi.max(lo))
    }

    /// The weight `[out, in, kh, kw]` in patch order `[out, kh, kw, in]`.
    fn weight_in_patch_order(&self, weight: &[f32]) -> Vec<f32> {
        self.reorder_weight(weight, true)
    }

    /// Inverse of [`Self::weight_in_patch_order`].
    fn weight_in_burn_order(&self, patch: &[f32]) -> Vec<f32> {
        self.reorder_weight(patch, false)
    }

    /// Moves each output channel's `in x (kh kw)` values to `(kh kw) x in` order, or back.
    fn reorder_weight(&self, values: &[f32], to_patch: bool) -> Vec<f32> {
        let (ci, taps) = (self.in_channels, self.kernel[0] * self.kernel[1]);
        let mut out = vec![0.0f32; values.len()];
        for (dst, src) in out
            .chunks_exact_mut(self.patch())
            .zip(values.chunks_exact(self.patch()))
        {
            for c in 0..ci {
                for t in 0..taps {
                    let (patch, burn) = (t * ci + c, c * taps + t);
                    if to_patch {
                        dst[patch] = src[burn];
                    } else {
                        dst[burn] = src[patch];
                    }
                }
            }
        }
        out
    }
}

/// Samples per chunk of a batch of `batch`, where `fits` samples fill a chunk's scratch
/// space: at most `fits` (at least one), and at least two chunks per thread when the batch
/// allows it; with the threads each chunk's products may use (the pool when the chunks alone
/// cannot occupy it).
pub(crate) fn split_batch(batch: usize, fits: usize) -> (usize, Threads) {
    let threads = rayon::current_num_threads().max(1);
    let by_balance = batch.div_ceil(2 * threads).max(1);
    let nb = fits.max(1).min(by_balance).min(batch.max(1));
    let inner = if batch.div_ceil(nb) >= threads {
        Threads::One
    } else {
        Threads::Pool
    };
    (nb, inner)
}

/// Calls `f(row, kernel row i, taps, input offset)` for every im2col row of `nb` samples and
/// every kernel row `i` that reads inside the input: the row's entries
/// `[(i*kw + taps.0)*C_in, (i*kw + taps.1)*C_in)` pair with the input values from `offset` on
/// (consecutive taps read consecutive pixels, hence one run per kernel row).
fn for_each_run(
    g: &ConvGeometry,
    nb: usize,
    mut f: impl FnMut(usize, usize, (usize, usize), Option<usize>),
) {
    let [ho, wo] = g.out();
    let (h, w, ci) = (g.height, g.width, g.in_channels);
    let col_taps: Vec<(usize, usize)> = (0..wo).map(|ow| g.taps(1, ow, w)).collect();
    let mut row = 0;
    for b in 0..nb {
        for oh in 0..ho {
            let (i_lo, i_hi) = g.taps(0, oh, h);
            for (ow, &taps) in col_taps.iter().enumerate() {
                for i in 0..g.kernel[0] {
                    let offset = (i_lo..i_hi).contains(&i).then(|| {
                        let ih = oh * g.stride[0] + i - g.pad_begin[0];
                        let iw = ow * g.stride[1] + taps.0 - g.pad_begin[1];
                        ((b * h + ih) * w + iw) * ci
                    });
                    f(row, i, taps, offset);
                }
                row += 1;
            }
        }
    }
}

/// Writes the im2col matrix of `nb` samples (`x` holds exactly those) into `col`
/// (`nb*plane x patch`, row `(sample, oh, ow)`, column `(i, j, c)`).
fn im2col(g: &ConvGeometry, x: &[f32], nb: usize, col: &mut [f32]) {
    let (k, run) = (g.patch(), g.kernel[1] * g.in_channels);
    let ci = g.in_channels;
    for_each_run(g, nb, |row, i, (lo, hi), offset| {
        let seg = &mut col[row * k + i * run..][..run];
        match offset {
            Some(at) if hi > lo => {
                seg[..lo * ci].fill(0.0);
                seg[hi * ci..].fill(0.0);
                seg[lo * ci..hi * ci].copy_from_slice(&x[at..at + (hi - lo) * ci]);
            }
            _ => seg.fill(0.0),
        }
    });
}

/// Adds the im2col-shaped `col` back onto the `nb` samples of `dx` (the adjoint of
/// [`im2col`]).
fn col2im(g: &ConvGeometry, col: &[f32], nb: usize, dx: &mut [f32]) {
    let (k, run) = (g.patch(), g.kernel[1] * g.in_channels);
    let ci = g.in_channels;
    for_each_run(g, nb, |row, i, (lo, hi), offset| {
        if let Some(at) = offset {
            let seg = &col[row * k + i * run + lo * ci..][..(hi - lo) * ci];
            for (d, v) in dx[at..at + seg.len()].iter_mut().zip(seg) {
                *d += *v;
            }
        }
    });
}

/// The convolution of `x` (`[batch, h, w, in]`) by `weight` (`[out, in, kh, kw]`), without
/// bias: `[batch, h_out, w_out, out]`.
pub(crate) fn forward(g: &ConvGeometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let (k, plane, co) = (g.patch(), g.plane(), g.out_channels);
    assert_eq!(x.len(), g.batch * g.in_sample(), "conv2d: input length");
    assert_eq!(weight.len(), co * k, "conv2d: weight length");
    if g.winograd() {
        return winograd::forward(g, x, weight);
    }
    let mut y = zeros(g.batch * plane * co);
    if y.is_empty() {
        return y;
    }
    let (nb, threads) = g.chunk();
    let wp = g.weight_in_patch_order(weight);
    let wt = MatRef::row_major(&wp, co, k).t();
    y.par_chunks_mut(nb * plane * co)
        .zip(x.par_chunks(nb * g.in_sample()))
        .for_each(|(y, x)| {
            let rows = y.len() / co;
            let out = MatMut::row_major(y, rows, co);
            if g.pointwise() {
                return matmul(out, MatRef::row_major(x, rows, k), wt, false, threads);
            }
            with_scratch(|col| {
                col.resize(rows * k, 0.0);
                im2col(g, x, rows / plane, col);
                matmul(out, MatRef::row_major(col, rows, k), wt, false, threads);
            })
        });
    y
}

/// Gradients of [`forward`]: `(dx, dweight)`, each only when asked for.
pub(crate) fn backward(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    want_dx: bool,
    want_dw: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let (k, plane, co) = (g.patch(), g.plane(), g.out_channels);
    assert_eq!(
        x.len(),
        g.batch * g.in_sample(),
        "conv2d backward: input length"
    );
    assert_eq!(weight.len(), co * k, "conv2d backward: weight length");
    assert_eq!(
        dy.len(),
        g.batch * co * plane,
        "conv2d backward: output gradient length"
    );
    if !want_dx && !want_dw {
        return (None, None);
    }
    if want_dx && g.winograd() {
        let dx = winograd::input_gradient(g, weight, dy);
        return (Some(dx), backward(g, x, weight, dy, false, want_dw).1);
    }
    let mut dx = want_dx.then(|| zeros(x.len()));
    let (nb, threads) = g.chunk();
    let wp = g.weight_in_patch_order(weight);
    let w = MatRef::row_major(&wp, co, k);
    let in_chunk = nb * g.in_sample();

    // One chunk: its weight-gradient partial (`co x k`, empty when not asked for), and its
    // samples' dx when given.
    let chunk = |dy: &[f32], x: &[f32], dx: Option<&mut [f32]>| -> Vec<f32> {
        let rows = dy.len() / co;
        let dy = MatRef::row_major(dy, rows, co);
        let mut dw = Vec::new();
        with_scratch(|col| {
            if want_dw {
                let patches = if g.pointwise() {
                    x
                } else {
                    col.resize(rows * k, 0.0);
                    im2col(g, x, rows / plane, col);
                    &col[..]
                };
                dw.resize(co * k, 0.0);
                matmul(
                    MatMut::row_major(&mut dw, co, k),
                    dy.t(),
                    MatRef::row_major(patches, rows, k),
                    false,
                    threads,
                );
            }
            match dx {
                Some(dx) if g.pointwise() => {
                    matmul(MatMut::row_major(dx, rows, k), dy, w, false, threads);
                }
                Some(dx) => {
                    col.resize(rows * k, 0.0);
                    matmul(MatMut::row_major(col, rows, k), dy, w, false, threads);
                    col2im(g, col, rows / plane, dx);
                }
                None => {}
            }
        });
        dw
    };

    let dy_chunks = dy.par_chunks(nb * plane * co).zip(x.par_chunks(in_chunk));
    // One weight-gradient partial per chunk, collected in chunk order and summed in that
    // order: the result does not depend on how rayon scheduled the chunks, so training runs
    // repeat bit for bit.
    let partials: Vec<Vec<f32>> = match dx.as_mut() {
        Some(dx) => dy_chunks
            .zip(dx.par_chunks_mut(in_chunk))
            .map(|((dy, x), dx)| chunk(dy, x, Some(dx)))
            .collect(),
        None => dy_chunks.map(|(dy, x)| chunk(dy, x, None)).collect(),
    };
    let dw = want_dw.then(|| {
        // Each entry summed over the partials in chunk order, entries in parallel.
        let mut dw = zeros(co * k);
        const SPAN: usize = 1024;
        dw.par_chunks_mut(SPAN).enumerate().for_each(|(i, out)| {
            for p in &partials {
                for (a, b) in out.iter_mut().zip(&p[i * SPAN..]) {
                    *a += *b;
                }
            }
        });
        g.weight_in_burn_order(&dw)
    });
    (dx, dw)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition of the convolution (channels last), f64.
    fn naive(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f64> {
        let [ho, wo] = g.output().unwrap();
        let mut y = vec![0.0f64; g.batch * g.out_channels * ho * wo];
        for b in 0..g.batch {
            for o in 0..g.out_channels {
                for oh in 0..ho {
                    for ow in 0..wo {
                        let mut s = 0.0f64;
                        for c in 0..g.in_channels {
                            for i in 0..g.kernel[0] {
                                for j in 0..g.kernel[1] {
                                    let ih =
                                        (oh * g.stride[0] + i) as isize - g.pad_begin[0] as isize;
                                    let iw =
                                        (ow * g.stride[1] + j) as isize - g.pad_begin[1] as isize;
                                    if ih < 0
                                        || iw < 0
                                        || ih >= g.height as isize
                                        || iw >= g.width as isize
                                    {
                                        continue;
                                    }
                                    let xv = x[((b * g.height + ih as usize) * g.width
                                        + iw as usize)
                                        * g.in_channels
                                        + c];
                                    let wv = w[((o * g.in_channels + c) * g.kernel[0] + i)
                                        * g.kernel[1]
                                        + j];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        y[((b * ho + oh) * wo + ow) * g.out_channels + o] = s;
                    }
                }
            }
        }
        y
    }

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32 + seed) * 0.7311).sin()).collect()
    }

    fn geometries() -> Vec<ConvGeometry> {
        let g = |batch,
                 in_channels,
                 height,
                 width,
                 out_channels,
                 kernel,
                 stride,
                 pad_begin,
                 pad_end| ConvGeometry {
            batch,
            in_channels,
            height,
            width,
            out_channels,
            kernel,
            stride,
            pad_begin,
            pad_end,
        };
        vec![
            g(3, 2, 7, 6, 4, [3, 3], [1, 1], [1, 1], [1, 1]),
            g(5, 3, 9, 8, 2, [3, 3], [2, 2], [1, 1], [1, 1]),
            g(2, 4, 5, 5, 3, [1, 1], [2, 2], [0, 0], [0, 0]),
            g(1, 1, 6, 7, 2, [3, 2], [2, 1], [0, 1], [2, 0]),
            g(70, 2, 4, 4, 3, [3, 3], [1, 1], [1, 1], [1, 1]),
            g(2, 1, 8, 8, 1, [7, 7], [2, 2], [3, 3], [3, 3]),
            g(2, 3, 6, 5, 2, [3, 3], [1, 1], [0, 1], [2, 1]),
            g(3, 2, 4, 6, 2, [5, 3], [1, 1], [2, 2], [2, 0]),
            g(4, 5, 3, 4, 3, [1, 1], [1, 1], [0, 0], [0, 0]),
        ]
    }

    #[test]
    fn forward_matches_the_definition() {
        for g in geometries() {
            let [ho, wo] = g.output().unwrap();
            let x = values(g.batch * g.in_sample(), 0.0);
            let w = values(g.out_channels * g.patch(), 3.0);
            let y = forward(&g, &x, &w);
            let want = naive(&g, &x, &w);
            assert_eq!(y.len(), g.batch * g.out_channels * ho * wo);
            for (a, b) in y.iter().zip(&want) {
                assert!((*a as f64 - b).abs() < 1e-4, "{g:?}: {a} vs {b}");
            }
        }
    }

    /// The gradients are the adjoints: <dy, conv(x, w)> is linear in x and in w, so
    /// d/dx = backward's dx and d/dw = backward's dw, checked entry by entry against
    /// the definition (sum over output of dy times the coefficient of each x or w).
    #[test]
    fn gradients_match_the_definition() {
        for g in geometries() {
            let x = values(g.batch * g.in_sample(), 1.0);
            let w = values(g.out_channels * g.patch(), 5.0);
            let dy = values(g.batch * g.out_channels * g.plane(), 9.0);
            let (dx, dw) = backward(&g, &x, &w, &dy, true, true);
            let (dx, dw) = (dx.unwrap(), dw.unwrap());
            let dot = |x: &[f32], w: &[f32]| -> f64 {
                naive(&g, x, w)
                    .iter()
                    .zip(&dy)
                    .map(|(a, b)| a * *b as f64)
                    .sum()
            };
            // The objective is linear in each argument, so a unit perturbation gives the exact
            // partial derivative (up to rounding).
            let base = dot(&x, &w);
            for i in (0..x.len()).step_by(7) {
                let mut xp = x.clone();
                xp[i] += 1.0;
                let want = dot(&xp, &w) - base;
                assert!(
                    (dx[i] as f64 - want).abs() < 1e-3,
                    "{g:?} dx[{i}]: {} vs {want}",
                    dx[i]
                );
            }
            for i in 0..w.len() {
                let mut wp = w.clone();
                wp[i] += 1.0;
                let want = dot(&x, &wp) - base;
                assert!(
                    (dw[i] as f64 - want).abs() < 1e-3,
                    "{g:?} dw[{i}]: {} vs {want}",
                    dw[i]
                );
            }
            let (only_dx, none) = backward(&g, &x, &w, &dy, true, false);
            assert!(none.is_none());
            assert_eq!(only_dx.unwrap(), dx);
            let (none, only_dw) = backward(&g, &x, &w, &dy, false, true);
            assert!(none.is_none());
            let only_dw = only_dw.unwrap();
            for (a, b) in only_dw.iter().zip(&dw) {
                assert!((a - b).abs() < 1e-4);
            }
        }
    }

    /// The input gradient by its definition (f64): every output's gradient times the weight
    /// that joined each input to it.
    fn naive_dx(g: &ConvGeometry, w: &[f32], dy: &[f32]) -> Vec<f64> {
        let [ho, wo] = g.output().unwrap();
        let (ci, co) = (g.in_channels, g.out_channels);
        let mut dx = vec![0.0f64; g.batch * g.in_sample()];
        for b in 0..g.batch {
            for oh in 0..ho {
                for ow in 0..wo {
                    for o in 0..co {
                        let d = dy[((b * ho + oh) * wo + ow) * co + o] as f64;
                        for c in 0..ci {
                            for i in 0..g.kernel[0] {
                                for j in 0..g.kernel[1] {
                                    let ih = (oh * g.stride[0] + i).wrapping_sub(g.pad_begin[0]);
                                    let iw = (ow * g.stride[1] + j).wrapping_sub(g.pad_begin[1]);
                                    if ih < g.height && iw < g.width {
                                        let wv =
                                            w[((o * ci + c) * g.kernel[0] + i) * g.kernel[1] + j];
                                        dx[((b * g.height + ih) * g.width + iw) * ci + c] +=
                                            d * wv as f64;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        dx
    }

    /// Winograd's F(2x2, 3x3), forward and input gradient, against the definitions, on the
    /// small ResNet's channel counts and on odd, tiny and one-pixel planes (tiles that overhang
    /// the plane).
    #[test]
    fn winograd_matches_the_definition() {
        let g = |batch, in_channels, height, width, out_channels| ConvGeometry {
            batch,
            in_channels,
            height,
            width,
            out_channels,
            kernel: [3, 3],
            stride: [1, 1],
            pad_begin: [1, 1],
            pad_end: [1, 1],
        };
        for g in [
            g(3, 32, 14, 14, 32),
            g(2, 64, 7, 7, 64),
            g(5, 9, 4, 5, 17),
            g(2, 3, 1, 1, 2),
            g(1, 2, 2, 3, 1),
        ] {
            assert!(winograd::applies(&g));
            let x = values(g.batch * g.in_sample(), 0.5);
            let w = values(g.out_channels * g.patch(), 2.5);
            let dy = values(g.batch * g.out_channels * g.plane(), 7.5);
            let close = |a: &[f32], b: &[f64], what: &str| {
                assert_eq!(a.len(), b.len());
                for (i, (a, b)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (*a as f64 - b).abs() < 1e-6 * (1.0 + b.abs()) * g.patch() as f64,
                        "{g:?} {what}[{i}]: {a} vs {b}"
                    );
                }
            };
            close(&winograd::forward(&g, &x, &w), &naive(&g, &x, &w), "y");
            close(
                &winograd::input_gradient(&g, &w, &dy),
                &naive_dx(&g, &w, &dy),
                "dx",
            );
        }
    }

    /// The same inputs give bit-identical gradients, however rayon schedules the chunks.
    #[test]
    fn backward_repeats_bit_for_bit() {
        let g = geometries()[4];
        let x = values(g.batch * g.in_sample(), 2.0);
        let w = values(g.out_channels * g.patch(), 4.0);
        let dy = values(g.batch * g.out_channels * g.plane(), 6.0);
        let first = backward(&g, &x, &w, &dy, true, true);
        for _ in 0..5 {
            assert_eq!(backward(&g, &x, &w, &dy, true, true), first);
        }
    }

    #[test]
    fn output_size_refuses_kernels_larger_than_the_padded_input() {
        let mut g = geometries()[0];
        assert_eq!(g.output(), Some([7, 6]));
        g.kernel = [10, 3];
        assert_eq!(g.output(), None);
        g.kernel = [3, 3];
        g.stride = [0, 1];
        assert_eq!(g.output(), None);
    }
}
