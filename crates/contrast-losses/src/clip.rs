use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use contrast_core::{Error, ensure_positive};

use crate::util::{arange, check_same_shape, cross_entropy, log_sum_exp, maybe_normalize};

/// Configuration of [`ClipLoss`].
#[derive(Config, Debug)]
pub struct ClipLossConfig {
    /// Initial temperature; the learnable logit scale starts at `ln(1 / init_temperature)`
    /// (CLIP: 0.07).
    #[config(default = 0.07)]
    pub init_temperature: f64,
    /// Upper bound of the logit scale `exp(s)` (open_clip and CLIP: 100).
    #[config(default = 100.0)]
    pub max_logit_scale: f64,
}

impl ClipLossConfig {
    /// Checks both fields.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a non-positive temperature or bound, or an initial scale
    /// above the bound.
    pub fn validate(&self) -> Result<(), Error> {
        ensure_positive("init_temperature", self.init_temperature)?;
        ensure_positive("max_logit_scale", self.max_logit_scale)?;
        if 1.0 / self.init_temperature > self.max_logit_scale {
            return Err(Error::invalid_config(
                "init_temperature",
                self.init_temperature,
                format!(
                    "its scale 1/t exceeds max_logit_scale = {}",
                    self.max_logit_scale
                ),
            ));
        }
        Ok(())
    }

    /// Builds the loss with its learnable logit scale on `device`.
    ///
    /// # Panics
    /// If [`validate`](Self::validate) fails.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ClipLoss<B> {
        if let Err(e) = self.validate() {
            panic!("ClipLossConfig::init: {e}");
        }
        let s = (1.0 / self.init_temperature).ln();
        ClipLoss {
            logit_scale: Param::from_tensor(Tensor::full([1], s, device)),
            max_logit_scale: self.max_logit_scale,
        }
    }
}

/// The symmetric cross-entropy of CLIP across two modalities, with a learnable temperature.
///
/// ```text
/// logits = min(exp(s), max_scale) * norm(a) norm(b)^T        [n, n]
/// loss   = ( CE(logits, diag) + CE(logits^T, diag) ) / 2
/// ```
///
/// Radford et al., "Learning Transferable Visual Models From Natural Language Supervision",
/// ICML 2021, <https://arxiv.org/abs/2103.00020>. The clamp at 100 follows CLIP and open_clip;
/// the clamped scale gets no gradient, as with their in-place clamp of the parameter.
///
/// # Shapes
/// - `a` (e.g. images), `b` (e.g. texts): `[n, d]` -> scalar `[1]`
///
/// # Panics
/// If the two inputs differ in shape or are empty.
#[derive(Module, Debug)]
pub struct ClipLoss<B: Backend> {
    /// The log of the logit scale, learnable.
    pub logit_scale: Param<Tensor<B, 1>>,
    /// Upper bound of `exp(logit_scale)`.
    pub max_logit_scale: f64,
}

impl<B: Backend> ClipLoss<B> {
    /// The current logit scale `min(exp(s), max)`, i.e. the inverse temperature.
    pub fn scale(&self) -> Tensor<B, 1> {
        self.logit_scale.val().exp().clamp_max(self.max_logit_scale)
    }

    /// The loss; see the type's documentation.
    pub fn forward(&self, a: Tensor<B, 2>, b: Tensor<B, 2>) -> Tensor<B, 1> {
        check_same_shape("ClipLoss::forward", a.dims(), b.dims());
        self.forward_global(a.clone(), b.clone(), a, b, 0)
    }

