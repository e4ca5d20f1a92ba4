use core::marker::PhantomData;

use burn::config::Config;
use burn::tensor::backend::AutodiffBackend;

use contrast_core::{AutodiffEncoder, EncoderConfig, Error, InstanceBatch, ViewMode, ViewPair};
use contrast_encoders::{ProjectedEncoder, ProjectionHeadConfig};
use contrast_losses::{InvaSpreadLoss, InvaSpreadLossConfig};

use contrast_parallel::{Peer, Reduce, gathered};

use crate::method::{HeadConfig, Method, MethodInfo, Paradigm, StepOutput, join_in_batch};
use crate::simclr::project_pair;

/// InvaSpread (Ye et al. 2019, <https://arxiv.org/abs/1904.03436>), the end-to-end paradigm: a
/// shared-weight siamese encoder sees each instance and one augmented copy of it; the `2N`
/// features of the batch classify each other with the instance-wise softmax loss
/// ([`InvaSpreadLoss`]), so positives and negatives all receive gradients and the number of
/// negatives is bounded by what one batch fits in memory.
///
/// The paper's network ends in a linear 128-d embedding; that is the head of
/// [`for_backbone`](Self::for_backbone).
#[derive(Config, Debug)]
pub struct InvaSpreadConfig {
    /// The embedding head (paper: one linear layer to 128).
    pub head: ProjectionHeadConfig,
    /// Loss settings (paper: temperature 0.1).
    pub loss: InvaSpreadLossConfig,
}

impl InvaSpreadConfig {
    /// The paper's shape: a linear layer from `backbone` to `out_dim`, temperature 0.1.
    pub fn for_backbone<C: EncoderConfig>(backbone: &C, out_dim: usize) -> Self {
        let width = backbone.output_dim();
        InvaSpreadConfig::new(
            ProjectionHeadConfig::new(width, width, out_dim).with_layers(1),
            InvaSpreadLossConfig::new(),
        )
    }

    /// The same with the loss's temperature set to `t`.
    pub fn with_temperature(mut self, t: f64) -> Self {
        self.loss.temperature = t;
        self
    }

    /// The method.
    ///
    /// # Errors
    /// As [`HeadConfig::validate`].
    pub fn init(&self) -> Result<InvaSpread, Error> {
        HeadConfig::validate(self)?;
        Ok(InvaSpread {
            loss: self.loss.init(),
            peer: None,
            temperature: self.loss.temperature,
        })
    }
}

impl HeadConfig for InvaSpreadConfig {
    fn head(&self) -> &ProjectionHeadConfig {
        &self.head
    }

    fn validate(&self) -> Result<(), Error> {
        self.loss.validate()
    }
}

/// InvaSpread's training objective, see [`InvaSpreadConfig`].
#[derive(Debug, Clone)]
pub struct InvaSpread {
    loss: InvaSpreadLoss,
    temperature: f64,
    /// The group whose embeddings are gathered as negatives, if any.
    peer: Option<Peer>,
}

impl<B, E> Method<B, ProjectedEncoder<B, E>> for InvaSpread
where
    B: AutodiffBackend,
    E: AutodiffEncoder<B>,
    E::Input: InstanceBatch,
{
    type Batch = ViewPair<E::Input>;
    type State = PhantomData<B>;
    type Counters = ();

    fn info(&self, batch_size: usize) -> MethodInfo {
        MethodInfo {
            name: "invaspread".into(),
            paradigm: Paradigm::EndToEnd,
            negatives_per_anchor: 2 * batch_size.saturating_sub(1),
            staleness: None,
            description: format!(
                "instance-wise softmax over the batch's instances and augmented copies, temperature {}",
                self.temperature
            ),
        }
    }

    fn views(&self) -> ViewMode {
        ViewMode::PlainAndAugmented
    }

    /// `batch.first` holds the instances themselves, `batch.second` their augmented copies:
    /// one siamese pass of `2N`.
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
        let loss = self
            .loss
            .forward(gathered(p, z1.clone()), gathered(p, z2.clone()));
        StepOutput::new(loss, vec![z1, z2])
    }

    fn state(&self) -> (PhantomData<B>, ()) {
        (PhantomData, ())
    }

    fn load_state(&mut self, _state: PhantomData<B>, _counters: ()) {}
}
