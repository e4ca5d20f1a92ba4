//! GIN (Xu et al., ICLR 2019), as GraphCL and InfoGraph use it for graph-level embeddings.

use crate::dense::dense;
use crate::norm::BatchNorm2d;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{IndexingUpdateOp, Tensor};
use contrast_core::{Encoder, EncoderConfig, Error, GraphBatch};
use contrast_kernels::{Activation::Relu, try_add_neighbours};

/// Configuration of [`Gin`].
#[derive(Config, Debug, PartialEq)]
pub struct GinConfig {
    /// Width of the node features.
    pub input_dim: usize,
    /// Width of every layer (GraphCL: 32).
    #[config(default = 32)]
    pub hidden: usize,
    /// Number of GIN layers (GraphCL: 5).
    #[config(default = 5)]
    pub layers: usize,
    /// Batch norm after each layer (GraphCL, InfoGraph).
    #[config(default = true)]
    pub batch_norm: bool,
}

impl GinConfig {
    /// One line for reports.
    pub fn describe(&self) -> String {
        format!(
            "GIN, {} layers of {} (sum aggregation, 2-layer MLP{}), sum readout of every layer concatenated ({} wide)",
            self.layers,
            self.hidden,
            if self.batch_norm { ", batch norm" } else { "" },
            self.output_dim()
        )
    }
}

impl EncoderConfig for GinConfig {
    type Encoder<B: Backend> = Gin<B>;

    fn validate(&self) -> Result<(), Error> {
        for (field, v) in [
            ("gin.input_dim", self.input_dim),
            ("gin.hidden", self.hidden),
            ("gin.layers", self.layers),
        ] {
            if v == 0 {
                return Err(Error::invalid_config(field, 0, "must be at least 1"));
            }
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device) -> Gin<B> {
        if let Err(e) = self.validate() {
            panic!("GinConfig::init: {e}");
        }
        let layers = (0..self.layers)
            .map(|l| {
                let input = if l == 0 { self.input_dim } else { self.hidden };
                GinLayer {
                    first: LinearConfig::new(input, self.hidden).init(device),
                    second: LinearConfig::new(self.hidden, self.hidden).init(device),
                    norm: self
                        .batch_norm
                        .then(|| BatchNorm2d::new(self.hidden, device)),
                }
            })
            .collect();
        crate::init::materialize(Gin {
            layers,
            hidden: self.hidden,
        })
    }

    fn output_dim(&self) -> usize {
        self.hidden * self.layers
    }
}

/// One GIN layer: `relu(MLP(x_i + sum_{j -> i} x_j))`, then batch norm.
#[derive(Module, Debug)]
pub struct GinLayer<B: Backend> {
    first: Linear<B>,
    second: Linear<B>,
    norm: Option<BatchNorm2d<B>>,
}

/// Sum of `x`'s rows over each node's incoming edges: row `i` of the result is
/// `sum_{(j, i) in edges} x_j` (weighted when the batch has edge weights).
///
/// Runs on every backend through `select` and `select_assign` with addition.
pub fn sum_neighbours<B: Backend>(x: Tensor<B, 2>, graphs: &GraphBatch<B>) -> Tensor<B, 2> {
    let [nodes, dim] = x.dims();
    add_neighbours(Tensor::zeros([nodes, dim], &x.device()), x, graphs)
}

/// `base + sum_neighbours(x)`, added in place of `base`'s rows: GIN's `x + sum_j x_j` without
/// a zero tensor and a separate addition (forward or backward).
fn add_neighbours<B: Backend>(
    base: Tensor<B, 2>,
    x: Tensor<B, 2>,
    graphs: &GraphBatch<B>,
) -> Tensor<B, 2> {
    let mut messages = x.select(0, graphs.src.clone());
    if let Some(w) = &graphs.edge_weight {
        let edges = w.dims()[0];
        messages = messages * w.clone().reshape([edges, 1]);
    }
    base.select_assign(0, graphs.dst.clone(), messages, IndexingUpdateOp::Add)
}

/// Sum of each graph's node rows: `[graphs, dim]`.
pub fn sum_readout<B: Backend>(x: Tensor<B, 2>, graphs: &GraphBatch<B>) -> Tensor<B, 2> {
    let dim = x.dims()[1];
    Tensor::zeros([graphs.graphs, dim], &x.device()).select_assign(
        0,
        graphs.node_graph.clone(),
        x,
        IndexingUpdateOp::Add,
    )
}

impl<B: Backend> GinLayer<B> {
    fn forward(&self, x: Tensor<B, 2>, graphs: &GraphBatch<B>) -> Tensor<B, 2> {
        // On the host backends one pass per direction (contrast-kernels); elsewhere, and for
        // weighted edges, Burn's gather and scatter-add.
        let h = match graphs.edge_weight {
            None => try_add_neighbours(&x, &graphs.src, &graphs.dst),
            Some(_) => None,
        }
        .unwrap_or_else(|| add_neighbours(x.clone(), x, graphs));
        let h = dense(&self.second, dense(&self.first, h, Relu), Relu);
        match &self.norm {
            Some(n) => n.forward_rows(h),
            None => h,
        }
    }
}

/// A GIN encoder over [`GraphBatch`]es: every layer's node states are summed per graph and the
/// sums concatenated (GraphCL's and InfoGraph's graph embedding).
#[derive(Module, Debug)]
pub struct Gin<B: Backend> {
    layers: Vec<GinLayer<B>>,
    hidden: usize,
}

impl<B: Backend> Gin<B> {
    /// Node states of every layer, concatenated: `[nodes, hidden * layers]`.
    pub fn node_states(&self, graphs: &GraphBatch<B>) -> Tensor<B, 2> {
        let mut x = graphs.x.clone();
        let mut all = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            x = layer.forward(x, graphs);
            all.push(x.clone());
        }
        Tensor::cat(all, 1)
    }
}

