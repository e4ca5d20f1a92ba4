use core::ops::Range;

use burn::module::{AutodiffModule, Module, ModuleDisplay};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{BasicOps, Tensor, TensorKind};

use crate::{Error, index_tensor};

/// A network that maps a batch of inputs to one embedding row per instance.
///
/// Images, token ids and graphs all become `[batch, dim]`; every loss, negative store and
/// sampler in `contrast` works on that shape, whatever the modality.
pub trait Encoder<B: Backend>: Module<B> + ModuleDisplay {
    /// One batch of the modality's input (an image tensor, token ids, a batched graph).
    type Input;

    /// Embeds a batch.
    ///
    /// # Shapes
    /// - output: `[batch, self.output_dim()]`
    fn embed(&self, input: Self::Input) -> Tensor<B, 2>;

    /// The width of the embedding rows.
    fn output_dim(&self) -> usize;
}

/// An [`Encoder`] that trains: an autodiff module whose inference twin (`valid()`) is an
/// encoder too. Every encoder built from Burn modules is one.
pub trait AutodiffEncoder<B: AutodiffBackend>:
    Encoder<B> + AutodiffModule<B, InnerModule: Encoder<B::InnerBackend>>
{
}

impl<B, E> AutodiffEncoder<B> for E
where
    B: AutodiffBackend,
    E: Encoder<B> + AutodiffModule<B>,
    E::InnerModule: Encoder<B::InnerBackend>,
{
}

/// An encoder that also shows the local features its global embedding summarises: the
/// positions of an intermediate feature map of an image, the tokens of a sentence. DIM's
/// local/global objective reads them.
pub trait LocalEncoder<B: Backend>: Encoder<B> {
    /// `(local, global)` from one pass: `local` is `[batch, positions, self.local_dim()]`,
    /// `global` is what [`Encoder::embed`] returns.
    fn embed_local(&self, input: Self::Input) -> (Tensor<B, 3>, Tensor<B, 2>);

    /// The width of the local features.
    fn local_dim(&self) -> usize;
}

/// The configuration of an [`Encoder`] family (ResNet, BERT, GIN): what a method config
/// receives to build its backbone on any backend.
pub trait EncoderConfig {
    /// The encoder it builds on backend `B`.
    type Encoder<B: Backend>: Encoder<B>;

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field.
    fn validate(&self) -> Result<(), Error>;

    /// Builds the encoder on `device`.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails.
    fn init<B: Backend>(&self, device: &B::Device) -> Self::Encoder<B>;

    /// The width of the encoder's embedding rows.
    fn output_dim(&self) -> usize;
}

/// A batch of instances on a device that methods can split, reorder and join without knowing
/// the modality: MoCo's shuffled batch norm reorders keys and splits them into groups, SimCLR
/// joins two views into one batch of `2N`.
///
/// Implemented for tensors (instances along dimension 0), [`TokenBatch`](crate::TokenBatch)
/// and [`GraphBatch`](crate::GraphBatch) (whole graphs).
pub trait InstanceBatch: Sized {
    /// Number of instances.
    fn instances(&self) -> usize;

    /// The instances `range`, in order.
    fn slice_instances(&self, range: Range<usize>) -> Self;

    /// The instances `order[0]`, `order[1]`, ... (a permutation or a selection).
    fn select_instances(&self, order: &[usize]) -> Self;

    /// The parts one after the other.
    ///
    /// # Panics
    /// If `parts` is empty or the parts do not fit together (different image sizes).
    fn concat(parts: Vec<Self>) -> Self;
}

impl<B: Backend, const D: usize, K: TensorKind<B> + BasicOps<B>> InstanceBatch for Tensor<B, D, K> {
    fn instances(&self) -> usize {
        self.dims()[0]
    }

    fn slice_instances(&self, range: Range<usize>) -> Self {
        self.clone().slice(range)
    }

    fn select_instances(&self, order: &[usize]) -> Self {
        self.clone()
            .select(0, index_tensor::<B>(order, &self.device()))
    }

    fn concat(parts: Vec<Self>) -> Self {
        Tensor::cat(parts, 0)
    }
}

/// A batch whose instances can be written as one row of numbers each and rebuilt from such
/// rows, possibly a different number of them: how data-parallel training moves instances
/// between peers, whose collective operation (an all-reduce) takes float matrices only. MoCo's
/// cross-device key shuffle gathers its key views that way.
///
/// Float tensors (an instance is its flattened values), [`TokenBatch`](crate::TokenBatch) (a
/// sentence is its tokens' id, segment and mask, interleaved) and
/// [`GraphBatch`](crate::GraphBatch) (a graph is its node and edge counts, its features, its
/// edges and their weights) can. Sentences and graphs are [`RAGGED`](Self::RAGGED): their rows
/// differ in width from peer to peer, and travel padded with zeros on the right to the widest,
/// which [`from_rows`](Self::from_rows) accepts. Int tensors would not survive the trip through
/// `f32` beyond 2^24 and keep the defaults (cannot); so do [`CrossModal`] and [`ViewTriplet`].
/// A batch type of one's own opts in to what needs the trait (MoCo's input) with an empty
/// `impl`.
pub trait InstanceRows<B: Backend>: InstanceBatch {
    /// Whether [`to_rows`](Self::to_rows) and [`from_rows`](Self::from_rows) serve this type.
    const AS_ROWS: bool = false;

    /// Whether rows may differ in width between batches (and so between peers): their widest
    /// must then be agreed before they travel. `false` for tensors, whose rows are as wide as
    /// an instance's values.
    const RAGGED: bool = false;

