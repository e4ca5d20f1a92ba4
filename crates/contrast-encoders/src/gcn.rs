//! GCN (Kipf & Welling, ICLR 2017) as MVGRL's encoders use it (graph level over a batch's
//! weighted edges, node level over dense blocks), MVGRL's PReLU MLP with a linear shortcut and
//! the bilinear discriminator of DGI and node-level MVGRL.

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::nn::{Linear, LinearConfig, PRelu, PReluConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use contrast_core::{Encoder, EncoderConfig, Error, GraphBatch};

use crate::gin::{sum_neighbours, sum_readout};

/// Configuration of [`Gcn`].
#[derive(Config, Debug, PartialEq)]
pub struct GcnConfig {
    /// Width of the node features.
    pub input_dim: usize,
    /// Width of every layer (MVGRL: 512).
    #[config(default = 512)]
    pub hidden: usize,
    /// Number of GCN layers (MVGRL's default: 4; its grid: 2, 8, 12).
    #[config(default = 4)]
    pub layers: usize,
}

impl GcnConfig {
    /// One line for reports.
    pub fn describe(&self) -> String {
        format!(
            "GCN, {} layers of {} (PReLU(S X W + b) over the batch's weighted edges), sum readout of every layer concatenated ({} wide)",
            self.layers,
            self.hidden,
            self.output_dim()
        )
    }
}

impl EncoderConfig for GcnConfig {
    type Encoder<B: Backend> = Gcn<B>;

    fn validate(&self) -> Result<(), Error> {
        for (field, v) in [
            ("gcn.input_dim", self.input_dim),
            ("gcn.hidden", self.hidden),
            ("gcn.layers", self.layers),
        ] {
            if v == 0 {
                return Err(Error::invalid_config(field, 0, "must be at least 1"));
            }
        }
        Ok(())
    }

    fn init<B: Backend>(&self, device: &B::Device) -> Gcn<B> {
        if let Err(e) = self.validate() {
            panic!("GcnConfig::init: {e}");
        }
        let layers = (0..self.layers)
            .map(|l| {
                let input = if l == 0 { self.input_dim } else { self.hidden };
                GcnLayer {
                    // MVGRL: `nn.Linear(in, out, bias=False)`, Xavier-uniform weights.
                    linear: LinearConfig::new(input, self.hidden)
                        .with_bias(false)
                        .with_initializer(Initializer::XavierUniform { gain: 1.0 })
                        .init(device),
                    bias: Initializer::Zeros.init([self.hidden], device),
                    act: PReluConfig::new().init(device),
                }
            })
            .collect();
        crate::init::materialize(Gcn {
            layers,
            hidden: self.hidden,
        })
    }

    fn output_dim(&self) -> usize {
        self.hidden * self.layers
    }
}

/// One GCN layer: `PReLU(S (X W) + b)`, where `S` is the batch's weighted edge list (row `i` of
/// `S X` sums `w_e x_src(e)` over the edges `e` into node `i`): the normalised adjacency
/// `D^-1/2 (A + I) D^-1/2` or a diffusion matrix, as the data side computed it.
#[derive(Module, Debug)]
pub struct GcnLayer<B: Backend> {
    linear: Linear<B>,
    bias: Param<Tensor<B, 1>>,
    act: PRelu<B>,
}

impl<B: Backend> GcnLayer<B> {
    /// `PReLU(S (x W) + b)`, `[nodes, in] -> [nodes, hidden]`.
    pub fn forward(&self, x: Tensor<B, 2>, graphs: &GraphBatch<B>) -> Tensor<B, 2> {
        let h = sum_neighbours(self.linear.forward(x), graphs);
        let hidden = self.bias.dims()[0];
        self.act.forward(h + self.bias.val().reshape([1, hidden]))
    }

    /// `PReLU(S (x W) + b)` over dense blocks, `[windows, nodes, in] -> [windows, nodes, hidden]`
    /// with `s` `[windows, nodes, nodes]`.
    pub fn forward_dense(&self, x: Tensor<B, 3>, s: &Tensor<B, 3>) -> Tensor<B, 3> {
        self.propagate_dense(self.linear.forward(x), s)
    }

    /// `PReLU(S xw + b)` for features already projected (`xw = x W`).
    fn propagate_dense(&self, xw: Tensor<B, 3>, s: &Tensor<B, 3>) -> Tensor<B, 3> {
        let hidden = self.bias.dims()[0];
        self.act
            .forward(s.clone().matmul(xw) + self.bias.val().reshape([1, 1, hidden]))
    }
}

/// A GCN encoder over [`GraphBatch`]es, MVGRL's: each layer's node states are summed per graph
/// and the sums of all layers concatenated (the graph embedding); the last layer's node states
/// are the local features.
///
/// The propagation matrix is the batch's edge list with its weights: a batch without weights
/// propagates over its edges with weight 1 (and no self-loops), so a GCN in Kipf & Welling's
/// sense needs a batch carrying `D^-1/2 (A + I) D^-1/2` (see `contrast-graph`'s
/// `gcn_normalized`), and MVGRL's second encoder one carrying the PPR diffusion.
#[derive(Module, Debug)]
pub struct Gcn<B: Backend> {
    layers: Vec<GcnLayer<B>>,
    hidden: usize,
}

impl<B: Backend> Gcn<B> {
    /// The last layer's node states `[nodes, hidden]` and the graph embedding
    /// `[graphs, hidden * layers]` (each layer's states summed per graph, concatenated), from
    /// one pass.
    pub fn forward(&self, graphs: &GraphBatch<B>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let mut x = graphs.x.clone();
        let mut pooled = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            x = layer.forward(x, graphs);
            pooled.push(sum_readout(x.clone(), graphs));
        }
        (x, Tensor::cat(pooled, 1))
    }

    /// The last layer's node states, `[nodes, hidden]` (MVGRL's local features).
    pub fn node_states(&self, graphs: &GraphBatch<B>) -> Tensor<B, 2> {
        self.forward(graphs).0
    }

    /// Width of every layer (and of the node states).
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Every layer over dense blocks (MVGRL's node-level encoder): `x` `[windows, nodes, in]`
    /// and propagation matrices `s` `[windows, nodes, nodes]` -> the last layer's node states
    /// `[windows, nodes, hidden]`.
    pub fn forward_dense(&self, x: Tensor<B, 3>, s: &Tensor<B, 3>) -> Tensor<B, 3> {
        self.layers
            .iter()
            .fold(x, |x, layer| layer.forward_dense(x, s))
    }

    /// [`forward_dense`](Self::forward_dense) of `x` and of its corrupted copy, whose rows are
    /// `shuffled` (indices into the blocks' rows laid end to end, as `DenseGraphViews` carries
    /// them), from one projection of the features: `(P X) W = P (X W)`.
    ///
    /// # Panics
    /// If `shuffled` does not hold one index per row.
    pub fn forward_dense_shuffled(
        &self,
        x: Tensor<B, 3>,
        s: &Tensor<B, 3>,
        shuffled: Tensor<B, 1, Int>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let [w, n, _] = x.dims();
        assert_eq!(
            shuffled.dims(),
            [w * n],
            "Gcn::forward_dense_shuffled: {} shuffled rows for {w} blocks of {n} nodes",
            shuffled.dims()[0]
        );
        let (first, rest) = self
            .layers
            .split_first()
            .expect("a GCN has at least one layer");
        let xw = first.linear.forward(x);
        let h = xw.dims()[2];
        let moved = xw
            .clone()
            .reshape([w * n, h])
            .select(0, shuffled)
            .reshape([w, n, h]);
        let pair = (
            first.propagate_dense(xw, s),
            first.propagate_dense(moved, s),
        );
        rest.iter().fold(pair, |(a, b), layer| {
            (layer.forward_dense(a, s), layer.forward_dense(b, s))
        })
    }
}

/// Configuration of [`BilinearScore`].
#[derive(Config, Debug, PartialEq)]
pub struct BilinearScoreConfig {
    /// Width of both arguments.
    pub dim: usize,
}

impl BilinearScoreConfig {
    /// Builds the score: the weight Xavier-uniform as PyTorch draws it for `nn.Bilinear(d, d,
    /// 1)`'s `[1, d, d]` weight (fan in `d * d`, fan out `d`), the bias zero (MVGRL's and DGI's
    /// initialisation).
    ///
    /// # Panics
    /// If `dim` is 0.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BilinearScore<B> {
        assert!(
            self.dim > 0,
            "BilinearScoreConfig::init: dim must be at least 1"
        );
        let d = self.dim as f64;
        let bound = (6.0 / (d * d + d)).sqrt();
        crate::init::materialize(BilinearScore {
            weight: Initializer::Uniform {
                min: -bound,
                max: bound,
            }
            .init([self.dim, self.dim], device),
            bias: Initializer::Zeros.init([1], device),
        })
    }
}

