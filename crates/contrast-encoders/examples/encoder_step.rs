//! Times forward + backward of an encoder on flex, for profiling (`perf record`):
//! `cargo run --release -p contrast-encoders --example encoder_step -- small 512 5`
//! (`CONTRAST_WINOGRAD=0` computes the 3x3 stride-1 convolutions as im2col products, for
//! comparisons).

use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use contrast_core::FlexAutodiff;
use contrast_encoders::{ResNetConfig, Stem};

fn main() {
    contrast_core::tune_allocator();
    if std::env::var("CONTRAST_WINOGRAD").is_ok_and(|v| v == "0") {
        contrast_encoders::set_winograd(false);
    }
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("small");
    let batch: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(512);
    let iters: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let (cfg, c, side) = match which {
        "small" => (ResNetConfig::small(1), 1, 28),
        "small-cifar-stem" => (
            ResNetConfig {
                stem: Stem::Cifar,
                ..ResNetConfig::small(1)
            },
            1,
            28,
        ),
        "small-16" => (
            ResNetConfig {
                widths: vec![16, 32, 64],
                stem_width: 16,
                ..ResNetConfig::small(1)
            },
            1,
            28,
        ),
        "resnet18" => (ResNetConfig::resnet18(3, Stem::Cifar), 3, 32),
        other => panic!("unknown encoder {other}: small or resnet18"),
    };
    let device = Default::default();
    let net = cfg.init::<FlexAutodiff>(&device);
    let x = Tensor::<FlexAutodiff, 4>::random(
        [batch, c, side, side],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    for i in 0..=iters {
        let t = Instant::now();
        let y = net.forward(x.clone());
        let fwd = t.elapsed();
        let grads = y.sum().backward();
        drop(grads);
        if i > 0 {
            println!(
                "{which} batch {batch}: forward {:.0} ms, forward+backward {:.0} ms",
                fwd.as_secs_f64() * 1e3,
                t.elapsed().as_secs_f64() * 1e3
            );
        }
    }
}
