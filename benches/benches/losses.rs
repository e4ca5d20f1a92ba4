//! NT-Xent forward + backward at n in {256, 1024, 4096}, d = 128, on every backend built in,
//! and the row-blocked variant at the largest size.

use burn::tensor::backend::AutodiffBackend;
use contrast_benches::{randn, sync};
use contrast_losses::NtXentLossConfig;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const D: usize = 128;

fn nt_xent<B: AutodiffBackend>(
    c: &mut Criterion,
    backend: &str,
    device: &B::Device,
    sizes: &[usize],
) {
    let loss = NtXentLossConfig::new().with_temperature(0.5).init();
    let mut group = c.benchmark_group("nt_xent_fwd_bwd");
    group.sample_size(10);
    for &n in sizes {
        let z1 = randn::<B>(n, D, device);
        let z2 = randn::<B>(n, D, device);
        group.throughput(Throughput::Elements((2 * n) as u64));
        group.bench_with_input(
            BenchmarkId::new(backend, format!("n={n},d={D}")),
            &n,
            |b, _| {
                b.iter(|| {
                    let a = z1.clone().require_grad();
                    let grads = loss.forward(a.clone(), z2.clone()).backward();
                    let g = a.grad(&grads).expect("gradient");
                    sync::<B::InnerBackend>(&g.device());
                    g
                })
            },
        );
        if n >= 4096 {
            let block = 512;
            group.bench_with_input(
                BenchmarkId::new(
                    format!("{backend} blocked({block})"),
                    format!("n={n},d={D}"),
                ),
                &n,
                |b, _| {
                    b.iter(|| {
                        let a = z1.clone().require_grad();
                        let grads = loss
                            .forward_blocked(a.clone(), z2.clone(), block)
                            .backward();
                        let g = a.grad(&grads).expect("gradient");
                        sync::<B::InnerBackend>(&g.device());
                        g
                    })
                },
            );
        }
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    contrast_core::tune_allocator();
    nt_xent::<contrast_core::FlexAutodiff>(c, "flex", &Default::default(), &[256, 1024, 4096]);
    #[cfg(feature = "ndarray")]
    nt_xent::<contrast_core::NdArrayAutodiff>(c, "ndarray", &Default::default(), &[256, 1024]);
    #[cfg(feature = "wgpu")]
    {
        // Mesa's software Vulkan is 30-50x slower than the CPU backends: the largest size runs
        // only when a label names a real GPU.
        let large = std::env::var_os("CONTRAST_WGPU_LABEL").is_some();
        let sizes: &[usize] = if large {
            &[256, 1024, 4096]
        } else {
            &[256, 1024]
        };
        nt_xent::<contrast_core::WgpuAutodiff>(
            c,
            &contrast_benches::wgpu_label(),
            &Default::default(),
            sizes,
        );
    }
    #[cfg(feature = "cuda")]
    nt_xent::<contrast_core::CudaAutodiff>(c, "cuda", &Default::default(), &[256, 1024, 4096]);
}

criterion_group!(group, benches);
criterion_main!(group);
