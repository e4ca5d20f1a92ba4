//! Dense layers on host memory: `y = act(x w + b)` for a `[rows, k]` input, a `[k, n]` weight
//! (Burn's `Linear` layout) and `n` biases, with ReLU or no activation, forward and backward.
//!
//! Burn's CPU backends run such a layer as a product, a broadcast bias addition and an
//! activation, the last two single-threaded passes over the output, and its backward pass as
//! two products, a column sum and a mask; for the narrow layers of graph encoders (GIN's MLPs:
//! thousands of node rows, 32 columns) those passes and `gemm`'s thread start-up cost more than
//! the products. Here the rows are cut into blocks of a size fixed by the row count alone, each
//! block is one single-threaded product with the bias and activation applied while it is in
//! cache, and the blocks run on rayon's pool (a single block runs its product on the pool
//! itself). The weight and bias gradients of narrow layers are summed per block and the blocks'
//! sums added in block order; those of wide layers (transformers) come from threaded products
//! over all rows. Either way results do not depend on the number of threads.

use rayon::prelude::*;

use crate::matmul::{MatMut, MatRef, Threads, matmul};

/// The activation after the affine map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None: `y = x w + b`.
    Identity,
    /// `y = max(x w + b, 0)`.
    Relu,
}

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

/// `act(x w + b)`: `x` is `rows x k`, `w` is `k x n`, `b` has `n` values; row-major output.
///
/// # Panics
/// If the lengths disagree with the shapes, or `k` is 0.
pub(crate) fn forward(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    (rows, k, n): (usize, usize, usize),
    act: Activation,
) -> Vec<f32> {
    assert_eq!(x.len(), rows * k, "dense: input length");
    assert_eq!(w.len(), k * n, "dense: weight length");
    assert_eq!(b.len(), n, "dense: bias length");
    assert!(k > 0, "dense: no input columns");
    let mut y = vec![0.0f32; rows * n];
    if n == 0 {
        return y;
    }
    let block = block_rows(rows);
    // One block (few rows, e.g. one sentence through BERT) leaves the pool to the product.
    let threads = if rows <= block {
        Threads::Pool
    } else {
        Threads::One
    };
    y.par_chunks_mut(block * n)
        .zip(x.par_chunks(block * k))
        .for_each(|(yc, xc)| {
            let r = yc.len() / n;
            matmul(
                MatMut::row_major(yc, r, n),
                MatRef::row_major(xc, r, k),
                MatRef::row_major(w, k, n),
                false,
                threads,
            );
            for row in yc.chunks_exact_mut(n) {
                for (v, &bias) in row.iter_mut().zip(b) {
                    let s = *v + bias;
                    *v = match act {
                        Activation::Identity => s,
                        Activation::Relu => s.max(0.0),
                    };
                }
            }
        });
    y
}

/// Gradients of [`forward`] from the output gradient `dy` and, for ReLU, the output `y` (its
/// mask): `(dx, dw, db)`.
///
/// # Panics
/// If the lengths disagree with the shapes, or `k` is 0.
pub(crate) fn backward(
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    y: Option<&[f32]>,
    (rows, k, n): (usize, usize, usize),
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(dy.len(), rows * n, "dense backward: output gradient length");
    assert_eq!(x.len(), rows * k, "dense backward: input length");
    assert_eq!(w.len(), k * n, "dense backward: weight length");
    assert!(k > 0, "dense backward: no input columns");
    if let Some(y) = y {
        assert_eq!(y.len(), rows * n, "dense backward: output length");
    }
    let block = block_rows(rows);
    let mut dx = vec![0.0f32; rows * k];
    if n == 0 || rows == 0 {
        return (dx, vec![0.0; k * n], vec![0.0; n]);
    }
    if k * n >= WIDE_WEIGHT {
        return backward_wide(dy, x, w, y, (rows, k, n), dx);
    }
    // Per block: the gradient at the affine map's output `g` (`dy` where ReLU passed the
    // value), its rows of dx = g w^T, and its share of dw = x^T g and db = sum of g's rows.
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(block * k)
        .zip(dy.par_chunks(block * n))
        .zip(x.par_chunks(block * k))
        .enumerate()
        .map(|(i, ((dxc, dyc), xc))| {
            let r = dyc.len() / n;
            let mut store = Vec::new();
            let gc = gate(dyc, y.map(|y| &y[i * block * n..][..r * n]), &mut store);
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

/// The gradient at the affine map's output: `dy` where ReLU's output `y` passed the value and
/// 0 elsewhere (a copy kept in `store`), or `dy` itself without an activation (`y` is `None`).
/// Runs on the pool for long slices only, so that a block's gate stays on its own thread.
fn gate<'a>(dy: &'a [f32], y: Option<&[f32]>, store: &'a mut Vec<f32>) -> &'a [f32] {
    let Some(y) = y else {
        return dy;
    };
    *store = dy
        .par_iter()
        .zip(y.par_iter())
        .with_min_len(1 << 14)
        .map(|(&d, &v)| if v > 0.0 { d } else { 0.0 })
        .collect();
    store
}

/// [`backward`] for a weight of at least [`WIDE_WEIGHT`] elements: three threaded passes over
/// all rows (`dx = g w^T`, `dw = x^T g`, `db` by column), each independent of the thread count
/// (`gemm` splits the output into tiles and sums the inner dimension in order).
fn backward_wide(
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    y: Option<&[f32]>,
    (rows, k, n): (usize, usize, usize),
    mut dx: Vec<f32>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut store = Vec::new();
    let g = gate(dy, y, &mut store);
    let g_mat = MatRef::row_major(g, rows, n);
    matmul(
        MatMut::row_major(&mut dx, rows, k),
        g_mat,
        MatRef::row_major(w, k, n).t(),
        false,
        Threads::Pool,
    );
    let mut dw = vec![0.0f32; k * n];
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
                let pass = act == Activation::Identity || s > 0.0;
                y[i * n + j] = if pass { s } else { 0.0 };
                g[i * n + j] = if pass { dy[i * n + j] } else { 0.0 };
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
            for act in [Activation::Identity, Activation::Relu] {
                let [y0, dx0, dw0, db0] = naive(&x, &w, &b, &dy, (rows, k, n), act);
                let y = forward(&x, &w, &b, (rows, k, n), act);
                close(&y, &y0, "y");
                let mask = (act == Activation::Relu).then_some(y.as_slice());
                let (dx, dw, db) = backward(&dy, &x, &w, mask, (rows, k, n));
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
            let y = forward(&x, &w, &b, (rows, k, n), Activation::Relu);
            let grads = backward(&dy, &x, &w, Some(&y), (rows, k, n));
            (y, grads)
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
