//! BERT (Devlin et al., NAACL 2019): the encoder that SimCSE and sentence-transformers train.

use crate::dense::dense;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig,
    Linear, LinearConfig,
};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use contrast_core::{Encoder, EncoderConfig, Error, LocalEncoder, TokenBatch};
use contrast_kernels::Activation::{Gelu, Identity};
use contrast_kernels::{is_host_backend, try_add_layer_norm, try_attention};
use serde::{Deserialize, Serialize};

/// How a sentence's token states become one embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BertPooling {
    /// The `[CLS]` token's last hidden state (SimCSE's `cls_before_pooler`; SimCSE's `cls` is
    /// this followed by a one-layer tanh head, see `ProjectionHeadConfig::tanh`).
    #[default]
    Cls,
    /// The mean of the real (unpadded) tokens' last hidden states (sentence-transformers).
    Mean,
}

impl BertPooling {
    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BertPooling::Cls => "cls",
            BertPooling::Mean => "mean",
        }
    }
}

/// Configuration of [`Bert`]: the fields of a Hugging Face `config.json` that the encoder uses
/// (same names), plus the pooling.
#[derive(Config, Debug, PartialEq)]
pub struct BertConfig {
    /// Number of token ids.
    pub vocab_size: usize,
    /// Width of the hidden states.
    #[config(default = 768)]
    pub hidden_size: usize,
    /// Number of encoder layers.
    #[config(default = 12)]
    pub num_hidden_layers: usize,
    /// Number of attention heads; divides `hidden_size`.
    #[config(default = 12)]
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    #[config(default = 3072)]
    pub intermediate_size: usize,
    /// Longest sequence the position embeddings cover.
    #[config(default = 512)]
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    #[config(default = 2)]
    pub type_vocab_size: usize,
    /// Layer-norm epsilon (BERT: 1e-12, not Burn's default 1e-5).
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Dropout after the embeddings, the attention output and the feed-forward output.
    #[config(default = 0.1)]
    pub hidden_dropout_prob: f64,
    /// Dropout on the attention probabilities.
    #[config(default = 0.1)]
    pub attention_probs_dropout_prob: f64,
    /// How token states become a sentence embedding.
    #[config(default = "BertPooling::Cls")]
    pub pooling: BertPooling,
}

impl BertConfig {
    /// The architecture of all-MiniLM-L6-v2 (6 layers, 384 wide, 12 heads), for tests and
    /// benchmarks without the checkpoint.
    pub fn mini_lm_l6() -> Self {
        BertConfig::new(30522)
            .with_hidden_size(384)
            .with_num_hidden_layers(6)
            .with_intermediate_size(1536)
            .with_pooling(BertPooling::Mean)
    }

    /// One line for reports.
    pub fn describe(&self) -> String {
        format!(
            "BERT, {} layers, hidden {}, {} heads, {} pooling",
            self.num_hidden_layers,
            self.hidden_size,
            self.num_attention_heads,
            self.pooling.name()
        )
    }
}

impl EncoderConfig for BertConfig {
    type Encoder<B: Backend> = Bert<B>;

