//! Row-major matrix products on the host through `gemm` (the matrix library of Burn's CPU
//! backends), parallel with rayon.

use gemm::{Parallelism, gemm};

/// How a row-major operand is read.
#[derive(Clone, Copy)]
pub(crate) enum Layout {
    /// As stored: `rows x cols`.
    Normal,
    /// Transposed: a stored `cols x rows` matrix read as `rows x cols`.
    Transposed,
}

/// `c[m x n] = a[m x k] * b[k x n]`, each operand row-major and optionally transposed.
///
/// # Panics
/// If a slice is shorter than its shape.
#[allow(clippy::too_many_arguments)] // the operand layout of gemm, named
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
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "matmul: operand too short"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].fill(0.0);
        return;
    }
    let (a_cs, a_rs) = match a_layout {
        Layout::Normal => (1, k as isize),
        Layout::Transposed => (m as isize, 1),
    };
    let (b_cs, b_rs) = match b_layout {
        Layout::Normal => (1, n as isize),
        Layout::Transposed => (k as isize, 1),
    };
    // SAFETY: the strides above address exactly the m*k, k*n and m*n elements checked by the
    // assertion, and `c` does not alias `a` or `b` (distinct borrows).
    unsafe {
        gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::Rayon(0),
        );
    }
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
