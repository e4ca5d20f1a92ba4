use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;

use contrast_core::Error;

use crate::norm::BatchNorm2d;

/// Configuration of a [`ProjectionHead`]: `layers` linear layers with ReLU between them (and
/// optional batch norm before each ReLU).
///
/// SimCLR v1: 2 layers, no batch norm, hidden = input width. lightly's `SimCLRProjectionHead`
/// and SimCLR v2 add batch norm; MoCo v2 uses 2 layers without it.
#[derive(Config, Debug)]
pub struct ProjectionHeadConfig {
    /// Input width (the encoder's representation).
    pub input: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Output width (the space the loss sees).
    pub output: usize,
    /// Number of linear layers (1 = linear projection).
    #[config(default = 2)]
    pub layers: usize,
    /// Batch norm after each hidden linear layer ([`BatchNorm2d`] over rows, Burn's
    /// `BatchNorm` numerically, on the host kernel where it serves, synchronised over the
    /// peers where the training loop asks).
    #[config(default = false)]
    pub batch_norm: bool,
    /// A tanh after the last layer (SimCSE's `cls` pooler: one linear layer and tanh over the
    /// `[CLS]` state).
    #[config(default = false)]
    pub tanh: bool,
}

impl ProjectionHeadConfig {
    /// The head in words, for reports: `linear layer to 128`, `2-layer MLP (hidden 128) to 128`.
    pub fn describe(&self) -> String {
        let tanh = if self.tanh { ", then tanh" } else { "" };
        if self.layers == 1 {
            format!("linear layer to {}{tanh}", self.output)
        } else {
            format!(
                "{}-layer MLP (hidden {}{}) to {}{tanh}",
                self.layers,
                self.hidden,
                if self.batch_norm { ", batch norm" } else { "" },
                self.output
            )
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// `InvalidConfig` for a zero width or zero layers.
    pub fn validate(&self) -> Result<(), Error> {
        for (name, v) in [
            ("head.input", self.input),
            ("head.hidden", self.hidden),
            ("head.output", self.output),
            ("head.layers", self.layers),
        ] {
            if v == 0 {
                return Err(Error::invalid_config(name, 0, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// Builds the head.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ProjectionHead<B> {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let mut linears = Vec::new();
        let mut norms = Vec::new();
        for l in 0..self.layers {
            let i = if l == 0 { self.input } else { self.hidden };
            let o = if l + 1 == self.layers {
                self.output
            } else {
                self.hidden
            };
            linears.push(LinearConfig::new(i, o).init(device));
            if self.batch_norm && l + 1 < self.layers {
                norms.push(BatchNorm2d::new(o, device));
            }
        }
        crate::init::materialize(ProjectionHead {
            linears,
            norms,
            tanh: self.tanh,
        })
    }
}

/// The MLP that maps representations to the space where the contrastive loss is computed.
#[derive(Module, Debug)]
pub struct ProjectionHead<B: Backend> {
    linears: Vec<Linear<B>>,
    norms: Vec<BatchNorm2d<B>>,
    tanh: bool,
}

impl<B: Backend> ProjectionHead<B> {
    /// The linear layers, input side first.
    pub fn linears(&self) -> &[Linear<B>] {
        &self.linears
    }

    /// # Shapes
    /// - input: `[batch, input]`
    /// - output: `[batch, output]`
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let last = self.linears.len() - 1;
        let mut x = x;
        for (l, lin) in self.linears.iter().enumerate() {
            x = lin.forward(x);
            if l < last {
                if let Some(bn) = self.norms.get(l) {
                    x = bn.forward_rows(x);
                }
                x = relu(x);
            }
        }
        if self.tanh { x.tanh() } else { x }
    }
}
