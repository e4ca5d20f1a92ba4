//! A sum over the peers with gradient: synchronised batch norm's statistics.

use std::any::{Any, TypeId};
use std::cell::RefCell;

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, unary};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorPrimitive};

use crate::{Peer, Reduce};

/// Whether [`summed`] can give `B` its gradient: Burn's `Autodiff` with its default
/// checkpointing over any backend (the backends `contrast` trains on). Another wrapper has no
/// way in for the all-reduce of the backward pass.
pub fn sums_with_gradient<B: AutodiffBackend>() -> bool {
    TypeId::of::<B>() == TypeId::of::<Autodiff<B::InnerBackend>>()
}

/// `local` summed over every peer of the group, with gradient: the backward pass sums the
/// peers' gradients of the result as well (an all-reduce in each direction), so that each
/// peer's input receives what every peer's loss owes it. With each peer back-propagating its
/// own loss and [`crate::sync_gradients`] combining the parameters' gradients, the result is
/// one device's gradient on the whole batch ([`Reduce::Sum`] of the peers' gradients, or
/// [`Reduce::Mean`] of their losses weighted by share, as the training loop does either way).
/// Every peer calls it in the same order, forward and backward alike (every peer builds the
/// same graph). With one peer, `local` comes back unchanged.
///
/// A failure of either all-reduce is recorded ([`Peer::take_error`]) and the step goes on with
/// this peer's own values (forward) or gradient (backward); the peer's later operations fail
/// at once with the same error, so the loop stops at the latest at the gradient all-reduce
/// after the backward pass.
///
/// # Panics
/// If `B` is not one that sums with gradient ([`sums_with_gradient`]); check it first.
pub fn summed<B: AutodiffBackend, const D: usize>(
    peer: &Peer,
    local: Tensor<B, D>,
    what: &'static str,
) -> Tensor<B, D> {
    if peer.world() == 1 {
        return local;
    }
    assert!(
        sums_with_gradient::<B>(),
        "summed: the backend is not Burn's Autodiff with its default checkpointing"
    );
    let dims = local.dims();
    let flat: Tensor<Autodiff<B::InnerBackend>, 1> = cast(local.flatten::<1>(0, D - 1));
    cast::<_, Tensor<B, 1>>(summed_on(peer, flat, what)).reshape(dims)
}

/// [`summed`] on `Autodiff<I>`, of `local` flattened.
fn summed_on<I: Backend>(
    peer: &Peer,
    local: Tensor<Autodiff<I>, 1>,
    what: &'static str,
) -> Tensor<Autodiff<I>, 1> {
    let local = local.into_primitive().tensor();
    let total = all_reduced::<I>(peer, local.primitive.clone(), what);
    let op = SumOverPeers {
        peer: peer.clone(),
        what,
    };
    let out = op
        .prepare::<NoCheckpointing>([local.node.clone()])
        .compute_bound()
        .stateless(total);
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// The sum over the peers of a flat primitive, or the primitive itself after recording the
/// failure.
fn all_reduced<I: Backend>(
    peer: &Peer,
    local: I::FloatTensorPrimitive,
    what: &str,
) -> I::FloatTensorPrimitive {
    let t = Tensor::<I, 1>::from_primitive(TensorPrimitive::Float(local));
    match peer.all_reduce(what, t.clone(), Reduce::Sum) {
        Ok(sum) => sum.into_primitive().tensor(),
        Err(e) => {
            peer.record_error(e);
            t.into_primitive().tensor()
        }
    }
}

/// The backward step of [`summed`]: the gradient summed over the peers.
#[derive(Debug)]
struct SumOverPeers {
    peer: Peer,
    what: &'static str,
}

impl<I: Backend> Backward<I, 1> for SumOverPeers {
    type State = ();

    fn backward(self, ops: Ops<(), 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        unary::<I, _>(ops.parents, ops.node, grads, |grad| {
            all_reduced::<I>(&self.peer, grad, self.what)
        });
    }
}

/// `value` as the same type under another name (the caller checked that the types agree).
fn cast<T: Any, U: Any>(value: T) -> U {
    let boxed: Box<dyn Any> = Box::new(value);
    *boxed
        .downcast::<U>()
        .unwrap_or_else(|_| unreachable!("the caller checked the backend type"))
}

/// The sum that batch norm asks for across the peers during one step
/// ([`contrast_core::with_peer_sum`]): [`summed`] of the batch statistics, its all-reduces
/// named as such in errors. Make one per step.
///
/// Each sum's input depends on the previous sum's result (plus its first value masked to zero),
/// so that the backward pass meets the all-reduces in exactly the reverse order of the forward
/// pass on every peer. Burn runs backward steps by their depth in the graph and, within one
/// depth, in the order it found them; without the chain two batch-norm layers on parallel
/// branches (a residual block's shortcut, two views encoded apart) could share a depth, and a
/// graph that differed by one operation between two peers would pair the wrong sums.
pub fn batch_statistics_sum<B: AutodiffBackend>(
    peer: &Peer,
) -> impl Fn(Tensor<B, 1>) -> Tensor<B, 1> + 'static {
    let peer = peer.clone();
    let last = RefCell::new(None::<Tensor<B, 1>>);
    move |local| {
        let local = match last.borrow_mut().take() {
            Some(previous) => {
                // Exactly zero, forward and backward, even where the previous sum is not
                // finite; only the graph's edge remains.
                let first = previous.slice(0..1);
                let all = first.zeros_like().equal_elem(0.0);
                let n = local.dims()[0];
                local + first.mask_fill(all, 0.0).expand([n])
            }
            None => local,
        };
        let sum = summed(&peer, local, "synchronising batch-norm statistics");
        *last.borrow_mut() = Some(sum.clone());
        sum
    }
}
