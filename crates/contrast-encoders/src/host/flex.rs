//! The host kernels on Burn's `flex` backend: plain (inference) and under `Autodiff`
//! (training, with backward steps of their own so that the gradients come from the kernels
//! as well).

use std::any::{Any, TypeId};

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::{FlexTensor, Layout};
use burn::tensor::backend::Backend;
use burn::tensor::{Bytes, DType, Shape, Tensor, TensorData, TensorPrimitive};

use super::NormInputs;
use super::conv::{self, ConvGeometry};
use super::norm::{self, Epilogue, NormGeometry};

type FlexAd = Autodiff<Flex, NoCheckpointing>;

/// `value` as a `U` when `T` is `U`, or back unchanged.
fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<U>>() {
        Some(u) => Ok(u.take().expect("slot filled above")),
        None => Err(slot.expect("slot untouched")),
    }
}

/// Whether `B` is a backend the host kernel serves.
pub(super) fn serves<B: Backend>() -> bool {
    let b = TypeId::of::<B>();
    b == TypeId::of::<Flex>() || b == TypeId::of::<FlexAd>()
}

/// `value` as the type the caller already identified it to be.
fn same<T: 'static, U: 'static>(value: T) -> U {
    cast(value).unwrap_or_else(|_| unreachable!("backend type checked by the caller"))
}

/// The convolution through the host kernel when `B` is `Flex` or `Autodiff<Flex>` and the
/// tensors are float32; the inputs back otherwise.
#[allow(clippy::type_complexity)]
pub(super) fn try_conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    g: ConvGeometry,
) -> Result<Tensor<B, 4>, (Tensor<B, 4>, Tensor<B, 4>)> {
    if x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
        return Err((x, weight));
    }
    let inputs = match cast::<_, (Tensor<Flex, 4>, Tensor<Flex, 4>)>((x, weight)) {
        Ok((x, w)) => {
            let y = forward(
                &x.into_primitive().tensor(),
                &w.into_primitive().tensor(),
                &g,
            );
            return Ok(same(float::<Flex, 4>(y)));
        }
        Err(inputs) => inputs,
    };
    match cast::<_, (Tensor<FlexAd, 4>, Tensor<FlexAd, 4>)>(inputs) {
        Ok((x, w)) => Ok(same(autodiff_conv2d(x, w, g))),
        Err(inputs) => Err(inputs),
    }
}

/// Runs `f` on the float32 elements of `t` in row-major order.
fn with_host<R>(t: &FlexTensor, f: impl FnOnce(&[f32]) -> R) -> R {
    match t.as_slice::<f32>() {
        // `as_slice` is `None` unless the layout is contiguous.
        Some(values) => f(values),
        _ => f(t
            .to_contiguous()
            .as_slice::<f32>()
            .expect("contiguous after to_contiguous")),
    }
}

fn from_host<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(Shape::new(shape)),
        DType::F32,
    )
}

fn output_shape(g: &ConvGeometry) -> [usize; 4] {
    let [ho, wo] = g.output().expect("geometry checked by conv2d");
    [g.batch, ho, wo, g.out_channels]
}

fn forward(x: &FlexTensor, weight: &FlexTensor, g: &ConvGeometry) -> FlexTensor {
    let y = with_host(x, |x| with_host(weight, |w| conv::forward(g, x, w)));
    from_host(y, output_shape(g))
}

/// Backward step of the host convolution in the autodiff graph.
#[derive(Debug)]
struct HostConv2d;

impl Backward<Flex, 2> for HostConv2d {
    type State = (NodeId, NodeId, ConvGeometry);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x_state, weight_state, g) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x_state);
        let weight: FlexTensor = checkpointer.retrieve_node_output(weight_state);
        let (dx, dw) = with_host(&x, |x| {
            with_host(&weight, |w| {
                with_host(&dy, |dy| {
                    conv::backward(&g, x, w, dy, node_x.is_some(), node_weight.is_some())
                })
            })
        });
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(
                node.id,
                from_host(dx, [g.batch, g.height, g.width, g.in_channels]),
            );
        }
        if let (Some(node), Some(dw)) = (node_weight, dw) {
            grads.register::<Flex>(
                node.id,
                from_host(
                    dw,
                    [g.out_channels, g.in_channels, g.kernel[0], g.kernel[1]],
                ),
            );
        }
    }
}

