//! Shared helpers of the criterion benchmarks: which backends to run and how to label them.
#![warn(missing_docs)]

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};

/// Label of the wgpu rows: the adapter's name is not exposed by Burn, so say what kind of
/// machine ran it; `CONTRAST_WGPU_LABEL` overrides it (e.g. `wgpu (NVIDIA H100)`).
pub fn wgpu_label() -> String {
    std::env::var("CONTRAST_WGPU_LABEL").unwrap_or_else(|_| "wgpu".to_string())
}

/// A `[n, d]` tensor of standard normal values.
pub fn randn<B: Backend>(n: usize, d: usize, device: &B::Device) -> Tensor<B, 2> {
    Tensor::random([n, d], Distribution::Normal(0.0, 1.0), device)
}

/// Waits for the device to finish queued work (a no-op on the eager CPU backends).
pub fn sync<B: Backend>(device: &B::Device) {
    B::sync(device).expect("device sync");
}
