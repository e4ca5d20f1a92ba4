//! An encoder over features that were computed once: the locked tower of a two-tower model
//! (a pretrained text encoder that does not train, as in LiT), whose outputs for every input of
//! the dataset are computed before training and fed as rows.

use core::marker::PhantomData;

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use contrast_core::{Encoder, EncoderConfig, Error};

/// Configuration of [`Precomputed`]: the width of the feature rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrecomputedConfig {
    /// Width of a feature row.
    pub dim: usize,
}

/// The identity on `[batch, dim]` feature rows; it has no parameters.
#[derive(Module, Debug)]
pub struct Precomputed<B: Backend> {
    dim: usize,
    _backend: PhantomData<B>,
}

impl<B: Backend> Encoder<B> for Precomputed<B> {
    type Input = Tensor<B, 2>;

    /// # Panics
    /// If the rows are not `dim` wide.
    fn embed(&self, input: Tensor<B, 2>) -> Tensor<B, 2> {
        let [_, d] = input.dims();
        assert_eq!(
            d, self.dim,
            "Precomputed: rows of width {d}, expected {}",
            self.dim
        );
        input
    }

    fn output_dim(&self) -> usize {
        self.dim
    }
}

impl EncoderConfig for PrecomputedConfig {
    type Encoder<B: Backend> = Precomputed<B>;

    fn validate(&self) -> Result<(), Error> {
        if self.dim == 0 {
            return Err(Error::invalid_config("dim", 0, "must be at least 1"));
        }
        Ok(())
    }

    fn init<B: Backend>(&self, _device: &B::Device) -> Precomputed<B> {
        Precomputed {
            dim: self.dim,
            _backend: PhantomData,
        }
    }

    fn output_dim(&self) -> usize {
        self.dim
    }
}
