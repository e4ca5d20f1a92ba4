use core::marker::PhantomData;

use burn::config::Config;
use burn::tensor::backend::AutodiffBackend;

use contrast_core::{AutodiffEncoder, EncoderConfig, Error, InstanceBatch, ViewPair, ViewTriplet};
use contrast_encoders::{ProjectedEncoder, ProjectionHeadConfig};
use contrast_losses::{SimCseLoss, SimCseLossConfig};

use contrast_parallel::{Peer, Reduce, gathered};

use crate::method::{HeadConfig, Method, MethodInfo, Paradigm, StepOutput, join_in_batch};
use crate::simclr::project_pair;

/// SimCSE (Gao et al., EMNLP 2021, <https://arxiv.org/abs/2104.08821>): sentence embeddings
/// trained with in-batch negatives.
///
/// Unsupervised ([`SimCse`]): the two views of a sentence are two passes through the encoder
/// with different dropout masks (the views trait delivers the same tokens twice; both go
/// through the network as one batch of `2N`, so every row draws its own mask, as in the
/// reference); each sentence's first view is contrasted with the second views of the batch,
/// temperature 0.05. Supervised ([`SupervisedSimCse`]): NLI triplets (sentence, entailment,
/// contradiction); the contradictions join the candidates as hard negatives (pairs without a
/// third column train with the entailments as positives only).
///
/// The head is SimCSE's `cls` pooler, one linear layer and tanh over the backbone's pooled
/// state, trained and then dropped: evaluation embeds with the backbone alone
/// (`cls_before_pooler` for a `[CLS]`-pooled BERT).
#[derive(Config, Debug)]
pub struct SimCseConfig {
    /// The head over the pooled state (its `input` must equal the backbone's output width).
    pub head: ProjectionHeadConfig,
    /// Temperature and (supervised) hard-negative weight.
    pub loss: SimCseLossConfig,
}

impl SimCseConfig {
    /// The paper's shape for `backbone`: a `width -> width` linear layer with tanh, T = 0.05.
    pub fn for_backbone<C: EncoderConfig>(backbone: &C) -> Self {
        let width = backbone.output_dim();
        SimCseConfig::new(
            ProjectionHeadConfig::new(width, width, width)
                .with_layers(1)
                .with_tanh(true),
            SimCseLossConfig::new(),
        )
    }

    /// Unsupervised SimCSE (dropout views).
    ///
    /// # Errors
    /// As [`HeadConfig::validate`].
    pub fn init(&self) -> Result<SimCse, Error> {
        HeadConfig::validate(self)?;
        Ok(SimCse {
            loss: self.loss.init(),
            peer: None,
            temperature: self.loss.temperature,
        })
    }

    /// Supervised SimCSE (NLI triplets).
    ///
    /// # Errors
    /// As [`HeadConfig::validate`].
    pub fn init_supervised(&self) -> Result<SupervisedSimCse, Error> {
        Ok(SupervisedSimCse {
            inner: self.init()?,
            hard_negative_weight: self.loss.hard_negative_weight,
        })
    }
}

impl HeadConfig for SimCseConfig {
    fn head(&self) -> &ProjectionHeadConfig {
        &self.head
    }

    fn validate(&self) -> Result<(), Error> {
        self.loss.validate()
    }
}

/// Unsupervised SimCSE, see [`SimCseConfig`].
#[derive(Debug, Clone)]
pub struct SimCse {
    loss: SimCseLoss,
    temperature: f64,
    /// The group whose embeddings are gathered as negatives, if any.
    peer: Option<Peer>,
}

impl<B, E> Method<B, ProjectedEncoder<B, E>> for SimCse
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
            name: "simcse".into(),
            paradigm: Paradigm::InBatch,
            negatives_per_anchor: batch_size.saturating_sub(1),
            staleness: None,
            description: format!(
                "unsupervised SimCSE: dropout views, InfoNCE over the batch's second views, \
                 temperature {}",
                self.temperature
            ),
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

/// Supervised SimCSE, see [`SimCseConfig`].
#[derive(Debug, Clone)]
pub struct SupervisedSimCse {
    inner: SimCse,
    hard_negative_weight: f64,
}