fn autodiff_conv2d(
    x: Tensor<FlexAd, 4>,
    weight: Tensor<FlexAd, 4>,
    g: ConvGeometry,
) -> Tensor<FlexAd, 4> {
    let x = x.into_primitive().tensor();
    let weight = weight.into_primitive().tensor();
    let y = forward(&x.primitive, &weight.primitive, &g);
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

/// Training-mode batch norm (channels last) with its epilogue through the host kernel when
/// `B` is `Flex` or `Autodiff<Flex>` and the tensors are float32: `(y, mean, var)`; the inputs
/// back otherwise.
#[allow(clippy::type_complexity)]
pub(super) fn try_batch_norm<B: Backend>(
    inputs: NormInputs<B>,
    eps: f64,
    relu: bool,
) -> Result<(Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>), NormInputs<B>> {
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
    let inputs = match cast::<_, NormInputs<Flex>>(inputs) {
        Ok((x, gamma, beta, residual)) => {
            let device = x.device();
            let residual = residual.map(|r| r.into_primitive().tensor());
            let (y, mean, var) = norm_forward(
                &x.into_primitive().tensor(),
                &gamma.into_primitive().tensor(),
                &beta.into_primitive().tensor(),
                residual.as_ref(),
                &g,
                eps,
                epilogue,
            );
            let out = (
                float::<Flex, 4>(y),
                statistic::<Flex>(mean, &device),
                statistic::<Flex>(var, &device),
            );
            return Ok(same(out));
        }
        Err(inputs) => inputs,
    };
    match cast::<_, NormInputs<FlexAd>>(inputs) {
        Ok(inputs) => Ok(same(autodiff_batch_norm(inputs, g, eps, epilogue))),
        Err(inputs) => Err(inputs),
    }
}

/// A per-channel batch statistic as a tensor without gradient.
fn statistic<B: Backend>(values: Vec<f32>, device: &B::Device) -> Tensor<B, 1> {
    let len = values.len();
    Tensor::from_data(TensorData::new(values, [len]), device)
}

fn float<B: Backend, const D: usize>(t: B::FloatTensorPrimitive) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// `(y, mean, var)`, the statistics as host vectors.
fn norm_forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    residual: Option<&FlexTensor>,
    g: &NormGeometry,
    eps: f64,
    epilogue: Epilogue,
) -> (FlexTensor, Vec<f32>, Vec<f32>) {
    let run = |r: Option<&[f32]>| {
        with_host(x, |x| {
            with_host(gamma, |gm| {
                with_host(beta, |bt| norm::forward(g, x, gm, bt, eps, r, epilogue))
            })
        })
    };
    let (y, mean, var) = match residual {
        Some(r) => with_host(r, |r| run(Some(r))),
        None => run(None),
    };
    (from_host(y, x.layout().shape().dims::<4>()), mean, var)
}

/// State of the batch-norm backward step: the input's checkpoint, the output when a ReLU
/// follows (its mask), gamma, the batch statistics.
#[derive(Debug, Clone)]
struct NormState {
    x: NodeId,
    y: Option<FlexTensor>,
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

impl<const N: usize> Backward<Flex, N> for HostBatchNorm {
    type State = NormState;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let dy = grads.consume::<Flex>(&ops.node);
        let s = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(s.x);
        let shape = x.layout().shape().dims::<4>();
        let run = |y: Option<&[f32]>| {
            with_host(&x, |x| {
                with_host(&dy, |dy| {
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
            Some(y) => with_host(y, |y| run(Some(y))),
            None => run(None),
        };
        let c = s.geometry.channels;
        let parents = &ops.parents;
        let mut register = |i: usize, values: Vec<f32>, shape: &[usize]| {
            if let Some(node) = parents.get(i).and_then(Option::as_ref) {
                let t = match *shape {
                    [a] => from_host(values, [a]),
                    [a, b, c, d] => from_host(values, [a, b, c, d]),
                    _ => unreachable!("batch-norm gradients are 1-d or 4-d"),
                };
                grads.register::<Flex>(node.id, t);
            }
        };
        register(0, out.dx, &shape);
        register(1, out.dgamma, &[c]);
        register(2, out.dbeta, &[c]);
        if let Some(dres) = out.dresidual {
            register(3, dres, &shape);
        }
    }
}

/// Autodiff float tensor of `Autodiff<Flex>`.
type AdTensor = burn::tensor::ops::FloatTensor<FlexAd>;

/// Registers the host batch norm's output `y` in the autodiff graph (`kind`: prepared with its
/// parents).
fn track<const N: usize>(
    kind: OpsKind<HostBatchNorm, Flex, NormState, NoCheckpointing, N>,
    x: &AdTensor,
    state: impl FnOnce(NodeId) -> NormState,
    y: FlexTensor,
) -> AdTensor {
    match kind {
        OpsKind::Tracked(mut prep) => {
            let x_state = prep.checkpoint(x);
            prep.finish(state(x_state), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

fn autodiff_batch_norm(
    (x, gamma, beta, residual): NormInputs<FlexAd>,
    g: NormGeometry,
    eps: f64,
    epilogue: Epilogue,
) -> (Tensor<FlexAd, 4>, Tensor<FlexAd, 1>, Tensor<FlexAd, 1>) {
    let device = x.device();
    let x = x.into_primitive().tensor();
    let gamma = gamma.into_primitive().tensor();
    let beta = beta.into_primitive().tensor();
    let residual = residual.map(|r| r.into_primitive().tensor());
    let (y, mean, var) = norm_forward(
        &x.primitive,
        &gamma.primitive,
        &beta.primitive,
        residual.as_ref().map(|r| &r.primitive),
        &g,
        eps,
        epilogue,
    );
    let (mean_t, var_t) = (
        statistic::<FlexAd>(mean.clone(), &device),
        statistic::<FlexAd>(var.clone(), &device),
    );
    let mask = epilogue.relu.then(|| y.clone());
    let state = |x_state: NodeId| NormState {
        x: x_state,
        y: mask,
        gamma: with_host(&gamma.primitive, |v| v.to_vec()),
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
