//! Dense layers on host memory: `y = act(x w + b)` for a `[rows, k]` input, a `[k, n]` weight
//! (Burn's `Linear` layout) and `n` biases, with ReLU, GELU or no activation, forward and
//! backward.
//!
//! Burn's CPU backends run such a layer as a product, a broadcast bias addition and an activation,
//! the last two single-threaded passes over the output, and its backward pass as two products, a
//! column sum and the activation's derivative; for the narrow layers of graph encoders (GIN's MLPs:
//! thousands of node rows, 32 columns) those passes and `gemm`'s thread start-up cost more than the
//! products, and for a transformer's feed-forward layer the GELU pass reads and writes its whole
//! output once more. Here the rows are cut into blocks of a size fixed by the row count alone, each
//! block is one single-threaded product with the bias and activation applied while it is in cache,
//! and the blocks run on rayon's pool (a single block runs its product on the pool itself). The
//! weight and bias gradients of narrow layers are summed per block and the blocks' sums added in
//! block order; those of wide layers (transformers) come from threaded products over all rows.
//! Either way results do not depend on the number of threads.

use rayon::prelude::*;

use crate::buffer::zeros;
use crate::matmul::{MatMut, MatRef, Threads, matmul};
use crate::transformer::{gelu, gelu_grad};

/// The activation after the affine map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None: `y = x w + b`.
    Identity,
    /// `y = max(x w + b, 0)`.
    Relu,
    /// `y = gelu(x w + b)`, erf form (BERT's feed-forward layer). Its gradient needs the
    /// pre-activation, which the forward pass keeps when asked to (training).
    Gelu,
}

/// Elements per task, at least, of the element-wise gradient gate.
const GATE_CHUNK: usize = 1 << 14;

/// Weights of at least this many elements take their gradient from one product over all rows
/// (threaded over the weight's tiles, each tile summing the rows in order) instead of one
/// partial sum per block, which would cost a weight-sized buffer per block and a serial sum of
/// them: the wide layers of transformers, while the narrow ones of graph encoders keep the
/// blocks.
const WIDE_WEIGHT: usize = 1 << 16;

/// Columns per task of the bias gradient's column sums.
const BIAS_COLUMNS: usize = 64;

/// Rows per block for `rows` rows: at least 128, and at most 16 blocks, so that the per-block
/// gradient sums stay few.
fn block_rows(rows: usize) -> usize {
    rows.div_ceil(16).max(128)
}

/// `act(x w + b)`: `x` is `rows x k`, `w` is `k x n`, `b` has `n` values; row-major output,
/// and with `keep_pre` and GELU the pre-activation `x w + b` too (what [`backward`] needs;
/// ReLU's gradient needs only the output, the identity's nothing).
///
/// # Panics
/// If the lengths disagree with the shapes, or `k` is 0.
pub(crate) fn forward(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    (rows, k, n): (usize, usize, usize),
    act: Activation,
    keep_pre: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    assert_eq!(x.len(), rows * k, "dense: input length");
    assert_eq!(w.len(), k * n, "dense: weight length");
    assert_eq!(b.len(), n, "dense: bias length");
    assert!(k > 0, "dense: no input columns");
    let mut y = zeros(rows * n);
    let keep = keep_pre && act == Activation::Gelu;
    let mut pre = if keep { zeros(rows * n) } else { Vec::new() };
    if n == 0 {
        return (y, keep.then_some(pre));
    }
    let block = block_rows(rows);
    // One block (few rows, e.g. one sentence through BERT) leaves the pool to the product.
    let threads = if rows <= block {
        Threads::Pool
    } else {
        Threads::One
    };
    // The block's product plus the bias, into `z`.
    let affine = |z: &mut [f32], xc: &[f32]| {
        let r = z.len() / n;
        matmul(
            MatMut::row_major(z, r, n),
            MatRef::row_major(xc, r, k),
            MatRef::row_major(w, k, n),
            false,
            threads,
        );
        for row in z.chunks_exact_mut(n) {
            for (v, &bias) in row.iter_mut().zip(b) {
                *v += bias;
            }
        }
    };
    if keep {
        y.par_chunks_mut(block * n)
            .zip(pre.par_chunks_mut(block * n))
            .zip(x.par_chunks(block * k))
            .for_each(|((yc, zc), xc)| {
                affine(zc, xc);
                for (o, &v) in yc.iter_mut().zip(zc.iter()) {
                    *o = gelu(v);
                }
            });
        return (y, Some(pre));
    }
    y.par_chunks_mut(block * n)
        .zip(x.par_chunks(block * k))
        .for_each(|(yc, xc)| {
            affine(yc, xc);
            match act {
                Activation::Identity => {}
                Activation::Relu => yc.iter_mut().for_each(|v| *v = v.max(0.0)),
                Activation::Gelu => yc.iter_mut().for_each(|v| *v = gelu(*v)),
            }
        });
    (y, None)
}