impl<B: Backend> Encoder<B> for Gin<B> {
    type Input = GraphBatch<B>;

    fn embed(&self, input: GraphBatch<B>) -> Tensor<B, 2> {
        let states = self.node_states(&input);
        sum_readout(states, &input)
    }

    fn output_dim(&self) -> usize {
        self.hidden * self.layers.len()
    }
}

/// For the backend tests of the graph encoders: `encoder`'s embeddings of `graphs` on
/// `device`, and the gradients of a fixed weighting of them with respect to the node features
/// and to `weight`, one of its parameters.
#[cfg(test)]
pub(crate) fn probe_gradients<B, E>(
    encoder: &E,
    graphs: &contrast_core::HostGraphs,
    weight: &burn::module::Param<Tensor<B, 2>>,
    device: &B::Device,
) -> [Vec<f32>; 3]
where
    B: burn::tensor::backend::AutodiffBackend,
    E: Encoder<B, Input = GraphBatch<B>>,
{
    use contrast_core::to_vec_f32;
    let mut batch = GraphBatch::<B>::from_host(graphs, device);
    batch.x = batch.x.require_grad();
    let x = batch.x.clone();
    let y = encoder.embed(batch);
    let [rows, cols] = y.dims();
    let probe: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * 0.37).sin()).collect();
    let probe = Tensor::from_data(burn::tensor::TensorData::new(probe, [rows, cols]), device);
    let grads = (y.clone() * probe).sum().backward();
    [
        to_vec_f32(y),
        to_vec_f32(x.grad(&grads).expect("the node features have a gradient")),
        to_vec_f32(weight.grad(&grads).expect("the weight has a gradient")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::backend::AutodiffBackend;
    use contrast_core::testing::{assert_close, carry_over};
    use contrast_core::{FlexAutodiff, HostGraphs, InstanceBatch, to_vec_f32};

    /// A triangle and a path of two nodes, both directions of every edge.
    fn two_graphs() -> HostGraphs {
        let mut h = HostGraphs::new(2, false);
        let tri = [(0, 1), (1, 0), (1, 2), (2, 1), (0, 2), (2, 0)];
        h.push(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 3, &tri, None);
        h.push(&[0.5, 0.5, 2.0, 0.0], 2, &[(0, 1), (1, 0)], None);
        h
    }

    #[test]
    fn neighbour_sums_and_readout_follow_the_edges() {
        let device = Default::default();
        let g = GraphBatch::<Flex>::from_host(&two_graphs(), &device);
        let agg = to_vec_f32(sum_neighbours(g.x.clone(), &g));
        // Node 0 of the triangle receives nodes 1 and 2; node 3 (the path's first) receives 4.
        assert_eq!(&agg[..2], &[1.0, 2.0]);
        assert_eq!(&agg[6..8], &[2.0, 0.0]);
        let pooled = to_vec_f32(sum_readout(g.x.clone(), &g));
        assert_eq!(pooled, vec![2.0, 2.0, 2.5, 0.5]);
    }

    #[test]
    fn graphs_embed_the_same_alone_or_in_a_batch() {
        let device = Default::default();
        let both = GraphBatch::<Flex>::from_host(&two_graphs(), &device);
        // Without batch norm, whose training-mode statistics mix the graphs of a batch.
        let plain = GinConfig::new(2)
            .with_hidden(4)
            .with_layers(3)
            .with_batch_norm(false)
            .init::<Flex>(&device);
        let a = to_vec_f32(plain.embed(both.clone()));
        let b = to_vec_f32(plain.embed(both.slice_instances(1..2)));
        for (x, y) in a[12..].iter().zip(&b) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
        assert_eq!((a.len(), plain.output_dim()), (24, 12));
    }

    /// GIN with batch norm on `B` computes what it computes on flex's host kernels: the
    /// embeddings, and the gradients of the node features and of the first layer's weight.
    ///
    /// Fifteen nodes with varied features, so that batch norm divides by well-spread
    /// statistics: wgpu sums neighbours in no fixed order, and a channel of nearly equal values
    /// would magnify that rounding past any useful tolerance.
    fn gin_matches_the_host_kernels<B: AutodiffBackend>(device: &B::Device) {
        let cfg = GinConfig::new(2).with_hidden(8).with_layers(2);
        let host = cfg.init::<FlexAutodiff>(&Default::default());
        let model = carry_over(host.clone(), cfg.init::<B>(device), device);
        let mut graphs = HostGraphs::new(2, false);
        for (g, nodes) in [5u32, 4, 6].into_iter().enumerate() {
            let x: Vec<f32> = (0..2 * nodes as usize)
                .map(|k| ((k * 7 + g * 3) as f32 * 0.61).sin() * 2.0)
                .collect();
            // A cycle through every node, both directions.
            let edges: Vec<(u32, u32)> = (0..nodes)
                .flat_map(|v| [(v, (v + 1) % nodes), ((v + 1) % nodes, v)])
                .collect();
            graphs.push(&x, nodes as usize, &edges, None);
        }
        let want = probe_gradients(
            &host,
            &graphs,
            &host.layers[0].first.weight,
            &Default::default(),
        );
        let got = probe_gradients(&model, &graphs, &model.layers[0].first.weight, device);
        for (i, name) in ["embedding", "node features", "weight"].iter().enumerate() {
            assert!(want[i].iter().any(|&v| v != 0.0), "{name}: all zero");
            assert_close(&got[i], &want[i], 1e-4);
        }
    }

    contrast_core::backend_tests!(gin_matches_the_host_kernels);
}
