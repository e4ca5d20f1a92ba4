use core::marker::PhantomData;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::{AutodiffBackend, Backend};

use contrast_core::{DenseGraphViews, Encoder, EncoderConfig, Error};
use contrast_encoders::{BilinearScore, BilinearScoreConfig, Gcn, GcnConfig};
use contrast_losses::discriminator_loss;
use contrast_parallel::{Peer, Reduce};

use crate::method::{Method, MethodInfo, Paradigm, StepOutput};

/// MVGRL, node level (Hassani & Khasahmadi, ICML 2020, <https://arxiv.org/abs/2006.05582>, as
/// its node-classification code computes it): two one-layer GCNs, one over the normalised
/// adjacency and one over the personalised-PageRank diffusion of the same nodes; each view's
/// summary (the sigmoid of its nodes' mean) must tell the *other* view's node states from those
/// of the corrupted graph (the same propagation over features shuffled across the nodes), through
/// one bilinear discriminator, under binary cross-entropy ([`discriminator_loss`]).
///
/// With `h1 = GCN_a(X, A)`, `h2 = GCN_d(X, S)`, `h3 = GCN_a(X~, A)`, `h4 = GCN_d(X~, S)` and
/// `c_i = sigmoid(mean(h_i))`, the positives are `D(h2, c1)` and `D(h1, c2)`, the negatives
/// `D(h4, c1)` and `D(h3, c2)`. A node's embedding is `h1 + h2` over the whole graph.
///
/// Unlike the graph-level code, the node-level code registers its encoders, so they train.
/// The views come from `contrast-graph`'s `NodeWindows` (blocks of consecutive nodes, their
/// corrupted copy included).
#[derive(Config, Debug)]
pub struct MvgrlNodeConfig {
    /// Both encoders (MVGRL: 1 layer of 512).
    pub gcn: GcnConfig,
}

impl MvgrlNodeConfig {
    /// MVGRL's settings for node features of width `input_dim`: one GCN layer of 512.
    pub fn for_input(input_dim: usize) -> Self {
        MvgrlNodeConfig::new(GcnConfig::new(input_dim).with_layers(1))
    }

    /// Checks the encoders.
    ///
    /// # Errors
    /// `InvalidConfig` naming the field.
    pub fn validate(&self) -> Result<(), Error> {
        self.gcn.validate()
    }

    /// The network, initialised on `device` in the order of its fields.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn init_model<B: Backend>(&self, device: &B::Device) -> Result<MvgrlNodeNet<B>, Error> {
        self.validate()?;
        Ok(MvgrlNodeNet {
            adjacency: self.gcn.init(device),
            diffusion: self.gcn.init(device),
            discriminator: BilinearScoreConfig::new(self.gcn.hidden).init(device),
        })
    }

    /// The method.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn init(&self) -> Result<MvgrlNode, Error> {
        self.validate()?;
        Ok(MvgrlNode)
    }
}

/// MVGRL's node-level network: one GCN per view and the discriminator.
#[derive(Module, Debug)]
pub struct MvgrlNodeNet<B: Backend> {
    /// The encoder of the first view (normalised adjacency).
    pub adjacency: Gcn<B>,
    /// The encoder of the second view (diffusion).
    pub diffusion: Gcn<B>,
    /// The bilinear discriminator between node states and summaries.
    pub discriminator: BilinearScore<B>,
}

/// The mean of each block's node states through a sigmoid: `[w, n, d] -> [w, d]`.
fn summary<B: Backend>(h: Tensor<B, 3>) -> Tensor<B, 2> {
    let [w, _, d] = h.dims();
    sigmoid(h.mean_dim(1).reshape([w, d]))
}

impl<B: Backend> MvgrlNodeNet<B> {
    /// The discriminator's scores on a batch: positives and negatives, `[windows, 2 nodes]`
    /// each, and both views' summaries `[windows, hidden]`.
    ///
    /// # Panics
    /// If the batch has no corrupted copy.
    pub fn scores(
        &self,
        views: &DenseGraphViews<B>,
    ) -> (Tensor<B, 2>, Tensor<B, 2>, [Tensor<B, 2>; 2]) {
        let shuffled = views
            .shuffled
            .clone()
            .expect("MvgrlNodeNet::scores: the batch has no corrupted copy");
        let (h1, h3) =
            self.adjacency
                .forward_dense_shuffled(views.x.clone(), &views.first, shuffled.clone());
        let (h2, h4) =
            self.diffusion
                .forward_dense_shuffled(views.x.clone(), &views.second, shuffled);
        let (c1, c2) = (summary(h1.clone()), summary(h2.clone()));
        let d = &self.discriminator;
        let pos = Tensor::cat(
            vec![d.forward(h2, c1.clone()), d.forward(h1, c2.clone())],
            1,
        );
        let neg = Tensor::cat(
            vec![d.forward(h4, c1.clone()), d.forward(h3, c2.clone())],
            1,
        );
        (pos, neg, [c1, c2])
    }
}

impl<B: Backend> Encoder<B> for MvgrlNodeNet<B> {
    type Input = DenseGraphViews<B>;

    /// Node embeddings `h1 + h2`, `[windows * nodes, hidden]` (blocks one after the other).
    fn embed(&self, input: DenseGraphViews<B>) -> Tensor<B, 2> {
        let h = self.adjacency.forward_dense(input.x.clone(), &input.first)
            + self.diffusion.forward_dense(input.x, &input.second);
        let [w, n, d] = h.dims();
        h.reshape([w * n, d])
    }

