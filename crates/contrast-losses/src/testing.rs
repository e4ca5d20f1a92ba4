//! Test fixtures shared by the loss tests.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use contrast_core::testing::{assert_close, finite_difference};
use contrast_core::to_vec_f32;

/// Two `[n, d]` tensors from flat slices.
pub fn two_views<B: AutodiffBackend>(
    a: &[f64],
    b: &[f64],
    n: usize,
    d: usize,
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    (matrix::<B>(a, n, d, device), matrix::<B>(b, n, d, device))
}

/// One `[n, d]` tensor from a flat slice of f64 (stored as f32).
pub fn matrix<B: AutodiffBackend>(
    v: &[f64],
    n: usize,
    d: usize,
    device: &B::Device,
) -> Tensor<B, 2> {
    let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(v, [n, d]), device)
}

/// Deterministic inputs in [-1, 1) (a 64-bit LCG), so that tests need no RNG crate.
pub fn inputs(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// Checks a two-view loss against an f64 host reference: the value against `reference(x)` and
/// the gradient with respect to both views against central finite differences of it.
/// `x` is the two views flattened and stacked, `2 * n * d` numbers drawn by [`inputs`].
pub fn fd_reference<B: AutodiffBackend>(
    device: &B::Device,
    n: usize,
    d: usize,
    seed: u64,
    reference: impl Fn(&[f64]) -> f64,
    loss: impl Fn(Tensor<B, 2>, Tensor<B, 2>) -> Tensor<B, 1>,
) {
    let x = inputs(2 * n * d, seed);
    let (z1, z2) = two_views::<B>(&x[..n * d], &x[n * d..], n, d, device);
    let (z1, z2) = (z1.require_grad(), z2.require_grad());
    let value = loss(z1.clone(), z2.clone());
    let grads = value.backward();
    let mut grad = to_vec_f32(z1.grad(&grads).expect("z1 has a gradient"));
    grad.extend(to_vec_f32(z2.grad(&grads).expect("z2 has a gradient")));
    let expected_value = reference(&x) as f32;
    let expected_grad: Vec<f32> = finite_difference(&reference, &x, 1e-6)
        .into_iter()
        .map(|g| g as f32)
        .collect();
    assert_close(&to_vec_f32(value), &[expected_value], 2e-5);
    assert_close(&grad, &expected_grad, 2e-4);
}

/// `r / ||r||` in f64.
pub fn unit(r: &[f64]) -> Vec<f64> {
    let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
    r.iter().map(|v| v / norm).collect()
}

/// The rows of a flat `[_, d]` matrix, each normalised.
pub fn unit_rows(x: &[f64], d: usize) -> Vec<Vec<f64>> {
    x.chunks(d).map(unit).collect()
}

/// Dot product in f64.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
