//! Matrix products on host memory through `gemm` (the matrix library of Burn's CPU backends),
//! with bounds-checked strided views so that callers never touch a raw pointer.
//!
//! Host kernels of the workspace (the CPU convolution, NT-Xent on the host, the proximity
//! graph's dot products, the evaluation classifiers) describe their operands as [`MatRef`] /
//! [`MatMut`] views over slices and call [`matmul`].

use gemm::{Parallelism, gemm};

/// A read-only `rows x cols` matrix over a slice: element `(i, j)` is
/// `data[i * row_stride + j * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// Panics unless every element of a `rows x cols` view with these strides lies inside a slice
/// of `len` elements; `view` names the view type in the message.
fn check_fits(
    view: &str,
    len: usize,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
) {
    let need = if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * row_stride + (cols - 1) * col_stride + 1
    };
    assert!(
        len >= need,
        "{view}: a {rows}x{cols} view with strides ({row_stride}, {col_stride}) needs {need} elements, the slice has {len}"
    );
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` matrix stored at the start of `data`.
    ///
    /// # Panics
    /// If `data` is shorter than `rows * cols`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// A matrix with explicit strides.
    ///
    /// # Panics
    /// If an element of the view lies beyond `data`.
    pub fn strided(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        check_fits("MatRef", data.len(), rows, cols, row_stride, col_stride);
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The transpose, without copying.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// A writable `rows x cols` matrix over a slice (see [`MatRef`] for the layout).
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatMut<'a> {
    /// A row-major `rows x cols` matrix stored at the start of `data`.
    ///
    /// # Panics
    /// If `data` is shorter than `rows * cols`.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// A matrix with explicit strides. Two elements of the view must not share a slot
    /// (checked: a zero stride is refused unless that dimension has length 1).
    ///
    /// # Panics
    /// If an element lies beyond `data`, or a zero stride would alias elements.
    pub fn strided(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        check_fits("MatMut", data.len(), rows, cols, row_stride, col_stride);
        assert!(
            (row_stride > 0 || rows <= 1) && (col_stride > 0 || cols <= 1),
            "MatMut: a zero stride would write one slot twice"
        );
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }
}

/// Threads a product may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// The calling thread only (the caller already runs in parallel).
    One,
    /// Rayon's global pool.
    Pool,
}

/// `c = a b`, or `c += a b` when `accumulate`.
///
/// # Panics
/// If the shapes disagree (`a` is `m x k`, `b` is `k x n`, `c` is `m x n`).
pub fn matmul(c: MatMut<'_>, a: MatRef<'_>, b: MatRef<'_>, accumulate: bool, threads: Threads) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && c.rows == m && c.cols == n,
        "matmul: {}x{} times {}x{} into {}x{}",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
        c.rows,
        c.cols
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    c.data[i * c.row_stride + j * c.col_stride] = 0.0;
                }
            }
        }
        return;
    }
    let parallelism = match threads {
        Threads::One => Parallelism::None,
        Threads::Pool => Parallelism::Rayon(0),
    };
    // SAFETY: every view was checked at construction to lie inside its slice with these
    // strides; `c` is a unique borrow, so it aliases neither `a` nor `b`, and its strides were
    // checked not to map two elements to one slot.
    unsafe {
        gemm(
            m,
            n,
            k,
            c.data.as_mut_ptr(),
            c.col_stride as isize,
            c.row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(
        m: usize,
        n: usize,
        k: usize,
        a: impl Fn(usize, usize) -> f32,
        b: impl Fn(usize, usize) -> f32,
    ) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|t| a(i, t) * b(t, j)).sum();
            }
        }
        c
    }

    #[test]
    fn products_of_strided_and_transposed_views_match_the_definition() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        // b stored transposed (n x k).
        let bt: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.91).cos()).collect();
        let want = naive(m, n, k, |i, t| a[i * k + t], |t, j| bt[j * k + t]);
        for threads in [Threads::One, Threads::Pool] {
            let mut c = vec![0.0; m * n];
            matmul(
                MatMut::row_major(&mut c, m, n),
                MatRef::row_major(&a, m, k),
                MatRef::row_major(&bt, n, k).t(),
                false,
                threads,
            );
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
            // Accumulating adds the product again; a column-major destination is the transpose.
            matmul(
                MatMut::row_major(&mut c, m, n),
                MatRef::row_major(&a, m, k),
                MatRef::row_major(&bt, n, k).t(),
                true,
                threads,
            );
            for (x, y) in c.iter().zip(&want) {
                assert!((x - 2.0 * y).abs() < 1e-5);
            }
            let mut ct = vec![0.0; m * n];
            matmul(
                MatMut::strided(&mut ct, m, n, 1, m),
                MatRef::row_major(&a, m, k),
                MatRef::row_major(&bt, n, k).t(),
                false,
                threads,
            );
            for i in 0..m {
                for j in 0..n {
                    assert!((ct[j * m + i] - want[i * n + j]).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn empty_inner_dimension_gives_zeros_or_leaves_the_destination() {
        let mut c = vec![3.0; 4];
        matmul(
            MatMut::row_major(&mut c, 2, 2),
            MatRef::row_major(&[], 2, 0),
            MatRef::row_major(&[], 0, 2),
            true,
            Threads::One,
        );
        assert_eq!(c, vec![3.0; 4]);
        matmul(
            MatMut::row_major(&mut c, 2, 2),
            MatRef::row_major(&[], 2, 0),
            MatRef::row_major(&[], 0, 2),
            false,
            Threads::One,
        );
        assert_eq!(c, vec![0.0; 4]);
    }

    #[test]
    #[should_panic(expected = "needs 7 elements")]
    fn a_view_beyond_its_slice_is_refused() {
        let data = [0.0; 6];
        let _ = MatRef::strided(&data, 2, 4, 3, 1);
    }

    #[test]
    #[should_panic(expected = "matmul: 2x3 times 2x2")]
    fn mismatched_shapes_are_refused() {
        let a = [0.0; 6];
        let b = [0.0; 4];
        let mut c = [0.0; 4];
        matmul(
            MatMut::row_major(&mut c, 2, 2),
            MatRef::row_major(&a, 2, 3),
            MatRef::row_major(&b, 2, 2),
            false,
            Threads::One,
        );
    }
}