    /// One row per instance, `[instances, width]`; `None` where the type cannot be written as
    /// rows (`AS_ROWS` false).
    fn to_rows(&self) -> Option<Tensor<B, 2>> {
        None
    }

    /// The batch that `rows` describe: rows written by [`to_rows`](Self::to_rows) of batches
    /// like `like` (same instance shape, feature width, padding id), any number of them, and
    /// for a [`RAGGED`](Self::RAGGED) type padded with zeros on the right to a common width.
    /// `None` where the type cannot be written as rows.
    fn from_rows(rows: Tensor<B, 2>, like: &Self) -> Option<Self> {
        let _ = (rows, like);
        None
    }
}

impl<B: Backend, const D: usize> InstanceRows<B> for Tensor<B, D, burn::tensor::Int> {}
impl<B: Backend, const D: usize> InstanceRows<B> for Tensor<B, D, burn::tensor::Bool> {}
impl<B: Backend, X: InstanceBatch, Y: InstanceBatch> InstanceRows<B> for CrossModal<X, Y> {}
impl<B: Backend, I: InstanceBatch> InstanceRows<B> for ViewTriplet<I> {}

impl<B: Backend, const D: usize> InstanceRows<B> for Tensor<B, D> {
    const AS_ROWS: bool = true;

    fn to_rows(&self) -> Option<Tensor<B, 2>> {
        let dims = self.dims();
        Some(
            self.clone()
                .reshape([dims[0], dims[1..].iter().product::<usize>()]),
        )
    }

    /// # Panics
    /// If the rows are not as wide as an instance of `like`.
    fn from_rows(rows: Tensor<B, 2>, like: &Self) -> Option<Self> {
        let mut dims = like.dims();
        dims[0] = rows.dims()[0];
        Some(rows.reshape(dims))
    }
}

/// Two views of each instance of a batch, on a device: the training input of the two-view
/// methods, whatever the modality.
#[derive(Debug, Clone)]
pub struct ViewPair<I> {
    /// The first view of every instance.
    pub first: I,
    /// The second view, instances in the same order.
    pub second: I,
}

/// One instance seen in two modalities, on a device (an image and its caption): the training
/// input of cross-modal methods such as CLIP. Unlike [`ViewPair`], the two sides have their
/// own types and their own encoders.
#[derive(Debug, Clone)]
pub struct CrossModal<X, Y> {
    /// The first modality of every instance (CLIP: the images).
    pub first: X,
    /// The second modality, instances in the same order (CLIP: the captions).
    pub second: Y,
}

impl<X: InstanceBatch, Y: InstanceBatch> InstanceBatch for CrossModal<X, Y> {
    fn instances(&self) -> usize {
        self.first.instances()
    }

    fn slice_instances(&self, range: Range<usize>) -> Self {
        CrossModal {
            first: self.first.slice_instances(range.clone()),
            second: self.second.slice_instances(range),
        }
    }

    fn select_instances(&self, order: &[usize]) -> Self {
        CrossModal {
            first: self.first.select_instances(order),
            second: self.second.select_instances(order),
        }
    }

    fn concat(parts: Vec<Self>) -> Self {
        let (first, second) = parts.into_iter().map(|p| (p.first, p.second)).unzip();
        CrossModal {
            first: X::concat(first),
            second: Y::concat(second),
        }
    }
}

/// Three views of each instance of a batch, on a device: an anchor, a positive and, when the
/// data has one, a hard negative (supervised SimCSE's NLI triplets: sentence, entailment,
/// contradiction).
#[derive(Debug, Clone)]
pub struct ViewTriplet<I> {
    /// The anchors.
    pub anchor: I,
    /// Each anchor's positive, same order.
    pub positive: I,
    /// Each anchor's hard negative, same order; `None` for pair data.
    pub negative: Option<I>,
}

impl<I: InstanceBatch> InstanceBatch for ViewTriplet<I> {
    fn instances(&self) -> usize {
        self.anchor.instances()
    }

    fn slice_instances(&self, range: Range<usize>) -> Self {
        ViewTriplet {
            anchor: self.anchor.slice_instances(range.clone()),
            positive: self.positive.slice_instances(range.clone()),
            negative: self.negative.as_ref().map(|n| n.slice_instances(range)),
        }
    }

    fn select_instances(&self, order: &[usize]) -> Self {
        ViewTriplet {
            anchor: self.anchor.select_instances(order),
            positive: self.positive.select_instances(order),
            negative: self.negative.as_ref().map(|n| n.select_instances(order)),
        }
    }

    /// Joins the parts column by column.
    ///
    /// # Panics
    /// If `parts` is empty, or some parts have negatives and others do not.
    fn concat(parts: Vec<Self>) -> Self {
        let with_negatives = parts.iter().filter(|p| p.negative.is_some()).count();
        assert!(
            with_negatives == 0 || with_negatives == parts.len(),
            "ViewTriplet::concat: {with_negatives} of {} parts have negatives",
            parts.len()
        );
        let (mut anchor, mut positive, mut negative) = (Vec::new(), Vec::new(), Vec::new());
        for p in parts {
            anchor.push(p.anchor);
            positive.push(p.positive);
            negative.extend(p.negative);
        }
        ViewTriplet {
            anchor: I::concat(anchor),
            positive: I::concat(positive),
            negative: (!negative.is_empty()).then(|| I::concat(negative)),
        }
    }
}
