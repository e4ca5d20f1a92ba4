use burn::module::{Module, Param, RunningState};
use burn::nn::Initializer;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, activation};
use contrast_core::{peer_sum_installed, sum_over_peers};
use contrast_kernels::{host_kernel_serves, try_batch_norm};

use crate::layout::Layout;

/// Batch normalisation over `[batch, channels, height, width]`, numerically the same as
/// `burn::nn::BatchNorm` (biased batch variance, running averages with momentum 0.1) but
/// written with two-dimensional broadcasts only.
///
/// Why: Burn 0.21's `flex` backend runs a binary operation between `[n, c, h, w]` and a
/// broadcast `[1, c, 1, 1]` through a generic strided iterator, slow enough to make batch norm
/// a large share of a small ResNet's training step on the CPU (`docs/performance.md`). Viewing
/// the activation as `[n * c, h * w]` and the per-channel values as `[n * c, 1]` hits flex's
/// row-wise fast path; GPU backends are indifferent.
///
/// In training mode on `flex` or `ndarray` (plain or under `Autodiff`) it runs on contrast's
/// host kernel instead (see [`contrast_kernels::try_batch_norm`]): one pass for the statistics and one for the
/// output, two for the backward pass; inside the ResNets, with the ReLU and residual addition
/// that follow it fused in.
///
/// Synchronised batch norm: where the training loop lends a sum over the peers
/// ([`contrast_core::with_peer_sum`]), training mode normalises with the mean and variance of
/// every peer's batch together, with gradient through them (in tensor operations on every
/// backend).
#[derive(Module, Debug)]
pub struct BatchNorm2d<B: Backend> {
    /// Scale (gamma), one per channel.
    pub gamma: Param<Tensor<B, 1>>,
    /// Shift (beta), one per channel.
    pub beta: Param<Tensor<B, 1>>,
    /// Running mean used in inference mode.
    pub running_mean: RunningState<Tensor<B, 1>>,
    /// Running (biased) variance used in inference mode.
    pub running_var: RunningState<Tensor<B, 1>>,
    /// Weight of the new batch statistics in the running averages.
    pub momentum: f64,
    /// Added to the variance.
    pub epsilon: f64,
}

