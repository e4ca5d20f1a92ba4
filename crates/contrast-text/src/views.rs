//! The text modality's [`Views`]: SimCSE's unsupervised pairs (a sentence twice) and its
//! supervised triplets (anchor, entailment, contradiction).

use burn::tensor::backend::Backend;
use contrast_core::{HostTokens, TokenBatch, ViewMode, ViewPair, ViewTriplet, Views};

use crate::{TokenizedCorpus, TokenizedTriplets};

/// Unsupervised SimCSE: each sentence is its own positive. Both views are the same tokens;
/// the encoder's dropout, applied independently to the two copies, makes them differ.
///
/// The corpus is tokenised once beforehand ([`TextTokenizer::encode_corpus`]), so making a
/// batch only copies and pads ids: it cannot fail, and it is the same for every epoch and
/// either [`ViewMode`]. How many sentences were cut to the tokenizer's `max_len` is
/// [`TokenizedCorpus::truncated`].
///
/// [`TextTokenizer::encode_corpus`]: crate::TextTokenizer::encode_corpus
#[derive(Debug, Clone, Copy)]
pub struct SentenceViews<'a> {
    /// The tokenised sentences.
    pub tokens: &'a TokenizedCorpus,
}

impl<'a> SentenceViews<'a> {
    /// The views of a tokenised corpus.
    pub fn new(tokens: &'a TokenizedCorpus) -> Self {
        SentenceViews { tokens }
    }

    /// Sentences cut to the tokenizer's `max_len`.
    pub fn truncated(&self) -> usize {
        self.tokens.truncated()
    }
}

impl Views for SentenceViews<'_> {
    type Host = HostTokens;
    type Batch<B: Backend> = ViewPair<TokenBatch<B>>;
    type Input<B: Backend> = TokenBatch<B>;

    fn len(&self) -> usize {
        self.tokens.len()
    }

    /// The sentences `indices`, padded to the longest: one copy, duplicated on the device.
    ///
    /// # Panics
    /// If an index is not below [`len`](Views::len).
    fn host_views(&self, _mode: ViewMode, indices: &[usize], _epoch: usize) -> HostTokens {
        self.tokens.batch(indices)
    }

    fn to_device<B: Backend>(
        &self,
        host: HostTokens,
        device: &B::Device,
    ) -> ViewPair<TokenBatch<B>> {
        let tokens = TokenBatch::from_host(&host, device);
        ViewPair {
            first: tokens.clone(),
            second: tokens,
        }
    }

    /// # Panics
    /// If an index is not below [`len`](Views::len).
    fn plain<B: Backend>(&self, indices: &[usize], device: &B::Device) -> TokenBatch<B> {
        TokenBatch::from_host(&self.tokens.batch(indices), device)
    }
}

/// A batch of triplets on the host: row `i` of each part belongs to the same instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTriplet {
    /// The anchors.
    pub anchor: HostTokens,
    /// Their positives.
    pub positive: HostTokens,
    /// Their hard negatives, when the data has them.
    pub negative: Option<HostTokens>,
}

/// Supervised SimCSE: each anchor's positive is its entailed sentence, and its hard negative
/// (when the data has a third column) the contradicted one. [`plain`](Views::plain) embeds
/// the anchors.
///
/// Like [`SentenceViews`], batches are cut from text tokenised beforehand
/// ([`TextTokenizer::encode_triplets`]); [`TokenizedTriplets::truncated`] counts the cut
/// sentences.
///
/// [`TextTokenizer::encode_triplets`]: crate::TextTokenizer::encode_triplets
#[derive(Debug, Clone, Copy)]
pub struct TripletViews<'a> {
    /// The tokenised triplets.
    pub tokens: &'a TokenizedTriplets,
}

impl<'a> TripletViews<'a> {
    /// The views of tokenised triplets (or pairs).
    pub fn new(tokens: &'a TokenizedTriplets) -> Self {
        TripletViews { tokens }
    }

    /// Sentences cut to the tokenizer's `max_len`, over all columns.
    pub fn truncated(&self) -> usize {
        self.tokens.truncated()
    }
}

