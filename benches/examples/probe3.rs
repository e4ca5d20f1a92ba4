use burn::backend::Flex as B;
use burn::tensor::{Distribution, Tensor, TensorData};
use std::time::Instant;
fn main() {
    let device = Default::default();
    let keys = Tensor::<B, 2>::random([256, 128], Distribution::Normal(0., 1.), &device);
    let mut t = Tensor::<B, 2>::zeros([65536, 128], &device);
    let cursor = Tensor::<B, 1, burn::tensor::Int>::zeros([2], &device);
    for _ in 0..3 {
        let s = Instant::now();
        let v = contrast_core::to_vec_f32(keys.clone());
        let a = s.elapsed();
        let s = Instant::now();
        let mut data = t.into_data();
        let b = s.elapsed();
        let s = Instant::now();
        data.as_mut_slice::<f32>().unwrap()[..v.len()].copy_from_slice(&v);
        let c = s.elapsed();
        let s = Instant::now();
        t = Tensor::from_data(data, &device);
        let d = s.elapsed();
        let s = Instant::now();
        let _ = cursor.clone().into_data().convert::<i64>().to_vec::<i64>();
        let e = s.elapsed();
        let s = Instant::now();
        let _ = Tensor::<B, 1, burn::tensor::Int>::from_data(
            TensorData::new(vec![1i64, 2], [2]),
            &device,
        );
        let f = s.elapsed();
        println!(
            "to_vec {a:?} into_data {b:?} copy {c:?} from_data {d:?} cursor read {e:?} cursor new {f:?}"
        );
    }
}
