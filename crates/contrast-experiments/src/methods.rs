//! Each method's config for a reproduction, resolved once: the method's own defaults (its
//! paper's), the recipe's temperature for SimCLR and DCL, then a JSON file and flags on top.

use std::path::Path;

use burn::config::Config;
use serde::Serialize;

use contrast_encoders::ResNetConfig;
use contrast_losses::{DecoupledLossConfig, MiEstimator};
use contrast_methods::{
    DimConfig, HeadConfig, InstDiscConfig, InvaSpreadConfig, MocoConfig, SimClrConfig,
};

use crate::Error;
use crate::options::{MethodKind, ReproduceOptions};

/// Width of every method's projection (score space).
const OUT_DIM: usize = 128;

/// One method's config.
#[derive(Debug, Clone)]
pub(crate) enum MethodSpec {
    /// SimCLR or DCL.
    SimClr(SimClrConfig),
    InvaSpread(InvaSpreadConfig),
    InstDisc(InstDiscConfig),
    Moco(MocoConfig),
    Dim(DimConfig),
}

fn load<C: Config>(path: &Path) -> Result<C, Error> {
    C::load(path).map_err(|e| Error::MethodConfig {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

impl MethodSpec {
    /// The config of `kind` for `backbone` on a training split of `train_len` instances.
    pub(crate) fn resolve(
        kind: MethodKind,
        backbone: &ResNetConfig,
        in_batch_temperature: f64,
        train_len: usize,
        opts: &ReproduceOptions,
    ) -> Result<Self, Error> {
        let file = opts.method_config.as_deref();
        let mo = &opts.method_options;
        let mut spec = match kind {
            MethodKind::SimClr | MethodKind::Dcl => MethodSpec::SimClr(match file {
                Some(p) => load(p)?,
                None => {
                    let mut c = SimClrConfig::for_backbone(backbone, OUT_DIM);
                    if kind == MethodKind::Dcl {
                        c.decoupled = Some(DecoupledLossConfig::new());
                    }
                    c.with_temperature(in_batch_temperature)
                }
            }),
            MethodKind::InvaSpread => MethodSpec::InvaSpread(match file {
                Some(p) => load(p)?,
                None => InvaSpreadConfig::for_backbone(backbone, OUT_DIM),
            }),
            MethodKind::InstDisc => {
                let mut c = match file {
                    Some(p) => load(p)?,
                    None => InstDiscConfig::for_backbone(backbone, OUT_DIM, train_len)
                        .with_seed(opts.seed),
                };
                if let Some(m) = mo.noise_samples {
                    c.nce.noise_samples = m;
                }
                if let Some(l) = mo.proximal_weight {
                    c.nce.proximal_weight = l;
                }
                if let Some(m) = mo.bank_momentum {
                    c.bank_momentum = m;
                }
                MethodSpec::InstDisc(c)
            }
            MethodKind::MocoV1 | MethodKind::MocoV2 => {
                let mut c = match file {
                    Some(p) => load(p)?,
                    None if kind == MethodKind::MocoV1 => {
                        MocoConfig::v1(backbone, OUT_DIM).with_seed(opts.seed)
                    }
                    None => MocoConfig::v2(backbone, OUT_DIM).with_seed(opts.seed),
                };
                if let Some(k) = mo.queue_size {
                    c.queue_size = k;
                }
                if let Some(m) = mo.key_momentum {
                    c.momentum = m;
                }
                if let Some(g) = mo.shuffle_groups {
                    c.shuffle_groups = g;
                }
                MethodSpec::Moco(c)
            }
            MethodKind::Dim => MethodSpec::Dim(match file {
                Some(p) => load(p)?,
                // The ResNets' local features are the positions of the map entering the last
                // stage (DIM takes them from an intermediate layer). InfoNCE rather than the
                // library's default Jensen-Shannon estimator: the paper finds it the better one
                // for downstream classification, and here it is what lifts DIM above its random
                // start in the comparison's budget (docs/paradigms.md).
                None => DimConfig::for_widths(backbone.output_dim(), backbone.local_dim(), OUT_DIM)
                    .with_estimator(MiEstimator::InfoNce),
            }),
        };
        if let Some(t) = opts.temperature {
            spec = spec.with_temperature(t);
        }
        spec.validate()?;
        Ok(spec)
    }

    /// Checks what depends on the batch size, as the method's `validate_batch` will: MoCo's
    /// queue must hold a batch of keys.
    pub(crate) fn check_batch(&self, batch_size: usize) -> Result<(), Error> {
        if let MethodSpec::Moco(c) = self
            && batch_size > c.queue_size
        {
            return Err(contrast_core::Error::invalid_config(
                "queue_size",
                c.queue_size,
                format!("MoCo's queue must hold a batch of keys (batch size {batch_size})"),
            )
            .into());
        }
        Ok(())
    }

    fn with_temperature(self, t: f64) -> Self {
        match self {
            MethodSpec::SimClr(c) => MethodSpec::SimClr(c.with_temperature(t)),
            MethodSpec::InvaSpread(c) => MethodSpec::InvaSpread(c.with_temperature(t)),
            MethodSpec::InstDisc(mut c) => {
                c.nce.temperature = t;
                MethodSpec::InstDisc(c)
            }
            MethodSpec::Moco(c) => MethodSpec::Moco(c.with_temperature(t)),
            // DIM's estimators have no temperature.
            MethodSpec::Dim(c) => MethodSpec::Dim(c),
        }
    }

    fn validate(&self) -> Result<(), Error> {
        match self {
            MethodSpec::SimClr(c) => HeadConfig::validate(c)?,
            MethodSpec::InvaSpread(c) => HeadConfig::validate(c)?,
            MethodSpec::InstDisc(c) => HeadConfig::validate(c)?,
            MethodSpec::Moco(c) => HeadConfig::validate(c)?,
            MethodSpec::Dim(c) => c.validate()?,
        }
        Ok(())
    }

    /// The objective's temperature (`None` for DIM).
    pub(crate) fn temperature(&self) -> Option<f64> {
        match self {
            MethodSpec::SimClr(c) => Some(
                c.decoupled
                    .as_ref()
                    .map_or(c.loss.temperature, |d| d.temperature),
            ),
            MethodSpec::InvaSpread(c) => Some(c.loss.temperature),
            MethodSpec::InstDisc(c) => Some(c.nce.temperature),
            MethodSpec::Moco(c) => Some(c.loss.temperature),
            MethodSpec::Dim(_) => None,
        }
    }

    /// The head(s) in words, for reports.
    pub(crate) fn head(&self) -> String {
        match self {
            MethodSpec::SimClr(c) => c.head.describe(),
            MethodSpec::InvaSpread(c) => c.head.describe(),
            MethodSpec::InstDisc(c) => c.head.describe(),
            MethodSpec::Moco(c) => c.head.describe(),
            MethodSpec::Dim(c) => format!(
                "global {}, local {}",
                c.global.describe(),
                c.local.describe()
            ),
        }
    }

    /// The config as JSON (what `--method-config` reads).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        fn json<C: Serialize>(c: &C) -> serde_json::Value {
            serde_json::to_value(c).unwrap_or(serde_json::Value::Null)
        }
        match self {
            MethodSpec::SimClr(c) => json(c),
            MethodSpec::InvaSpread(c) => json(c),
            MethodSpec::InstDisc(c) => json(c),
            MethodSpec::Moco(c) => json(c),
            MethodSpec::Dim(c) => json(c),
        }
    }
}
