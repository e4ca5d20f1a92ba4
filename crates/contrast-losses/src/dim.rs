use burn::config::Config;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use contrast_core::Error;
use serde::{Deserialize, Serialize};

use crate::util::{
    MASKED, check_same_dim, cross_entropy, host_mask, log_sum_exp, masked_mean, softplus,
};

/// The mutual-information lower bound that a [`LocalGlobalLoss`] maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MiEstimator {
    /// Jensen-Shannon: `E_pos[-sp(-u)] - E_neg[sp(u)]`, the stable default of DIM and MVGRL.
    JensenShannon,
    /// Donsker-Varadhan: `E_pos[u] - log E_neg[exp(u)]`, the tightest and noisiest.
    DonskerVaradhan,
    /// InfoNCE: each local feature classifies its own global summary among all in the batch.
    InfoNce,
}

/// Configuration of [`LocalGlobalLoss`].
#[derive(Config, Debug)]
pub struct LocalGlobalLossConfig {
    /// The estimator.
    #[config(default = "MiEstimator::JensenShannon")]
    pub estimator: MiEstimator,
}

impl LocalGlobalLossConfig {
    /// Nothing can be wrong with this config today; kept for a uniform entry-point contract.
    ///
    /// # Errors
    /// None at present.
    pub fn validate(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Builds the loss.
    pub fn init(&self) -> LocalGlobalLoss {
        LocalGlobalLoss {
            estimator: self.estimator,
        }
    }
}

/// DIM-style local/global mutual-information objective (end-to-end paradigm; also MVGRL's
/// node/graph objective).
///
/// Scores `u_jk = g_j . l_k` between every global summary `g_j` and every local feature `l_k`.
/// Pairs where local `k` belongs to instance `j` are positives, all others negatives. The loss
/// is the negated bound, so minimising it maximises mutual information:
///
/// ```text
/// JSD:     loss = E_neg[sp(u)] + E_pos[sp(-u)]  - 2 log 2   (DIM's normalisation; >= -2 log 2)
/// DV:      loss = log E_neg[exp(u)] - E_pos[u]
/// InfoNCE: loss = mean_k CE( u_{., k}, owner(k) )
/// ```
///
/// Hjelm et al., "Learning deep representations by mutual information estimation and
/// maximization", ICLR 2019, <https://arxiv.org/abs/1808.06670>; Hassani & Khasahmadi,
/// "Contrastive Multi-View Representation Learning on Graphs", ICML 2020,
/// <https://arxiv.org/abs/2006.05582>.
///
/// # Shapes
/// - [`forward`](Self::forward): `local` `[m, d]`, `global` `[n, d]`, `owner` of length `m`
///   (the instance of each local row, `< n`) -> scalar `[1]`
/// - [`forward_grid`](Self::forward_grid): `local` `[n, L, d]` (L locations per instance),
///   `global` `[n, d]`
///
/// # Panics
/// On mismatched widths, an `owner` of the wrong length or out of range, or a batch with
/// no negatives (a single instance).
#[derive(Debug, Clone)]
pub struct LocalGlobalLoss {
    estimator: MiEstimator,
}

impl LocalGlobalLoss {
    /// The loss for local features with explicit owners (e.g. nodes of a batch of graphs).
    pub fn forward<B: Backend>(
        &self,
        local: Tensor<B, 2>,
        global: Tensor<B, 2>,
        owner: &[usize],
    ) -> Tensor<B, 1> {
        check_same_dim("LocalGlobalLoss::forward", local.dims(), global.dims());
        let [m, _] = local.dims();
        let [n, _] = global.dims();
        assert!(
            owner.len() == m,
            "LocalGlobalLoss::forward: {} owners for {m} local rows",
            owner.len()
        );
        assert!(
            owner.iter().all(|&o| o < n),
            "LocalGlobalLoss::forward: an owner index is >= the {n} global rows"
        );
        assert!(
            n >= 2,
            "LocalGlobalLoss::forward: needs at least 2 instances for negatives, got {n}"
        );
        let device = local.device();
        let u = global.matmul(local.transpose()); // [n, m]
        let pos = host_mask::<B>(n, m, &device, |j, k| owner[k] == j);
        match self.estimator {
            MiEstimator::JensenShannon => {
                let ln2 = std::f64::consts::LN_2;
                let e_pos = masked_mean(softplus(u.clone().neg()).neg() + ln2, pos.clone().float());
                let e_neg = masked_mean(softplus(u) - ln2, pos.bool_not().float());
                e_neg - e_pos
            }
            MiEstimator::DonskerVaradhan => {
                let e_pos = masked_mean(u.clone(), pos.clone().float());
                let negatives = (n * m - m) as f64;
                let lse = log_sum_exp(u.mask_fill(pos, MASKED).reshape([1, n * m]));
                lse - negatives.ln() - e_pos
            }
            MiEstimator::InfoNce => {
                let targets = Tensor::from_data(
                    burn::tensor::TensorData::new(
                        owner.iter().map(|&o| o as i64).collect::<Vec<_>>(),
                        [m],
                    ),
                    &device,
                );
                cross_entropy(u.transpose(), targets)
            }
        }
    }

