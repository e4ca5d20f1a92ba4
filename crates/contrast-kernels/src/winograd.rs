//! Winograd's minimal filtering F(2x2, 3x3) for the 3x3 convolutions with stride 1 and one
//! pixel of zero padding (channels last, f32): each 2x2 block of outputs from a 4x4 block of
//! inputs with 16 multiplications per channel pair instead of 36 (Lavin and Gray, "Fast
//! Algorithms for Convolutional Neural Networks", 2016).
//!
//! ```text
//! U[xi] [C_in x C_out] = (G g G^T)[xi]        per channel pair, once per call
//! V[xi] [T x C_in]     = (B^T d B)[xi]        per 4x4 input tile d (tiles overlap by 2)
//! M[xi] [T x C_out]    = V[xi] U[xi]          16 products per chunk of T tiles
//! y (2x2 per tile)     = A^T M A
//! ```
//!
//! The same routine gives the input gradient of such a convolution: it is the convolution of
//! the output gradient by the kernel rotated half a turn, input and output channels swapped
//! (also stride 1, padding 1). The weight gradient stays an im2col product (`conv.rs`).
//!
//! Why: in a SimCLR step of the small ResNet the stride-1 3x3 layers hold about three quarters
//! of the forward multiply-adds. `gemm` runs the 16 products (`[T x C] [C x C_out]`,
//! C = 32-128) about as fast per flop as the im2col product (`[T x 9C] [9C x C_out]`), so with
//! 16 multiplications where im2col has 36 they take well under its time, and the transformed
//! input is 4x the input where im2col's matrix is 9x. The transforms add rounding of a few
//! ulps (the constants are 0, 1/2 and 1). `docs/performance.md` has the measurements.

use rayon::prelude::*;

use crate::buffer::{with_scratch, zeros};
use crate::conv::{ConvGeometry, split_batch};
use crate::matmul::{MatMut, MatRef, matmul};

/// Bytes of one chunk's transformed tiles (input or output side, whichever is wider).
const CHUNK_BYTES: usize = 1 << 20;

/// Whether [`forward`] (and [`input_gradient`]) compute this convolution: 3x3, stride 1, one
/// pixel of padding on every side.
pub(crate) fn applies(g: &ConvGeometry) -> bool {
    g.kernel == [3, 3] && g.stride == [1, 1] && g.pad_begin == [1, 1] && g.pad_end == [1, 1]
}

/// The convolution of `x` (`[batch, h, w, in]`) by `weight` (`[out, in, 3, 3]`):
/// `[batch, h, w, out]`.
pub(crate) fn forward(g: &ConvGeometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let (ci, co) = (g.in_channels, g.out_channels);
    let u = transform_weight(ci, co, |c, o, i, j| weight[((o * ci + c) * 3 + i) * 3 + j]);
    convolve(g.batch, g.height, g.width, ci, co, x, &u)
}

/// The gradient with respect to the input of [`forward`]'s convolution, from the output
/// gradient `dy` (`[batch, h, w, out]`): `[batch, h, w, in]`.
pub(crate) fn input_gradient(g: &ConvGeometry, weight: &[f32], dy: &[f32]) -> Vec<f32> {
    let (ci, co) = (g.in_channels, g.out_channels);
    // dx[p, c] = sum_{o, i, j} dy[p + 1 - (i, j), o] w[o, c, i, j]: a convolution of dy
    // (channels `co`) with kernel w'[c, o, i, j] = w[o, c, 2 - i, 2 - j].
    let u = transform_weight(co, ci, |o, c, i, j| {
        weight[((o * ci + c) * 3 + (2 - i)) * 3 + (2 - j)]
    });
    convolve(g.batch, g.height, g.width, co, ci, dy, &u)
}

