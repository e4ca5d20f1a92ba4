//! The transformer kernels (`transformer.rs`) and the dense layer (`dense.rs`) as Burn
//! operations on the served backends: plain (inference: dropout off, as Burn's `Dropout` is)
//! and under `Autodiff` (training, with backward steps of their own).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Distribution, Tensor, TensorMetadata};

use crate::backend::{Ad, HostBackend, host_kernels_enabled, is_on, same};
use crate::dense::{self, Activation};
use crate::ops::{float, primitive};
use crate::transformer::{self, AttentionGeometry, Dropout};

fn host_vec<HB: HostBackend>(t: &FloatTensor<HB>) -> Vec<f32> {
    HB::with_host(t, <[f32]>::to_vec)
}

/// A dropout mask's seed, drawn from the backend's random generator (so `B::seed` makes a
/// run repeat), or no dropout outside training.
fn dropout_for<HB: HostBackend>(prob: f64, training: bool) -> Dropout {
    if !training || prob <= 0.0 {
        return Dropout::NONE;
    }
    let r = primitive(Tensor::<HB, 1>::random(
        [2],
        Distribution::Uniform(0.0, 1.0),
        &Default::default(),
    ));
    let bits = HB::with_host(&r, |v| {
        ((v[0].to_bits() as u64) << 32) | v[1].to_bits() as u64
    });
    Dropout { prob, seed: bits }
}

fn all_f32<B: Backend, const D: usize>(ts: &[&Tensor<B, D>]) -> bool {
    host_kernels_enabled() && ts.iter().all(|t| t.dtype() == DType::F32)
}

/// Runs `plain` when `B` is `HB`, `ad` when it is `Autodiff<HB>`.
macro_rules! dispatch {
    ($B:ty, $plain:ident, $($arg:expr),*) => {{
        #[cfg(feature = "flex")]
        if let Some(y) = dispatch_on::<burn::backend::Flex, $B, _>(
            |training| $plain::<burn::backend::Flex, $B>(training, $($arg),*),
        ) {
            return Some(y);
        }
        #[cfg(feature = "ndarray")]
        if let Some(y) = dispatch_on::<burn::backend::NdArray, $B, _>(
            |training| $plain::<burn::backend::NdArray, $B>(training, $($arg),*),
        ) {
            return Some(y);
        }
        None
    }};
}

/// Four owned tensors: two of rank `D`, two of rank `E`.
type Four<B, const D: usize, const E: usize> =
    (Tensor<B, D>, Tensor<B, D>, Tensor<B, E>, Tensor<B, E>);

fn dispatch_on<HB: HostBackend, B: Backend, T>(f: impl FnOnce(bool) -> T) -> Option<T> {
    is_on::<HB, B>().map(f)
}

// ---------------------------------------------------------------------------------------
// Attention.

/// Multi-head self-attention on the host kernel: from the projected queries, keys and values
/// (`[batch * seq, hidden]`, heads side by side in the columns) and an additive key bias
/// (`[batch, seq]`: 0, or a large negative number for padding), the context
/// `dropout(softmax(q k^T / sqrt(d) + bias)) v` in the same layout. Dropout (probability
/// `dropout`) is applied only under `Autodiff`, as Burn's `Dropout` does. `None` unless `B` is
/// a served backend and every tensor is float32: the caller then runs Burn's operations.
///
/// # Panics
/// If `heads` does not divide `hidden` or the shapes disagree.
pub fn try_attention<B: Backend>(
    q: &Tensor<B, 2>,
    k: &Tensor<B, 2>,
    v: &Tensor<B, 2>,
    key_bias: &Tensor<B, 2>,
    heads: usize,
    dropout: f64,
) -> Option<Tensor<B, 2>> {
    if !all_f32(&[q, k, v, key_bias]) {
        return None;
    }
    let [batch, seq] = key_bias.dims();
    let [_, hidden] = q.dims();
    let g = AttentionGeometry {
        batch,
        seq,
        hidden,
        heads,
    };
    dispatch!(B, attention_on, (q, k, v, key_bias), g, dropout)
}