impl<B, E> Method<B, ProjectedEncoder<B, E>> for SupervisedSimCse
where
    B: AutodiffBackend,
    E: AutodiffEncoder<B>,
    E::Input: InstanceBatch,
{
    type Batch = ViewTriplet<E::Input>;
    type State = PhantomData<B>;
    type Counters = ();

    fn info(&self, batch_size: usize) -> MethodInfo {
        MethodInfo {
            name: "simcse-sup".into(),
            paradigm: Paradigm::InBatch,
            negatives_per_anchor: 2 * batch_size.saturating_sub(1) + 1,
            staleness: None,
            description: format!(
                "supervised SimCSE: entailments as positives, contradictions as hard negatives \
                 (weight {}), temperature {}",
                self.hard_negative_weight, self.inner.temperature
            ),
        }
    }

    fn join(&mut self, peer: &Peer, gather_negatives: bool) -> Result<Reduce, Error> {
        Ok(join_in_batch(&mut self.inner.peer, peer, gather_negatives))
    }

    fn step(
        &mut self,
        model: &ProjectedEncoder<B, E>,
        batch: Self::Batch,
        _indices: &[usize],
    ) -> StepOutput<B> {
        let n = batch.anchor.instances();
        let mut parts = vec![batch.anchor, batch.positive];
        parts.extend(batch.negative);
        let with_negatives = parts.len() == 3;
        let z = model.projection(E::Input::concat(parts));
        let (h, pos) = (z.clone().slice(0..n), z.clone().slice(n..2 * n));
        let p = self.inner.peer.as_ref();
        let (all_h, all_pos) = (gathered(p, h.clone()), gathered(p, pos.clone()));
        let loss = if with_negatives {
            let neg = gathered(p, z.slice(2 * n..3 * n));
            self.inner.loss.forward_supervised(all_h, all_pos, neg)
        } else {
            self.inner.loss.forward(all_h, all_pos)
        };
        StepOutput::new(loss, vec![h, pos])
    }

    fn state(&self) -> (PhantomData<B>, ()) {
        (PhantomData, ())
    }

    fn load_state(&mut self, _state: PhantomData<B>, _counters: ()) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Tensor;
    use contrast_core::testing::Flex;
    use contrast_core::{HostTokens, TokenBatch};
    use contrast_encoders::{BertConfig, BertPooling};

    fn sentences(device: &burn::tensor::Device<Flex>) -> TokenBatch<Flex> {
        let host = HostTokens {
            ids: vec![1, 5, 7, 2, 1, 9, 2, 0, 1, 4, 4, 2],
            type_ids: vec![0; 12],
            mask: vec![1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1],
            batch: 3,
            seq_len: 4,
            pad_id: 0,
        };
        TokenBatch::from_host(&host, device)
    }

    #[test]
    fn unsupervised_and_supervised_steps_give_finite_losses() {
        let device = Default::default();
        let bert = BertConfig::new(20)
            .with_hidden_size(8)
            .with_num_hidden_layers(1)
            .with_num_attention_heads(2)
            .with_intermediate_size(16)
            .with_max_position_embeddings(8)
            .with_pooling(BertPooling::Cls);
        let config = SimCseConfig::for_backbone(&bert);
        let model = config.init_model::<Flex, _>(&bert, &device).unwrap();
        let mut method = config.init().unwrap();
        let pair = ViewPair {
            first: sentences(&device),
            second: sentences(&device),
        };
        let out = Method::step(&mut method, &model, pair, &[0, 1, 2]);
        let loss: f32 = out.loss.clone().into_scalar();
        assert!(loss.is_finite() && loss > 0.0, "{loss}");
        assert_eq!(out.embeddings.dims(), [3, 16]);
        let info = <SimCse as Method<
            Flex,
            ProjectedEncoder<Flex, contrast_encoders::Bert<Flex>>,
        >>::info(&method, 64);
        assert_eq!(info.negatives_per_anchor, 63);

        let mut sup = config.init_supervised().unwrap();
        let triplet = ViewTriplet {
            anchor: sentences(&device),
            positive: sentences(&device),
            negative: Some(sentences(&device)),
        };
        let out = Method::step(&mut sup, &model, triplet, &[0, 1, 2]);
        let loss: f32 = out.loss.into_scalar();
        assert!(loss.is_finite() && loss > 0.0, "{loss}");
        let _: Tensor<Flex, 2> = out.embeddings;
    }
}
