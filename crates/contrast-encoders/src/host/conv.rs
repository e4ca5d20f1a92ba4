//! 2-D convolution on host memory (NCHW, f32, no groups, no dilation) as im2col + matrix
//! products, forward and backward.
//!
//! Samples are processed in chunks of `nb` (so that one product has about [`TARGET_COLUMNS`]
//! columns: large enough for `gemm` to run near its peak even at 4x4 feature maps), chunks in
//! parallel on rayon's pool. Per chunk:
//!
//! ```text
//! col  [K x nb*P]  = im2col(x[chunk])            K = C_in*kh*kw, P = H_out*W_out
//! y    [C_out x nb*P] = W [C_out x K] col          (forward)
//! dW  += dY [C_out x nb*P] col^T                   (weight gradient, summed over chunks)
//! dcol [K x nb*P]  = W^T dY,  dx[chunk] = col2im(dcol)   (input gradient)
//! ```
//!
//! Burn 0.21's CPU backends compute the weight gradient as a convolution of the transposed
//! input by the transposed output gradient (a kernel as large as the feature map, with the batch
//! as channels) and the input gradient as a transposed convolution; in a SimCLR step on `flex`
//! those two took most of the time. Here all three are one product each per chunk.

use contrast_core::host::{MatMut, MatRef, Threads, matmul};
use rayon::prelude::*;

/// Columns of one product: samples per chunk are chosen to come close to this.
const TARGET_COLUMNS: usize = 2048;

