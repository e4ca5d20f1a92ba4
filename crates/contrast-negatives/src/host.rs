//! In-place edits of stored tensors in host memory, for the CPU backends.
//!
//! Burn 0.21's `flex` backend copies the whole destination in `slice_assign` and `select_assign`
//! (`slice_write_impl` keeps a second reference to the buffer alive, so copy-on-write always
//! copies; `select_add` allocates a new buffer by design). For a 1.28M-row memory bank that is
//! 655 MB of traffic per step. `into_data` and `from_data` on flex move the buffer without a
//! copy when the tensor is uniquely owned, so on host backends the stores edit their rows
//! through them: `O(batch)` work per step.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor, TensorData};

/// Runs `edit` on the elements of a float tensor and returns the edited tensor.
pub(crate) fn edit_f32<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
    edit: impl FnOnce(&mut [f32]),
) -> Tensor<B, D> {
    let device = tensor.device();
    let mut data = tensor.into_data();
    if data.dtype != DType::F32 {
        data = data.convert::<f32>();
    }
    edit(data.as_mut_slice::<f32>().expect("an f32 buffer"));
    Tensor::from_data(data, &device)
}

/// Sets `tensor[i] = value` for each `(i, value)` of a rank-1 integer tensor.
pub(crate) fn set_int<B: Backend>(
    tensor: Tensor<B, 1, Int>,
    writes: impl Iterator<Item = (usize, i64)>,
) -> Tensor<B, 1, Int> {
    let device = tensor.device();
    let mut data: TensorData = tensor.into_data();
    match data.dtype {
        DType::I64 => {
            let s = data.as_mut_slice::<i64>().expect("an i64 buffer");
            writes.for_each(|(i, v)| s[i] = v);
        }
        DType::I32 => {
            let s = data.as_mut_slice::<i32>().expect("an i32 buffer");
            writes.for_each(|(i, v)| s[i] = v as i32);
        }
        _ => {
            data = data.convert::<i64>();
            let s = data.as_mut_slice::<i64>().expect("an i64 buffer");
            writes.for_each(|(i, v)| s[i] = v);
        }
    }
    Tensor::from_data(data, &device)
}

#[cfg(test)]
thread_local! {
    /// Tests set this to run the tensor-operation path on a CPU backend too.
    pub(crate) static FORCE_TENSOR_PATH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the stores edit rows in host memory on this device (CPU backends).
pub(crate) fn edit_in_host_memory<B: Backend>(device: &B::Device) -> bool {
    #[cfg(test)]
    if FORCE_TENSOR_PATH.with(|f| f.get()) {
        return false;
    }
    contrast_core::is_host_backend::<B>(device)
}

/// Runs `f` once on the path the device picks and once on the tensor-operation path.
#[cfg(test)]
pub(crate) fn on_both_paths(f: impl Fn()) {
    f();
    FORCE_TENSOR_PATH.with(|flag| flag.set(true));
    f();
    FORCE_TENSOR_PATH.with(|flag| flag.set(false));
}
