//! Convolution and batch norm on the served backends (see `backend.rs`) as Burn operations:
//! plain (inference) and under `Autodiff` (training, with backward steps of their own so that
//! the gradients come from the kernels as well).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorData, TensorMetadata, TensorPrimitive};

use crate::backend::{Ad, HostBackend, host_kernels_enabled, is_on, same};
use crate::conv::{self, ConvGeometry};
use crate::norm::{self, Epilogue, NormGeometry};

/// The output of a training-mode batch norm: `(y, batch mean, biased batch variance)`.
pub type NormOutput<B> = (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>);

/// The inputs of a batch norm: activation, gamma, beta and the residual added after it.
pub type NormInputs<B> = (
    Tensor<B, 4>,
    Tensor<B, 1>,
    Tensor<B, 1>,
    Option<Tensor<B, 4>>,
);

/// A float primitive as a tensor of rank `D`.
pub(crate) fn float<B: Backend, const D: usize>(t: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// A float tensor's primitive.
pub(crate) fn primitive<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

/// The convolution of a channels-last `x` (`[batch, height, width, in]`) by `weight` (Burn's
/// `[out, in, kh, kw]`, no bias) on the host kernel: `[batch, h_out, w_out, out]`, with its own
/// backward step under `Autodiff`. Gives the inputs back, for Burn's convolution, unless `B`
/// is a served backend ([`crate::host_kernel_serves`]) and both tensors are float32.
///
/// # Panics
/// If `g.output()` is `None` (the kernel does not fit the padded input) or the tensors'
/// lengths disagree with `g`.
#[allow(clippy::type_complexity)]
pub fn try_conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    g: ConvGeometry,
) -> Result<Tensor<B, 4>, (Tensor<B, 4>, Tensor<B, 4>)> {
    if !host_kernels_enabled() || x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
        return Err((x, weight));
    }
    #[cfg(feature = "flex")]
    if let Some(y) = conv_on::<burn::backend::Flex, B>(&x, &weight, g) {
        return Ok(y);
    }
    #[cfg(feature = "ndarray")]
    if let Some(y) = conv_on::<burn::backend::NdArray, B>(&x, &weight, g) {
        return Ok(y);
    }
    let _ = g;
    Err((x, weight))
}

/// [`try_conv2d`] on host backend `HB`: `None` when `B` is neither `HB` nor `Autodiff<HB>`.
/// (Tensors are reference-counted: the clones are cheap.)
fn conv_on<HB: HostBackend, B: Backend>(
    x: &Tensor<B, 4>,
    weight: &Tensor<B, 4>,
    g: ConvGeometry,
) -> Option<Tensor<B, 4>> {
    let y = match is_on::<HB, B>()? {
        false => {
            let (x, w): (Tensor<HB, 4>, Tensor<HB, 4>) = same((x.clone(), weight.clone()));
            same(float::<HB, 4>(conv_forward::<HB>(
                &primitive(x),
                &primitive(w),
                &g,
            )))
        }
        true => {
            let (x, w): (Tensor<Ad<HB>, 4>, Tensor<Ad<HB>, 4>) = same((x.clone(), weight.clone()));
            same(autodiff_conv2d::<HB>(x, w, g))
        }
    };
    Some(y)
}

fn output_shape(g: &ConvGeometry) -> [usize; 4] {
    let [ho, wo] = g.output().expect("geometry checked by conv2d");
    [g.batch, ho, wo, g.out_channels]
}

fn conv_forward<HB: HostBackend>(
    x: &FloatTensor<HB>,
    weight: &FloatTensor<HB>,
    g: &ConvGeometry,
) -> FloatTensor<HB> {
    let y = HB::with_host(x, |x| HB::with_host(weight, |w| conv::forward(g, x, w)));
    HB::from_host(y, &output_shape(g))
}

/// Backward step of the host convolution in the autodiff graph.
#[derive(Debug)]
struct HostConv2d;

impl<HB: HostBackend> Backward<HB, 2> for HostConv2d {
    type State = (NodeId, NodeId, ConvGeometry);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let dy = grads.consume::<HB>(&ops.node);
        let (x_state, weight_state, g) = ops.state;
        let x: FloatTensor<HB> = checkpointer.retrieve_node_output(x_state);
        let weight: FloatTensor<HB> = checkpointer.retrieve_node_output(weight_state);
        let (dx, dw) = HB::with_host(&x, |x| {
            HB::with_host(&weight, |w| {
                HB::with_host(&dy, |dy| {
                    conv::backward(&g, x, w, dy, node_x.is_some(), node_weight.is_some())
                })
            })
        });
        if let (Some(node), Some(dx)) = (node_x, dx) {
            let shape = [g.batch, g.height, g.width, g.in_channels];
            grads.register::<HB>(node.id, HB::from_host(dx, &shape));
        }
        if let (Some(node), Some(dw)) = (node_weight, dw) {
            let shape = [g.out_channels, g.in_channels, g.kernel[0], g.kernel[1]];
            grads.register::<HB>(node.id, HB::from_host(dw, &shape));
        }
    }
}