/// Shape of one convolution: input `[batch, in_channels, height, width]`, weight
/// `[out_channels, in_channels, kernel[0], kernel[1]]`, zero padding `pad_begin` before and
/// `pad_end` after each spatial dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad_begin: [usize; 2],
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

    /// Rows of the im2col matrix.
    fn patch(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    /// Output positions per sample and channel.
    fn plane(&self) -> usize {
        let [ho, wo] = self.out();
        ho * wo
    }

    fn in_sample(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    /// Samples per chunk: about TARGET_COLUMNS columns, and at least two chunks per thread
    /// when the batch allows it.
    fn chunk(&self) -> usize {
        let by_columns = (TARGET_COLUMNS / self.plane().max(1)).max(1);
        let threads = rayon::current_num_threads().max(1);
        let by_balance = self.batch.div_ceil(2 * threads).max(1);
        by_columns.min(by_balance).min(self.batch.max(1))
    }

    /// Threads each chunk's products may use: the pool when chunks alone cannot occupy it.
    fn inner_threads(&self) -> Threads {
        if self.batch.div_ceil(self.chunk()) >= rayon::current_num_threads() {
            Threads::One
        } else {
            Threads::Pool
        }
    }

    /// With stride 1 and as many output as input columns (the usual "same" padding), the
    /// output plane of kernel offset `(i, j)` reads the input plane shifted by a constant:
    /// output index `t` reads input index `t + delta`. `span` is the range of `t` whose rows
    /// read inside the input (and whose read stays inside the plane); within it, only the
    /// padding columns must be masked. `None` for other geometries.
    fn plane_shift(&self, i: usize, j: usize) -> Option<PlaneShift> {
        let [ho, wo] = self.out();
        if self.stride != [1, 1] || wo != self.width {
            return None;
        }
        let w = self.width as isize;
        let delta =
            (i as isize - self.pad_begin[0] as isize) * w + j as isize - self.pad_begin[1] as isize;
        let (oh_lo, oh_hi) = self.valid(0, i, self.height, ho);
        let lo = ((oh_lo * wo) as isize).max(-delta).max(0) as usize;
        let hi = ((oh_hi * wo) as isize)
            .min((self.height * self.width) as isize - delta)
            .max(lo as isize) as usize;
        Some(PlaneShift {
            delta,
            span: (lo, hi),
        })
    }

    /// Output positions `o` of one kernel offset `k` (along a dimension of input length `len`)
    /// that read inside the input: `0 <= o*stride + k - pad < len`.
    fn valid(&self, dim: usize, k: usize, len: usize, out: usize) -> (usize, usize) {
        let (s, p) = (self.stride[dim] as isize, self.pad_begin[dim] as isize);
        let k = k as isize;
        // First o with o*s >= p - k, first o with o*s >= len + p - k.
        let ceil_div = |a: isize| if a <= 0 { 0 } else { (a + s - 1) / s };
        let lo = ceil_div(p - k).min(out as isize) as usize;
        let hi = ceil_div(len as isize + p - k).min(out as isize) as usize;
        (lo, hi.max(lo))
    }
}

/// See [`ConvGeometry::plane_shift`].
struct PlaneShift {
    delta: isize,
    span: (usize, usize),
}

/// Kernel offset `(i, j)` as im2col and col2im walk it: the output rows and columns that read
/// inside the input, and the whole-plane shift when one applies.
struct Offset {
    i: usize,
    j: usize,
    rows: (usize, usize),
    cols: (usize, usize),
    shift: Option<PlaneShift>,
}

impl Offset {
    /// Input row read by output row `oh` (one of `rows`).
    fn input_row(&self, g: &ConvGeometry, oh: usize) -> usize {
        oh * g.stride[0] + self.i - g.pad_begin[0]
    }

    /// Input column read by the first of `cols`.
    fn first_input_col(&self, g: &ConvGeometry) -> usize {
        self.cols.0 * g.stride[1] + self.j - g.pad_begin[1]
    }

    /// Zeroes the entries of an output plane (rows of `wo`) whose column reads padding, on
    /// the rows that read inside the input.
    fn mask_columns(&self, plane: &mut [f32], wo: usize) {
        for oh in self.rows.0..self.rows.1 {
            plane[oh * wo..oh * wo + self.cols.0].fill(0.0);
            plane[oh * wo + self.cols.1..(oh + 1) * wo].fill(0.0);
        }
    }
}

/// Calls `f(c, offset, b, plane)` for every row `(c, i, j)` of the im2col matrix `col` of `nb`
/// samples and every sample `b`, `plane` being that row's `ho * wo` entries of sample `b`.
fn for_each_plane(
    g: &ConvGeometry,
    nb: usize,
    col: &mut [f32],
    mut f: impl FnMut(usize, &Offset, usize, &mut [f32]),
) {
    let [ho, wo] = g.out();
    let [kh, kw] = g.kernel;
    let plane = ho * wo;
    let offsets: Vec<Offset> = (0..kh)
        .flat_map(|i| (0..kw).map(move |j| (i, j)))
        .map(|(i, j)| Offset {
            i,
            j,
            rows: g.valid(0, i, g.height, ho),
            cols: g.valid(1, j, g.width, wo),
            shift: g.plane_shift(i, j),
        })
        .collect();
    let rows = col.chunks_exact_mut(nb * plane);
    for (r, row) in rows.enumerate().take(g.patch()) {
        let (c, offset) = (r / offsets.len(), &offsets[r % offsets.len()]);
        for (b, samples) in row.chunks_exact_mut(plane).enumerate() {
            f(c, offset, b, samples);
        }
    }
}

/// Writes the im2col matrix of `nb` samples (`x` holds exactly those) into `col`
/// (`patch x nb*plane`, row `(c, i, j)`, column `(sample, oh, ow)`).
fn im2col(g: &ConvGeometry, x: &[f32], nb: usize, col: &mut [f32]) {
    let [_, wo] = g.out();
    let (h, w) = (g.height, g.width);
    for_each_plane(g, nb, col, |c, o, b, dst| {
        let src = &x[(b * g.in_channels + c) * h * w..][..h * w];
        if let Some(shift) = &o.shift {
            let (lo, hi) = shift.span;
            dst[..lo].fill(0.0);
            dst[hi..].fill(0.0);
            let from = (lo as isize + shift.delta) as usize;
            dst[lo..hi].copy_from_slice(&src[from..from + hi - lo]);
            o.mask_columns(dst, wo);
            return;
        }
        let ((oh_lo, oh_hi), (ow_lo, ow_hi)) = (o.rows, o.cols);
        dst[..oh_lo * wo].fill(0.0);
        dst[oh_hi * wo..].fill(0.0);
        let iw0 = o.first_input_col(g);
        for oh in oh_lo..oh_hi {
            let src_row = &src[o.input_row(g, oh) * w..][..w];
            let out = &mut dst[oh * wo..(oh + 1) * wo];
            out[..ow_lo].fill(0.0);
            out[ow_hi..].fill(0.0);
            if g.stride[1] == 1 {
                out[ow_lo..ow_hi].copy_from_slice(&src_row[iw0..iw0 + ow_hi - ow_lo]);
            } else {
                for (o, v) in out[ow_lo..ow_hi]
                    .iter_mut()
                    .zip(src_row[iw0..].iter().step_by(g.stride[1]))
                {
                    *o = *v;
                }
            }
        }
    });
}

/// Adds the im2col-shaped `col` back onto the `nb` samples of `dx` (the adjoint of [`im2col`]).
/// `col`'s entries that read padding are overwritten with zeros on the way.
fn col2im(g: &ConvGeometry, col: &mut [f32], nb: usize, dx: &mut [f32]) {
    let [_, wo] = g.out();
    let (h, w) = (g.height, g.width);
    for_each_plane(g, nb, col, |c, o, b, src| {
        let dst = &mut dx[(b * g.in_channels + c) * h * w..][..h * w];
        if let Some(shift) = &o.shift {
            o.mask_columns(src, wo);
            let (lo, hi) = shift.span;
            let to = (lo as isize + shift.delta) as usize;
            for (d, v) in dst[to..to + hi - lo].iter_mut().zip(&src[lo..hi]) {
                *d += *v;
            }
            return;
        }
        let ((oh_lo, oh_hi), (ow_lo, ow_hi)) = (o.rows, o.cols);
        let iw0 = o.first_input_col(g);
        for oh in oh_lo..oh_hi {
            let dst_row = &mut dst[o.input_row(g, oh) * w..][..w];
            let grad = &src[oh * wo + ow_lo..oh * wo + ow_hi];
            if g.stride[1] == 1 {
                for (d, v) in dst_row[iw0..iw0 + grad.len()].iter_mut().zip(grad) {
                    *d += *v;
                }
            } else {
                for (d, v) in dst_row[iw0..].iter_mut().step_by(g.stride[1]).zip(grad) {
                    *d += *v;
                }
            }
        }
    });
}

/// `[nb, co, plane]` (NCHW output of a chunk) into `[co, nb*plane]`.
fn to_channel_major(src: &[f32], nb: usize, co: usize, plane: usize, dst: &mut [f32]) {
    let cols = nb * plane;
    for b in 0..nb {
        for o in 0..co {
            dst[o * cols + b * plane..][..plane]
                .copy_from_slice(&src[(b * co + o) * plane..][..plane]);
        }
    }
}

/// `[co, nb*plane]` into `[nb, co, plane]`.
fn to_sample_major(src: &[f32], nb: usize, co: usize, plane: usize, dst: &mut [f32]) {
    let cols = nb * plane;
    for b in 0..nb {
        for o in 0..co {
            dst[(b * co + o) * plane..][..plane]
                .copy_from_slice(&src[o * cols + b * plane..][..plane]);
        }
    }
}

/// The convolution of `x` (`[batch, in, h, w]`) by `weight` (`[out, in, kh, kw]`), without
/// bias: `[batch, out, h_out, w_out]`.
pub(crate) fn forward(g: &ConvGeometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let (k, plane, co) = (g.patch(), g.plane(), g.out_channels);
    assert_eq!(x.len(), g.batch * g.in_sample(), "conv2d: input length");
    assert_eq!(weight.len(), co * k, "conv2d: weight length");
    let mut y = vec![0.0f32; g.batch * co * plane];
    if y.is_empty() {
        return y;
    }
    let nb = g.chunk();
    let threads = g.inner_threads();
    let w = MatRef::row_major(weight, co, k);
    y.par_chunks_mut(nb * co * plane)
        .zip(x.par_chunks(nb * g.in_sample()))
        .for_each(|(y, x)| {
            with_scratch(|bufs| {
                let n = y.len() / (co * plane);
                let cols = n * plane;
                bufs.col.resize(k * cols, 0.0);
                im2col(g, x, n, &mut bufs.col);
                let col = MatRef::row_major(&bufs.col, k, cols);
                if n == 1 {
                    matmul(MatMut::row_major(y, co, cols), w, col, false, threads);
                } else {
                    bufs.dy.resize(co * cols, 0.0);
                    matmul(
                        MatMut::row_major(&mut bufs.dy, co, cols),
                        w,
                        col,
                        false,
                        threads,
                    );
                    to_sample_major(&bufs.dy, n, co, plane, y);
                }
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
    let mut dx = want_dx.then(|| vec![0.0f32; x.len()]);
    if !want_dx && !want_dw {
        return (None, None);
    }
    let nb = g.chunk();
    let threads = g.inner_threads();
    let w = MatRef::row_major(weight, co, k);
    let in_chunk = nb * g.in_sample();

    // One chunk: accumulates into `dw` (co x k) and writes its samples' dx when given.
    let chunk = |dw: &mut Vec<f32>, dy: &[f32], x: &[f32], dx: Option<&mut [f32]>| {
        with_scratch(|bufs| {
            let n = dy.len() / (co * plane);
            let cols = n * plane;
            let dy_cm: &[f32] = if n == 1 {
                dy
            } else {
                bufs.dy.resize(co * cols, 0.0);
                to_channel_major(dy, n, co, plane, &mut bufs.dy);
                &bufs.dy
            };
            let dy_cm = MatRef::row_major(dy_cm, co, cols);
            if want_dw {
                bufs.col.resize(k * cols, 0.0);
                im2col(g, x, n, &mut bufs.col);
                dw.resize(co * k, 0.0);
                matmul(
                    MatMut::row_major(dw, co, k),
                    dy_cm,
                    MatRef::row_major(&bufs.col, k, cols).t(),
                    true,
                    threads,
                );
            }
            if let Some(dx) = dx {
                bufs.col.resize(k * cols, 0.0);
                matmul(
                    MatMut::row_major(&mut bufs.col, k, cols),
                    w.t(),
                    dy_cm,
                    false,
                    threads,
                );
                col2im(g, &mut bufs.col, n, dx);
            }
        })
    };

    let dy_chunks = dy.par_chunks(nb * co * plane).zip(x.par_chunks(in_chunk));
    // One weight-gradient partial per chunk, collected in chunk order and summed in that
    // order: the result does not depend on how rayon scheduled the chunks, so training runs
    // repeat bit for bit.
    let partials: Vec<Vec<f32>> = match dx.as_mut() {
        Some(dx) => dy_chunks
            .zip(dx.par_chunks_mut(in_chunk))
            .map(|((dy, x), dx)| {
                let mut dw = Vec::new();
                chunk(&mut dw, dy, x, Some(dx));
                dw
            })
            .collect(),
        None => dy_chunks
            .map(|(dy, x)| {
                let mut dw = Vec::new();
                chunk(&mut dw, dy, x, None);
                dw
            })
            .collect(),
    };
    let dw = want_dw.then(|| {
        let mut dw = vec![0.0f32; co * k];
        for p in partials.iter().filter(|p| !p.is_empty()) {
            for (a, b) in dw.iter_mut().zip(p) {
                *a += *b;
            }
        }
        dw
    });
    (dx, dw)
}

/// Scratch space of one thread: the im2col matrix and a channel-major copy of an output (or
/// its gradient). Kept between calls, so that the steps of a training run reuse the same
/// memory instead of mapping and faulting in fresh pages for every layer (a few MiB per
/// thread: the largest `patch x chunk columns` matrix seen).
#[derive(Default)]
struct Buffers {
    col: Vec<f32>,
    dy: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Buffers> = std::cell::RefCell::new(Buffers::default());
}

/// Runs `f` with this thread's scratch buffers (fresh ones if a caller up the stack on this
/// thread holds them, as when rayon runs another chunk while this one waits).
fn with_scratch<R>(f: impl FnOnce(&mut Buffers) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut bufs = cell.take();
        let out = f(&mut bufs);
        cell.replace(bufs);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition of the convolution, f64.
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
                                    let xv = x[((b * g.in_channels + c) * g.height + ih as usize)
                                        * g.width
                                        + iw as usize];
                                    let wv = w[((o * g.in_channels + c) * g.kernel[0] + i)
                                        * g.kernel[1]
                                        + j];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        y[((b * g.out_channels + o) * ho + oh) * wo + ow] = s;
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
