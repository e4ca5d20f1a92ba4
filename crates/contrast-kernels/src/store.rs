//! In-place edits of stored tensors in host memory, for the negative stores (memory bank, key
//! queue) on the host backends ([`crate::is_host_backend`]).
//!
//! Burn 0.21's `flex` backend copies the whole destination in `slice_assign` and `select_assign`
//! (`slice_write_impl` keeps a second reference to the buffer alive, so copy-on-write always
//! copies; `select_add` allocates a new buffer by design): every step would move the whole
//! store, `O(rows)`. `into_data` and `from_data` on flex move the buffer without a copy when the
//! tensor is uniquely owned, so on host backends the stores edit their rows through them:
//! `O(batch)` work per step. On other backends the two functions still work, through a device
//! round trip of the whole tensor.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor, TensorData};

/// Runs `edit` on the elements of a float tensor (row-major, converted to `f32` first when
/// stored otherwise) and returns the edited tensor, on the same device.
pub fn edit_f32<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
    edit: impl FnOnce(&mut [f32]),
) -> Tensor<B, D> {
    let device = tensor.device();
    let mut data = tensor.into_data();
    if data.dtype != DType::F32 {
        data = data.convert::<f32>();
    }
    edit(data.as_mut_slice::<f32>().expect("an f32 buffer"));
    Tensor::from_data(data, &device)
}

/// Sets `tensor[i] = value` for each `(i, value)` of a rank-1 integer tensor (stored as
/// `i64` or `i32`; other integer types are converted to `i64`).
///
/// # Panics
/// If an index is out of range.
pub fn set_int<B: Backend>(
    tensor: Tensor<B, 1, Int>,
    writes: impl Iterator<Item = (usize, i64)>,
) -> Tensor<B, 1, Int> {
    let device = tensor.device();
    let mut data: TensorData = tensor.into_data();
    match data.dtype {
        DType::I64 => {
            let s = data.as_mut_slice::<i64>().expect("an i64 buffer");
            writes.for_each(|(i, v)| s[i] = v);
        }
        DType::I32 => {
            let s = data.as_mut_slice::<i32>().expect("an i32 buffer");
            writes.for_each(|(i, v)| s[i] = v as i32);
        }
        _ => {
            data = data.convert::<i64>();
            let s = data.as_mut_slice::<i64>().expect("an i64 buffer");
            writes.for_each(|(i, v)| s[i] = v);
        }
    }
    Tensor::from_data(data, &device)
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn edits_reach_the_returned_tensors() {
        let device = Default::default();
        let t = Tensor::<Flex, 2>::from_data(TensorData::new(vec![1.0f32; 6], [2, 3]), &device);
        let t = edit_f32(t, |v| v[4] = 7.0);
        let got = t.into_data().into_vec::<f32>().unwrap();
        assert_eq!(got, vec![1.0, 1.0, 1.0, 1.0, 7.0, 1.0]);
        let ages = Tensor::<Flex, 1, Int>::from_data(TensorData::new(vec![0i64; 4], [4]), &device);
        let ages = set_int(ages, [(1, 5), (3, 9)].into_iter());
        let got: Vec<i64> = ages.into_data().convert::<i64>().into_vec::<i64>().unwrap();
        assert_eq!(got, vec![0, 5, 0, 9]);
    }
}
