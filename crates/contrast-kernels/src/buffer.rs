//! Buffers of the convolution and batch-norm kernels: output vectors zeroed by the thread
//! pool, and one scratch vector per thread kept between calls.

use rayon::prelude::*;

/// `len` zeros, written by rayon's pool: a kernel's output buffer. `vec![0.0; len]` zeroes
/// reused heap memory on the calling thread alone, leaving the pool's other threads idle
/// meanwhile (see `docs/performance.md`).
pub(crate) fn zeros(len: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    v.par_extend(rayon::iter::repeat_n(0.0f32, len));
    v
}

thread_local! {
    /// This thread's im2col matrix (or Winograd tiles, `winograd.rs`), kept between calls, so
    /// that the steps of a training run reuse the same memory instead of mapping and faulting
    /// in fresh pages for every layer (a few MiB per thread: the largest chunk seen).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer (a fresh one if a caller up the stack on this
/// thread holds it, as when rayon runs another chunk while this one waits).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Vec<f32>) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buf = cell.take();
        let out = f(&mut buf);
        cell.replace(buf);
        out
    })
}