    /// The loss for a grid of `L` local features per instance (DIM's feature map).
    pub fn forward_grid<B: Backend>(
        &self,
        local: Tensor<B, 3>,
        global: Tensor<B, 2>,
    ) -> Tensor<B, 1> {
        let [n, l, d] = local.dims();
        assert!(
            global.dims()[0] == n,
            "LocalGlobalLoss::forward_grid: {n} local instances vs {} global rows",
            global.dims()[0]
        );
        let owner: Vec<usize> = (0..n * l).map(|k| k / l).collect();
        self.forward(local.reshape([n * l, d]), global, &owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{inputs, matrix};
    use burn::tensor::backend::AutodiffBackend;
    use contrast_core::testing::{assert_close, finite_difference};
    use contrast_core::to_vec_f32;

    fn sp(x: f64) -> f64 {
        (1.0 + x.exp()).ln()
    }

    #[allow(clippy::needless_range_loop)]
    fn reference(
        local: &[f64],
        global: &[f64],
        owner: &[usize],
        d: usize,
        est: MiEstimator,
    ) -> f64 {
        let m = owner.len();
        let n = global.len() / d;
        let u = |j: usize, k: usize| {
            (0..d)
                .map(|t| global[j * d + t] * local[k * d + t])
                .sum::<f64>()
        };
        let (mut pos, mut neg) = (vec![], vec![]);
        for j in 0..n {
            for k in 0..m {
                if owner[k] == j {
                    pos.push(u(j, k))
                } else {
                    neg.push(u(j, k))
                }
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let ln2 = std::f64::consts::LN_2;
        match est {
            MiEstimator::JensenShannon => {
                mean(&neg.iter().map(|&x| sp(x) - ln2).collect::<Vec<_>>())
                    - mean(&pos.iter().map(|&x| ln2 - sp(-x)).collect::<Vec<_>>())
            }
            MiEstimator::DonskerVaradhan => {
                mean(&neg.iter().map(|x| x.exp()).collect::<Vec<_>>()).ln() - mean(&pos)
            }
            MiEstimator::InfoNce => {
                (0..m)
                    .map(|k| (0..n).map(|j| u(j, k).exp()).sum::<f64>().ln() - u(owner[k], k))
                    .sum::<f64>()
                    / m as f64
            }
        }
    }

    fn dim_estimators_match_reference<B: AutodiffBackend>(device: &B::Device) {
        let (n, m, d) = (3, 7, 4);
        let owner = [0, 0, 1, 2, 2, 2, 1];
        let local = inputs(m * d, 71);
        let global = inputs(n * d, 72);
        for est in [
            MiEstimator::JensenShannon,
            MiEstimator::DonskerVaradhan,
            MiEstimator::InfoNce,
        ] {
            let loss = LocalGlobalLossConfig::new().with_estimator(est).init();
            let lt = matrix::<B>(&local, m, d, device).require_grad();
            let v = loss.forward(lt.clone(), matrix::<B>(&global, n, d, device), &owner);
            let g = to_vec_f32(lt.grad(&v.backward()).unwrap());
            let r = |x: &[f64]| reference(x, &global, &owner, d, est);
            assert_close(&to_vec_f32(v), &[r(&local) as f32], 2e-5);
            let fd: Vec<f32> = finite_difference(r, &local, 1e-6)
                .into_iter()
                .map(|v| v as f32)
                .collect();
            assert_close(&g, &fd, 2e-4);
        }
    }

    /// The grid form equals the owner form with owner(k) = k / L.
    fn dim_grid_equals_owner_form<B: AutodiffBackend>(device: &B::Device) {
        let (n, l, d) = (2, 3, 4);
        let local = matrix::<B>(&inputs(n * l * d, 73), n * l, d, device);
        let global = matrix::<B>(&inputs(n * d, 74), n, d, device);
        let loss = LocalGlobalLossConfig::new().init();
        let a = loss.forward(local.clone(), global.clone(), &[0, 0, 0, 1, 1, 1]);
        let b = loss.forward_grid(local.reshape([n, l, d]), global);
        assert_close(&to_vec_f32(a), &to_vec_f32(b), 1e-6);
    }

    contrast_core::backend_tests!(dim_estimators_match_reference, dim_grid_equals_owner_form);
}