fn autodiff_conv2d<HB: HostBackend>(
    x: Tensor<Ad<HB>, 4>,
    weight: Tensor<Ad<HB>, 4>,
    g: ConvGeometry,
) -> Tensor<Ad<HB>, 4> {
    let (x, weight) = (primitive(x), primitive(weight));
    let y = conv_forward::<HB>(&x.primitive, &weight.primitive, &g);
    let out = match HostConv2d
        .prepare::<NoCheckpointing>([x.node.clone(), weight.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let x_state = prep.checkpoint(&x);
            let weight_state = prep.checkpoint(&weight);
            prep.finish((x_state, weight_state, g), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    float(out)
}

/// Training-mode batch norm of a channels-last activation `[batch, height, width, channels]`
/// on the host kernel, with the residual addition and ReLU that follow it fused in:
/// `(relu?(bn(x) + residual?), batch mean, biased batch variance)`, the statistics without
/// gradient, with its own backward step under `Autodiff`. Gives the inputs back, for Burn's
/// operations, unless `B` is a served backend ([`crate::host_kernel_serves`]) and every tensor
/// is float32.
///
/// # Panics
/// If gamma and beta do not hold one value per channel, or the residual's shape differs from
/// the activation's.
pub fn try_batch_norm<B: Backend>(
    inputs: NormInputs<B>,
    eps: f64,
    relu: bool,
) -> Result<NormOutput<B>, NormInputs<B>> {
    if !host_kernels_enabled() {
        return Err(inputs);
    }
    let (x, gamma, beta, residual) = &inputs;
    let dtypes = [x.dtype(), gamma.dtype(), beta.dtype()];
    if dtypes
        .iter()
        .chain(residual.as_ref().map(|r| r.dtype()).iter())
        .any(|d| *d != DType::F32)
    {
        return Err(inputs);
    }
    let [n, h, w, c] = x.dims();
    let g = NormGeometry {
        rows: n * h * w,
        channels: c,
    };
    let epilogue = Epilogue {
        residual: residual.is_some(),
        relu,
    };
    #[cfg(feature = "flex")]
    if let Some(out) = norm_on::<burn::backend::Flex, B>(&inputs, g, eps, epilogue) {
        return Ok(out);
    }
    #[cfg(feature = "ndarray")]
    if let Some(out) = norm_on::<burn::backend::NdArray, B>(&inputs, g, eps, epilogue) {
        return Ok(out);
    }
    let _ = (g, eps, epilogue);
    Err(inputs)
}

/// [`try_batch_norm`] on host backend `HB`: `None` when `B` is neither `HB` nor
/// `Autodiff<HB>`.
fn norm_on<HB: HostBackend, B: Backend>(
    inputs: &NormInputs<B>,
    g: NormGeometry,
    eps: f64,
    epilogue: Epilogue,
) -> Option<NormOutput<B>> {
    let out = match is_on::<HB, B>()? {
        false => {
            let (x, gamma, beta, residual): NormInputs<HB> = same(inputs.clone());
            let device = x.device();
            let residual = residual.map(primitive);
            let (y, mean, var) = norm_forward::<HB>(
                &primitive(x),
                &primitive(gamma),
                &primitive(beta),
                residual.as_ref(),
                &g,
                eps,
                epilogue,
            );
            same((
                float::<HB, 4>(y),
                statistic::<HB>(mean, &device),
                statistic::<HB>(var, &device),
            ))
        }
        true => same(autodiff_batch_norm::<HB>(
            same(inputs.clone()),
            g,
            eps,
            epilogue,
        )),
    };
    Some(out)
}

/// A per-channel batch statistic as a tensor without gradient.
fn statistic<B: Backend>(values: Vec<f32>, device: &B::Device) -> Tensor<B, 1> {
    let len = values.len();
    Tensor::from_data(TensorData::new(values, [len]), device)
}

/// `(y, mean, var)`, the statistics as host vectors.
fn norm_forward<HB: HostBackend>(
    x: &FloatTensor<HB>,
    gamma: &FloatTensor<HB>,
    beta: &FloatTensor<HB>,
    residual: Option<&FloatTensor<HB>>,
    g: &NormGeometry,
    eps: f64,
    epilogue: Epilogue,
) -> (FloatTensor<HB>, Vec<f32>, Vec<f32>) {
    let run = |r: Option<&[f32]>| {
        HB::with_host(x, |x| {
            HB::with_host(gamma, |gm| {
                HB::with_host(beta, |bt| norm::forward(g, x, gm, bt, eps, r, epilogue))
            })
        })
    };
    let (y, mean, var) = match residual {
        Some(r) => HB::with_host(r, |r| run(Some(r))),
        None => run(None),
    };
    (HB::from_host(y, &x.shape().dims::<4>()), mean, var)
}

/// State of the batch-norm backward step: the input's checkpoint, the output when a ReLU
/// follows (its mask), gamma, the batch statistics.
#[derive(Debug, Clone)]
struct NormState<HB: HostBackend> {
    x: NodeId,
    y: Option<FloatTensor<HB>>,
    gamma: Vec<f32>,
    mean: Vec<f32>,
    var: Vec<f32>,
    geometry: NormGeometry,
    eps: f64,
    epilogue: Epilogue,
}

/// Backward step of the host batch norm in the autodiff graph, without (`N = 3`) or with
/// (`N = 4`) a residual input.
#[derive(Debug)]
struct HostBatchNorm;

impl<HB: HostBackend, const N: usize> Backward<HB, N> for HostBatchNorm {
    type State = NormState<HB>;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<HB>(&ops.node);
        let s = ops.state;
        let x: FloatTensor<HB> = checkpointer.retrieve_node_output(s.x);
        let shape = x.shape().dims::<4>();
        let run = |y: Option<&[f32]>| {
            HB::with_host(&x, |x| {
                HB::with_host(&dy, |dy| {
                    norm::backward(
                        &s.geometry,
                        x,
                        dy,
                        y,
                        &s.gamma,
                        &s.mean,
                        &s.var,
                        s.eps,
                        s.epilogue,
                    )
                })
            })
        };
        let out = match &s.y {
            Some(y) => HB::with_host(y, |y| run(Some(y))),
            None => run(None),
        };
        let c = [s.geometry.channels];
        let mut register = |i: usize, values: Vec<f32>, shape: &[usize]| {
            if let Some(node) = ops.parents.get(i).and_then(Option::as_ref) {
                grads.register::<HB>(node.id, HB::from_host(values, shape));
            }
        };
        register(0, out.dx, &shape);
        register(1, out.dgamma, &c);
        register(2, out.dbeta, &c);
        if let Some(dres) = out.dresidual {
            register(3, dres, &shape);
        }
    }
}

/// Registers the host batch norm's output `y` in the autodiff graph (`kind`: prepared with its
/// parents).
fn track<HB: HostBackend, const N: usize>(
    kind: OpsKind<HostBatchNorm, HB, NormState<HB>, NoCheckpointing, N>,
    x: &FloatTensor<Ad<HB>>,
    state: impl FnOnce(NodeId) -> NormState<HB>,
    y: FloatTensor<HB>,
) -> FloatTensor<Ad<HB>> {
    match kind {
        OpsKind::Tracked(mut prep) => {
            let x_state = prep.checkpoint(x);
            prep.finish(state(x_state), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

fn autodiff_batch_norm<HB: HostBackend>(
    (x, gamma, beta, residual): NormInputs<Ad<HB>>,
    g: NormGeometry,
    eps: f64,
    epilogue: Epilogue,
) -> NormOutput<Ad<HB>> {
    let device = x.device();
    let (x, gamma, beta) = (primitive(x), primitive(gamma), primitive(beta));
    let residual = residual.map(primitive);
    let (y, mean, var) = norm_forward::<HB>(
        &x.primitive,
        &gamma.primitive,
        &beta.primitive,
        residual.as_ref().map(|r| &r.primitive),
        &g,
        eps,
        epilogue,
    );
    let (mean_t, var_t) = (
        statistic::<Ad<HB>>(mean.clone(), &device),
        statistic::<Ad<HB>>(var.clone(), &device),
    );
    let mask = epilogue.relu.then(|| y.clone());
    let state = |x_state: NodeId| NormState {
        x: x_state,
        y: mask,
        gamma: HB::with_host(&gamma.primitive, |v| v.to_vec()),
        mean,
        var,
        geometry: g,
        eps,
        epilogue,
    };
    let (xn, gn, bn) = (x.node.clone(), gamma.node.clone(), beta.node.clone());
    let out = match residual {
        Some(r) => {
            let kind = HostBatchNorm
                .prepare::<NoCheckpointing>([xn, gn, bn, r.node.clone()])
                .compute_bound()
                .stateful();
            track(kind, &x, state, y)
        }
        None => {
            let kind = HostBatchNorm
                .prepare::<NoCheckpointing>([xn, gn, bn])
                .compute_bound()
                .stateful();
            track(kind, &x, state, y)
        }
    };
    (float(out), mean_t, var_t)
}