type Qkvb<'a, B> = (
    &'a Tensor<B, 2>,
    &'a Tensor<B, 2>,
    &'a Tensor<B, 2>,
    &'a Tensor<B, 2>,
);

fn attention_on<HB: HostBackend, B: Backend>(
    training: bool,
    (q, k, v, bias): Qkvb<'_, B>,
    g: AttentionGeometry,
    prob: f64,
) -> Tensor<B, 2> {
    let dropout = dropout_for::<HB>(prob, training);
    if !training {
        let (q, k, v, bias): (Tensor<HB, 2>, Tensor<HB, 2>, Tensor<HB, 2>, Tensor<HB, 2>) =
            same((q.clone(), k.clone(), v.clone(), bias.clone()));
        let (q, k, v, bias) = (primitive(q), primitive(k), primitive(v), primitive(bias));
        let (out, _) = attention_host::<HB>(&q, &k, &v, &bias, &g, dropout);
        return same(float::<HB, 2>(HB::from_host(
            out,
            &[g.batch * g.seq, g.hidden],
        )));
    }
    let (q, k, v, bias): Four<Ad<HB>, 2, 2> = same((q.clone(), k.clone(), v.clone(), bias.clone()));
    let (q, k, v, bias) = (primitive(q), primitive(k), primitive(v), primitive(bias));
    let (out, probs) = attention_host::<HB>(
        &q.primitive,
        &k.primitive,
        &v.primitive,
        &bias.primitive,
        &g,
        dropout,
    );
    let shape = [g.batch * g.seq, g.hidden];
    let y = HB::from_host(out, &shape);
    let out = match HostAttention
        .prepare::<NoCheckpointing>([q.node.clone(), k.node.clone(), v.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = AttentionState::<HB> {
                q: q.primitive.clone(),
                k: k.primitive.clone(),
                v: v.primitive.clone(),
                probs: HB::from_host(probs, &[probs_len(&g)]),
                geometry: g,
                dropout,
            };
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    same(float::<Ad<HB>, 2>(out))
}

fn probs_len(g: &AttentionGeometry) -> usize {
    g.batch * g.heads * g.seq * g.seq
}

fn attention_host<HB: HostBackend>(
    q: &FloatTensor<HB>,
    k: &FloatTensor<HB>,
    v: &FloatTensor<HB>,
    bias: &FloatTensor<HB>,
    g: &AttentionGeometry,
    dropout: Dropout,
) -> (Vec<f32>, Vec<f32>) {
    HB::with_host(q, |q| {
        HB::with_host(k, |k| {
            HB::with_host(v, |v| {
                HB::with_host(bias, |b| {
                    transformer::attention_forward(g, q, k, v, b, dropout)
                })
            })
        })
    })
}

#[derive(Debug, Clone)]
struct AttentionState<HB: HostBackend> {
    q: FloatTensor<HB>,
    k: FloatTensor<HB>,
    v: FloatTensor<HB>,
    probs: FloatTensor<HB>,
    geometry: AttentionGeometry,
    dropout: Dropout,
}

#[derive(Debug)]
struct HostAttention;

impl<HB: HostBackend> Backward<HB, 3> for HostAttention {
    type State = AttentionState<HB>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<HB>(&ops.node);
        let s = ops.state;
        let g = s.geometry;
        let grads_qkv = HB::with_host(&s.q, |q| {
            HB::with_host(&s.k, |k| {
                HB::with_host(&s.v, |v| {
                    HB::with_host(&s.probs, |p| {
                        HB::with_host(&dy, |dy| {
                            transformer::attention_backward(&g, q, k, v, p, dy, s.dropout)
                        })
                    })
                })
            })
        });
        let shape = [g.batch * g.seq, g.hidden];
        for (parent, d) in ops.parents.iter().zip(grads_qkv) {
            if let Some(node) = parent {
                grads.register::<HB>(node.id, HB::from_host(d, &shape));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Dropout, residual addition and layer norm.

/// `layer_norm(dropout(a) + x)` over the last dimension of `[rows, width]` tensors on the host
/// kernel, with gamma and beta of `width` values: a post-LN transformer's "add & norm". The
/// dropout (probability `dropout`) is applied only under `Autodiff`, as Burn's `Dropout`
/// does. `None` unless `B` is a served backend and every tensor is float32.
///
/// # Panics
/// If the shapes disagree.
pub fn try_add_layer_norm<B: Backend>(
    a: &Tensor<B, 2>,
    x: &Tensor<B, 2>,
    gamma: &Tensor<B, 1>,
    beta: &Tensor<B, 1>,
    eps: f64,
    dropout: f64,
) -> Option<Tensor<B, 2>> {
    if !all_f32(&[a, x]) || !all_f32(&[gamma, beta]) {
        return None;
    }
    dispatch!(B, add_norm_on, (a, x, gamma, beta), eps, dropout)
}

type AddNormInputs<'a, B> = (
    &'a Tensor<B, 2>,
    &'a Tensor<B, 2>,
    &'a Tensor<B, 1>,
    &'a Tensor<B, 1>,
);

fn add_norm_on<HB: HostBackend, B: Backend>(
    training: bool,
    (a, x, gamma, beta): AddNormInputs<'_, B>,
    eps: f64,
    prob: f64,
) -> Tensor<B, 2> {
    let dropout = dropout_for::<HB>(prob, training);
    let shape = a.dims();
    let run =
        |a: &FloatTensor<HB>, x: &FloatTensor<HB>, gm: &FloatTensor<HB>, bt: &FloatTensor<HB>| {
            HB::with_host(a, |a| {
                HB::with_host(x, |x| {
                    HB::with_host(gm, |gm| {
                        HB::with_host(bt, |bt| {
                            transformer::add_norm_forward(a, x, gm, bt, eps, dropout)
                        })
                    })
                })
            })
        };
    if !training {
        let (a, x, gm, bt): (Tensor<HB, 2>, Tensor<HB, 2>, Tensor<HB, 1>, Tensor<HB, 1>) =
            same((a.clone(), x.clone(), gamma.clone(), beta.clone()));
        let (y, _, _) = run(&primitive(a), &primitive(x), &primitive(gm), &primitive(bt));
        return same(float::<HB, 2>(HB::from_host(y, &shape)));
    }
    let (a, x, gm, bt): Four<Ad<HB>, 2, 1> =
        same((a.clone(), x.clone(), gamma.clone(), beta.clone()));
    let (a, x, gm, bt) = (primitive(a), primitive(x), primitive(gm), primitive(bt));
    let (y, xhat, rstd) = run(&a.primitive, &x.primitive, &gm.primitive, &bt.primitive);
    let y = HB::from_host(y, &shape);
    let out = match HostAddNorm
        .prepare::<NoCheckpointing>([
            a.node.clone(),
            x.node.clone(),
            gm.node.clone(),
            bt.node.clone(),
        ])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = AddNormState::<HB> {
                xhat: HB::from_host(xhat, &shape),
                rstd,
                gamma: host_vec::<HB>(&gm.primitive),
                dropout,
            };
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    same(float::<Ad<HB>, 2>(out))
}

#[derive(Debug, Clone)]
struct AddNormState<HB: HostBackend> {
    xhat: FloatTensor<HB>,
    rstd: Vec<f32>,
    gamma: Vec<f32>,
    dropout: Dropout,
}

#[derive(Debug)]
struct HostAddNorm;

impl<HB: HostBackend> Backward<HB, 4> for HostAddNorm {
    type State = AddNormState<HB>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<HB>(&ops.node);
        let s = ops.state;
        let shape = s.xhat.shape().dims::<2>();
        let (da, dx, dgamma, dbeta) = HB::with_host(&dy, |dy| {
            HB::with_host(&s.xhat, |xh| {
                transformer::add_norm_backward(dy, xh, &s.rstd, &s.gamma, s.dropout)
            })
        });
        let w = [s.gamma.len()];
        let outs: [(Vec<f32>, &[usize]); 4] =
            [(da, &shape), (dx, &shape), (dgamma, &w), (dbeta, &w)];
        for (parent, (d, shape)) in ops.parents.iter().zip(outs) {
            if let Some(node) = parent {
                grads.register::<HB>(node.id, HB::from_host(d, shape));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Dense layers.

/// `act(x w + b)` on the host kernel (`dense.rs`): Burn's `Linear` (weight `[k, n]`, bias
/// `[n]`) and the activation after it, for a `[rows, k]` input, in one pass per block of rows.
/// GELU is the erf form, Burn's `gelu`.
/// `None` unless `B` is a served backend, every tensor is float32 and `k > 0`: the caller then
/// runs Burn's operations.
///
/// # Panics
/// If the shapes disagree.
pub fn try_dense<B: Backend>(
    x: &Tensor<B, 2>,
    w: &Tensor<B, 2>,
    b: &Tensor<B, 1>,
    act: Activation,
) -> Option<Tensor<B, 2>> {
    if !all_f32(&[x, w]) || !all_f32(&[b]) || x.dims()[1] == 0 {
        return None;
    }
    dispatch!(B, dense_on, (x, w, b), act)
}

fn dense_on<HB: HostBackend, B: Backend>(
    training: bool,
    (x, w, b): (&Tensor<B, 2>, &Tensor<B, 2>, &Tensor<B, 1>),
    act: Activation,
) -> Tensor<B, 2> {
    let [rows, k] = x.dims();
    let [wk, n] = w.dims();
    assert!(
        wk == k && b.dims() == [n],
        "dense: input [{rows}, {k}], weight [{wk}, {n}], bias {:?}",
        b.dims()
    );
    let shape = (rows, k, n);
    let run = |x: &FloatTensor<HB>, w: &FloatTensor<HB>, b: &FloatTensor<HB>, keep_pre| {
        HB::with_host(x, |x| {
            HB::with_host(w, |w| {
                HB::with_host(b, |b| dense::forward(x, w, b, shape, act, keep_pre))
            })
        })
    };
    if !training {
        let (x, w, b): DenseInputs<HB> = same((x.clone(), w.clone(), b.clone()));
        let (y, _) = run(&primitive(x), &primitive(w), &primitive(b), false);
        return same(float::<HB, 2>(HB::from_host(y, &[rows, n])));
    }
    let (x, w, b): DenseInputs<Ad<HB>> = same((x.clone(), w.clone(), b.clone()));
    let (x, w, b) = (primitive(x), primitive(w), primitive(b));
    let out = match HostDense
        .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone(), b.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            // GELU's gradient needs its pre-activation: kept only where a gradient will flow.
            let (y, pre) = run(&x.primitive, &w.primitive, &b.primitive, true);
            let y = HB::from_host(y, &[rows, n]);
            let saved = match act {
                Activation::Identity => None,
                Activation::Relu => Some(y.clone()),
                Activation::Gelu => pre.map(|z| HB::from_host(z, &[rows, n])),
            };
            let state = DenseState::<HB> {
                x: x.primitive.clone(),
                w: w.primitive.clone(),
                act,
                saved,
                shape,
            };
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => {
            let (y, _) = run(&x.primitive, &w.primitive, &b.primitive, false);
            prep.finish(HB::from_host(y, &[rows, n]))
        }
    };
    same(float::<Ad<HB>, 2>(out))
}

/// A dense layer's input, weight and bias.
type DenseInputs<B> = (Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 1>);

#[derive(Debug, Clone)]
struct DenseState<HB: HostBackend> {
    x: FloatTensor<HB>,
    w: FloatTensor<HB>,
    act: Activation,
    /// What the activation's derivative needs: ReLU's output (its zeros are the mask), GELU's
    /// pre-activation; `None` without an activation.
    saved: Option<FloatTensor<HB>>,
    shape: (usize, usize, usize),
}

#[derive(Debug)]
struct HostDense;

impl<HB: HostBackend> Backward<HB, 3> for HostDense {
    type State = DenseState<HB>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<HB>(&ops.node);
        let s = ops.state;
        let (rows, k, n) = s.shape;
        let grads_with = |saved: Option<&[f32]>| {
            HB::with_host(&dy, |dy| {
                HB::with_host(&s.x, |x| {
                    HB::with_host(&s.w, |w| dense::backward(dy, x, w, (s.act, saved), s.shape))
                })
            })
        };
        let (dx, dw, db) = match &s.saved {
            Some(v) => HB::with_host(v, |v| grads_with(Some(v))),
            None => grads_with(None),
        };
        let outs: [(Vec<f32>, &[usize]); 3] = [(dx, &[rows, k]), (dw, &[k, n]), (db, &[n])];
        for (parent, (d, shape)) in ops.parents.iter().zip(outs) {
            if let Some(node) = parent {
                grads.register::<HB>(node.id, HB::from_host(d, shape));
            }
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::TensorData;
    use burn::tensor::activation::{gelu, softmax};

    type A = Autodiff<Flex>;

    fn t<const D: usize>(shape: [usize; D], seed: f32) -> Tensor<A, D> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i as f32 + seed) * 0.7311).sin() * 1.5 + 0.1)
            .collect();
        Tensor::from_data(TensorData::new(v, shape), &Default::default()).require_grad()
    }

    fn vals<const D: usize>(t: Tensor<Flex, D>) -> Vec<f32> {
        t.into_data().into_vec::<f32>().unwrap()
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * scale + 1e-6,
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// Loss = sum(w * f(inputs)); gradients of each input, kernel against Burn's operations.
    #[test]
    fn attention_matches_burn_value_and_gradient() {
        let (batch, seq, heads, hidden) = (3, 5, 2, 8);
        let d = hidden / heads;
        let (q, k, v) = (
            t([batch * seq, hidden], 0.0),
            t([batch * seq, hidden], 1.0),
            t([batch * seq, hidden], 2.0),
        );
        let mut bias = vec![0.0f32; batch * seq];
        bias[seq - 1] = -1e9;
        bias[2 * seq - 2] = -1e9;
        bias[2 * seq - 1] = -1e9;
        let bias =
            Tensor::<A, 2>::from_data(TensorData::new(bias, [batch, seq]), &Default::default());
        let w = t([batch * seq, hidden], 5.0).detach();
        let ours = try_attention(&q, &k, &v, &bias, heads, 0.0).unwrap();
        let split = |x: Tensor<A, 2>| x.reshape([batch, seq, heads, d]).swap_dims(1, 2);
        let scores = split(q.clone())
            .matmul(split(k.clone()).swap_dims(2, 3))
            .div_scalar((d as f64).sqrt())
            + bias.clone().reshape([batch, 1, 1, seq]);
        let theirs = softmax(scores, 3)
            .matmul(split(v.clone()))
            .swap_dims(1, 2)
            .reshape([batch * seq, hidden]);
        close(
            &vals(ours.clone().inner()),
            &vals(theirs.clone().inner()),
            "attention",
        );
        let g1 = (ours * w.clone()).sum().backward();
        let g2 = (theirs * w).sum().backward();
        for (x, name) in [(&q, "dq"), (&k, "dk"), (&v, "dv")] {
            close(
                &vals(x.grad(&g1).unwrap()),
                &vals(x.grad(&g2).unwrap()),
                name,
            );
        }
    }

    #[test]
    fn add_norm_matches_burn_value_and_gradient() {
        let (rows, width) = (70, 12);
        let (a, x) = (t([rows, width], 0.0), t([rows, width], 3.0));
        let (gamma, beta) = (t([width], 1.0), t([width], 2.0));
        let w = t([rows, width], 7.0).detach();
        let ours = try_add_layer_norm(&a, &x, &gamma, &beta, 1e-12, 0.0).unwrap();
        let z = a.clone() + x.clone();
        let (var, mean) = z.clone().var_mean_bias(1);
        let theirs = (z - mean) / (var + 1e-12).sqrt() * gamma.clone().unsqueeze::<2>()
            + beta.clone().unsqueeze::<2>();
        close(
            &vals(ours.clone().inner()),
            &vals(theirs.clone().inner()),
            "y",
        );
        let g1 = (ours * w.clone()).sum().backward();
        let g2 = (theirs * w).sum().backward();
        close(
            &vals(a.grad(&g1).unwrap()),
            &vals(a.grad(&g2).unwrap()),
            "da",
        );
        close(
            &vals(x.grad(&g1).unwrap()),
            &vals(x.grad(&g2).unwrap()),
            "dx",
        );
        close(
            &vals(gamma.grad(&g1).unwrap()),
            &vals(gamma.grad(&g2).unwrap()),
            "dgamma",
        );
        close(
            &vals(beta.grad(&g1).unwrap()),
            &vals(beta.grad(&g2).unwrap()),
            "dbeta",
        );
    }

    #[test]
    fn dense_matches_burn_linear_and_activations_value_and_gradient() {
        use burn::tensor::activation::relu;
        // 700 rows: several blocks of rows, the last one short.
        for act in [Activation::Identity, Activation::Relu, Activation::Gelu] {
            let x = t([700, 13], 0.5).detach().require_grad();
            let w = t([13, 9], 2.0).mul_scalar(0.3).detach().require_grad();
            let b = t([9], 3.0).mul_scalar(0.2).detach().require_grad();
            let probe = t([700, 9], 4.0).detach();
            let ours = try_dense(&x, &w, &b, act).unwrap();
            let affine = x.clone().matmul(w.clone()) + b.clone().unsqueeze();
            let theirs = match act {
                Activation::Identity => affine,
                Activation::Relu => relu(affine),
                Activation::Gelu => gelu(affine),
            };
            close(
                &vals(ours.clone().inner()),
                &vals(theirs.clone().inner()),
                "dense",
            );
            let g1 = (ours * probe.clone()).sum().backward();
            let g2 = (theirs * probe).sum().backward();
            close(
                &vals(x.grad(&g1).unwrap()),
                &vals(x.grad(&g2).unwrap()),
                "dx",
            );
            close(
                &vals(w.grad(&g1).unwrap()),
                &vals(w.grad(&g2).unwrap()),
                "dw",
            );
            close(
                &vals(b.grad(&g1).unwrap()),
                &vals(b.grad(&g2).unwrap()),
                "db",
            );
        }
        // On the inner backend (inference) too.
        let x = t([5, 3], 1.0).inner();
        let w = t([3, 2], 2.0).inner();
        let b = t([2], 3.0).inner();
        let ours = try_dense(&x, &w, &b, Activation::Relu).unwrap();
        let theirs = relu(x.clone().matmul(w.clone()) + b.clone().unsqueeze());
        close(&vals(ours), &vals(theirs), "inner dense");
        let ours = try_dense(&x, &w, &b, Activation::Gelu).unwrap();
        let theirs = gelu(x.matmul(w) + b.unsqueeze());
        close(&vals(ours), &vals(theirs), "inner dense gelu");
    }

    /// With dropout, the gradient of `a` is the mask times the gradient without it, and about
    /// `p` of the entries are dropped.
    #[test]
    fn add_norm_dropout_gradient_follows_the_mask() {
        let (rows, width) = (64, 16);
        let (a, x) = (t([rows, width], 0.0), t([rows, width], 3.0));
        let (gamma, beta) = (t([width], 1.0), t([width], 2.0));
        let y = try_add_layer_norm(&a, &x, &gamma, &beta, 1e-12, 0.25).unwrap();
        let grads = (y * t([rows, width], 7.0).detach()).sum().backward();
        let (da, dx) = (vals(a.grad(&grads).unwrap()), vals(x.grad(&grads).unwrap()));
        let dropped = da.iter().filter(|v| **v == 0.0).count();
        assert!((150..370).contains(&dropped), "{dropped}");
        for (p, q) in da.iter().zip(&dx) {
            assert!(*p == 0.0 || (p - q / 0.75).abs() < 1e-5, "{p} vs {q}");
        }
    }
}