    fn output_dim(&self) -> usize {
        self.adjacency.hidden()
    }
}

/// MVGRL's node-level training objective, see [`MvgrlNodeConfig`].
#[derive(Debug, Clone, Copy)]
pub struct MvgrlNode;

impl<B: AutodiffBackend> Method<B, MvgrlNodeNet<B>> for MvgrlNode {
    type Batch = DenseGraphViews<B>;
    type State = PhantomData<B>;
    type Counters = ();

    fn info(&self, _batch_size: usize) -> MethodInfo {
        MethodInfo {
            name: "mvgrl-node".into(),
            paradigm: Paradigm::EndToEnd,
            negatives_per_anchor: 1,
            staleness: None,
            description: "MVGRL (node level): each view's summary against the other view's \
                          node states, real against feature-shuffled, one bilinear \
                          discriminator, binary cross-entropy"
                .into(),
        }
    }

    /// Any number of windows: the negatives are each window's own corrupted copy.
    fn validate_batch(&self, _batch_size: usize, _train_len: usize) -> Result<(), Error> {
        Ok(())
    }

    /// Each window's negatives are its own; the peers' losses are averaged.
    fn join(&mut self, _peer: &Peer, _gather_negatives: bool) -> Result<Reduce, Error> {
        Ok(Reduce::Mean)
    }

    fn step(
        &mut self,
        model: &MvgrlNodeNet<B>,
        batch: Self::Batch,
        _indices: &[usize],
    ) -> StepOutput<B> {
        let (pos, neg, [c1, c2]) = model.scores(&batch);
        StepOutput::new(discriminator_loss(pos, neg), vec![c1, c2])
    }

    fn state(&self) -> (PhantomData<B>, ()) {
        (PhantomData, ())
    }

    fn load_state(&mut self, _state: PhantomData<B>, _counters: ()) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    use contrast_core::testing::Flex;
    use contrast_core::to_vec_f32;

    /// Two windows of three nodes, features of width 2, identity and averaging propagation.
    fn batch<B: Backend>(device: &B::Device) -> DenseGraphViews<B> {
        let x = vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.2, 0.8, 1.0, 0.0, 0.0, 0.3];
        let eye = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        DenseGraphViews::from_host(
            contrast_core::HostDenseViews {
                windows: 2,
                nodes: 3,
                feat: 2,
                x,
                shuffled: Some(vec![1, 2, 0, 2, 0, 1]),
                first: [eye, eye].concat(),
                second: vec![1.0 / 3.0; 18],
            },
            device,
        )
    }

    #[test]
    fn scores_pair_each_summary_with_the_other_view_and_every_part_trains() {
        type B = Flex;
        let device = Default::default();
        let config = MvgrlNodeConfig::new(GcnConfig::new(2).with_hidden(4).with_layers(1));
        let net = config.init_model::<B>(&device).unwrap();
        let b = batch::<B>(&device);
        let (pos, neg, [c1, c2]) = net.scores(&b);
        assert_eq!(
            (pos.dims(), neg.dims(), c1.dims()),
            ([2, 6], [2, 6], [2, 4])
        );
        // The first half of the positives: the diffusion view's nodes against the adjacency
        // view's summary.
        let h2 = net.diffusion.forward_dense(b.x.clone(), &b.second);
        let expected = net.discriminator.forward(h2, c1.clone());
        assert_eq!(
            to_vec_f32(pos.clone().slice([0..2, 0..3])),
            to_vec_f32(expected)
        );
        // The first half of the negatives: the diffusion view over the shuffled features
        // (block 0 takes rows 1, 2, 0; block 1 rows 2, 0, 1) against the same summary.
        let rows = Tensor::<B, 1, burn::tensor::Int>::from_data(
            TensorData::new(vec![1i64, 2, 0, 5, 3, 4], [6]),
            &device,
        );
        let moved =
            b.x.clone()
                .reshape([6, 2])
                .select(0, rows)
                .reshape([2, 3, 2]);
        let h4 = net.diffusion.forward_dense(moved, &b.second);
        let expected = to_vec_f32(net.discriminator.forward(h4, c1.clone()));
        for (a, e) in to_vec_f32(neg.clone().slice([0..2, 0..3]))
            .iter()
            .zip(&expected)
        {
            assert!((a - e).abs() < 1e-5, "{a} vs {e}");
        }
        // Summaries lie in (0, 1).
        assert!(to_vec_f32(c2).iter().all(|&v| v > 0.0 && v < 1.0));
        // The embedding is h1 + h2, blocks one after the other.
        let e = net.embed(b.clone());
        assert_eq!(e.dims(), [6, 4]);
        assert_eq!(net.output_dim(), 4);

        let mut method = config.init().unwrap();
        let out = Method::<B, _>::step(&mut method, &net, b, &[0, 1]);
        let grads = out.loss.backward();
        let all = crate::testing::with_grads::<B, _>(&net, &grads);
        assert!(all.len() >= 7 && all.iter().all(|&g| g), "{all:?}");
        assert_eq!(out.embeddings.dims(), [2, 8]);
        assert!(MvgrlNodeConfig::for_input(0).validate().is_err());
    }

    #[test]
    #[should_panic(expected = "no corrupted copy")]
    fn plain_inputs_have_no_negatives() {
        let device = Default::default();
        let net = MvgrlNodeConfig::new(GcnConfig::new(2).with_hidden(4).with_layers(1))
            .init_model::<Flex>(&device)
            .unwrap();
        let mut b = batch::<Flex>(&device);
        b.shuffled = None;
        let _ = net.scores(&b);
    }
}