impl<B: Backend> BatchNorm2d<B> {
    /// Batch norm over `channels` channels, gamma 1, beta 0, momentum 0.1, epsilon 1e-5.
    pub fn new(channels: usize, device: &B::Device) -> Self {
        BatchNorm2d {
            gamma: Initializer::Ones.init([channels], device),
            beta: Initializer::Zeros.init([channels], device),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([channels], device)),
            momentum: 0.1,
            epsilon: 1e-5,
        }
    }

    /// Normalises with batch statistics on an autodiff backend (and updates the running
    /// averages), with the running averages otherwise.
    ///
    /// # Shapes
    /// - input and output: `[batch, channels, height, width]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_in(x, None, false, Layout::ChannelsFirst)
    }

    /// Batch norm of rows of channels (`BatchNorm1d`, GIN's): the same statistics over the
    /// rows, on the same host kernel in training mode.
    ///
    /// # Shapes
    /// - input and output: `[rows, channels]`
    pub fn forward_rows(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let [n, c] = x.dims();
        self.forward_in(x.reshape([n, 1, 1, c]), None, false, Layout::ChannelsLast)
            .reshape([n, c])
    }

    /// `relu?(forward(x) + residual?)` for an activation in order `layout` (output in the same
    /// order): one fused kernel in training mode where the host kernels serve `B`.
    pub(crate) fn forward_in(
        &self,
        x: Tensor<B, 4>,
        residual: Option<Tensor<B, 4>>,
        relu: bool,
        layout: Layout,
    ) -> Tensor<B, 4> {
        let training = B::ad_enabled(&x.device());
        let last = |t: Tensor<B, 4>| layout.convert(t, Layout::ChannelsLast);
        let back = |t: Tensor<B, 4>| Layout::ChannelsLast.convert(t, layout);
        if training && peer_sum_installed::<B>() {
            // Synchronised: the statistics of every peer's batch, in tensor operations (the
            // host kernel computes its own batch's).
            let y = back(self.channels_last(last(x), true));
            let y = match residual {
                Some(r) => y + r,
                None => y,
            };
            return if relu { activation::relu(y) } else { y };
        }
        let (x, residual) = if training && host_kernel_serves::<B>() {
            let inputs = (
                last(x),
                self.gamma.val(),
                self.beta.val(),
                residual.map(last),
            );
            match try_batch_norm(inputs, self.epsilon, relu) {
                Ok((y, mean, var)) => {
                    self.update_running(mean, var);
                    return back(y);
                }
                Err((x, _, _, residual)) => (back(x), residual.map(back)),
            }
        } else {
            (x, residual)
        };
        let y = match layout {
            Layout::ChannelsFirst => self.channels_first(x, training),
            Layout::ChannelsLast => self.channels_last(x, training),
        };
        let y = match residual {
            Some(r) => y + r,
            None => y,
        };
        if relu { activation::relu(y) } else { y }
    }

    /// Tensor-operation batch norm of `[batch, height, width, channels]`, viewed as rows of
    /// channels.
    fn channels_last(&self, x: Tensor<B, 4>, training: bool) -> Tensor<B, 4> {
        let [n, h, w, c] = x.dims();
        let x = x.reshape([n * h * w, c]);
        let (mean, var) = if training {
            let (mean, var) = match peer_sum_installed::<B>() {
                true => synchronised_statistics(x.clone()),
                false => {
                    let mean = x.clone().mean_dim(0);
                    let var = (x.clone() - mean.clone()).square().mean_dim(0);
                    (mean.reshape([c]), var.reshape([c]))
                }
            };
            self.update_running(mean.clone(), var.clone());
            (mean.reshape([1, c]), var.reshape([1, c]))
        } else {
            self.running(&x.device())
        };
        let (mean, var) = (mean.reshape([1, c]), var.reshape([1, c]));
        let scale = self.gamma.val().reshape([1, c]) / var.add_scalar(self.epsilon).sqrt();
        let shift = self.beta.val().reshape([1, c]) - mean * scale.clone();
        (x * scale + shift).reshape([n, h, w, c])
    }

    /// Running mean and variance on `device`, shaped `[1, ..., 1, channels]`.
    fn running<const D: usize>(&self, device: &B::Device) -> (Tensor<B, D>, Tensor<B, D>) {
        let c = self.gamma.dims()[0];
        let mut shape = [1; D];
        shape[D - 1] = c;
        (
            self.running_mean.value().to_device(device).reshape(shape),
            self.running_var.value().to_device(device).reshape(shape),
        )
    }

    /// Tensor-operation batch norm of `[batch, channels, height, width]`.
    fn channels_first(&self, x: Tensor<B, 4>, training: bool) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        let hw = h * w;
        let per_row = |v: Tensor<B, 1>| v.reshape([1, c]).repeat_dim(0, n).reshape([n * c, 1]);
        let (mean, var) = if training {
            let mean = x
                .clone()
                .reshape([n, c, hw])
                .mean_dim(2)
                .reshape([n, c])
                .mean_dim(0)
                .reshape([c]);
            let centred = x.clone().reshape([n * c, hw]) - per_row(mean.clone());
            let var = centred
                .square()
                .mean_dim(1)
                .reshape([n, c])
                .mean_dim(0)
                .reshape([c]);
            self.update_running(mean.clone(), var.clone());
            (mean, var)
        } else {
            self.running(&x.device())
        };
        let scale = self.gamma.val() / var.add_scalar(self.epsilon).sqrt();
        let shift = self.beta.val() - mean * scale.clone();
        (x.reshape([n * c, hw]) * per_row(scale) + per_row(shift)).reshape([n, c, h, w])
    }

    /// Moves the running averages toward the batch statistics `mean` and biased `var`.
    fn update_running(&self, mean: Tensor<B, 1>, var: Tensor<B, 1>) {
        let m = self.momentum;
        let device = mean.device();
        let rm = self.running_mean.value_sync().to_device(&device);
        let rv = self.running_var.value_sync().to_device(&device);
        self.running_mean
            .update((rm.mul_scalar(1.0 - m) + mean.detach().mul_scalar(m)).detach());
        self.running_var
            .update((rv.mul_scalar(1.0 - m) + var.detach().mul_scalar(m)).detach());
    }
}