/// A bilinear score `s(h, c) = h^T W c + b` between node states and their block's summary: the
/// discriminator of DGI and of MVGRL's node-level model.
///
/// # Shapes
/// - `h`: `[windows, nodes, d]`, `c`: `[windows, d]` -> `[windows, nodes]`
#[derive(Module, Debug)]
pub struct BilinearScore<B: Backend> {
    weight: Param<Tensor<B, 2>>,
    bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> BilinearScore<B> {
    /// The score of every node of each block against the block's summary.
    ///
    /// # Panics
    /// If the widths or block counts differ.
    pub fn forward(&self, h: Tensor<B, 3>, c: Tensor<B, 2>) -> Tensor<B, 2> {
        let [w, n, d] = h.dims();
        assert_eq!(
            c.dims(),
            [w, d],
            "BilinearScore::forward: summaries {:?} for nodes {:?}",
            c.dims(),
            h.dims()
        );
        // v = W c per block, then h . v per node.
        let v = c.matmul(self.weight.val().transpose()).reshape([w, d, 1]);
        h.matmul(v).reshape([w, n]) + self.bias.val().reshape([1, 1])
    }
}

impl<B: Backend> Encoder<B> for Gcn<B> {
    type Input = GraphBatch<B>;

    fn embed(&self, input: GraphBatch<B>) -> Tensor<B, 2> {
        self.forward(&input).1
    }