    fn validate(&self) -> Result<(), Error> {
        for (field, v) in [
            ("bert.vocab_size", self.vocab_size),
            ("bert.hidden_size", self.hidden_size),
            ("bert.num_hidden_layers", self.num_hidden_layers),
            ("bert.num_attention_heads", self.num_attention_heads),
            ("bert.intermediate_size", self.intermediate_size),
            ("bert.max_position_embeddings", self.max_position_embeddings),
            ("bert.type_vocab_size", self.type_vocab_size),
        ] {
            if v == 0 {
                return Err(Error::invalid_config(field, 0, "must be at least 1"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(Error::invalid_config(
                "bert.num_attention_heads",
                self.num_attention_heads,
                format!("must divide hidden_size {}", self.hidden_size),
            ));
        }
        contrast_core::ensure_positive("bert.layer_norm_eps", self.layer_norm_eps)?;
        for (field, p) in [
            ("bert.hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "bert.attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::invalid_config(field, p, "must be in [0, 1)"));
            }
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device) -> Bert<B> {
        if let Err(e) = self.validate() {
            panic!("BertConfig::init: {e}");
        }
        // BERT's initialisation: normal(0, 0.02) weights, zero biases, unit layer norms.
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let linear = |i: usize, o: usize| {
            LinearConfig::new(i, o)
                .with_initializer(normal.clone())
                .init(device)
        };
        let embedding = |n: usize| {
            EmbeddingConfig::new(n, self.hidden_size)
                .with_initializer(normal.clone())
                .init(device)
        };
        let norm = || {
            LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let hidden_dropout = DropoutConfig::new(self.hidden_dropout_prob).init();
        let h = self.hidden_size;
        let layer = (0..self.num_hidden_layers)
            .map(|_| BertLayer {
                query: linear(h, h),
                key: linear(h, h),
                value: linear(h, h),
                attention_output: linear(h, h),
                attention_norm: norm(),
                intermediate: linear(h, self.intermediate_size),
                output: linear(self.intermediate_size, h),
                output_norm: norm(),
                dropout: hidden_dropout.clone(),
                attention_dropout: DropoutConfig::new(self.attention_probs_dropout_prob).init(),
                heads: self.num_attention_heads,
                eps: self.layer_norm_eps,
            })
            .collect();
        crate::init::materialize(Bert {
            embeddings: BertEmbeddings {
                word_embeddings: embedding(self.vocab_size),
                position_embeddings: embedding(self.max_position_embeddings),
                token_type_embeddings: embedding(self.type_vocab_size),
                layer_norm: norm(),
                dropout: hidden_dropout,
            },
            encoder: BertStack { layer },
            hidden: h,
            mean_pooling: self.pooling == BertPooling::Mean,
        })
    }

    fn output_dim(&self) -> usize {
        self.hidden_size
    }
}

/// Word, position and token-type embeddings, summed and layer-normalised.
#[derive(Module, Debug)]
pub struct BertEmbeddings<B: Backend> {
    word_embeddings: Embedding<B>,
    position_embeddings: Embedding<B>,
    token_type_embeddings: Embedding<B>,
    layer_norm: LayerNorm<B>,
    dropout: Dropout,
}

/// The encoder layers (a struct of its own so that parameter paths read `encoder.layer.N`, as
/// in Hugging Face checkpoints).
#[derive(Module, Debug)]
pub struct BertStack<B: Backend> {
    layer: Vec<BertLayer<B>>,
}

/// `norm(dropout(a) + x)` on the add & norm host kernel with `norm`'s weights; `None` where
/// the kernel does not serve the backend or `norm` has no bias.
fn host_add_norm<B: Backend>(
    norm: &LayerNorm<B>,
    a: &Tensor<B, 2>,
    x: &Tensor<B, 2>,
    eps: f64,
    dropout: f64,
) -> Option<Tensor<B, 2>> {
    let beta = norm.beta.as_ref()?.val();
    try_add_layer_norm(a, x, &norm.gamma.val(), &beta, eps, dropout)
}

/// One post-LN encoder layer: multi-head self-attention and a GELU feed-forward network, each
/// followed by dropout, a residual connection and layer norm.
#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    query: Linear<B>,
    key: Linear<B>,
    value: Linear<B>,
    attention_output: Linear<B>,
    attention_norm: LayerNorm<B>,
    intermediate: Linear<B>,
    output: Linear<B>,
    output_norm: LayerNorm<B>,
    dropout: Dropout,
    attention_dropout: Dropout,
    heads: usize,
    /// The layer norms' epsilon (for the host kernel; the `LayerNorm`s hold it too).
    eps: f64,
}

/// Added to the attention scores of padding keys: far below any real score, so that their
/// softmax weight is exactly zero in `f32`, yet finite (no `inf - inf` on fully masked rows).
const MASKED_SCORE: f32 = -1.0e9;

impl<B: Backend> BertLayer<B> {
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`; `key_bias`: `[batch, 1, 1, seq]` (0 or [`MASKED_SCORE`])
    fn forward(&self, x: Tensor<B, 3>, key_bias: Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, seq, hidden] = x.dims();
        let x = x.reshape([batch * seq, hidden]);
        if is_host_backend::<B>()
            && let Some(y) = self.forward_host(&x, &key_bias.clone().reshape([batch, seq]))
        {
            return y.reshape([batch, seq, hidden]);
        }
        self.forward_generic(x, key_bias, batch, seq)
            .reshape([batch, seq, hidden])
    }

    /// The layer on `contrast-kernels`' fused host kernels (attention per sequence and head,
    /// dropout + residual + layer norm in one pass, linears with their bias and the
    /// feed-forward GELU in cache), multi-threaded; `None` when they do not serve `B` or the
    /// dtype.
    fn forward_host(&self, x: &Tensor<B, 2>, key_bias: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
        let q = dense(&self.query, x.clone(), Identity);
        let k = dense(&self.key, x.clone(), Identity);
        let v = dense(&self.value, x.clone(), Identity);
        let context = try_attention(
            &q,
            &k,
            &v,
            key_bias,
            self.heads,
            self.attention_dropout.prob,
        )?;
        let attended = dense(&self.attention_output, context, Identity);
        let norm = |n: &LayerNorm<B>, a: &Tensor<B, 2>, x: &Tensor<B, 2>| {
            host_add_norm(n, a, x, self.eps, self.dropout.prob)
        };
        let x = norm(&self.attention_norm, &attended, x)?;
        let inner = dense(&self.intermediate, x.clone(), Gelu);
        let out = dense(&self.output, inner, Identity);
        norm(&self.output_norm, &out, &x)
    }

    /// The layer on Burn's tensor operations (any backend).
    fn forward_generic(
        &self,
        x: Tensor<B, 2>,
        key_bias: Tensor<B, 4>,
        batch: usize,
        seq: usize,
    ) -> Tensor<B, 2> {
        let [_, hidden] = x.dims();
        let head_dim = hidden / self.heads;
        // Linear layers on `[batch * seq, hidden]`: one matrix product each, where a 3-D input
        // would broadcast the weight over the batch.
        let split = |t: Tensor<B, 2>| {
            t.reshape([batch, seq, self.heads, head_dim])
                .swap_dims(1, 2)
        };
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x.clone()));
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .div_scalar((head_dim as f64).sqrt())
            + key_bias;
        let probs = self.attention_dropout.forward(softmax(scores, 3));
        let context = probs
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch * seq, hidden]);
        let attended = self.dropout.forward(self.attention_output.forward(context));
        let x = self.attention_norm.forward(attended + x);
        let inner = gelu(self.intermediate.forward(x.clone()));
        let out = self.dropout.forward(self.output.forward(inner));
        self.output_norm.forward(out + x)
    }
}

/// A BERT encoder over [`TokenBatch`]es: embeddings, post-LN transformer layers and a pooling
/// ([`BertPooling`]). Dropout is active only on an autodiff backend (training); the
/// `valid()` twin that evaluation uses is deterministic.
///
/// Parameter paths mirror Hugging Face's (`embeddings.word_embeddings`, `encoder.layer.N`), so
/// that [`load_bert`](crate::load_bert) and [`save_bert`](crate::save_bert) only rename the
/// attention and norm entries.
#[derive(Module, Debug)]
pub struct Bert<B: Backend> {
    embeddings: BertEmbeddings<B>,
    encoder: BertStack<B>,
    hidden: usize,
    mean_pooling: bool,
}

impl<B: Backend> Bert<B> {
    /// The last layer's hidden states.
    ///
    /// # Shapes
    /// - output: `[batch, seq_len, hidden]`
    ///
    /// # Panics
    /// If the batch is longer than `max_position_embeddings` or names an id outside the
    /// vocabulary (Burn's embedding lookup).
    pub fn hidden_states(&self, input: &TokenBatch<B>) -> Tensor<B, 3> {
        let [batch, seq] = input.dims();
        let device = input.ids.device();
        let e = &self.embeddings;
        let positions = Tensor::<B, 1, Int>::arange(0..seq as i64, &device).reshape([1, seq]);
        let words = e.word_embeddings.forward(input.ids.clone());
        let others = e.position_embeddings.forward(positions)
            + e.token_type_embeddings.forward(input.type_ids.clone());
        let mut x = e.dropout.forward(self.embedding_norm(words, others));
        let key_bias = (input.mask.clone().float().neg() + 1.0)
            .mul_scalar(MASKED_SCORE)
            .reshape([batch, 1, 1, seq]);
        for layer in &self.encoder.layer {
            x = layer.forward(x, key_bias.clone());
        }
        x
    }

    /// The embeddings' layer norm of `words + others` (`[batch, seq, hidden]` each): on the
    /// host kernel that adds and normalises in one pass where it serves, else Burn's
    /// operations. Every layer norm of a BERT has the config's epsilon; the embeddings' own
    /// `LayerNorm` keeps it private, so it is read from the first encoder layer.
    fn embedding_norm(&self, words: Tensor<B, 3>, others: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, seq, hidden] = words.dims();
        let norm = &self.embeddings.layer_norm;
        let host = || {
            let eps = self.encoder.layer.first()?.eps;
            let rows = |t: &Tensor<B, 3>| t.clone().reshape([batch * seq, hidden]);
            host_add_norm(norm, &rows(&words), &rows(&others), eps, 0.0)
        };
        match host() {
            Some(y) => y.reshape([batch, seq, hidden]),
            None => norm.forward(words + others),
        }
    }

    /// Pools hidden states into one row per sentence.
    fn pool(&self, states: Tensor<B, 3>, mask: &Tensor<B, 2, Int>) -> Tensor<B, 2> {
        let [batch, seq, hidden] = states.dims();
        if self.mean_pooling {
            let mask = mask.clone().float().reshape([batch, seq, 1]);
            let count = mask.clone().sum_dim(1).clamp_min(1e-9).reshape([batch, 1]);
            (states * mask).sum_dim(1).reshape([batch, hidden]) / count
        } else {
            states.slice([0..batch, 0..1]).reshape([batch, hidden])
        }
    }

    /// The pooling this encoder applies.
    pub fn pooling(&self) -> BertPooling {
        if self.mean_pooling {
            BertPooling::Mean
        } else {
            BertPooling::Cls
        }
    }
}

impl<B: Backend> Encoder<B> for Bert<B> {
    type Input = TokenBatch<B>;

    fn embed(&self, input: TokenBatch<B>) -> Tensor<B, 2> {
        let states = self.hidden_states(&input);
        self.pool(states, &input.mask)
    }

    fn output_dim(&self) -> usize {
        self.hidden
    }
}

impl<B: Backend> LocalEncoder<B> for Bert<B> {
    /// Token states as local features (padding positions included: a local objective should
    /// weight them by the batch's mask).
    fn embed_local(&self, input: TokenBatch<B>) -> (Tensor<B, 3>, Tensor<B, 2>) {
        let states = self.hidden_states(&input);
        let pooled = self.pool(states.clone(), &input.mask);
        (states, pooled)
    }

    fn local_dim(&self) -> usize {
        self.hidden
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::AutodiffModule;
    use burn::tensor::backend::AutodiffBackend;
    use contrast_core::testing::Flex;
    use contrast_core::{HostTokens, to_vec_f32};

    fn tiny(pooling: BertPooling) -> BertConfig {
        BertConfig::new(50)
            .with_hidden_size(16)
            .with_num_hidden_layers(2)
            .with_num_attention_heads(4)
            .with_intermediate_size(32)
            .with_max_position_embeddings(12)
            .with_pooling(pooling)
    }

    fn tokens(rows: &[&[u32]]) -> HostTokens {
        let seq_len = rows.iter().map(|r| r.len()).max().unwrap();
        let mut h = HostTokens {
            ids: vec![],
            type_ids: vec![],
            mask: vec![],
            batch: rows.len(),
            seq_len,
            pad_id: 0,
        };
        for r in rows {
            for j in 0..seq_len {
                h.ids.push(r.get(j).copied().unwrap_or(0));
                h.type_ids.push(0);
                h.mask.push(u8::from(j < r.len()));
            }
        }
        h
    }

    #[test]
    fn padding_changes_nothing_for_either_pooling() {
        let device = Default::default();
        for pooling in [BertPooling::Cls, BertPooling::Mean] {
            let bert = tiny(pooling).init::<Flex>(&device).valid();
            let short = TokenBatch::from_host(&tokens(&[&[1, 7, 9, 2]]), &device);
            let padded = short.clone().pad_to(8);
            let a = to_vec_f32(bert.embed(short));
            let b = to_vec_f32(bert.embed(padded));
            assert_eq!(a.len(), 16);
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-5, "{pooling:?}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn dropout_makes_two_training_passes_differ_and_evaluation_is_deterministic() {
        let device = Default::default();
        let bert = tiny(BertPooling::Cls).init::<Flex>(&device);
        let batch = || TokenBatch::from_host(&tokens(&[&[1, 4, 5, 2], &[1, 3, 2]]), &device);
        let first = to_vec_f32(bert.embed(batch()));
        let second = to_vec_f32(bert.embed(batch()));
        assert_ne!(first, second);
        let valid = bert.valid();
        let inner_batch = |b: TokenBatch<Flex>| TokenBatch {
            ids: b.ids.inner(),
            type_ids: b.type_ids.inner(),
            mask: b.mask.inner(),
            pad_id: b.pad_id,
        };
        let x = to_vec_f32(valid.embed(inner_batch(batch())));
        let y = to_vec_f32(valid.embed(inner_batch(batch())));
        assert_eq!(x, y);
    }

    /// The host kernels (attention, add & norm, dense layers with GELU, the embeddings' norm)
    /// against Burn's operations on the same weights: `Autodiff<Flex, BalancedCheckpointing>`
    /// is not served by the host kernels, so it runs the generic layer.
    #[test]
    fn host_kernels_and_burn_operations_compute_the_same_network() {
        use burn::backend::autodiff::Autodiff;
        use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
        type Reference = Autodiff<burn::backend::Flex, BalancedCheckpointing>;
        assert!(is_host_backend::<Flex>() && !is_host_backend::<Reference>());
        bert_matches_the_host_kernels::<Reference>(&Default::default());
    }

    /// BERT on `B` computes what it computes on flex's host kernels, dropout off: the mean-pooled
    /// embeddings of sentences of three lengths, and the gradients of the word embeddings, three
    /// weights of the first layer and the embeddings' layer norm.
    fn bert_matches_the_host_kernels<B: AutodiffBackend>(device: &B::Device) {
        use burn::module::Param;
        use burn::tensor::TensorData;
        use contrast_core::testing::{assert_close, carry_over};
        let cfg = tiny(BertPooling::Mean)
            .with_hidden_dropout_prob(0.0)
            .with_attention_probs_dropout_prob(0.0);
        let host_device = Default::default();
        let host = cfg.init::<Flex>(&host_device);
        let other = carry_over(host.clone(), cfg.init::<B>(device), device);
        let rows: &[&[u32]] = &[&[1, 4, 5, 2], &[1, 3, 2], &[1, 9, 8, 7, 6, 2]];
        let ya = host.embed(TokenBatch::from_host(&tokens(rows), &host_device));
        let yb = other.embed(TokenBatch::from_host(&tokens(rows), device));
        assert_close(&to_vec_f32(yb.clone()), &to_vec_f32(ya.clone()), 1e-5);
        let probe: Vec<f32> = (0..3 * 16).map(|i| (i as f32 * 0.37).sin()).collect();
        let probe = TensorData::new(probe, [3, 16]);
        let ga = (ya * Tensor::from_data(probe.clone(), &host_device))
            .sum()
            .backward();
        let gb = (yb * Tensor::from_data(probe, device)).sum().backward();
        let grad = |p: &Param<Tensor<Flex, 2>>| to_vec_f32(p.grad(&ga).unwrap());
        let grad_other = |p: &Param<Tensor<B, 2>>| to_vec_f32(p.grad(&gb).unwrap());
        let (la, lb) = (&host.encoder.layer[0], &other.encoder.layer[0]);
        for (a, b) in [
            (
                &host.embeddings.word_embeddings.weight,
                &other.embeddings.word_embeddings.weight,
            ),
            (&la.query.weight, &lb.query.weight),
            (&la.intermediate.weight, &lb.intermediate.weight),
            (&la.output.weight, &lb.output.weight),
        ] {
            assert_close(&grad_other(b), &grad(a), 1e-4);
        }
        let gamma = |n: &LayerNorm<Flex>| to_vec_f32(n.gamma.grad(&ga).unwrap());
        let gamma_other = |n: &LayerNorm<B>| to_vec_f32(n.gamma.grad(&gb).unwrap());
        assert_close(
            &gamma_other(&other.embeddings.layer_norm),
            &gamma(&host.embeddings.layer_norm),
            1e-4,
        );
    }

    contrast_core::backend_tests!(bert_matches_the_host_kernels);

    #[test]
    fn config_errors_name_the_field() {
        let err = tiny(BertPooling::Cls)
            .with_num_attention_heads(5)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("num_attention_heads"), "{err}");
        let err = tiny(BertPooling::Cls)
            .with_hidden_dropout_prob(1.0)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("hidden_dropout_prob"), "{err}");
    }
}
