use core::marker::PhantomData;

use burn::config::Config;
use burn::tensor::backend::AutodiffBackend;

use contrast_core::{AutodiffEncoder, EncoderConfig, Error, ViewMode, ViewPair};
use contrast_encoders::{ProjectedEncoder, ProjectionHeadConfig};
use contrast_losses::{GraphClLoss, GraphClLossConfig};

use contrast_parallel::{Peer, Reduce, gathered};

use crate::method::{HeadConfig, Method, MethodInfo, Paradigm, StepOutput, join_in_batch};

/// GraphCL (You et al., NeurIPS 2020, <https://arxiv.org/abs/2010.13902>): graph embeddings
/// trained to match across augmentations, with the other graphs of the batch as negatives.
///
/// As the authors' unsupervised graph-classification code: the two views are the graph itself
/// and one augmentation of it ([`ViewMode::PlainAndAugmented`]), each passed through the
/// encoder on its own (batch norm sees one view at a time), a two-layer head, and
/// [`GraphClLoss`] at temperature 0.2 (one direction, positive left out of the denominator).
/// [`symmetric_views`](Self::symmetric_views) trains on two augmentations instead, as the
/// paper's figure describes.
#[derive(Config, Debug)]
pub struct GraphClConfig {
    /// The projection head (its `input` must equal the backbone's output width).
    pub head: ProjectionHeadConfig,
    /// Temperature.
    pub loss: GraphClLossConfig,
    /// Two augmented views rather than the graph and one augmentation.
    #[config(default = false)]
    pub symmetric_views: bool,
}

impl GraphClConfig {
    /// GraphCL's shape for `backbone`: head `width -> width -> width` (linear, ReLU, linear),
    /// T = 0.2.
    pub fn for_backbone<C: EncoderConfig>(backbone: &C) -> Self {
        let width = backbone.output_dim();
        GraphClConfig::new(
            ProjectionHeadConfig::new(width, width, width),
            GraphClLossConfig::new(),
        )
    }

    /// The method.
    ///
    /// # Errors
    /// As [`HeadConfig::validate`].
    pub fn init(&self) -> Result<GraphCl, Error> {
        HeadConfig::validate(self)?;
        Ok(GraphCl {
            loss: self.loss.init(),
            peer: None,
            temperature: self.loss.temperature,
            symmetric: self.symmetric_views,
        })
    }
}

impl HeadConfig for GraphClConfig {
    fn head(&self) -> &ProjectionHeadConfig {
        &self.head
    }

    fn validate(&self) -> Result<(), Error> {
        self.loss.validate()
    }
}

/// GraphCL's training objective, see [`GraphClConfig`].
#[derive(Debug, Clone)]
pub struct GraphCl {
    loss: GraphClLoss,
    temperature: f64,
    symmetric: bool,
    /// The group whose embeddings are gathered as negatives, if any.
    peer: Option<Peer>,
}

impl<B, E> Method<B, ProjectedEncoder<B, E>> for GraphCl
where
    B: AutodiffBackend,
    E: AutodiffEncoder<B>,
{
    type Batch = ViewPair<E::Input>;
    type State = PhantomData<B>;
    type Counters = ();

    fn info(&self, batch_size: usize) -> MethodInfo {
        MethodInfo {
            name: "graphcl".into(),
            paradigm: Paradigm::InBatch,
            negatives_per_anchor: batch_size.saturating_sub(1),
            staleness: None,
            description: format!(
                "GraphCL: {}, cross-view InfoNCE without the positive in the denominator, \
                 temperature {}",
                if self.symmetric {
                    "two augmentations"
                } else {
                    "each graph against one augmentation of it"
                },
                self.temperature
            ),
        }
    }

    fn views(&self) -> ViewMode {
        if self.symmetric {
            ViewMode::TwoAugmented
        } else {
            ViewMode::PlainAndAugmented
        }
    }

    fn validate_batch(&self, batch_size: usize, _train_len: usize) -> Result<(), Error> {
        if batch_size < 2 {
            return Err(Error::invalid_config(
                "batch_size",
                batch_size,
                "GraphCL needs at least 2 graphs per batch (the others are the negatives)",
            ));
        }
        Ok(())
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
        let z1 = model.projection(batch.first);
        let z2 = model.projection(batch.second);
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
