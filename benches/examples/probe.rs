use burn::tensor::{Bool, Distribution, Tensor, TensorData};
use contrast_core::FlexAutodiff as B;
use contrast_losses::NtXentLossConfig;
use std::time::Instant;
fn main() {
    let device = Default::default();
    let n = 1024;
    let m = 2 * n;
    let z1 = Tensor::<B, 2>::random([n, 128], Distribution::Normal(0., 1.), &device);
    let z2 = Tensor::<B, 2>::random([n, 128], Distribution::Normal(0., 1.), &device);
    let loss = NtXentLossConfig::new().init();
    for _ in 0..3 {
        let t = Instant::now();
        let mut v = Vec::with_capacity(m * m);
        for i in 0..m {
            for j in 0..m {
                v.push(i == j);
            }
        }
        let mask = Tensor::<B, 2, Bool>::from_data(TensorData::new(v, [m, m]), &device);
        let t_mask = t.elapsed();
        let t = Instant::now();
        let a = z1.clone().require_grad();
        let l = loss.forward(a.clone(), z2.clone());
        let _ = l.clone().into_scalar();
        let t_fwd = t.elapsed();
        let t = Instant::now();
        let g = l.backward();
        let _ = a.grad(&g).unwrap();
        let t_bwd = t.elapsed();
        let t = Instant::now();
        let z = Tensor::cat(vec![z1.clone(), z2.clone()], 0);
        let s = z.clone().matmul(z.transpose());
        let _ = s.clone().slice([0..1, 0..1]).into_scalar();
        let t_mm = t.elapsed();
        let t = Instant::now();
        let e = s.clone().exp();
        let _ = e.slice([0..1, 0..1]).into_scalar();
        let t_exp = t.elapsed();
        let t = Instant::now();
        let e = s.clone().mask_fill(mask, -1e9);
        let _ = e.slice([0..1, 0..1]).into_scalar();
        let t_mf = t.elapsed();
        let t = Instant::now();
        let e = s.clone().max_dim(1);
        let _ = e.slice([0..1, 0..1]).into_scalar();
        let t_max = t.elapsed();
        let t = Instant::now();
        let e = s.clone().sum_dim(1);
        let _ = e.slice([0..1, 0..1]).into_scalar();
        let t_sum = t.elapsed();
        let t = Instant::now();
        let e = s.clone() - s.clone().max_dim(1);
        let _ = e.slice([0..1, 0..1]).into_scalar();
        let t_bsub = t.elapsed();
        let t = Instant::now();
        let b = loss.forward_blocked(z1.clone().require_grad(), z2.clone(), 2048);
        let _ = b.backward();
        let t_blk = t.elapsed();
        println!(
            "mask {t_mask:?} fwd {t_fwd:?} bwd {t_bwd:?} | matmul {t_mm:?} exp {t_exp:?} mask_fill {t_mf:?} max_dim {t_max:?} sum_dim {t_sum:?} bcast_sub {t_bsub:?} | blocked(all) {t_blk:?}"
        );
    }
}
