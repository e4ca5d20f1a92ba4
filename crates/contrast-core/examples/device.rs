//! Checks a device string: `cargo run -p contrast-core --example device -- wgpu`.
//!
//! Prints one line: what the device computed, or why it cannot be used (exit code 2).

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use contrast_core::{BackendTask, DeviceSpec};

struct Check;

impl BackendTask for Check {
    type Output = f32;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> f32 {
        let ones = Tensor::<B, 1>::ones([3], &device);
        contrast_core::to_vec_f32(ones.sum())[0]
    }
}

fn main() {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "flex".to_string());
    match name
        .parse::<DeviceSpec>()
        .and_then(|spec| spec.run(Check).map(|v| (spec, v)))
    {
        Ok((spec, value)) => println!("{spec}: ok (sum of three ones = {value})"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
