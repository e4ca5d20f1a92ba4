//! Tensor helpers every contrastive method needs: L2 normalisation and similarity matrices.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

/// Default epsilon of [`l2_normalize`], as in PyTorch's `F.normalize`.
pub const NORM_EPS: f64 = 1e-12;

/// Scales each row of `x` to unit L2 norm: `x / max(||x||, eps)`.
///
/// Rows whose norm is below `eps` are divided by `eps` rather than by zero, so an all-zero row
/// stays zero and the gradient stays finite (the clamp is taken on the squared norm, before the
/// square root, whose derivative at 0 would be infinite).
///
/// # Shapes
/// - `x`: `[n, d]` -> `[n, d]`
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>, eps: f64) -> Tensor<B, 2> {
    let norm = x.clone().square().sum_dim(1).clamp_min(eps * eps).sqrt();
    x / norm
}

/// [`l2_normalize`] of one row held in host memory, in place, with the same epsilon rule
/// (`x / max(||x||, eps)`), for code that edits stored rows without tensor operations.
pub fn l2_normalize_row(row: &mut [f32], eps: f64) {
    let norm_sq: f32 = row.iter().map(|v| v * v).sum();
    let inv = 1.0 / norm_sq.max((eps * eps) as f32).sqrt();
    row.iter_mut().for_each(|v| *v *= inv);
}

/// Row-wise L2 norms of `x`.
///
/// # Shapes
/// - `x`: `[n, d]` -> `[n]`
pub fn row_norms<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 1> {
    x.square().sum_dim(1).sqrt().squeeze_dim(1)
}

/// Dot-product similarity `a b^T` of two sets of (usually normalised) embeddings.
///
/// # Shapes
/// - `a`: `[n, d]`, `b`: `[m, d]` -> `[n, m]`
///
/// # Panics
/// If the embedding dimensions differ (message names both shapes).
pub fn dot_similarity<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>) -> Tensor<B, 2> {
    let [_, da] = a.dims();
    let [_, db] = b.dims();
    assert_eq!(
        da,
        db,
        "dot_similarity: embedding dimensions differ, a {:?} vs b {:?}",
        a.dims(),
        b.dims()
    );
    a.matmul(b.transpose())
}

/// Cosine-similarity matrix of two sets of embeddings: entry `(i, j)` is `cos(a_i, b_j)`.
///
/// # Shapes
/// - `a`: `[n, d]`, `b`: `[m, d]` -> `[n, m]`
///
/// # Panics
/// If the embedding dimensions differ (message names both shapes).
pub fn cosine_similarity_matrix<B: Backend>(
    a: Tensor<B, 2>,
    b: Tensor<B, 2>,
    eps: f64,
) -> Tensor<B, 2> {
    dot_similarity(l2_normalize(a, eps), l2_normalize(b, eps))
}

/// Host indices as a 1-D `Int` tensor on `device` (for `select`, `select_assign`, `gather`).
pub fn index_tensor<B: Backend>(indices: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let v: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(v, [indices.len()]), device)
}