/// Gradients of [`forward`] from the output gradient `dy` and what the activation's derivative
/// needs (`saved`: ReLU's output, GELU's pre-activation, nothing for the identity):
/// `(dx, dw, db)`.
///
/// # Panics
/// If the lengths disagree with the shapes, `k` is 0, or `saved` is missing for an activation
/// (or given for the identity).
pub(crate) fn backward(
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    (act, saved): (Activation, Option<&[f32]>),
    (rows, k, n): (usize, usize, usize),
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(dy.len(), rows * n, "dense backward: output gradient length");
    assert_eq!(x.len(), rows * k, "dense backward: input length");
    assert_eq!(w.len(), k * n, "dense backward: weight length");
    assert!(k > 0, "dense backward: no input columns");
    assert_eq!(
        saved.is_some(),
        act != Activation::Identity,
        "dense backward: saved values for {act:?}"
    );
    if let Some(s) = saved {
        assert_eq!(s.len(), rows * n, "dense backward: saved values length");
    }
    let block = block_rows(rows);
    let mut dx = zeros(rows * k);
    if n == 0 || rows == 0 {
        return (dx, vec![0.0; k * n], vec![0.0; n]);
    }
    if k * n >= WIDE_WEIGHT {
        return backward_wide(dy, x, w, (act, saved), (rows, k, n), dx);
    }
    // Per block: the gradient at the affine map's output `g` (`dy` times the activation's
    // derivative), its rows of dx = g w^T, and its share of dw = x^T g and db = sum of g's rows.
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(block * k)
        .zip(dy.par_chunks(block * n))
        .zip(x.par_chunks(block * k))
        .enumerate()
        .map(|(i, ((dxc, dyc), xc))| {
            let r = dyc.len() / n;
            let mut store = Vec::new();
            let sc = saved.map(|s| &s[i * block * n..][..r * n]);
            let gc = gate(dyc, (act, sc), &mut store);
            matmul(
                MatMut::row_major(dxc, r, k),
                MatRef::row_major(gc, r, n),
                MatRef::row_major(w, k, n).t(),
                false,
                Threads::One,
            );
            let mut dw = vec![0.0f32; k * n];
            matmul(
                MatMut::row_major(&mut dw, k, n),
                MatRef::row_major(xc, r, k).t(),
                MatRef::row_major(gc, r, n),
                false,
                Threads::One,
            );
            let mut db = vec![0.0f32; n];
            for row in gc.chunks_exact(n) {
                for (s, &v) in db.iter_mut().zip(row) {
                    *s += v;
                }
            }
            (dw, db)
        })
        .collect();
    let mut dw = vec![0.0f32; k * n];
    let mut db = vec![0.0f32; n];
    for (pw, pb) in &partials {
        for (s, v) in dw.iter_mut().zip(pw) {
            *s += v;
        }
        for (s, v) in db.iter_mut().zip(pb) {
            *s += v;
        }
    }
    (dx, dw, db)
}

/// The gradient at the affine map's output: `dy` times the activation's derivative (ReLU's
/// from its output, GELU's from its pre-activation; a new vector kept in `store`), or `dy`
/// itself without an activation. Runs on the pool for long slices only, so that a block's
/// gate stays on its own thread.
fn gate<'a>(
    dy: &'a [f32],
    (act, saved): (Activation, Option<&[f32]>),
    store: &'a mut Vec<f32>,
) -> &'a [f32] {
    let Some(s) = saved else {
        return dy;
    };
    let pairs = dy.par_iter().zip(s.par_iter()).with_min_len(GATE_CHUNK);
    *store = match act {
        // The identity has no saved values (`backward` checks), so it returned above.
        Activation::Identity => unreachable!("the identity saves no values"),
        Activation::Relu => pairs
            .map(|(&d, &y)| if y > 0.0 { d } else { 0.0 })
            .collect(),
        Activation::Gelu => pairs.map(|(&d, &z)| d * gelu_grad(z)).collect(),
    };
    store
}

