//! Which backends the host kernels serve, and the process-wide switches that turn kernels off.
//!
//! A backend is recognised at run time by its type (`TypeId`), so that code using the kernels
//! stays generic over `B: Backend` with no extra trait bound for its users to carry. Each served
//! backend only has to say how to read a float tensor as a slice and how to wrap a vector
//! ([`HostBackend`]); a backend is served when its cargo feature (`flex`, `ndarray`) is on.

use std::any::{Any, TypeId};
use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
#[cfg(feature = "flex")]
use burn::tensor::DType;
#[cfg(feature = "ndarray")]
use burn::tensor::TensorData;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;

/// A Burn backend whose float tensors live in host memory.
pub(crate) trait HostBackend: Backend {
    /// Runs `f` on the float32 elements of `t` in row-major order (copied first when `t` is
    /// a strided view).
    fn with_host<R>(t: &FloatTensor<Self>, f: impl FnOnce(&[f32]) -> R) -> R;

    /// A float32 tensor of `shape` holding `values` (row-major).
    fn from_host(values: Vec<f32>, shape: &[usize]) -> FloatTensor<Self>;
}

#[cfg(feature = "flex")]
impl HostBackend for burn::backend::Flex {
    fn with_host<R>(t: &FloatTensor<Self>, f: impl FnOnce(&[f32]) -> R) -> R {
        match t.as_slice::<f32>() {
            // `as_slice` is `None` unless the layout is contiguous.
            Some(values) => f(values),
            None => f(t
                .to_contiguous()
                .as_slice::<f32>()
                .expect("contiguous after to_contiguous")),
        }
    }

    fn from_host(values: Vec<f32>, shape: &[usize]) -> FloatTensor<Self> {
        use burn::backend::flex::{FlexTensor, Layout};
        FlexTensor::new(
            burn::tensor::Bytes::from_elems(values),
            Layout::contiguous(burn::tensor::Shape::from(shape.to_vec())),
            DType::F32,
        )
    }
}

#[cfg(feature = "ndarray")]
impl HostBackend for burn::backend::NdArray {
    fn with_host<R>(t: &FloatTensor<Self>, f: impl FnOnce(&[f32]) -> R) -> R {
        use burn::backend::ndarray::NdArrayTensor;
        let NdArrayTensor::F32(storage) = t else {
            unreachable!("dtype checked to be f32 by the caller")
        };
        let view = storage.view();
        match view.as_slice() {
            // `as_slice` is `None` unless the array is in standard (row-major) order.
            Some(values) => f(values),
            None => f(&view.iter().copied().collect::<Vec<f32>>()),
        }
    }

    fn from_host(values: Vec<f32>, shape: &[usize]) -> FloatTensor<Self> {
        // Zero-copy: ndarray takes the vector over.
        burn::backend::ndarray::NdArrayTensor::from_data(TensorData::new(values, shape.to_vec()))
    }
}

/// `value` as a `U` when `T` is `U`, or back unchanged.
fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<U>>() {
        Some(u) => Ok(u.take().expect("slot filled above")),
        None => Err(slot.expect("slot untouched")),
    }
}

/// `value` as the type the caller already identified it to be.
pub(crate) fn same<T: 'static, U: 'static>(value: T) -> U {
    cast(value).unwrap_or_else(|_| unreachable!("backend type checked by the caller"))
}

/// `Autodiff` over a host backend, with Burn's default checkpointing (the one served).
pub(crate) type Ad<HB> = Autodiff<HB, NoCheckpointing>;

/// Whether `B` is `HB` (`Some(false)`) or `Autodiff<HB>` (`Some(true)`).
pub(crate) fn is_on<HB: HostBackend, B: Backend>() -> Option<bool> {
    let b = TypeId::of::<B>();
    if b == TypeId::of::<HB>() {
        Some(false)
    } else if b == TypeId::of::<Ad<HB>>() {
        Some(true)
    } else {
        None
    }
}

/// Whether `B` is a backend the host kernels serve: `Flex` or `NdArray` (Burn's default
/// element types), plain or under `Autodiff` with its default checkpointing, when this crate's
/// feature of that name (`flex`, `ndarray`) is on. GPU backends, and any other wrapper, answer
/// `false`.
///
/// This is the workspace's one test for "compute on the host": the encoders' convolution and
/// batch norm ([`host_kernel_serves`]), NT-Xent's `Kernel::Auto` and the negative stores'
/// row updates all ask it.
pub fn is_host_backend<B: Backend>() -> bool {
    #[cfg(feature = "flex")]
    if is_on::<burn::backend::Flex, B>().is_some() {
        return true;
    }
    #[cfg(feature = "ndarray")]
    if is_on::<burn::backend::NdArray, B>().is_some() {
        return true;
    }
    false
}

static HOST_KERNELS: AtomicBool = AtomicBool::new(true);
static WINOGRAD: AtomicBool = AtomicBool::new(true);

/// Turns the convolution and batch-norm host kernels on or off for the whole process (on by
/// default); off sends every convolution and batch norm to Burn's own implementation, for
/// benchmarks and for checking a result against Burn. NT-Xent and the store updates do not
/// read it (they have their own choice, `Kernel` in `contrast-losses`).
pub fn set_host_kernels(enabled: bool) {
    HOST_KERNELS.store(enabled, Ordering::Relaxed);
}

/// Turns Winograd's F(2x2, 3x3) on or off for the host kernels' 3x3 convolutions with stride
/// 1 and padding 1 (on by default). Off, they are im2col products like every other
/// convolution: slower, and different from the Winograd results by a few ulps of rounding.
pub fn set_winograd(enabled: bool) {
    WINOGRAD.store(enabled, Ordering::Relaxed);
}

pub(crate) fn winograd_enabled() -> bool {
    WINOGRAD.load(Ordering::Relaxed)
}

/// Whether the convolution and batch-norm host kernels are on (see [`set_host_kernels`]).
pub fn host_kernels_enabled() -> bool {
    HOST_KERNELS.load(Ordering::Relaxed)
}

/// Whether float32 convolutions and batch norms on backend `B` run on the host kernels:
/// [`is_host_backend`] and [`host_kernels_enabled`].
pub fn host_kernel_serves<B: Backend>() -> bool {
    host_kernels_enabled() && is_host_backend::<B>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "flex")]
    #[test]
    fn flex_is_served_plain_and_under_default_autodiff_only() {
        use burn::backend::Flex;
        use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
        assert!(is_host_backend::<Flex>());
        assert!(is_host_backend::<Autodiff<Flex>>());
        assert!(!is_host_backend::<Autodiff<Flex, BalancedCheckpointing>>());
        assert_eq!(is_on::<Flex, Autodiff<Flex>>(), Some(true));
        assert_eq!(is_on::<Flex, Flex>(), Some(false));
    }

    #[cfg(feature = "ndarray")]
    #[test]
    fn ndarray_is_served_plain_and_under_autodiff() {
        use burn::backend::NdArray;
        assert!(is_host_backend::<NdArray>());
        assert!(is_host_backend::<Autodiff<NdArray>>());
        assert!(!is_host_backend::<NdArray<f64>>());
    }

    #[test]
    fn cast_moves_a_value_of_the_same_type_only() {
        assert_eq!(cast::<u32, u32>(7), Ok(7));
        assert_eq!(cast::<u32, i32>(7), Err(7));
    }
}