    fn output_dim(&self) -> usize {
        self.hidden * self.layers.len()
    }
}

/// Configuration of [`ShortcutMlp`].
#[derive(Config, Debug, PartialEq)]
pub struct ShortcutMlpConfig {
    /// Input width.
    pub input: usize,
    /// Width of every layer and of the output.
    pub output: usize,
    /// Linear + PReLU layers on the main path (MVGRL: 3).
    #[config(default = 3)]
    pub depth: usize,
}

impl ShortcutMlpConfig {
    /// Checks that no width or depth is zero.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field.
    pub fn validate(&self) -> Result<(), Error> {
        for (field, v) in [
            ("mlp.input", self.input),
            ("mlp.output", self.output),
            ("mlp.depth", self.depth),
        ] {
            if v == 0 {
                return Err(Error::invalid_config(field, 0, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// Builds the MLP: the main path's layers, then the shortcut.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ShortcutMlp<B> {
        if let Err(e) = self.validate() {
            panic!("ShortcutMlpConfig::init: {e}");
        }
        let layers = (0..self.depth)
            .map(|l| {
                let input = if l == 0 { self.input } else { self.output };
                (
                    LinearConfig::new(input, self.output).init(device),
                    PReluConfig::new().init(device),
                )
            })
            .collect::<Vec<_>>();
        let (linears, acts) = layers.into_iter().unzip();
        crate::init::materialize(ShortcutMlp {
            linears,
            acts,
            shortcut: LinearConfig::new(self.input, self.output).init(device),
        })
    }
}

/// MVGRL's MLP head: `depth` x (Linear + PReLU) plus a linear shortcut,
/// `f(x) = PReLU(L3 PReLU(L2 PReLU(L1 x))) + Ls x`.
///
/// # Shapes
/// - `[n, input] -> [n, output]`
#[derive(Module, Debug)]
pub struct ShortcutMlp<B: Backend> {
    linears: Vec<Linear<B>>,
    acts: Vec<PRelu<B>>,
    shortcut: Linear<B>,
}

impl<B: Backend> ShortcutMlp<B> {
    /// Applies the MLP row by row.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let mut h = x.clone();
        for (linear, act) in self.linears.iter().zip(&self.acts) {
            h = act.forward(linear.forward(h));
        }
        h + self.shortcut.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;
    use burn::tensor::backend::AutodiffBackend;
    use contrast_core::testing::{assert_close, carry_over};
    use contrast_core::{FlexAutodiff, HostGraphs, InstanceBatch, to_vec_f32};

    /// A weighted path of three nodes (S given entry by entry, self-loops included) and a lone
    /// node with a self-loop of weight 1.
    fn weighted() -> (HostGraphs, [[f32; 3]; 3]) {
        let s = [[0.5, 0.25, 0.0], [0.25, 0.4, 0.3], [0.0, 0.3, 0.6]];
        let mut h = HostGraphs::new(2, true);
        let (mut edges, mut w) = (Vec::new(), Vec::new());
        for (i, row) in s.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    // Entry (i, j): node j's state flows into node i.
                    edges.push((j as u32, i as u32));
                    w.push(v);
                }
            }
        }
        h.push(&[1.0, 0.0, 0.0, 2.0, -1.0, 1.0], 3, &edges, Some(&w));
        h.push(&[3.0, -2.0], 1, &[(0, 0)], Some(&[1.0]));
        (h, s)
    }

    fn prelu(v: f32, a: f32) -> f32 {
        if v >= 0.0 { v } else { a * v }
    }

    /// Two layers against a host computation of PReLU(S X W + b) with the layers' own weights.
    #[test]
    fn layers_and_readouts_match_a_host_computation() {
        let device = Default::default();
        let (host, s) = weighted();
        let g = GraphBatch::<Flex>::from_host(&host, &device);
        let mut gcn = GcnConfig::new(2)
            .with_hidden(3)
            .with_layers(2)
            .init::<Flex>(&device);
        // A non-zero bias, so that it is checked too.
        gcn.layers[1].bias = Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![0.1f32, -0.2, 0.3], [3]),
            &device,
        ));
        let (nodes, pooled) = gcn.forward(&g);
        assert_eq!((nodes.dims(), pooled.dims()), ([4, 3], [2, 6]));

