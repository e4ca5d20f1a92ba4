use core::marker::PhantomData;

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use contrast_core::{Encoder, EncoderConfig, Error, GraphBatch, ViewPair};
use contrast_encoders::{Gcn, GcnConfig, ShortcutMlp, ShortcutMlpConfig};
use contrast_losses::{MiEstimator, MvgrlLoss, MvgrlLossConfig, node_owners};

use contrast_parallel::{Peer, Reduce};

use crate::method::{Method, MethodInfo, Paradigm, StepOutput};

/// MVGRL, graph level (Hassani & Khasahmadi, ICML 2020, <https://arxiv.org/abs/2006.05582>):
/// two GCN encoders, one over each graph's normalised adjacency and one over its
/// personalised-PageRank diffusion, trained so that each view's node features tell their own
/// graph's summary in the *other* view from the other graphs of the batch.
///
/// As the authors' graph-classification code: GCNs of `gcn.layers` layers of `gcn.hidden`
/// (`PReLU(S X W + b)`), graph summaries the sums of every layer's node states concatenated,
/// shared heads (a node MLP `hidden -> hidden` on the last layer's node states, a graph MLP
/// `hidden * layers -> hidden`; each `mlp_depth` x (Linear + PReLU) plus a linear shortcut),
/// and [`MvgrlLoss`] (Jensen-Shannon, `JSD(l1, g2) + JSD(l2, g1)`). A graph's embedding for
/// evaluation is the sum of its two summaries after the graph MLP.
///
/// The views come from `contrast-graph`'s `DiffusionViews` (first: adjacency, second:
/// diffusion, both as edge weights).
///
/// The encoders stay at their random initialisation by default and only the heads train
/// (`train_encoders` false): the authors' code keeps its GCN layers in a plain Python list,
/// which registers no parameters, so its optimiser updates the two heads alone and the
/// published numbers come from random GCN readouts under trained heads. The paper's text
/// describes training the encoders too: `train_encoders` true does that.
#[derive(Config, Debug)]
pub struct MvgrlConfig {
    /// Both encoders (MVGRL: 4 layers of 512).
    pub gcn: GcnConfig,
    /// The estimator.
    pub loss: MvgrlLossConfig,
    /// Linear + PReLU layers of each head's main path (MVGRL: 3).
    #[config(default = 3)]
    pub mlp_depth: usize,
    /// Train the two GCN encoders as well as the heads (default: heads only, as the authors'
    /// code does; see the type's documentation).
    #[config(default = false)]
    pub train_encoders: bool,
}

impl MvgrlConfig {
    /// MVGRL's settings for node features of width `input_dim`: 4 GCN layers of 512, heads of
    /// depth 3, Jensen-Shannon.
    pub fn for_input(input_dim: usize) -> Self {
        MvgrlConfig::new(GcnConfig::new(input_dim), MvgrlLossConfig::new())
    }

    /// Checks the encoder and heads.
    ///
    /// # Errors
    /// `InvalidConfig` naming the field.
    pub fn validate(&self) -> Result<(), Error> {
        self.gcn.validate()?;
        self.loss.validate()?;
        self.local_head().validate()?;
        self.global_head().validate()
    }

    fn local_head(&self) -> ShortcutMlpConfig {
        ShortcutMlpConfig::new(self.gcn.hidden, self.gcn.hidden).with_depth(self.mlp_depth)
    }

    fn global_head(&self) -> ShortcutMlpConfig {
        ShortcutMlpConfig::new(self.gcn.output_dim(), self.gcn.hidden).with_depth(self.mlp_depth)
    }

    /// The network, initialised on `device` in the order of its fields; the encoders without
    /// gradients unless `train_encoders`.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn init_model<B: Backend>(&self, device: &B::Device) -> Result<MvgrlNet<B>, Error> {
        self.validate()?;
        let (adjacency, diffusion) = (self.gcn.init(device), self.gcn.init(device));
        let (adjacency, diffusion) = if self.train_encoders {
            (adjacency, diffusion)
        } else {
            (adjacency.no_grad(), diffusion.no_grad())
        };
        Ok(MvgrlNet {
            adjacency,
            diffusion,
            local: self.local_head().init(device),
            global: self.global_head().init(device),
        })
    }

    /// The method.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn init(&self) -> Result<Mvgrl, Error> {
        self.validate()?;
        Ok(Mvgrl {
            loss: self.loss.init(),
            estimator: self.loss.estimator,
            train_encoders: self.train_encoders,
        })
    }
}