    /// The loss of one device's share of a batch spread over several devices (open_clip's
    /// `local_loss`): the local rows `a`, `b` (`[n, d]`, with their gradient) against every row
    /// of the global batch `all_a`, `all_b` (`[N, d]`, gathered from all devices; only the local
    /// rows need a gradient), the local rows being rows `offset..offset + n` of it.
    ///
    /// ```text
    /// loss = ( CE(s norm(a) norm(all_b)^T, offset + i) + CE(s norm(b) norm(all_a)^T, offset + i) ) / 2
    /// ```
    ///
    /// Averaged over devices, this is the loss of the whole batch; with one device
    /// (`all = local`, `offset = 0`) it is [`forward`](Self::forward).
    ///
    /// # Panics
    /// If the local or the global inputs differ in shape, the widths differ, or the local rows
    /// do not fit in the global batch at `offset`.
    pub fn forward_global(
        &self,
        a: Tensor<B, 2>,
        b: Tensor<B, 2>,
        all_a: Tensor<B, 2>,
        all_b: Tensor<B, 2>,
        offset: usize,
    ) -> Tensor<B, 1> {
        check_same_shape("ClipLoss::forward_global (local)", a.dims(), b.dims());
        check_same_shape(
            "ClipLoss::forward_global (global)",
            all_a.dims(),
            all_b.dims(),
        );
        let ([n, d], [total, d_all]) = (a.dims(), all_a.dims());
        assert!(
            n > 0 && d == d_all && offset + n <= total,
            "ClipLoss::forward_global: {n} local rows of width {d} at offset {offset} do not fit \
             a global batch of {total} rows of width {d_all}"
        );
        let device = a.device();
        let scale = self.scale().reshape([1, 1]);
        let logits_a = maybe_normalize(a, true).matmul(maybe_normalize(all_b, true).transpose())
            * scale.clone();
        let logits_b =
            maybe_normalize(b, true).matmul(maybe_normalize(all_a, true).transpose()) * scale;
        let targets = arange::<B>(n, &device).add_scalar(offset as i64);
        (cross_entropy(logits_a, targets.clone()) + cross_entropy(logits_b, targets)) / 2.0
    }

    /// The log-normalisers of the local rows in both directions, detached, `[n, 1]` each:
    /// `lse_a[i] = log sum_j exp(s a_i . all_b_j)` and `lse_b` the same from `b` to `all_a`.
    /// Gathered from every device, they are what [`forward_local`](Self::forward_local) needs.
    ///
    /// # Panics
    /// As [`forward_global`](Self::forward_global).
    pub fn row_normalizers(
        &self,
        a: Tensor<B, 2>,
        b: Tensor<B, 2>,
        all_a: Tensor<B, 2>,
        all_b: Tensor<B, 2>,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let scale = self.scale().detach().reshape([1, 1]);
        let lse = |x: Tensor<B, 2>, all: Tensor<B, 2>| {
            let logits = maybe_normalize(x.detach(), true)
                .matmul(maybe_normalize(all.detach(), true).transpose())
                * scale.clone();
            log_sum_exp(logits).unsqueeze_dim(1)
        };
        (lse(a, all_b), lse(b, all_a))
    }