        // Host reference: the whole batch's S is block-diagonal.
        let mut big = [[0.0f32; 4]; 4];
        for i in 0..3 {
            for j in 0..3 {
                big[i][j] = s[i][j];
            }
        }
        big[3][3] = 1.0;
        let mut x: Vec<Vec<f32>> = host.x.chunks(2).map(<[f32]>::to_vec).collect();
        let mut sums = vec![Vec::new(); 2];
        for layer in &gcn.layers {
            // Burn's Linear weight is [in, out].
            let w = to_vec_f32(layer.linear.weight.val());
            let out = layer.bias.dims()[0];
            let inp = x[0].len();
            let b = to_vec_f32(layer.bias.val());
            let a = to_vec_f32(layer.act.alpha.val())[0];
            let xw: Vec<Vec<f32>> = x
                .iter()
                .map(|r| {
                    (0..out)
                        .map(|o| (0..inp).map(|k| r[k] * w[k * out + o]).sum())
                        .collect()
                })
                .collect();
            x = (0..4)
                .map(|i| {
                    (0..out)
                        .map(|o| {
                            let v: f32 = (0..4).map(|j| big[i][j] * xw[j][o]).sum();
                            prelu(v + b[o], a)
                        })
                        .collect()
                })
                .collect();
            for (gi, range) in [(0usize, 0..3usize), (1, 3..4)] {
                sums[gi].extend((0..out).map(|o| range.clone().map(|i| x[i][o]).sum::<f32>()));
            }
        }
        let close = |a: &[f32], b: &[f32]| {
            assert_eq!(a.len(), b.len());
            for (p, q) in a.iter().zip(b) {
                assert!((p - q).abs() < 1e-5, "{a:?} vs {b:?}");
            }
        };
        close(&to_vec_f32(nodes), &x.concat());
        close(&to_vec_f32(pooled), &sums.concat());
        // The embedding is the pooled output, and a graph embeds the same alone.
        let alone = to_vec_f32(gcn.embed(g.slice_instances(1..2)));
        close(&alone, &sums[1]);