/// MVGRL's network: one GCN per view and the two heads they share.
#[derive(Module, Debug)]
pub struct MvgrlNet<B: Backend> {
    /// The encoder of the first view (normalised adjacency).
    pub adjacency: Gcn<B>,
    /// The encoder of the second view (diffusion).
    pub diffusion: Gcn<B>,
    /// Node head, `hidden -> hidden`.
    pub local: ShortcutMlp<B>,
    /// Graph head, `hidden * layers -> hidden`.
    pub global: ShortcutMlp<B>,
}

/// Node features and graph summaries of both views, after the heads.
#[derive(Debug, Clone)]
pub struct MvgrlOutputs<B: Backend> {
    /// Nodes of the first view `[nodes, hidden]`.
    pub local1: Tensor<B, 2>,
    /// Graphs of the first view `[graphs, hidden]`.
    pub global1: Tensor<B, 2>,
    /// Nodes of the second view.
    pub local2: Tensor<B, 2>,
    /// Graphs of the second view.
    pub global2: Tensor<B, 2>,
}

impl<B: Backend> MvgrlNet<B> {
    /// Both views through their encoders and the shared heads.
    ///
    /// # Panics
    /// If the views hold different numbers of graphs or nodes.
    pub fn forward(&self, views: &ViewPair<GraphBatch<B>>) -> MvgrlOutputs<B> {
        check_views(views);
        let (n1, g1) = self.adjacency.forward(&views.first);
        let (n2, g2) = self.diffusion.forward(&views.second);
        MvgrlOutputs {
            local1: self.local.forward(n1),
            global1: self.global.forward(g1),
            local2: self.local.forward(n2),
            global2: self.global.forward(g2),
        }
    }
}

fn check_views<B: Backend>(views: &ViewPair<GraphBatch<B>>) {
    assert_eq!(
        views.first.nodes_per_graph, views.second.nodes_per_graph,
        "MvgrlNet: the two views hold different graphs"
    );
}

impl<B: Backend> Encoder<B> for MvgrlNet<B> {
    type Input = ViewPair<GraphBatch<B>>;

    /// `graph MLP(g1) + graph MLP(g2)`, as MVGRL's `embed`.
    fn embed(&self, input: ViewPair<GraphBatch<B>>) -> Tensor<B, 2> {
        check_views(&input);
        let g1 = self.adjacency.embed(input.first);
        let g2 = self.diffusion.embed(input.second);
        self.global.forward(g1) + self.global.forward(g2)
    }

    fn output_dim(&self) -> usize {
        self.adjacency.hidden()
    }
}

/// MVGRL's training objective, see [`MvgrlConfig`].
#[derive(Debug, Clone)]
pub struct Mvgrl {
    loss: MvgrlLoss,
    estimator: MiEstimator,
    train_encoders: bool,
}

impl<B: AutodiffBackend> Method<B, MvgrlNet<B>> for Mvgrl {
    type Batch = ViewPair<GraphBatch<B>>;
    type State = PhantomData<B>;
    type Counters = ();

    fn info(&self, batch_size: usize) -> MethodInfo {
        MethodInfo {
            name: "mvgrl".into(),
            paradigm: Paradigm::EndToEnd,
            negatives_per_anchor: batch_size.saturating_sub(1),
            staleness: None,
            description: format!(
                "MVGRL: nodes of each view (adjacency, PPR diffusion) against graph summaries of the other, {:?} estimator, the batch's other graphs as negatives, {}",
                self.estimator,
                if self.train_encoders {
                    "encoders and heads trained"
                } else {
                    "heads trained over fixed random encoders (as the authors' code)"
                }
            ),
        }
    }

    fn validate_batch(&self, batch_size: usize, _train_len: usize) -> Result<(), Error> {
        if batch_size < 2 {
            return Err(Error::invalid_config(
                "batch_size",
                batch_size,
                "MVGRL needs at least 2 graphs per batch (the others are the negatives)",
            ));
        }
        Ok(())
    }

    /// Its negatives are the share's own; the peers' losses are averaged.
    fn join(&mut self, _peer: &Peer, _gather_negatives: bool) -> Result<Reduce, Error> {
        Ok(Reduce::Mean)
    }

