use burn::config::Config;
use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer, Sgd, SgdConfig};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use contrast_core::{Error as CoreError, ensure_in_range, ensure_positive};

/// Which optimiser updates the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// Adam (with L2 weight decay added to the gradient).
    Adam,
    /// SGD with momentum (no LARS): the usual choice of MoCo and InstDisc.
    Sgd,
}

/// How the learning rate falls after the warm-up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decay {
    /// Along a cosine to zero (SimCLR, MoCo v2 and most image methods).
    #[default]
    Cosine,
    /// In a straight line to zero (Hugging Face's trainer default, which SimCSE's code uses).
    Linear,
    /// Not at all (the MVGRL and DGI reference code).
    Constant,
}

impl std::str::FromStr for OptimizerKind {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        match s {
            "adam" => Ok(OptimizerKind::Adam),
            "sgd" => Ok(OptimizerKind::Sgd),
            _ => Err(CoreError::invalid_config(
                "optimizer",
                s,
                "expected 'adam' or 'sgd'",
            )),
        }
    }
}

/// Optimiser and learning-rate schedule: linear warm-up, then a [`Decay`] (cosine to zero by
/// default).
#[derive(Config, Debug)]
pub struct OptimizerConfig {
    /// Optimiser.
    #[config(default = "OptimizerKind::Adam")]
    pub kind: OptimizerKind,
    /// Peak learning rate, reached at the end of the warm-up.
    #[config(default = 1e-3)]
    pub learning_rate: f64,
    /// L2 weight decay.
    #[config(default = 1e-6)]
    pub weight_decay: f64,
    /// SGD momentum (ignored by Adam).
    #[config(default = 0.9)]
    pub momentum: f64,
    /// Warm-up length in epochs (may be 0).
    #[config(default = 1)]
    pub warmup_epochs: usize,
    /// How the learning rate falls after the warm-up.
    #[config(default = "Decay::default()")]
    pub decay: Decay,
}

impl OptimizerConfig {
    /// Checks ranges.
    ///
    /// # Errors
    /// `InvalidConfig` naming the field.
    pub fn validate(&self) -> Result<(), CoreError> {
        ensure_positive("learning_rate", self.learning_rate)?;
        ensure_in_range("learning_rate", self.learning_rate, 0.0, 100.0)?;
        ensure_in_range("weight_decay", self.weight_decay, 0.0, 1.0)?;
        ensure_in_range("momentum", self.momentum, 0.0, 0.999_999)?;
        Ok(())
    }

    /// Learning rate at `step` of `total` steps with `warmup` warm-up steps.
    pub fn learning_rate_at(&self, step: usize, total: usize, warmup: usize) -> f64 {
        if step < warmup {
            return self.learning_rate * (step + 1) as f64 / warmup as f64;
        }
        let span = total.saturating_sub(warmup).max(1);
        let t = ((step - warmup) as f64 / span as f64).min(1.0);
        match self.decay {
            Decay::Constant => self.learning_rate,
            Decay::Linear => self.learning_rate * (1.0 - t),
            Decay::Cosine => self.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()),
        }
    }

    /// Builds the optimiser for module type `M`.
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(&self) -> AnyOptimizer<M, B> {
        let decay =
            (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay as f32));
        match self.kind {
            OptimizerKind::Adam => AnyOptimizer::Adam(
                AdamConfig::new()
                    .with_weight_decay(decay)
                    .with_epsilon(1e-8)
                    .init(),
            ),
            OptimizerKind::Sgd => AnyOptimizer::Sgd(
                SgdConfig::new()
                    .with_weight_decay(decay)
                    .with_momentum(Some(
                        MomentumConfig::new()
                            .with_momentum(self.momentum)
                            .with_dampening(0.0),
                    ))
                    .init(),
            ),
        }
    }
}

/// One of the supported optimisers, behind one type so that the loop stays generic.
#[derive(Clone)]
pub enum AnyOptimizer<M: AutodiffModule<B>, B: AutodiffBackend> {
    /// Adam.
    Adam(OptimizerAdaptor<Adam, M, B>),
    /// SGD with momentum.
    Sgd(OptimizerAdaptor<Sgd<B::InnerBackend>, M, B>),
}

type Bytes = BinBytesRecorder<FullPrecisionSettings>;

impl<M: AutodiffModule<B>, B: AutodiffBackend> AnyOptimizer<M, B> {
    /// One update with learning rate `lr`.
    pub fn step(&mut self, lr: f64, model: M, grads: GradientsParams) -> M {
        match self {
            AnyOptimizer::Adam(o) => o.step(lr, model, grads),
            AnyOptimizer::Sgd(o) => o.step(lr, model, grads),
        }
    }

    /// The optimiser state (moments, momentum buffers) as bytes, for checkpoints.
    ///
    /// # Errors
    /// The recorder's message.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let r = Bytes::default();
        match self {
            AnyOptimizer::Adam(o) => r.record(o.to_record(), ()),
            AnyOptimizer::Sgd(o) => r.record(o.to_record(), ()),
        }
        .map_err(|e| e.to_string())
    }

    /// Restores a state saved by [`to_bytes`](Self::to_bytes).
    ///
    /// # Errors
    /// The recorder's message when the bytes are not a state of this optimiser.
    pub fn load_bytes(self, bytes: Vec<u8>, device: &B::Device) -> Result<Self, String> {
        use crate::record_check::load_record;
        Ok(match self {
            AnyOptimizer::Adam(o) => AnyOptimizer::Adam(o.load_record(load_record(bytes, device)?)),
            AnyOptimizer::Sgd(o) => AnyOptimizer::Sgd(o.load_record(load_record(bytes, device)?)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay() {
        let c = OptimizerConfig::new().with_learning_rate(1.0);
        assert!((c.learning_rate_at(0, 100, 10) - 0.1).abs() < 1e-12);
        assert!((c.learning_rate_at(9, 100, 10) - 1.0).abs() < 1e-12);
        assert!((c.learning_rate_at(10, 100, 10) - 1.0).abs() < 1e-12);
        assert!((c.learning_rate_at(55, 100, 10) - 0.5).abs() < 1e-12);
        assert!(c.learning_rate_at(99, 100, 10) < 0.01);
        assert!((c.learning_rate_at(0, 100, 0) - 1.0).abs() < 1e-12);
        // A constant rate after the same warm-up.
        let flat = c.clone().with_decay(Decay::Constant);
        assert!((flat.learning_rate_at(0, 100, 10) - 0.1).abs() < 1e-12);
        assert_eq!(flat.learning_rate_at(99, 100, 10), 1.0);
        // A straight line, as Hugging Face's: the whole rate at the first step after the
        // warm-up, (total - step) / (total - warm-up) of it later.
        let line = c.clone().with_decay(Decay::Linear);
        assert_eq!(line.learning_rate_at(10, 100, 10), 1.0);
        assert!((line.learning_rate_at(55, 100, 10) - 0.5).abs() < 1e-12);
        assert!((line.learning_rate_at(99, 100, 10) - 1.0 / 90.0).abs() < 1e-12);
        assert!((line.learning_rate_at(3, 4, 0) - 0.25).abs() < 1e-12);
        let msg = c
            .with_learning_rate(-1.0)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(msg.contains("learning_rate"), "{msg}");
        assert!(
            "lars"
                .parse::<OptimizerKind>()
                .unwrap_err()
                .to_string()
                .contains("optimizer")
        );
    }
}