        // The dense form over the same matrix (one block of the 4 nodes) gives the same states.
        let dense_x =
            Tensor::<Flex, 3>::from_data(TensorData::new(host.x.clone(), [1, 4, 2]), &device);
        let dense_s =
            Tensor::<Flex, 3>::from_data(TensorData::new(big.concat(), [1, 4, 4]), &device);
        close(
            &to_vec_f32(gcn.forward_dense(dense_x.clone(), &dense_s)),
            &x.concat(),
        );
        // The corrupted pass equals the plain pass over the permuted features.
        let order = [2i64, 0, 3, 1];
        let rows = Tensor::<Flex, 1, Int>::from_data(TensorData::new(order.to_vec(), [4]), &device);
        let permuted = dense_x
            .clone()
            .reshape([4, 2])
            .select(0, rows.clone())
            .reshape([1, 4, 2]);
        let (real, fake) = gcn.forward_dense_shuffled(dense_x.clone(), &dense_s, rows);
        close(&to_vec_f32(real), &x.concat());
        close(
            &to_vec_f32(fake),
            &to_vec_f32(gcn.forward_dense(permuted, &dense_s)),
        );
        assert_eq!(gcn.output_dim(), 6);
    }

    #[test]
    fn a_fresh_layer_has_zero_bias_and_the_mlp_adds_its_shortcut() {
        let device = Default::default();
        let gcn = GcnConfig::new(5).init::<Flex>(&device);
        assert_eq!((gcn.hidden(), gcn.output_dim()), (512, 2048));
        assert!(
            to_vec_f32(gcn.layers[0].bias.val())
                .iter()
                .all(|&b| b == 0.0)
        );
        assert!(gcn.layers[0].linear.bias.is_none());

        let mlp = ShortcutMlpConfig::new(4, 3).init::<Flex>(&device);
        let x = Tensor::<Flex, 2>::from_data(
            TensorData::new(vec![0.5f32, -1.0, 2.0, 0.0, 1.0, 1.0, -0.5, 0.25], [2, 4]),
            &device,
        );
        let mut h = x.clone();
        for (l, a) in mlp.linears.iter().zip(&mlp.acts) {
            h = burn::tensor::activation::prelu(l.forward(h), a.alpha.val());
        }
        let expected = to_vec_f32(h + mlp.shortcut.forward(x.clone()));
        assert_eq!(to_vec_f32(mlp.forward(x)), expected);
        assert!(ShortcutMlpConfig::new(4, 0).validate().is_err());
        assert!(GcnConfig::new(2).with_layers(0).validate().is_err());
    }

    #[test]
    fn bilinear_score_is_h_w_c_plus_b() {
        let device = Default::default();
        let mut score = BilinearScoreConfig::new(2).init::<Flex>(&device);
        let bound = (6.0f32 / 6.0).sqrt();
        assert!(
            to_vec_f32(score.weight.val())
                .iter()
                .all(|w| w.abs() <= bound)
        );
        score.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![1.0f32, 2.0, -1.0, 0.5], [2, 2]),
            &device,
        ));
        score.bias = Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![0.25f32], [1]),
            &device,
        ));
        // Two blocks of two nodes.
        let h = Tensor::<Flex, 3>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0, 2.0, 1.0, -1.0, 3.0], [2, 2, 2]),
            &device,
        );
        let c = Tensor::<Flex, 2>::from_data(
            TensorData::new(vec![1.0f32, 1.0, 0.0, 2.0], [2, 2]),
            &device,
        );
        // W c = [3, -0.5] and [4, 1].
        let expected = [3.25f32, -0.25, 9.25, -0.75];
        assert_eq!(to_vec_f32(score.forward(h, c)), expected);
    }

    /// GCN on `B` computes what it computes on flex's host kernels over weighted edges: the
    /// embeddings, and the gradients of the node features and of the first layer's weight.
    fn gcn_matches_the_host_kernels<B: AutodiffBackend>(device: &B::Device) {
        let cfg = GcnConfig::new(2).with_hidden(3).with_layers(2);
        let host = cfg.init::<FlexAutodiff>(&Default::default());
        let model = carry_over(host.clone(), cfg.init::<B>(device), device);
        let (graphs, _) = weighted();
        let want = crate::gin::probe_gradients(
            &host,
            &graphs,
            &host.layers[0].linear.weight,
            &Default::default(),
        );
        let got =
            crate::gin::probe_gradients(&model, &graphs, &model.layers[0].linear.weight, device);
        for (i, name) in ["embedding", "node features", "weight"].iter().enumerate() {
            assert!(want[i].iter().any(|&v| v != 0.0), "{name}: all zero");
            assert_close(&got[i], &want[i], 1e-4);
        }
    }

    contrast_core::backend_tests!(gcn_matches_the_host_kernels);
}
