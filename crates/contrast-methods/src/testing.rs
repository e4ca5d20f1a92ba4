//! Helpers shared by the methods' tests.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

/// For every float parameter of `m`, in visiting order, whether `grads` holds a gradient for it.
pub(crate) fn with_grads<B: AutodiffBackend, M: Module<B>>(
    m: &M,
    grads: &B::Gradients,
) -> Vec<bool> {
    struct Seen<'a, B: AutodiffBackend>(&'a B::Gradients, Vec<bool>);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Seen<'_, B> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            self.1.push(p.val().grad(self.0).is_some());
        }
    }
    let mut seen = Seen::<B>(grads, Vec::new());
    m.visit(&mut seen);
    seen.1
}
