//! Whether the stores edit their rows in host memory (`contrast_kernels::edit_f32` and
//! `set_int`, `O(batch)` per step) or with tensor operations, and a test switch for the latter.

use burn::tensor::backend::Backend;

#[cfg(test)]
thread_local! {
    /// Tests set this to run the tensor-operation path on a CPU backend too.
    pub(crate) static FORCE_TENSOR_PATH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the stores edit rows in host memory on this backend
/// (`contrast_kernels::is_host_backend`).
pub(crate) fn edit_in_host_memory<B: Backend>() -> bool {
    #[cfg(test)]
    if FORCE_TENSOR_PATH.with(|f| f.get()) {
        return false;
    }
    contrast_kernels::is_host_backend::<B>()
}

/// Runs `f` once on the path the backend picks and once on the tensor-operation path.
#[cfg(test)]
pub(crate) fn on_both_paths(f: impl Fn()) {
    f();
    FORCE_TENSOR_PATH.with(|flag| flag.set(true));
    f();
    FORCE_TENSOR_PATH.with(|flag| flag.set(false));
}