/// `U[xi][a][b] = (G k_ab G^T)[xi]` for the 3x3 kernel `k_ab[i][j] = kernel(a, b, i, j)` from
/// input channel `a` to output channel `b`; laid out `[16][cin][cout]`.
fn transform_weight(
    cin: usize,
    cout: usize,
    kernel: impl Fn(usize, usize, usize, usize) -> f32,
) -> Vec<f32> {
    // G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]].
    let g3 = |v: [f32; 3]| {
        [
            v[0],
            0.5 * (v[0] + v[1] + v[2]),
            0.5 * (v[0] - v[1] + v[2]),
            v[2],
        ]
    };
    let mut u = vec![0.0f32; 16 * cin * cout];
    for a in 0..cin {
        for b in 0..cout {
            let k = |i: usize, j: usize| kernel(a, b, i, j);
            // Columns first (G k), then rows ((G k) G^T).
            let cols: [[f32; 4]; 3] = std::array::from_fn(|j| g3([k(0, j), k(1, j), k(2, j)]));
            for r in 0..4 {
                let row = g3([cols[0][r], cols[1][r], cols[2][r]]);
                for (s, v) in row.into_iter().enumerate() {
                    u[((r * 4 + s) * cin + a) * cout + b] = v;
                }
            }
        }
    }
    u
}

/// The padded 3x3 convolution of `x` (`[batch, h, w, cin]`) by the transformed kernel `u`.
fn convolve(
    batch: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    x: &[f32],
    u: &[f32],
) -> Vec<f32> {
    assert_eq!(x.len(), batch * h * w * cin, "winograd: input length");
    assert_eq!(u.len(), 16 * cin * cout, "winograd: kernel length");
    let mut y = zeros(batch * h * w * cout);
    if y.is_empty() {
        return y;
    }
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let per_sample = th * tw;
    let (nb, inner) = split_batch(
        batch,
        CHUNK_BYTES / (64 * cin.max(cout).max(1)) / per_sample,
    );
    let tiles = Tiles { h, w, th, tw };
    y.par_chunks_mut(nb * h * w * cout)
        .zip(x.par_chunks(nb * h * w * cin))
        .for_each(|(y, x)| {
            let samples = x.len() / (h * w * cin);
            let t = samples * per_sample;
            with_scratch(|buf| {
                buf.resize(16 * t * (cin + cout), 0.0);
                let (v, m) = buf.split_at_mut(16 * t * cin);
                tiles.transform_input(x, cin, v);
                // Tile-major `[tiles][16][c]`: each transform reads or writes one block per
                // tile, and product `xi` sees every 16th row of `c` values.
                for xi in 0..16 {
                    let u = &u[xi * cin * cout..][..cin * cout];
                    matmul(
                        MatMut::strided(&mut m[xi * cout..], t, cout, 16 * cout, 1),
                        MatRef::strided(&v[xi * cin..], t, cin, 16 * cin, 1),
                        MatRef::row_major(u, cin, cout),
                        false,
                        inner,
                    );
                }
                tiles.transform_output(m, cout, y);
            })
        });
    y
}

/// The tiling of an `h x w` plane into 2x2 output tiles (`th x tw` of them; the last row or
/// column of tiles overhangs an odd side).
#[derive(Clone, Copy)]
struct Tiles {
    h: usize,
    w: usize,
    th: usize,
    tw: usize,
}

