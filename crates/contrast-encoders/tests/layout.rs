//! On `flex` the ResNets run channels last on contrast's host kernels (convolution, and batch
//! norm with the ReLU and residual addition fused in); every other backend runs Burn's
//! channels-first operations. Both must compute the same network: outputs, every gradient,
//! running statistics and inference.
//!
//! One test function (its own binary): the inference half turns the host kernels off for the
//! process, which must not race with another test.

use burn::backend::Flex;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Tensor, TensorData};
use contrast_core::testing::assert_close;
use contrast_core::{FlexAutodiff, to_vec_f32};
use contrast_encoders::{
    BlockKind, ResNet, ResNetConfig, Stem, host_kernel_serves, set_host_kernels,
};

/// Every parameter's value or, given gradients, its gradient, in visiting order.
fn parameters<B: AutodiffBackend, M: Module<B>>(
    m: &M,
    grads: Option<&B::Gradients>,
) -> Vec<Vec<f32>> {
    struct Collect<'a, B: AutodiffBackend>(Vec<Vec<f32>>, Option<&'a B::Gradients>);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Collect<'_, B> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            self.0.push(match self.1 {
                Some(g) => p.val().grad(g).map(to_vec_f32).unwrap_or_default(),
                None => to_vec_f32(p.val()),
            });
        }
    }
    let mut c = Collect::<B>(Vec::new(), grads);
    m.visit(&mut c);
    c.0
}

/// `net` on backend `To` (through a record: the same parameters and running statistics).
fn transfer<From: AutodiffBackend, To: AutodiffBackend>(
    net: &ResNet<From>,
    cfg: &ResNetConfig,
) -> ResNet<To> {
    let device = Default::default();
    contrast_core::testing::carry_over(net.clone(), cfg.init::<To>(&device), &device)
}

fn input<B: AutodiffBackend>(data: &TensorData) -> Tensor<B, 4> {
    Tensor::from_data(data.clone(), &Default::default()).require_grad()
}

#[test]
fn channels_last_host_path_computes_the_same_network_as_burn() {
    // `Host`: a backend the host kernels serve (channels last inside the network);
    // `Reference`: the same numerics through Burn's operations (the host kernels serve only
    // the default checkpointing strategy, so it keeps Burn's channels-first path).
    same_network::<FlexAutodiff, Autodiff<Flex, BalancedCheckpointing>>();
    // On ndarray, against Burn's kernels on flex: Burn's ndarray convolution gradients take
    // about a minute here in a test build (generic code, compiled without optimisation in
    // this crate).
    #[cfg(feature = "ndarray")]
    same_network::<contrast_core::NdArrayAutodiff, Autodiff<Flex, BalancedCheckpointing>>();
}

fn same_network<Host: AutodiffBackend, Reference: AutodiffBackend>() {
    assert!(host_kernel_serves::<Host>() && !host_kernel_serves::<Reference>());
    let device = Default::default();
    // A fixed seed (weights, input, loss weights). At random ones about one run in thirty
    // puts some pre-activation within rounding of zero, or two max-pool inputs within rounding
    // of each other, where the two summation orders may decide differently; through batch norm
    // the gradient of that one unit then moves its whole channel's gradients by up to a few
    // percent. Elsewhere the two paths agree to about 2e-5 (relative, in norm).
    Host::seed(&device, 17);
    let bottleneck = ResNetConfig {
        in_channels: 3,
        block: BlockKind::Bottleneck,
        layers: vec![1, 2],
        widths: vec![4, 6],
        stem: Stem::ImageNet,
        stem_width: 8,
    };
    let cases = [
        (ResNetConfig::small(1), [6, 1, 28, 28]),
        (bottleneck, [3, 3, 21, 19]),
    ];
    for (cfg, shape) in cases {
        let host = cfg.init::<Host>(&device);
        let reference = transfer::<Host, Reference>(&host, &cfg);
        let x = Tensor::<Host, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let x = x.into_data();
        let seed = Tensor::<Host, 2>::random(
            [shape[0], cfg.output_dim()],
            Distribution::Normal(0.0, 1.0),
            &device,
        )
        .into_data();
        // Two training passes: the second sees the running statistics the first updated.
        for _ in 0..2 {
            let (xa, xb) = (input::<Host>(&x), input::<Reference>(&x));
            let ya = host.forward(xa.clone());
            let yb = reference.forward(xb.clone());
            assert_close(&to_vec_f32(ya.clone()), &to_vec_f32(yb.clone()), 1e-4);
            let ga = (ya * Tensor::from_data(seed.clone(), &device))
                .sum()
                .backward();
            let gb = (yb * Tensor::from_data(seed.clone(), &Default::default()))
                .sum()
                .backward();
            assert_close(
                &to_vec_f32(xa.grad(&ga).unwrap()),
                &to_vec_f32(xb.grad(&gb).unwrap()),
                1e-3,
            );
            let (pa, pb) = (
                parameters(&host, Some(&ga)),
                parameters(&reference, Some(&gb)),
            );
            assert_eq!(pa.len(), pb.len());
            // Running statistics are visited too, without gradient.
            assert!(pa.iter().filter(|g| !g.is_empty()).count() > pa.len() / 2);
            for (a, b) in pa.iter().zip(&pb) {
                assert_close(a, b, 1e-3);
            }
        }
        let running = |net: &ResNet<Host>| {
            let eval = net.valid();
            to_vec_f32(eval.forward(Tensor::from_data(x.clone(), &device)))
        };
        // Inference: the host path (channels last, running statistics) against Burn's.
        let with_host = running(&host);
        let from_reference = running(&transfer::<Reference, Host>(&reference, &cfg));
        set_host_kernels(false);
        let without_host = running(&host);
        set_host_kernels(true);
        assert_close(&with_host, &without_host, 1e-4);
        // The reference's running statistics, carried back, give the same inference.
        assert_close(&from_reference, &with_host, 1e-4);
    }
}
