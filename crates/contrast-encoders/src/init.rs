use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

struct Touch;

impl<B: Backend> ModuleVisitor<B> for Touch {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let _ = param.val();
    }
}

/// Runs Burn's lazy parameter initialisation now, in declaration order.
///
/// Burn draws a parameter's initial values on first use, so without this the values depended
/// on which code touched the parameters first (a forward pass visits a residual block's
/// shortcut before its convolutions; `valid()` or a record visits them in declaration order),
/// and two models built after the same `B::seed` could differ.
pub(crate) fn materialize<B: Backend, M: Module<B>>(module: M) -> M {
    module.visit(&mut Touch);
    module
}