/// Reads a float tensor back to the host as `f32`s, in row-major order.
pub fn to_vec_f32<B: Backend, const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
    let data = x.into_data();
    let data = if data.dtype == burn::tensor::DType::F32 {
        data
    } else {
        data.convert::<f32>()
    };
    data.into_vec::<f32>()
        .expect("a float tensor converts to f32")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_close;
    use burn::tensor::TensorData;
    use burn::tensor::backend::AutodiffBackend;

    fn l2_normalize_rows<B: AutodiffBackend>(device: &B::Device) {
        let x = Tensor::<B, 2>::from_data(
            TensorData::new(vec![3.0f32, 4.0, 0.0, 0.0, -1.0, 0.0], [3, 2]),
            device,
        );
        let y = l2_normalize(x, NORM_EPS);
        assert_close(&to_vec_f32(y), &[0.6, 0.8, 0.0, 0.0, -1.0, 0.0], 1e-6);
    }

    fn l2_normalize_gradient_is_finite_at_zero<B: AutodiffBackend>(device: &B::Device) {
        let x = Tensor::<B, 2>::zeros([2, 3], device).require_grad();
        let y = l2_normalize(x.clone(), NORM_EPS).sum();
        let grads = y.backward();
        let g = to_vec_f32(x.grad(&grads).unwrap());
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    }

    /// Gradient of sum(normalize(x) * w) against a hand derivation:
    /// d/dx (x/|x|) . w = (w - (x.w) x / |x|^2) / |x|.
    fn l2_normalize_gradient_matches_hand_derivation<B: AutodiffBackend>(device: &B::Device) {
        let x = Tensor::<B, 2>::from_data(TensorData::new(vec![1.0f32, 2.0, 2.0], [1, 3]), device)
            .require_grad();
        let w = Tensor::<B, 2>::from_data(TensorData::new(vec![0.5f32, -1.0, 3.0], [1, 3]), device);
        let loss = (l2_normalize(x.clone(), NORM_EPS) * w).sum();
        let g = to_vec_f32(x.grad(&loss.backward()).unwrap());
        // |x| = 3, x.w = 0.5 - 2 + 6 = 4.5
        let expected: Vec<f32> = [0.5f32, -1.0, 3.0]
            .iter()
            .zip([1.0f32, 2.0, 2.0])
            .map(|(wi, xi)| (wi - 4.5 * xi / 9.0) / 3.0)
            .collect();
        assert_close(&g, &expected, 1e-5);
    }

    fn cosine_matrix_values<B: AutodiffBackend>(device: &B::Device) {
        let a =
            Tensor::<B, 2>::from_data(TensorData::new(vec![1.0f32, 0.0, 1.0, 1.0], [2, 2]), device);
        let b = Tensor::<B, 2>::from_data(
            TensorData::new(vec![2.0f32, 0.0, 0.0, 3.0, -1.0, -1.0], [3, 2]),
            device,
        );
        let s = cosine_similarity_matrix(a, b, NORM_EPS);
        assert_eq!(s.dims(), [2, 3]);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert_close(&to_vec_f32(s), &[1.0, 0.0, -h, h, h, -1.0], 1e-6);
    }

    #[test]
    fn l2_normalize_row_matches_the_tensor_rule() {
        let mut row = [3.0f32, 4.0];
        l2_normalize_row(&mut row, NORM_EPS);
        assert_close(&row, &[0.6, 0.8], 1e-7);
        let mut zero = [0.0f32; 3];
        l2_normalize_row(&mut zero, NORM_EPS);
        assert_eq!(zero, [0.0; 3]);
    }

    crate::backend_tests!(
        l2_normalize_rows,
        l2_normalize_gradient_is_finite_at_zero,
        l2_normalize_gradient_matches_hand_derivation,
        cosine_matrix_values,
    );

    mod props {
        use super::super::*;
        use crate::testing::Flex;
        use burn::tensor::TensorData;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(24))]
            /// Cosine similarity ignores the scale of each row and stays within [-1, 1].
            #[test]
            fn cosine_is_scale_invariant(
                v in proptest::collection::vec(-5.0f32..5.0, 12),
                scale in 0.1f32..50.0,
            ) {
                prop_assume!(v.chunks(4).all(|r| r.iter().map(|x| x * x).sum::<f32>() > 1e-2));
                let device = Default::default();
                let a = Tensor::<Flex, 2>::from_data(TensorData::new(v.clone(), [3, 4]), &device);
                let s1 = to_vec_f32(cosine_similarity_matrix(a.clone(), a.clone(), NORM_EPS));
                let s2 = to_vec_f32(cosine_similarity_matrix(a.clone() * scale, a, NORM_EPS));
                for (x, y) in s1.iter().zip(&s2) {
                    prop_assert!((x - y).abs() < 1e-4);
                    prop_assert!(x.abs() <= 1.0 + 1e-5);
                }
            }
        }
    }
}
