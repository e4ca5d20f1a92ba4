use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use contrast_core::{Error, ensure_in_range};
use serde::{Deserialize, Serialize};

/// Walks the online module: for every float parameter in tree order, whether it is averaged,
/// and, if so, its shape and flattened value.
struct Collect<B: Backend> {
    trainable: Vec<bool>,
    tensors: Vec<(Vec<usize>, Tensor<B, 1>)>,
}

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        // With autodiff, parameters that need no gradient (running statistics) are the
        // target's own; without it no parameter tracks gradients, so every one is averaged.
        let averaged = !B::ad_enabled(&t.device()) || t.is_require_grad();
        self.trainable.push(averaged);
        if averaged {
            self.tensors
                .push((t.dims().to_vec(), t.detach().flatten(0, D - 1)));
        }
    }
}

/// Records the shapes of every float parameter of the target, in tree order.
struct Shapes {
    shapes: Vec<Vec<usize>>,
}

impl<B: Backend> ModuleVisitor<B> for Shapes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.shapes.push(param.val().dims().to_vec());
    }
}

/// Applies `target <- m * target + (1 - m) * online` to the paired parameters.
struct Ema<'a, B: Backend> {
    online: &'a [(Vec<usize>, Tensor<B, 1>)],
    trainable: &'a [bool],
    next: usize,
    paired: usize,
    momentum: f64,
}

impl<B: Backend> ModuleMapper<B> for Ema<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let slot = self.next;
        self.next += 1;
        if !self.trainable[slot] {
            return param;
        }
        let (shape, online) = &self.online[self.paired];
        self.paired += 1;
        let momentum = self.momentum;
        let online: Tensor<B, D> = online.clone().reshape::<D, _>(
            <[usize; D]>::try_from(shape.as_slice()).expect("shapes were checked before mapping"),
        );
        // m t + (1 - m) o  ==  o + m (t - o): every step reuses the target's own buffer, which
        // `Param::map` hands over uniquely, so no parameter-sized temporary is allocated.
        param.map(|t| ((t.detach() - online.clone()) * momentum + online).detach())
    }
}

/// The exponential moving average of MoCo, BYOL and their descendants, for any Burn module:
///
/// ```text
/// target <- m * target + (1 - m) * online
/// ```
///
/// Parameters are paired by position in the module tree (the order of `Module::visit`), so the
/// two modules must have the same structure; the target receives no gradient. On an autodiff
/// backend only the online module's trainable parameters are averaged: parameters without
/// gradient (batch-norm running statistics) keep the target's own values, as in MoCo where the
/// key encoder's statistics come from its own forward passes. On a backend without autodiff no
/// parameter is marked trainable, so every float parameter is averaged.
///
/// He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020,
/// <https://arxiv.org/abs/1911.05722>.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the modules have a different number of float parameters or a
/// paired parameter differs in shape; [`Error::InvalidConfig`] for a momentum outside `[0, 1]`.
/// Both modules are checked before the target is consumed by the update; on error the target
/// is dropped, so pass a clone if the error must be recovered from.
pub fn update_momentum<B: Backend, M: Module<B>>(
    target: M,
    online: &M,
    momentum: f64,
) -> Result<M, Error> {
    ensure_in_range("momentum", momentum, 0.0, 1.0)?;
    let mut collect = Collect {
        trainable: Vec::new(),
        tensors: Vec::new(),
    };
    online.visit(&mut collect);
    let mut shapes = Shapes { shapes: Vec::new() };
    target.visit::<Shapes>(&mut shapes);
    if shapes.shapes.len() != collect.trainable.len() {
        return Err(Error::ShapeMismatch {
            op: "update_momentum",
            expected: format!(
                "{} float parameters (online module)",
                collect.trainable.len()
            ),
            found: format!("{} float parameters (target module)", shapes.shapes.len()),
        });
    }
    let online_shapes = collect
        .trainable
        .iter()
        .zip(&shapes.shapes)
        .filter(|(t, _)| **t)
        .map(|(_, s)| s);
    for (i, (target_shape, (online_shape, _))) in online_shapes.zip(&collect.tensors).enumerate() {
        if target_shape != online_shape {
            return Err(Error::ShapeMismatch {
                op: "update_momentum",
                expected: format!("{online_shape:?} (averaged parameter {i} of the online module)"),
                found: format!("{target_shape:?} (the target's parameter at that position)"),
            });
        }
    }
    let mut ema = Ema {
        online: &collect.tensors,
        trainable: &collect.trainable,
        next: 0,
        paired: 0,
        momentum,
    };
    Ok(target.map(&mut ema))
}

/// A copy of `online` to serve as the initial momentum target: same values, every parameter
/// marked as requiring no gradient, so the autodiff graph never tracks it.
pub fn momentum_target<B: Backend, M: Module<B>>(online: &M) -> M {
    online.clone().no_grad()
}

/// How the EMA momentum evolves over training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum MomentumSchedule {
    /// The same momentum at every step (MoCo v1/v2: 0.999).
    Constant(f64),
    /// From `base` at step 0 to 1 at the last step along a half cosine (BYOL, MoCo v3):
    /// `m(t) = 1 - (1 - base) * (cos(pi t / T) + 1) / 2`.
    Cosine {
        /// Momentum at the first step.
        base: f64,
    },
}