    /// This device's share of the loss of a batch spread over several devices, computed from
    /// its own rows only (open_clip's `local_loss`, `N x n` products instead of `N x N`), with
    /// the *exact* gradient of the global loss once the devices' gradients are summed.
    ///
    /// The value is `n / N` times [`forward_global`](Self::forward_global)'s: summed over the
    /// devices it is the global loss. The local rows' cross-entropy only gives each local
    /// column the gradient of the local rows; the other rows' share arrives through a
    /// surrogate with no value,
    ///
    /// ```text
    /// T = 1/(2N) sum_{i not local} sum_{j local} p_ij s all_a_i . b_j  (+ the same from b to a)
    /// p_ij = exp(s all_a_i . all_b_j - lse_a_i)          (constants, as are s and all_a_i)
    /// ```
    ///
    /// whose gradient on `b_j` is the other rows' `p_ij` terms, using the gathered normalisers
    /// `all_lse_a`, `all_lse_b` (`[N, 1]`, from [`row_normalizers`](Self::row_normalizers)).
    /// The logit scale's gradient comes from the local rows only, each row counted once.
    ///
    /// # Panics
    /// As [`forward_global`](Self::forward_global), and if a normaliser is not `[N, 1]`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_local(
        &self,
        a: Tensor<B, 2>,
        b: Tensor<B, 2>,
        all_a: Tensor<B, 2>,
        all_b: Tensor<B, 2>,
        offset: usize,
        all_lse_a: Tensor<B, 2>,
        all_lse_b: Tensor<B, 2>,
    ) -> Tensor<B, 1> {
        let ([n, _], [total, _]) = (a.dims(), all_a.dims());
        assert!(
            all_lse_a.dims() == [total, 1] && all_lse_b.dims() == [total, 1],
            "ClipLoss::forward_local: normalisers {:?} and {:?}, expected [{total}, 1]",
            all_lse_a.dims(),
            all_lse_b.dims()
        );
        let rows = self.forward_global(a.clone(), b.clone(), all_a.clone(), all_b.clone(), offset)
            * (n as f64 / total as f64);
        let device = a.device();
        // 1 for the other devices' rows, 0 for the local ones (their terms are in `rows`).
        let others = Tensor::<B, 2>::ones([total, 1], &device)
            .slice_assign([offset..offset + n, 0..1], Tensor::zeros([n, 1], &device));
        let scale = self.scale().detach().reshape([1, 1]);
        let columns = |all: Tensor<B, 2>, mine: Tensor<B, 2>, lse: Tensor<B, 2>| {
            let s = maybe_normalize(all.detach(), true)
                .matmul(maybe_normalize(mine, true).transpose())
                * scale.clone();
            let p = (s.clone().detach() - lse).exp() * others.clone();
            (p * s).sum()
        };
        let t =
            (columns(all_a, b, all_lse_a) + columns(all_b, a, all_lse_b)) / (2.0 * total as f64);
        rows + t.clone() - t.detach()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{inputs, matrix, unit};
    use burn::tensor::backend::AutodiffBackend;
    use contrast_core::testing::{assert_close, finite_difference};
    use contrast_core::to_vec_f32;

    #[allow(clippy::needless_range_loop)]
    fn reference(a: &[f64], b: &[f64], n: usize, d: usize, s: f64) -> f64 {
        let scale = s.exp().min(100.0);
        let l: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                let ai = unit(&a[i * d..(i + 1) * d]);
                (0..n)
                    .map(|j| {
                        scale
                            * ai.iter()
                                .zip(unit(&b[j * d..(j + 1) * d]))
                                .map(|(x, y)| x * y)
                                .sum::<f64>()
                    })
                    .collect()
            })
            .collect();
        let ce = |row: &dyn Fn(usize) -> f64, i: usize| {
            (0..n).map(|j| row(j).exp()).sum::<f64>().ln() - row(i)
        };
        let mut total = 0.0;
        for i in 0..n {
            total += ce(&|j| l[i][j], i) + ce(&|j| l[j][i], i);
        }
        total / (2.0 * n as f64)
    }

    /// Value, gradient for the inputs and for the logit scale against the f64 reference.
    fn clip_matches_reference<B: AutodiffBackend>(device: &B::Device) {
        let (n, d) = (3, 4);
        let a = inputs(n * d, 31);
        let b = inputs(n * d, 32);
        let loss = ClipLossConfig::new()
            .with_init_temperature(0.5)
            .init::<B>(device);
        let at = matrix::<B>(&a, n, d, device).require_grad();
        let v = loss.forward(at.clone(), matrix::<B>(&b, n, d, device));
        let grads = v.backward();
        let s = 2f64.ln();
        assert_close(&to_vec_f32(v), &[reference(&a, &b, n, d, s) as f32], 2e-5);
        let fd: Vec<f32> = finite_difference(|x| reference(x, &b, n, d, s), &a, 1e-6)
            .into_iter()
            .map(|g| g as f32)
            .collect();
        assert_close(&to_vec_f32(at.grad(&grads).unwrap()), &fd, 2e-4);
        let ds = finite_difference(|x| reference(&a, &b, n, d, x[0]), &[s], 1e-6)[0];
        let gs = to_vec_f32(loss.logit_scale.val().grad(&grads).unwrap());
        assert_close(&gs, &[ds as f32], 2e-4);
    }

    /// Above the bound the scale is clamped at 100 and gets no gradient.
    fn clip_scale_is_clamped<B: AutodiffBackend>(device: &B::Device) {
        let mut loss = ClipLossConfig::new().init::<B>(device);
        loss.logit_scale = Param::from_tensor(Tensor::full([1], 10.0, device));
        assert_close(&to_vec_f32(loss.scale()), &[100.0], 1e-6);
        let a = matrix::<B>(&inputs(6, 1), 2, 3, device);
        let v = loss.forward(a.clone(), a);
        let g = loss
            .logit_scale
            .val()
            .grad(&v.backward())
            .map(to_vec_f32)
            .unwrap_or(vec![0.0]);
        assert_close(&g, &[0.0], 0.0);
    }

    /// Two devices' local losses, each against the gathered batch, average to the loss of the
    /// whole batch, and their gradients add up to its gradient.
    fn clip_shards_average_to_the_whole_batch<B: AutodiffBackend>(device: &B::Device) {
        let (n, d) = (4, 3);
        let (a, b) = (inputs(n * d, 41), inputs(n * d, 42));
        let loss = ClipLossConfig::new()
            .with_init_temperature(0.5)
            .init::<B>(device);
        let whole_a = matrix::<B>(&a, n, d, device).require_grad();
        let whole = loss.forward(whole_a.clone(), matrix::<B>(&b, n, d, device));
        let whole_grad = to_vec_f32(whole_a.grad(&whole.backward()).unwrap());
        let all_a = matrix::<B>(&a, n, d, device).require_grad();
        let all_b = matrix::<B>(&b, n, d, device);
        let shard = |r: std::ops::Range<usize>| {
            loss.forward_global(
                all_a.clone().slice(r.clone()),
                all_b.clone().slice(r.clone()),
                all_a.clone(),
                all_b.clone(),
                r.start,
            )
        };
        let mean = (shard(0..2) + shard(2..4)) / 2.0;
        assert_close(&to_vec_f32(mean.clone()), &to_vec_f32(whole), 1e-6);
        // Here the gathered copy keeps its graph; across devices only the local rows would.
        assert_close(
            &to_vec_f32(all_a.grad(&mean.backward()).unwrap()),
            &whole_grad,
            1e-5,
        );
    }

    /// Three uneven shards, each seeing only its own rows with their graph (the others are
    /// constants, as across devices): their `forward_local` values sum to the whole batch's
    /// loss and their gradients, summed, are its gradient, the logit scale's included.
    fn clip_local_shards_sum_to_the_whole_batch<B: AutodiffBackend>(device: &B::Device) {
        let (n, d) = (8, 3);
        let (a, b) = (inputs(n * d, 43), inputs(n * d, 44));
        let loss = ClipLossConfig::new()
            .with_init_temperature(0.3)
            .init::<B>(device);
        let (la, lb) = (
            matrix::<B>(&a, n, d, device).require_grad(),
            matrix::<B>(&b, n, d, device).require_grad(),
        );
        let whole = loss.forward(la.clone(), lb.clone());
        let grads = whole.backward();
        let expect: Vec<Vec<f32>> = vec![
            to_vec_f32(la.grad(&grads).unwrap()),
            to_vec_f32(lb.grad(&grads).unwrap()),
            to_vec_f32(loss.logit_scale.val().grad(&grads).unwrap()),
        ];
        let shards = [0..3, 3..5, 5..8];
        // What a device holds: its own rows with their graph, the others' as constants.
        let gathered = |x: &Tensor<B, 2>, r: &std::ops::Range<usize>| {
            let mut parts = Vec::new();
            if r.start > 0 {
                parts.push(x.clone().slice(0..r.start).detach());
            }
            parts.push(x.clone().slice(r.clone()));
            if r.end < n {
                parts.push(x.clone().slice(r.end..n).detach());
            }
            Tensor::cat(parts, 0)
        };
        let norms: Vec<_> = shards
            .iter()
            .map(|r| {
                loss.row_normalizers(
                    la.clone().slice(r.clone()),
                    lb.clone().slice(r.clone()),
                    la.clone(),
                    lb.clone(),
                )
            })
            .collect();
        let all_lse_a = Tensor::cat(norms.iter().map(|n| n.0.clone()).collect(), 0);
        let all_lse_b = Tensor::cat(norms.iter().map(|n| n.1.clone()).collect(), 0);
        let total = shards
            .iter()
            .map(|r| {
                loss.forward_local(
                    la.clone().slice(r.clone()),
                    lb.clone().slice(r.clone()),
                    gathered(&la, r),
                    gathered(&lb, r),
                    r.start,
                    all_lse_a.clone(),
                    all_lse_b.clone(),
                )
            })
            .reduce(|x, y| x + y)
            .unwrap();
        assert_close(&to_vec_f32(total.clone()), &to_vec_f32(whole), 1e-5);
        let grads = total.backward();
        let got = [
            to_vec_f32(la.grad(&grads).unwrap()),
            to_vec_f32(lb.grad(&grads).unwrap()),
            to_vec_f32(loss.logit_scale.val().grad(&grads).unwrap()),
        ];
        for (g, e) in got.iter().zip(&expect) {
            assert_close(g, e, 1e-5);
        }
    }

    contrast_core::backend_tests!(
        clip_matches_reference,
        clip_scale_is_clamped,
        clip_shards_average_to_the_whole_batch,
        clip_local_shards_sum_to_the_whole_batch
    );

    #[test]
    fn validate_rejects_scale_above_bound() {
        let e = ClipLossConfig::new()
            .with_init_temperature(0.001)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("init_temperature"), "{e}");
    }
}
