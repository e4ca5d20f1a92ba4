use core::marker::PhantomData;

use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use contrast_core::{AutodiffEncoder, Encoder, EncoderConfig, Error, InstanceBatch, ViewPair};
use contrast_encoders::{ProjectedEncoder, ProjectionHeadConfig};
use contrast_losses::{DecoupledLoss, DecoupledLossConfig, NtXentLoss, NtXentLossConfig};

use contrast_parallel::{Peer, Reduce, gathered};

use crate::method::{HeadConfig, Method, MethodInfo, Paradigm, StepOutput, join_in_batch};

/// SimCLR (Chen et al. 2020, <https://arxiv.org/abs/2002.05709>): a backbone, an MLP projection
/// head and NT-Xent over the `2N` views of a batch, every other view a negative.
///
/// With [`decoupled`](Self::decoupled) set, the objective is DCL instead (Yeh et al. 2022,
/// <https://arxiv.org/abs/2110.06848>): the positive pair leaves the denominator, which removes
/// the negative-positive coupling that makes NT-Xent need large batches.
///
/// The method works with any backbone whose input is an [`InstanceBatch`]: both views pass
/// through the network as one batch of `2N` (so batch norm sees both, as in the reference).
#[derive(Config, Debug)]
pub struct SimClrConfig {
    /// The projection head (its `input` must equal the backbone's output width).
    pub head: ProjectionHeadConfig,
    /// NT-Xent settings (temperature).
    pub loss: NtXentLossConfig,
    /// Use the decoupled contrastive loss (DCL / DCLW) with these settings instead of NT-Xent.
    #[config(default = "None")]
    pub decoupled: Option<DecoupledLossConfig>,
}

impl SimClrConfig {
    /// SimCLR's usual shape for `backbone`: head `width -> hidden = width -> out_dim`, two
    /// layers, NT-Xent at its default temperature.
    pub fn for_backbone<C: EncoderConfig>(backbone: &C, out_dim: usize) -> Self {
        let width = backbone.output_dim();
        SimClrConfig::new(
            ProjectionHeadConfig::new(width, width, out_dim),
            NtXentLossConfig::new(),
        )
    }

    /// The same with the objective's temperature set to `t` (NT-Xent's, or DCL's when
    /// decoupled).
    pub fn with_temperature(mut self, t: f64) -> Self {
        self.loss.temperature = t;
        if let Some(d) = &mut self.decoupled {
            d.temperature = t;
        }
        self
    }

    /// The method (the loss; the model is built by [`HeadConfig::init_model`]).
    ///
    /// # Errors
    /// As [`HeadConfig::validate`].
    pub fn init(&self) -> Result<SimClr, Error> {
        HeadConfig::validate(self)?;
        let objective = match &self.decoupled {
            None => Objective::NtXent(self.loss.init(), self.loss.temperature),
            Some(d) => Objective::Decoupled(d.init(), d.temperature, d.von_mises_sigma),
        };
        Ok(SimClr {
            objective,
            peer: None,
        })
    }
}

impl HeadConfig for SimClrConfig {
    fn head(&self) -> &ProjectionHeadConfig {
        &self.head
    }

    fn validate(&self) -> Result<(), Error> {
        self.loss.validate()?;
        if let Some(d) = &self.decoupled {
            d.validate()?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Objective {
    NtXent(NtXentLoss, f64),
    Decoupled(DecoupledLoss, f64, Option<f64>),
}

/// SimCLR's training objective, see [`SimClrConfig`].
#[derive(Debug, Clone)]
pub struct SimClr {
    objective: Objective,
    /// The group whose embeddings are gathered as negatives, if any.
    peer: Option<Peer>,
}

impl SimClr {
    /// The loss of two views' projections, `[N, d]` each.
    pub fn pair_loss<B: Backend>(&self, z1: Tensor<B, 2>, z2: Tensor<B, 2>) -> Tensor<B, 1> {
        match &self.objective {
            Objective::NtXent(l, _) => l.forward(z1, z2),
            Objective::Decoupled(l, _, _) => l.forward(z1, z2),
        }
    }
}

/// Both views through `model` as one batch of `2N`: their projections `[N, d]` each.
pub(crate) fn project_pair<B: Backend, E: Encoder<B>>(
    model: &ProjectedEncoder<B, E>,
    pair: ViewPair<E::Input>,
) -> (Tensor<B, 2>, Tensor<B, 2>)
where
    E::Input: InstanceBatch,
{
    let n = pair.first.instances();
    let z = model.projection(E::Input::concat(vec![pair.first, pair.second]));
    (z.clone().slice(0..n), z.slice(n..2 * n))
}

impl<B, E> Method<B, ProjectedEncoder<B, E>> for SimClr
where
    B: AutodiffBackend,
    E: AutodiffEncoder<B>,
    E::Input: InstanceBatch,
{
    type Batch = ViewPair<E::Input>;
    type State = PhantomData<B>;
    type Counters = ();

    fn info(&self, batch_size: usize) -> MethodInfo {
        let (name, description) = match &self.objective {
            Objective::NtXent(_, t) => ("simclr", format!("NT-Xent, temperature {t}")),
            Objective::Decoupled(_, t, None) => {
                ("dcl", format!("DCL (decoupled NT-Xent), temperature {t}"))
            }
            Objective::Decoupled(_, t, Some(s)) => (
                "dcl",
                format!("DCLW (von Mises-Fisher weighted, sigma {s}), temperature {t}"),
            ),
        };
        MethodInfo {
            name: name.into(),
            paradigm: Paradigm::InBatch,
            negatives_per_anchor: 2 * batch_size.saturating_sub(1),
            staleness: None,
            description,
        }
    }

    fn join(&mut self, peer: &Peer, gather_negatives: bool) -> Result<Reduce, Error> {
        Ok(join_in_batch(&mut self.peer, peer, gather_negatives))
    }

    fn step(
        &mut self,
        model: &ProjectedEncoder<B, E>,
        batch: Self::Batch,
        _indices: &[usize],
    ) -> StepOutput<B> {
        let (z1, z2) = project_pair(model, batch);
        let p = self.peer.as_ref();
        let loss = self.pair_loss(gathered(p, z1.clone()), gathered(p, z2.clone()));
        StepOutput::new(loss, vec![z1, z2])
    }

    fn state(&self) -> (PhantomData<B>, ()) {
        (PhantomData, ())
    }

    fn load_state(&mut self, _state: PhantomData<B>, _counters: ()) {}
}
