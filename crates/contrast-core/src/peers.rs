//! The one thing a layer below the training loop may ask of the peers that train a model
//! together: a sum over all of them, with gradient (synchronised batch norm's statistics).
//!
//! Layers do not know about peers (`contrast-parallel` sits above them), and Burn's modules
//! cannot carry a handle to a group, so the training loop lends one for the span of a step:
//! [`with_peer_sum`] installs a sum for the current thread (each peer runs on its own thread),
//! and a layer asks [`sum_over_peers`], which answers `None` outside such a span, on another
//! backend, or with one device; the layer then keeps its own statistics.

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// A sum over the peers on backend `B`, as installed by [`with_peer_sum`].
type PeerSum<B> = Rc<dyn Fn(Tensor<B, 1>) -> Tensor<B, 1>>;

thread_local! {
    /// The installed sum, a [`PeerSum`] of the backend it was installed for.
    static PEER_SUM: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Runs `f` with `sum` as this thread's sum over the peers for backend `B`, then restores what
/// was installed before (also when `f` panics).
///
/// `sum` must give every peer the element-wise sum of every peer's tensor (each peer calls it
/// in the same order with tensors of one shape) and, under autodiff, give back to each peer
/// the sum of every peer's gradient of the result: then the gradients of the peers' losses
/// summed are the gradient of one device's loss on the whole batch.
pub fn with_peer_sum<B: Backend, R>(
    sum: impl Fn(Tensor<B, 1>) -> Tensor<B, 1> + 'static,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore(Option<Box<dyn Any>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let before = self.0.take();
            PEER_SUM.with(|s| *s.borrow_mut() = before);
        }
    }
    let sum: PeerSum<B> = Rc::new(sum);
    let _restore = Restore(PEER_SUM.with(|s| s.borrow_mut().replace(Box::new(sum))));
    f()
}

/// `local` summed over every peer that trains the model with this one (see [`with_peer_sum`]);
/// `None` where no sum is installed on this thread for backend `B`.
pub fn sum_over_peers<B: Backend>(local: Tensor<B, 1>) -> Option<Tensor<B, 1>> {
    let sum = PEER_SUM.with(|s| {
        s.borrow()
            .as_ref()
            .and_then(|any| any.downcast_ref::<PeerSum<B>>().cloned())
    })?;
    Some(sum(local))
}

/// Whether [`sum_over_peers`] would answer for backend `B` on this thread.
pub fn peer_sum_installed<B: Backend>() -> bool {
    PEER_SUM.with(|s| {
        s.borrow()
            .as_ref()
            .is_some_and(|any| any.is::<PeerSum<B>>())
    })
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::to_vec_f32;
    use burn::backend::Flex;

    #[test]
    fn the_sum_holds_for_its_span_and_backend_only() {
        let device = Default::default();
        let t = || Tensor::<Flex, 1>::from_floats([1.0, 2.0], &device);
        assert!(sum_over_peers(t()).is_none());
        let got = with_peer_sum::<Flex, _>(
            |x| x.mul_scalar(3.0),
            || {
                assert!(peer_sum_installed::<Flex>());
                assert!(!peer_sum_installed::<crate::FlexAutodiff>());
                let inner =
                    with_peer_sum::<Flex, _>(|x| x, || to_vec_f32(sum_over_peers(t()).unwrap()));
                assert_eq!(inner, vec![1.0, 2.0]);
                to_vec_f32(sum_over_peers(t()).expect("installed"))
            },
        );
        assert_eq!(got, vec![3.0, 6.0]);
        assert!(!peer_sum_installed::<Flex>());
        let caught =
            std::panic::catch_unwind(|| with_peer_sum::<Flex, _>(|x| x, || panic!("step")));
        assert!(caught.is_err());
        assert!(!peer_sum_installed::<Flex>(), "a panic restores the thread");
        let elsewhere = || {
            std::thread::spawn(peer_sum_installed::<Flex>)
                .join()
                .unwrap()
        };
        with_peer_sum::<Flex, _>(|x| x, || assert!(!elsewhere(), "one thread's sum"));
    }
}
