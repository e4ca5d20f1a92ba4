//! Allocator settings for programs that train on a CPU backend.

/// The glibc `malloc` settings [`tune_allocator`] applies, as `(environment variable, value)`
/// pairs: the same settings for a child process (the PyTorch peer of the benchmarks gets them,
/// so that both sides of a ratio run under one allocator configuration).
pub const GLIBC_MALLOC_ENV: [(&str, &str); 3] = [
    ("MALLOC_MMAP_THRESHOLD_", "33554432"),
    ("MALLOC_TRIM_THRESHOLD_", "2147483647"),
    ("MALLOC_TOP_PAD_", "268435456"),
];

/// Tunes glibc's `malloc` for the allocation pattern of training on a CPU backend; returns
/// whether anything was changed (only on Linux with glibc).
///
/// A training step allocates and frees tensors of a few MiB to a few tens of MiB per layer.
/// With glibc's defaults those come from fresh `mmap`ed pages, and freed memory at the top of
/// the heap goes back to the kernel, so every step faults its activations in again: in a
/// SimCLR step of the small ResNet (batch 256 on `flex`, two cores) 50,000 page faults per
/// step, and about 16% of the CPU time in the kernel. This keeps blocks up to 32 MiB on the
/// heap (`M_MMAP_THRESHOLD`), keeps freed memory for reuse (`M_TRIM_THRESHOLD` 2 GiB) and
/// grows the heap in 256 MiB steps (`M_TOP_PAD`): page faults drop about tenfold. The price
/// is that the process keeps its peak heap until it exits, which a training run reaches
/// anyway.
///
/// It changes process-wide state, so the library never calls it: programs do, first thing in
/// `main` (the `contrast` program and the benchmarks of this workspace do).
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let settings = [
            (libc::M_MMAP_THRESHOLD, 32 << 20),
            (libc::M_TRIM_THRESHOLD, i32::MAX),
            (libc::M_TOP_PAD, 256 << 20),
        ];
        // SAFETY: mallopt only sets allocator parameters; it is called with documented
        // parameter names and in-range values, and returns 0 on a refused value.
        settings
            .iter()
            .all(|&(param, value)| unsafe { libc::mallopt(param, value) } == 1)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_accepted_where_glibc_is_the_allocator() {
        assert_eq!(
            tune_allocator(),
            cfg!(all(target_os = "linux", target_env = "gnu"))
        );
        // The environment form says the same numbers.
        assert_eq!(GLIBC_MALLOC_ENV[0].1, (32 << 20).to_string());
        assert_eq!(GLIBC_MALLOC_ENV[1].1, i32::MAX.to_string());
        assert_eq!(GLIBC_MALLOC_ENV[2].1, (256 << 20).to_string());
    }
}