/// The mean and biased variance per channel of the rows `x` (`[rows, channels]`) of every
/// peer's batch together ([`sum_over_peers`]: two sums, the second of the squared deviations
/// from the common mean, as one device computes them on the whole batch), with gradient
/// through both sums.
fn synchronised_statistics<B: Backend>(x: Tensor<B, 2>) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let [rows, c] = x.dims();
    let sum = |t: Tensor<B, 1>| sum_over_peers(t).expect("a sum over the peers is installed");
    let count = Tensor::<B, 1>::from_floats([rows as f32], &x.device());
    let sums = sum(Tensor::cat(
        vec![x.clone().sum_dim(0).reshape([c]), count],
        0,
    ));
    let total = sums.clone().slice(c..c + 1).detach().expand([c]);
    let mean = sums.slice(0..c) / total.clone();
    let squares = (x - mean.clone().reshape([1, c])).square().sum_dim(0);
    (mean, sum(squares.reshape([c])) / total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::AutodiffModule;
    use burn::nn::BatchNormConfig;
    use burn::tensor::Distribution;
    use burn::tensor::backend::AutodiffBackend;
    use contrast_core::testing::assert_close;
    use contrast_core::to_vec_f32;

    /// One of `BatchNorm2d`'s forward forms on backend `T`.
    type Form<T, const D: usize> = fn(&BatchNorm2d<T>, Tensor<T, D>) -> Tensor<T, D>;

    /// Same values, gradients and running statistics as Burn's own `BatchNorm`, for an input of
    /// `shape` through `ours` (after two training steps, then in inference mode through `inner`).
    fn compare<B: AutodiffBackend, const D: usize>(
        shape: [usize; D],
        ours: Form<B, D>,
        inner: Form<B::InnerBackend, D>,
        device: &B::Device,
    ) {
        let norm = BatchNorm2d::<B>::new(3, device);
        let theirs = BatchNormConfig::new(3).init::<B>(device);
        let x =
            Tensor::<B, D>::random(shape, Distribution::Normal(1.0, 2.0), device).require_grad();
        let w = Tensor::<B, D>::random(shape, Distribution::Normal(0.0, 1.0), device);
        for _ in 0..2 {
            let a = ours(&norm, x.clone());
            let b = theirs.forward(x.clone());
            assert_close(&to_vec_f32(a.clone()), &to_vec_f32(b.clone()), 1e-4);
            let ga = (a * w.clone()).sum().backward();
            let gb = (b * w.clone()).sum().backward();
            fn vals<T: Backend, const K: usize>(g: Option<Tensor<T, K>>) -> Vec<f32> {
                to_vec_f32(g.expect("a gradient"))
            }
            assert_close(&vals(x.grad(&ga)), &vals(x.grad(&gb)), 1e-4);
            assert_close(
                &vals(norm.gamma.grad(&ga)),
                &vals(theirs.gamma.grad(&gb)),
                1e-3,
            );
            assert_close(
                &vals(norm.beta.grad(&ga)),
                &vals(theirs.beta.grad(&gb)),
                1e-4,
            );
        }
        for (p, q) in [
            (norm.running_mean.value(), theirs.running_mean.value()),
            (norm.running_var.value(), theirs.running_var.value()),
        ] {
            assert_close(&to_vec_f32(p), &to_vec_f32(q), 1e-5);
        }
        let xi = x.inner();
        let a = inner(&norm.valid(), xi.clone());
        let b = theirs.valid().forward(xi);
        assert_close(&to_vec_f32(a), &to_vec_f32(b), 1e-4);
    }

    fn matches_burn_batch_norm<B: AutodiffBackend>(device: &B::Device) {
        compare::<B, 4>(
            [4, 3, 5, 2],
            |n, x| n.forward(x),
            |n, x| n.forward(x),
            device,
        );
    }

    contrast_core::backend_tests!(matches_burn_batch_norm);

    /// Rows of channels (GIN's batch norm) against Burn's `BatchNorm` on `[rows, channels]`.
    fn rows_match_burn_batch_norm<B: AutodiffBackend>(device: &B::Device) {
        compare::<B, 2>(
            [7, 3],
            |n, x| n.forward_rows(x),
            |n, x| n.forward_rows(x),
            device,
        );
    }

    contrast_core::backend_tests!(rows_match_burn_batch_norm);

    /// Synchronised over a group of one (the sum over the peers is the identity): the tensor
    /// path of synchronised batch norm, in both layouts, against Burn's `BatchNorm`.
    #[test]
    fn synchronised_statistics_of_one_peer_match_burn_batch_norm() {
        type B = contrast_core::FlexAutodiff;
        contrast_core::with_peer_sum::<B, _>(
            |x| x,
            || {
                let device = Default::default();
                matches_burn_batch_norm::<B>(&device);
                rows_match_burn_batch_norm::<B>(&device);
            },
        );
    }

    /// The flex case above compares contrast's host kernel (not the tensor-operation path)
    /// with Burn's batch norm.
    #[test]
    fn flex_case_runs_the_host_kernel() {
        assert!(crate::host_kernel_serves::<contrast_core::FlexAutodiff>());
    }
}