    fn step(
        &mut self,
        model: &MvgrlNet<B>,
        batch: Self::Batch,
        _indices: &[usize],
    ) -> StepOutput<B> {
        let owner = node_owners(&batch.first.nodes_per_graph);
        let o = model.forward(&batch);
        let loss = self.loss.forward(
            o.local1,
            o.global1.clone(),
            o.local2,
            o.global2.clone(),
            &owner,
        );
        StepOutput::new(loss, vec![o.global1, o.global2])
    }

    fn state(&self) -> (PhantomData<B>, ()) {
        (PhantomData, ())
    }

    fn load_state(&mut self, _state: PhantomData<B>, _counters: ()) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::with_grads;
    use contrast_core::testing::Flex;
    use contrast_core::{HostGraphs, InstanceBatch, to_vec_f32};

    /// Three weighted graphs (self-loops only, weight 1, plus one edge in the first).
    fn views<B: Backend>(device: &B::Device) -> ViewPair<GraphBatch<B>> {
        let mut h = HostGraphs::new(2, true);
        h.push(
            &[1.0, 0.0, 0.5, 1.0],
            2,
            &[(0, 0), (0, 1), (1, 0), (1, 1)],
            Some(&[0.5, 0.5, 0.5, 0.5]),
        );
        h.push(&[0.0, 1.0], 1, &[(0, 0)], Some(&[1.0]));
        h.push(
            &[2.0, -1.0, 1.0, 1.0],
            2,
            &[(0, 0), (1, 1)],
            Some(&[1.0, 1.0]),
        );
        let g = GraphBatch::from_host(&h, device);
        ViewPair {
            first: g.clone(),
            second: g,
        }
    }

    #[test]
    fn embedding_is_the_sum_of_both_summaries_and_a_step_trains() {
        // Flex with autodiff.
        type B = Flex;
        let device = Default::default();
        let config = MvgrlConfig::new(
            GcnConfig::new(2).with_hidden(8).with_layers(2),
            MvgrlLossConfig::new(),
        )
        .with_train_encoders(true);
        let net = config.init_model::<B>(&device).unwrap();
        let batch = views::<B>(&device);
        let o = net.forward(&batch);
        assert_eq!((o.local1.dims(), o.global2.dims()), ([5, 8], [3, 8]));
        let e = to_vec_f32(net.embed(batch.clone()));
        let sum = to_vec_f32(o.global1.clone() + o.global2.clone());
        assert_eq!(e, sum);
        assert_eq!(net.output_dim(), 8);

        // One graph alone embeds as in the batch.
        let one = ViewPair {
            first: batch.first.slice_instances(2..3),
            second: batch.second.slice_instances(2..3),
        };
        for (a, b) in to_vec_f32(net.embed(one)).iter().zip(&e[16..]) {
            assert!((a - b).abs() < 1e-5);
        }

        let mut method = config.init().unwrap();
        let out = Method::<B, _>::step(&mut method, &net, batch, &[0, 1, 2]);
        let grads = out.loss.backward();
        assert_eq!(
            net.adjacency.embed(views::<B>(&device).first).dims(),
            [3, 16]
        );
        // Every parameter of both encoders and both heads gets a gradient.
        let all = with_grads::<B, _>(&net, &grads);
        assert!(all.len() > 20 && all.iter().all(|&g| g), "{all:?}");
        // By default (as the authors' code) only the heads train.
        let frozen = config.clone().with_train_encoders(false);
        let net = frozen.init_model::<B>(&device).unwrap();
        let mut method = frozen.init().unwrap();
        let out = Method::<B, _>::step(&mut method, &net, views::<B>(&device), &[0, 1, 2]);
        let grads = out.loss.backward();
        for (part, trains) in [
            (with_grads::<B, _>(&net.adjacency, &grads), false),
            (with_grads::<B, _>(&net.diffusion, &grads), false),
            (with_grads::<B, _>(&net.local, &grads), true),
            (with_grads::<B, _>(&net.global, &grads), true),
        ] {
            assert!(
                !part.is_empty() && part.iter().all(|&g| g == trains),
                "{part:?}"
            );
        }
        assert!(MvgrlConfig::for_input(0).validate().is_err());
        assert!(Method::<B, MvgrlNet<B>>::validate_batch(&method, 1, 10).is_err());
    }
}
