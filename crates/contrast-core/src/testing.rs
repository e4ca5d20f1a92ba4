//! Write a numerical test once, run it on every backend compiled in.
//!
//! A test body is a generic function `fn case<B: AutodiffBackend>(device: &B::Device)`;
//! [`backend_tests!`](crate::backend_tests) expands each one into a module of `#[test]`s:
//! `flex` always, `wgpu` when `contrast-core/wgpu` is on, and `cuda` when `contrast-core/cuda`
//! is on (it reports a skip when no CUDA device answers). Test names therefore show the backend:
//! `nt_xent_value::flex`, `nt_xent_value::wgpu`.
//!
//! ```
//! use burn::tensor::{Tensor, backend::AutodiffBackend};
//! use contrast_core::testing::assert_close;
//!
//! fn ones_sum<B: AutodiffBackend>(device: &B::Device) {
//!     let s = Tensor::<B, 1>::ones([3], device).sum();
//!     assert_close(&contrast_core::to_vec_f32(s), &[3.0], 0.0);
//! }
//! contrast_core::backend_tests!(ones_sum);
//! # fn main() {}
//! ```

/// The autodiff CPU backend every test runs on.
#[cfg(feature = "flex")]
pub type Flex = crate::FlexAutodiff;
/// The autodiff wgpu backend of the `wgpu` tests.
#[cfg(feature = "wgpu")]
pub type Wgpu = crate::WgpuAutodiff;
/// The autodiff CUDA backend of the `cuda` tests.
#[cfg(feature = "cuda")]
pub type Cuda = crate::CudaAutodiff;

/// The wgpu device tests run on (the default adapter: Mesa's software Vulkan on CPU machines).
#[cfg(feature = "wgpu")]
pub fn wgpu_device() -> burn::backend::wgpu::WgpuDevice {
    burn::backend::wgpu::WgpuDevice::DefaultDevice
}

/// Held by every wgpu test for its whole body, so that one test at a time uses the device.
///
/// With tests on several threads sharing the wgpu device (Mesa's lavapipe in CI), a test now and
/// then read results that another thread's work had overwritten (CLIP's sharded-loss gradient
/// test failed about one run in two with the rest of its crate beside it, never alone or with
/// one test thread; flex never). Until that is found in the backend, the tests take turns.
#[cfg(feature = "wgpu")]
pub fn wgpu_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The first CUDA device, or `None` (once per process, with the reason on stderr) when the
/// driver or a GPU is missing.
#[cfg(feature = "cuda")]
pub fn cuda_device() -> Option<burn::backend::cuda::CudaDevice> {
    use std::sync::OnceLock;
    static PROBE: OnceLock<Option<String>> = OnceLock::new();
    let failure = PROBE.get_or_init(|| {
        let device = burn::backend::cuda::CudaDevice::new(0);
        crate::probe::<Cuda>(&device, "cuda:0")
            .err()
            .map(|e| e.to_string())
    });
    match failure {
        None => Some(burn::backend::cuda::CudaDevice::new(0)),
        Some(reason) => {
            static SAID: OnceLock<()> = OnceLock::new();
            SAID.get_or_init(|| eprintln!("cuda tests skipped: {reason}"));
            None
        }
    }
}

/// Asserts that two float slices have the same length and agree within `tol` (absolute, or
/// relative for values above 1), naming the first index that differs.
///
/// # Panics
/// When they differ.
#[track_caller]
pub fn assert_close(actual: &[f32], expected: &[f32], tol: f32) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "length differs: actual {actual:?} expected {expected:?}"
    );
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let scale = e.abs().max(1.0);
        assert!(
            (a - e).abs() <= tol * scale && a.is_finite() == e.is_finite(),
            "index {i}: actual {a} expected {e} (tol {tol})\nactual   {actual:?}\nexpected {expected:?}"
        );
    }
}

/// `target` (a module of `module`'s structure on another backend, e.g. the same config's
/// `init` there) holding `module`'s values, carried through full-precision bytes: the same
/// network on two backends, for tests that compare them.
///
/// # Panics
/// If the structures differ.
pub fn carry_over<A, B, M, N>(module: M, target: N, device: &B::Device) -> N
where
    A: burn::tensor::backend::Backend,
    B: burn::tensor::backend::Backend,
    M: burn::module::Module<A>,
    N: burn::module::Module<B>,
{
    use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = Recorder::<A>::record(&recorder, module.into_record(), ())
        .expect("a module's record serialises");
    target.load_record(
        Recorder::<B>::load(&recorder, bytes, device)
            .expect("carry_over: the target has the module's structure"),
    )
}

/// Central finite-difference gradient of a scalar function of a flat `f64` vector.
///
/// Reference gradients in tests come from here, computed in `f64` on the host, independently of
/// Burn's autodiff.
pub fn finite_difference(f: impl Fn(&[f64]) -> f64, x: &[f64], h: f64) -> Vec<f64> {
    let mut x = x.to_vec();
    (0..x.len())
        .map(|i| {
            let orig = x[i];
            x[i] = orig + h;
            let up = f(&x);
            x[i] = orig - h;
            let down = f(&x);
            x[i] = orig;
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// Expands generic test bodies into one `#[test]` per backend compiled in; see the
/// [module docs](crate::testing).
#[macro_export]
macro_rules! backend_tests {
    ($($case:ident),+ $(,)?) => {
        $(
            #[allow(non_snake_case)]
            mod $case {
                #[test]
                fn flex() {
                    super::$case::<$crate::testing::Flex>(&Default::default());
                }
                $crate::__if_wgpu! {
                    #[test]
                    fn wgpu() {
                        let _turn = $crate::testing::wgpu_turn();
                        super::$case::<$crate::testing::Wgpu>(&$crate::testing::wgpu_device());
                    }
                }
                $crate::__if_cuda! {
                    #[test]
                    fn cuda() {
                        if let Some(device) = $crate::testing::cuda_device() {
                            super::$case::<$crate::testing::Cuda>(&device);
                        }
                    }
                }
            }
        )+
    };
}

#[cfg(feature = "wgpu")]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_wgpu {
    ($($t:tt)*) => { $($t)* };
}
#[cfg(not(feature = "wgpu"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_wgpu {
    ($($t:tt)*) => {};
}
#[cfg(feature = "cuda")]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_cuda {
    ($($t:tt)*) => { $($t)* };
}
#[cfg(not(feature = "cuda"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __if_cuda {
    ($($t:tt)*) => {};
}

/// A folder of a test's own, `contrast-NAME-PID` under the system's temporary folder: created
/// empty (whatever an earlier run left there is removed first) and removed with its contents
/// when dropped, so that tests leave nothing behind.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// Creates the folder for `name`.
    ///
    /// # Panics
    /// If the folder cannot be created.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("contrast-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary folder for the test");
        TempDir(dir)
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_difference_of_a_quadratic() {
        let g = finite_difference(|x| x[0] * x[0] + 3.0 * x[1], &[2.0, -1.0], 1e-5);
        assert!((g[0] - 4.0).abs() < 1e-6 && (g[1] - 3.0).abs() < 1e-6);
    }

    #[test]
    #[should_panic(expected = "index 1")]
    fn assert_close_names_the_index() {
        assert_close(&[1.0, 2.0], &[1.0, 2.5], 1e-3);
    }
}
