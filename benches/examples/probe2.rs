use burn::backend::Flex as B;
use burn::module::Param;
use burn::tensor::{IndexingUpdateOp, Int, Tensor};
use std::time::Instant;
fn main() {
    let device = Default::default();
    let mut t = Tensor::<B, 2>::zeros([65536, 128], &device);
    let v = Tensor::<B, 2>::ones([256, 128], &device);
    for _ in 0..3 {
        let s = Instant::now();
        t = t.slice_assign([0..256], v.clone());
        println!("plain slice_assign {:?}", s.elapsed());
    }
    let mut p = Param::from_tensor(t);
    for _ in 0..3 {
        let s = Instant::now();
        p = p.map(|t| t.slice_assign([0..256], v.clone()));
        println!("param map slice_assign {:?}", s.elapsed());
    }
    let mut p2 = Param::initialized(
        burn::module::ParamId::new(),
        Tensor::<B, 2>::zeros([65536, 128], &device),
    );
    for _ in 0..3 {
        let s = Instant::now();
        p2 = p2.map(|t| t.slice_assign([0..256], v.clone()));
        println!("param(initialized) map slice_assign {:?}", s.elapsed());
    }
    let idx = Tensor::<B, 1, Int>::arange(0..256, &device);
    let mut t = Tensor::<B, 2>::zeros([65536, 128], &device);
    for _ in 0..3 {
        let s = Instant::now();
        t = t.select_assign(0, idx.clone(), v.clone(), IndexingUpdateOp::Add);
        println!("plain select_assign {:?}", s.elapsed());
    }
}