/// [`backward`] for a weight of at least [`WIDE_WEIGHT`] elements: three threaded passes over
/// all rows (`dx = g w^T`, `dw = x^T g`, `db` by column), each independent of the thread count
/// (`gemm` splits the output into tiles and sums the inner dimension in order).
fn backward_wide(
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    saved: (Activation, Option<&[f32]>),
    (rows, k, n): (usize, usize, usize),
    mut dx: Vec<f32>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut store = Vec::new();
    let g = gate(dy, saved, &mut store);
    let g_mat = MatRef::row_major(g, rows, n);
    matmul(
        MatMut::row_major(&mut dx, rows, k),
        g_mat,
        MatRef::row_major(w, k, n).t(),
        false,
        Threads::Pool,
    );
    let mut dw = zeros(k * n);
    matmul(
        MatMut::row_major(&mut dw, k, n),
        MatRef::row_major(x, rows, k).t(),
        g_mat,
        false,
        Threads::Pool,
    );
    let mut db = vec![0.0f32; n];
    db.par_chunks_mut(BIAS_COLUMNS)
        .enumerate()
        .for_each(|(c, out)| {
            for row in g.chunks_exact(n) {
                for (s, &v) in out.iter_mut().zip(&row[c * BIAS_COLUMNS..]) {
                    *s += v;
                }
            }
        });
    (dx, dw, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: f32) -> Vec<f32> {
        (0..len)
            .map(|i| ((i as f32 + seed) * 0.618).sin())
            .collect()
    }

    /// The layer and its gradients written out element by element.
    fn naive(
        x: &[f32],
        w: &[f32],
        b: &[f32],
        dy: &[f32],
        (rows, k, n): (usize, usize, usize),
        act: Activation,
    ) -> [Vec<f32>; 4] {
        let mut y = vec![0.0; rows * n];
        let mut g = vec![0.0; rows * n];
        for i in 0..rows {
            for j in 0..n {
                let s = b[j] + (0..k).map(|t| x[i * k + t] * w[t * n + j]).sum::<f32>();
                let cdf = 0.5 * (1.0 + libm::erff(s * std::f32::consts::FRAC_1_SQRT_2));
                let pdf = libm::expf(-0.5 * s * s) / (2.0 * std::f32::consts::PI).sqrt();
                let (value, slope) = match act {
                    Activation::Identity => (s, 1.0),
                    Activation::Relu if s > 0.0 => (s, 1.0),
                    Activation::Relu => (0.0, 0.0),
                    Activation::Gelu => (s * cdf, cdf + s * pdf),
                };
                y[i * n + j] = value;
                g[i * n + j] = slope * dy[i * n + j];
            }
        }
        let mut dx = vec![0.0; rows * k];
        let mut dw = vec![0.0; k * n];
        let mut db = vec![0.0; n];
        for i in 0..rows {
            for j in 0..n {
                db[j] += g[i * n + j];
                for t in 0..k {
                    dx[i * k + t] += g[i * n + j] * w[t * n + j];
                    dw[t * n + j] += x[i * k + t] * g[i * n + j];
                }
            }
        }
        [y, dx, dw, db]
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    #[test]
    fn matches_the_written_out_layer_over_many_blocks_and_one() {
        // 300 rows: three blocks, the last one short; 5 rows: one block.
        // 300 x 256 x 257: a weight wide enough for the threaded gradient.
        for (rows, k, n) in [
            (300, 7, 5),
            (5, 3, 4),
            (129, 1, 1),
            (2, 4, 0),
            (300, 256, 257),
        ] {
            let (x, w, b) = (values(rows * k, 0.1), values(k * n, 3.0), values(n, 7.0));
            let dy = values(rows * n, 11.0);
            for act in [Activation::Identity, Activation::Relu, Activation::Gelu] {
                let [y0, dx0, dw0, db0] = naive(&x, &w, &b, &dy, (rows, k, n), act);
                let (y, pre) = forward(&x, &w, &b, (rows, k, n), act, true);
                close(&y, &y0, "y");
                let (inference, none) = forward(&x, &w, &b, (rows, k, n), act, false);
                assert!(inference == y && none.is_none(), "{act:?} without keeping");
                let saved = match act {
                    Activation::Identity => None,
                    Activation::Relu => Some(y.as_slice()),
                    Activation::Gelu => pre.as_deref(),
                };
                let (dx, dw, db) = backward(&dy, &x, &w, (act, saved), (rows, k, n));
                close(&dx, &dx0, "dx");
                close(&dw, &dw0, "dw");
                close(&db, &db0, "db");
            }
        }
    }

    #[test]
    fn results_do_not_depend_on_the_number_of_threads() {
        for (rows, k, n) in [(2000, 9, 6), (600, 256, 300)] {
            same_on_one_and_three_threads(rows, k, n);
        }
    }

    fn same_on_one_and_three_threads(rows: usize, k: usize, n: usize) {
        let (x, w, b) = (values(rows * k, 0.3), values(k * n, 1.0), values(n, 2.0));
        let dy = values(rows * n, 5.0);
        let run = || {
            let (y, _) = forward(&x, &w, &b, (rows, k, n), Activation::Relu, false);
            let relu = backward(&dy, &x, &w, (Activation::Relu, Some(&y)), (rows, k, n));
            let (g, pre) = forward(&x, &w, &b, (rows, k, n), Activation::Gelu, true);
            let pre = pre.expect("kept");
            let gelu = backward(&dy, &x, &w, (Activation::Gelu, Some(&pre)), (rows, k, n));
            (y, relu, g, gelu)
        };
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(run);
        let three = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap()
            .install(run);
        assert!(one == three, "thread count changed a result");
    }
}