impl MomentumSchedule {
    /// Checks the momentum values.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when a momentum is outside `[0, 1]`.
    pub fn validate(&self) -> Result<(), Error> {
        match *self {
            MomentumSchedule::Constant(m) => ensure_in_range("momentum", m, 0.0, 1.0),
            MomentumSchedule::Cosine { base } => ensure_in_range("momentum.base", base, 0.0, 1.0),
        }
    }

    /// The momentum at `step` of `total_steps` (steps past the end use the last value).
    pub fn at(&self, step: usize, total_steps: usize) -> f64 {
        match *self {
            MomentumSchedule::Constant(m) => m,
            MomentumSchedule::Cosine { base } => {
                let progress = if total_steps == 0 {
                    1.0
                } else {
                    (step as f64 / total_steps as f64).min(1.0)
                };
                1.0 - (1.0 - base) * ((std::f64::consts::PI * progress).cos() + 1.0) / 2.0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::TensorData;
    use burn::tensor::backend::AutodiffBackend;
    use contrast_core::testing::assert_close;
    use contrast_core::to_vec_f32;

    #[derive(Module, Debug)]
    struct TwoLayer<B: Backend> {
        first: Linear<B>,
        second: Linear<B>,
    }

    /// A two-layer module whose parameters are `offset + 0.1 * position`, so every value is
    /// known on the host.
    fn two_layer<B: Backend>(offset: f32, device: &B::Device) -> (TwoLayer<B>, Vec<f32>) {
        let mut all = Vec::new();
        let mut next = |len: usize| {
            let v: Vec<f32> = (0..len)
                .map(|i| offset + 0.1 * (all.len() + i) as f32)
                .collect();
            all.extend(&v);
            v
        };
        let mut first = LinearConfig::new(3, 2).init::<B>(device);
        first.weight =
            Param::from_tensor(Tensor::from_data(TensorData::new(next(6), [3, 2]), device));
        first.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(next(2), [2]),
            device,
        )));
        let mut second = LinearConfig::new(2, 1).with_bias(false).init::<B>(device);
        second.weight =
            Param::from_tensor(Tensor::from_data(TensorData::new(next(2), [2, 1]), device));
        (TwoLayer { first, second }, all)
    }

    fn flat<B: Backend>(m: &TwoLayer<B>) -> Vec<f32> {
        let mut v = to_vec_f32(m.first.weight.val());
        v.extend(to_vec_f32(m.first.bias.as_ref().unwrap().val()));
        v.extend(to_vec_f32(m.second.weight.val()));
        v
    }

    /// Each parameter becomes 0.9 * target + 0.1 * online, checked against host arithmetic;
    /// the target gets no gradient while the online module does.
    fn ema_two_layer_matches_hand_values<B: AutodiffBackend>(device: &B::Device) {
        let (online, o) = two_layer::<B>(1.0, device);
        let (target, t) = two_layer::<B>(-2.0, device);
        let target = update_momentum(momentum_target(&target), &online, 0.9).unwrap();
        let expected: Vec<f32> = t.iter().zip(&o).map(|(t, o)| 0.9 * t + 0.1 * o).collect();
        assert_close(&flat(&target), &expected, 1e-6);
        let target = update_momentum(target, &online, 0.0).unwrap();
        assert_close(&flat(&target), &o, 1e-6);

        let x = Tensor::<B, 2>::ones([1, 3], device);
        let out = target.second.forward(target.first.forward(x.clone()))
            + online.second.forward(online.first.forward(x));
        let grads = out.sum().backward();
        assert!(target.first.weight.val().grad(&grads).is_none());
        assert!(online.first.weight.val().grad(&grads).is_some());
    }

    contrast_core::backend_tests!(ema_two_layer_matches_hand_values);

    #[test]
    fn ema_rejects_different_structures() {
        type B = contrast_core::testing::Flex;
        let device = Default::default();
        let a = LinearConfig::new(3, 2).init::<B>(&device);
        let b = LinearConfig::new(2, 3).init::<B>(&device);
        let err = update_momentum(b, &a, 0.5).unwrap_err().to_string();
        assert!(
            err.contains("update_momentum") && err.contains("[3, 2]") && err.contains("[2, 3]"),
            "{err}"
        );
        let c = LinearConfig::new(3, 2).with_bias(false).init::<B>(&device);
        let err = update_momentum(c, &a, 0.5).unwrap_err().to_string();
        assert!(
            err.contains("2 float parameters") && err.contains("1 float parameters"),
            "{err}"
        );
        assert!(update_momentum(a.clone(), &a, 1.5).is_err());
    }

    #[test]
    fn schedule_endpoints() {
        let s = MomentumSchedule::Cosine { base: 0.99 };
        assert!((s.at(0, 100) - 0.99).abs() < 1e-12);
        assert!((s.at(100, 100) - 1.0).abs() < 1e-12);
        assert!((s.at(50, 100) - 0.995).abs() < 1e-12);
        assert!((s.at(500, 100) - 1.0).abs() < 1e-12);
        assert_eq!(MomentumSchedule::Constant(0.999).at(7, 10), 0.999);
        assert!(MomentumSchedule::Cosine { base: 1.5 }.validate().is_err());
    }
}