impl Tiles {
    /// `V[xi][t] = (B^T d_t B)[xi]` for every tile `t` of the samples of `x`, with
    /// `B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`; `v` is
    /// `[tiles][16][c]`. Each sample is first copied into a zero-bordered plane, so that every
    /// row of every 4x4 block is one run of `4 c` values.
    fn transform_input(&self, x: &[f32], c: usize, v: &mut [f32]) {
        let (ph, pw) = (2 * self.th + 2, 2 * self.tw + 2);
        let mut padded = vec![0.0f32; ph * pw * c];
        let mut e = vec![0.0f32; 16 * c];
        let run = 4 * c;
        for (b, x) in x.chunks_exact(self.h * self.w * c).enumerate() {
            for (ih, src) in x.chunks_exact(self.w * c).enumerate() {
                padded[((ih + 1) * pw + 1) * c..][..self.w * c].copy_from_slice(src);
            }
            for ty in 0..self.th {
                for tx in 0..self.tw {
                    let row = |r: usize| &padded[((2 * ty + r) * pw + 2 * tx) * c..][..run];
                    let (d0, d1, d2, d3) = (row(0), row(1), row(2), row(3));
                    // B^T d: whole rows of four pixels at once.
                    let (e0, rest) = e.split_at_mut(run);
                    let (e1, rest) = rest.split_at_mut(run);
                    let (e2, e3) = rest.split_at_mut(run);
                    sub(e0, d0, d2);
                    add(e1, d1, d2);
                    sub(e2, d2, d1);
                    sub(e3, d1, d3);
                    // (B^T d) B: the four pixels of each row.
                    let t = (b * self.th + ty) * self.tw + tx;
                    for (r, q) in e.chunks_exact(run).enumerate() {
                        let (q0, q1, q2, q3) =
                            (&q[..c], &q[c..2 * c], &q[2 * c..3 * c], &q[3 * c..]);
                        let put = |s: usize| (t * 16 + r * 4 + s) * c;
                        sub(&mut v[put(0)..][..c], q0, q2);
                        add(&mut v[put(1)..][..c], q1, q2);
                        sub(&mut v[put(2)..][..c], q2, q1);
                        sub(&mut v[put(3)..][..c], q1, q3);
                    }
                }
            }
        }
    }

    /// `y_t = A^T M_t A` for every tile (`m` is `[tiles][16][c]`), with
    /// `A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]`, written into the samples of `y`
    /// (`[samples, h, w, c]`), the overhang dropped.
    fn transform_output(&self, m: &[f32], c: usize, y: &mut [f32]) {
        let mut e = vec![0.0f32; 8 * c];
        for b in 0..y.len() / (self.h * self.w * c) {
            for ty in 0..self.th {
                for tx in 0..self.tw {
                    let t = (b * self.th + ty) * self.tw + tx;
                    let at = |r: usize, s: usize| &m[(t * 16 + r * 4 + s) * c..][..c];
                    // A^T M (rows): e[0][s] = m0 + m1 + m2, e[1][s] = m1 - m2 - m3.
                    for s in 0..4 {
                        let (m0, m1, m2, m3) = (at(0, s), at(1, s), at(2, s), at(3, s));
                        add3(&mut e[s * c..][..c], m0, m1, m2);
                        sub3(&mut e[(4 + s) * c..][..c], m1, m2, m3);
                    }
                    // (A^T M) A (columns), straight into the output pixels inside the plane.
                    for r in 0..2 {
                        let oh = 2 * ty + r;
                        if oh >= self.h {
                            continue;
                        }
                        let q = &e[r * 4 * c..][..4 * c];
                        let (q0, q1, q2, q3) =
                            (&q[..c], &q[c..2 * c], &q[2 * c..3 * c], &q[3 * c..]);
                        let pixel = |ow: usize| ((b * self.h + oh) * self.w + ow) * c;
                        let ow = 2 * tx;
                        add3(&mut y[pixel(ow)..][..c], q0, q1, q2);
                        if ow + 1 < self.w {
                            sub3(&mut y[pixel(ow + 1)..][..c], q1, q2, q3);
                        }
                    }
                }
            }
        }
    }
}

/// `out = a - b`, element by element.
#[inline(always)]
fn sub(out: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, a), b) in out.iter_mut().zip(a).zip(b) {
        *o = a - b;
    }
}

/// `out = a + b`, element by element.
#[inline(always)]
fn add(out: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, a), b) in out.iter_mut().zip(a).zip(b) {
        *o = a + b;
    }
}

/// `out = a + b + c`, element by element.
#[inline(always)]
fn add3(out: &mut [f32], a: &[f32], b: &[f32], c: &[f32]) {
    for (((o, a), b), c) in out.iter_mut().zip(a).zip(b).zip(c) {
        *o = a + b + c;
    }
}

/// `out = a - b - c`, element by element.
#[inline(always)]
fn sub3(out: &mut [f32], a: &[f32], b: &[f32], c: &[f32]) {
    for (((o, a), b), c) in out.iter_mut().zip(a).zip(b).zip(c) {
        *o = a - b - c;
    }
}