impl Views for TripletViews<'_> {
    type Host = HostTriplet;
    type Batch<B: Backend> = ViewTriplet<TokenBatch<B>>;
    type Input<B: Backend> = TokenBatch<B>;

    fn len(&self) -> usize {
        self.tokens.len()
    }

    /// # Panics
    /// If an index is not below [`len`](Views::len).
    fn host_views(&self, _mode: ViewMode, indices: &[usize], _epoch: usize) -> HostTriplet {
        let t = self.tokens;
        HostTriplet {
            anchor: t.anchor.batch(indices),
            positive: t.positive.batch(indices),
            negative: t.negative.as_ref().map(|n| n.batch(indices)),
        }
    }

    /// Each part padded to its own longest sentence.
    fn to_device<B: Backend>(
        &self,
        host: HostTriplet,
        device: &B::Device,
    ) -> ViewTriplet<TokenBatch<B>> {
        ViewTriplet {
            anchor: TokenBatch::from_host(&host.anchor, device),
            positive: TokenBatch::from_host(&host.positive, device),
            negative: host
                .negative
                .as_ref()
                .map(|n| TokenBatch::from_host(n, device)),
        }
    }

    /// # Panics
    /// If an index is not below [`len`](Views::len).
    fn plain<B: Backend>(&self, indices: &[usize], device: &B::Device) -> TokenBatch<B> {
        TokenBatch::from_host(&self.tokens.anchor.batch(indices), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::tests::tokenizer;
    use crate::{TextTokenizer, Triplets};
    use contrast_core::InstanceBatch;
    use contrast_core::testing::Flex;

    fn ids<B: Backend>(t: &TokenBatch<B>) -> Vec<i64> {
        t.ids.clone().into_data().convert::<i64>().to_vec().unwrap()
    }

    #[test]
    fn sentence_views_are_two_copies_of_the_same_tokens() {
        let t: TextTokenizer = tokenizer().with_max_len(4).unwrap();
        let corpus = t
            .encode_corpus(&["the cat", "the cat sat on the mat", "mat"])
            .unwrap();
        let views = SentenceViews::new(&corpus);
        assert_eq!((views.len(), views.truncated()), (3, 1));
        let device = Default::default();
        let host = views.host_views(ViewMode::TwoAugmented, &[2, 0], 7);
        assert_eq!(
            host,
            views.host_views(ViewMode::PlainAndAugmented, &[2, 0], 0)
        );
        let pair = views.to_device::<Flex>(host, &device);
        assert_eq!(pair.first.dims(), [2, 4]);
        assert_eq!(ids(&pair.first), vec![2, 9, 3, 0, 2, 5, 6, 3]);
        assert_eq!(ids(&pair.first), ids(&pair.second));
        let plain = views.plain::<Flex>(&[1], &device);
        assert_eq!(ids(&plain), vec![2, 5, 6, 3]);
        assert!(views.labels().is_none());
    }

    #[test]
    fn triplet_views_keep_rows_aligned() {
        let t = tokenizer();
        let triplets = Triplets {
            anchors: vec!["the cat".into(), "mat".into()],
            positives: vec!["cat".into(), "the mat sat".into()],
            negatives: Some(vec!["on".into(), "the".into()]),
        };
        let tokens = t.encode_triplets(&triplets).unwrap();
        let views = TripletViews::new(&tokens);
        assert_eq!((views.len(), views.truncated()), (2, 0));
        let device = Default::default();
        let batch =
            views.to_device::<Flex>(views.host_views(ViewMode::default(), &[1, 0], 0), &device);
        assert_eq!(ids(&batch.anchor), vec![2, 9, 3, 0, 2, 5, 6, 3]);
        assert_eq!(ids(&batch.positive), vec![2, 5, 9, 7, 3, 2, 6, 3, 0, 0]);
        let neg = batch.negative.as_ref().unwrap();
        assert_eq!(ids(neg), vec![2, 5, 3, 2, 8, 3]);
        assert_eq!(ids(&views.plain::<Flex>(&[0], &device)), vec![2, 5, 6, 3]);

        let joined = ViewTriplet::concat(vec![
            batch.slice_instances(1..2),
            batch.slice_instances(0..1),
        ]);
        assert_eq!(joined.instances(), 2);
        assert_eq!(ids(&joined.anchor), vec![2, 5, 6, 3, 2, 9, 3, 0]);
        let picked = joined.select_instances(&[1]);
        assert_eq!(ids(picked.negative.as_ref().unwrap()), vec![2, 5, 3]);

        let pairs = Triplets {
            negatives: None,
            ..triplets
        };
        let tokens = t.encode_triplets(&pairs).unwrap();
        let host = TripletViews::new(&tokens).host_views(ViewMode::default(), &[0], 0);
        assert!(host.negative.is_none());
    }
}
