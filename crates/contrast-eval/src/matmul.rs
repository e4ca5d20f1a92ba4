//! Row-major matrix products on the host, through `contrast_kernels::matmul` (`gemm`, the
//! matrix library of Burn's CPU backends), parallel with rayon: the evaluators' calling
//! convention (dimensions first, each operand with its layout) over the shared kernel.

use contrast_kernels::{MatMut, MatRef, Threads, matmul as host_matmul};

/// How a row-major operand is read.
#[derive(Clone, Copy)]
pub(crate) enum Layout {
    /// As stored: `rows x cols`.
    Normal,
    /// Transposed: a stored `cols x rows` matrix read as `rows x cols`.
    Transposed,
}

impl Layout {
    fn view(self, data: &[f32], rows: usize, cols: usize) -> MatRef<'_> {
        match self {
            Layout::Normal => MatRef::row_major(data, rows, cols),
            Layout::Transposed => MatRef::row_major(data, cols, rows).t(),
        }
    }
}

/// `c[m x n] = a[m x k] * b[k x n]`, each operand row-major and optionally transposed.
///
/// # Panics
/// If a slice is shorter than its shape.
#[allow(clippy::too_many_arguments)] // the operand layout, named
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_layout: Layout,
    b: &[f32],
    b_layout: Layout,
    c: &mut [f32],
) {
    host_matmul(
        MatMut::row_major(c, m, n),
        a_layout.view(a, m, k),
        b_layout.view(b, k, n),
        false,
        Threads::Pool,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_products() {
        let (m, n, k) = (3, 4, 5);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.91).cos()).collect();
        let mut c = vec![0.0; m * n];
        matmul(m, n, k, &a, Layout::Normal, &b, Layout::Normal, &mut c);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum();
                assert!((c[i * n + j] - want).abs() < 1e-5);
            }
        }
        // a^T (k x m stored) times b^T (n x k stored).
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut c2 = vec![0.0; m * n];
        matmul(
            m,
            n,
            k,
            &at,
            Layout::Transposed,
            &bt,
            Layout::Transposed,
            &mut c2,
        );
        for (x, y) in c.iter().zip(&c2) {
            assert!((x - y).abs() < 1e-5);
        }
    }
}
