//! The same `B::seed` gives the same network whatever touches its parameters first. (Its own
//! test binary: tests running in parallel in one process would draw from the backend's global
//! generator between the seed and the initialisation.)

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use contrast_core::{FlexAutodiff, to_vec_f32};
use contrast_encoders::{ProjectedEncoder, ProjectionHeadConfig, ResNetConfig};

type A = FlexAutodiff;

fn weights<M: Module<A>>(m: &M) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor<A> for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<A, D>>) {
            self.0.extend(to_vec_f32(p.val()));
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

#[test]
fn same_seed_same_weights_whatever_touches_them_first() {
    let device = Default::default();
    let build = || {
        <A as Backend>::seed(&device, 11);
        let cfg = ResNetConfig::small(1);
        ProjectedEncoder::<A, _> {
            backbone: cfg.init(&device),
            head: ProjectionHeadConfig::new(cfg.output_dim(), 16, 8).init(&device),
        }
    };
    let x = Tensor::<A, 4>::zeros([2, 1, 28, 28], &device);
    // One model is first used by a forward pass, the other by `valid()`.
    let a = build();
    let _ = a.forward(x);
    let b = build();
    let _ = b.valid();
    assert_eq!(weights(&a), weights(&b));
}
