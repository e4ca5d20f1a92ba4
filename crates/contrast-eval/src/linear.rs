use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use contrast_core::{Error, ensure_positive};

use crate::knn::argmax;
use crate::matmul::{Layout, matmul};
use crate::{Accuracy, Features, check_pair};

/// Linear probe: multinomial logistic regression on frozen features, the standard measure of
/// what a representation makes linearly separable.
///
/// Features are standardised with the training split's mean and standard deviation (unless
/// `standardise` is off), then the softmax classifier is fit by full-batch Adam with a
/// cosine-decayed (or constant) learning rate and L2 weight decay on the weights (not the
/// bias). Deterministic (zero initialisation, no sampling) and backend-independent.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LinearProbe {
    /// Full-batch iterations.
    pub iterations: usize,
    /// Initial Adam learning rate.
    pub learning_rate: f32,
    /// L2 penalty on the weights.
    pub weight_decay: f32,
    /// Standardise the features with the training split's statistics first (off: the raw
    /// features, as the DGI and MVGRL node-classification code feeds its `LogReg`).
    #[serde(default = "yes")]
    pub standardise: bool,
    /// Decay the learning rate along a cosine (off: constant, as that `LogReg` is trained).
    #[serde(default = "yes")]
    pub cosine_decay: bool,
}

fn yes() -> bool {
    true
}

impl Default for LinearProbe {
    fn default() -> Self {
        LinearProbe {
            iterations: 300,
            learning_rate: 0.05,
            weight_decay: 1e-4,
            standardise: true,
            cosine_decay: true,
        }
    }
}

/// Standardises columns in place with the given mean and inverse std.
fn standardise(x: &mut [f32], d: usize, mean: &[f32], inv_std: &[f32]) {
    x.par_chunks_mut(d).for_each(|row| {
        for ((v, m), s) in row.iter_mut().zip(mean).zip(inv_std) {
            *v = (*v - m) * s;
        }
    });
}

impl LinearProbe {
    /// Fits on `train` and returns the top-1 accuracy on `test`.
    ///
    /// # Errors
    /// `InvalidConfig` for zero iterations, a non-positive learning rate, empty or mismatched
    /// features or out-of-range labels; `ShapeMismatch` when the widths differ.
    pub fn evaluate(
        &self,
        train: Features<'_>,
        test: Features<'_>,
        num_classes: usize,
    ) -> Result<Accuracy, Error> {
        if self.iterations == 0 {
            return Err(Error::invalid_config(
                "probe.iterations",
                0,
                "must be at least 1",
            ));
        }
        ensure_positive("probe.learning_rate", self.learning_rate as f64)?;
        contrast_core::ensure_in_range("probe.weight_decay", self.weight_decay as f64, 0.0, 1.0)?;
        check_pair("linear probe", &train, &test, num_classes)?;
        let (d, c) = (train.dim, num_classes);
        let n = train.labels.len();
        // The training split's mean and inverse standard deviation per column, if asked for.
        let stats = self.standardise.then(|| {
            let mut mean = vec![0f64; d];
            let mut sq = vec![0f64; d];
            for row in train.data.chunks(d) {
                for j in 0..d {
                    mean[j] += row[j] as f64;
                    sq[j] += (row[j] as f64).powi(2);
                }
            }
            let mean: Vec<f32> = mean.iter().map(|m| (m / n as f64) as f32).collect();
            let inv_std: Vec<f32> = sq
                .iter()
                .zip(&mean)
                .map(|(q, &m)| {
                    let var = q / n as f64 - (m as f64).powi(2);
                    (1.0 / var.max(0.0).sqrt().max(1e-6)) as f32
                })
                .collect();
            (mean, inv_std)
        });
        let prepare = |data: &[f32]| {
            let mut x = data.to_vec();
            if let Some((mean, inv_std)) = &stats {
                standardise(&mut x, d, mean, inv_std);
            }
            x
        };
        let x = prepare(train.data);

        // Weights [d, c] and bias [c]; Adam moments.
        let mut w = vec![0f32; d * c];
        let mut bias = vec![0f32; c];
        let (mut mw, mut vw) = (vec![0f32; d * c], vec![0f32; d * c]);
        let (mut mb, mut vb) = (vec![0f32; c], vec![0f32; c]);
        let mut logits = vec![0f32; n * c];
        let mut gw = vec![0f32; d * c];
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        for it in 0..self.iterations {
            matmul(n, c, d, &x, Layout::Normal, &w, Layout::Normal, &mut logits);
            // Softmax minus one-hot, divided by n: the gradient of the mean cross-entropy.
            logits
                .par_chunks_mut(c)
                .zip(train.labels.par_iter())
                .for_each(|(row, &y)| {
                    let mut max = f32::NEG_INFINITY;
                    for (v, b) in row.iter_mut().zip(&bias) {
                        *v += b;
                        max = max.max(*v);
                    }
                    let mut sum = 0.0;
                    for v in row.iter_mut() {
                        *v = (*v - max).exp();
                        sum += *v;
                    }
                    for v in row.iter_mut() {
                        *v /= sum * n as f32;
                    }
                    row[y as usize] -= 1.0 / n as f32;
                });
            matmul(
                d,
                c,
                n,
                &x,
                Layout::Transposed,
                &logits,
                Layout::Normal,
                &mut gw,
            );
            let mut gb = vec![0f32; c];
            for row in logits.chunks(c) {
                for (g, v) in gb.iter_mut().zip(row) {
                    *g += v;
                }
            }
            let lr = if self.cosine_decay {
                0.5 * self.learning_rate
                    * (1.0 + (std::f32::consts::PI * it as f32 / self.iterations as f32).cos())
            } else {
                self.learning_rate
            };
            let t = (it + 1) as i32;
            let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
            let adam = |p: &mut f32, g: f32, m: &mut f32, v: &mut f32| {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *p -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
            };
            for i in 0..d * c {
                let g = gw[i] + self.weight_decay * w[i];
                adam(&mut w[i], g, &mut mw[i], &mut vw[i]);
            }
            for i in 0..c {
                adam(&mut bias[i], gb[i], &mut mb[i], &mut vb[i]);
            }
        }
        let xt = prepare(test.data);
        let m = test.labels.len();
        let mut out = vec![0f32; m * c];
        matmul(m, c, d, &xt, Layout::Normal, &w, Layout::Normal, &mut out);
        let correct = out
            .chunks(c)
            .zip(test.labels)
            .filter(|(row, y)| {
                let scored: Vec<f32> = row.iter().zip(&bias).map(|(a, b)| a + b).collect();
                argmax(&scored) == **y as usize
            })
            .count();
        Ok(Accuracy {
            top1: 100.0 * correct as f64 / m as f64,
            count: m,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn separates_linearly_separable_classes_and_not_random_labels() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let d = 8;
        let n = 1200;
        let mut data = vec![0f32; n * d];
        let labels: Vec<u32> = (0..n).map(|i| (i % 4) as u32).collect();
        for (i, row) in data.chunks_mut(d).enumerate() {
            for v in row.iter_mut() {
                *v = rng.random_range(-1.0..1.0);
            }
            // Class is the sign pattern of two coordinates, shifted by a large offset.
            row[0] += if labels[i] & 1 == 1 { 2.0 } else { -2.0 };
            row[1] += if labels[i] & 2 == 2 { 2.0 } else { -2.0 };
        }
        let (tr, te) = data.split_at(1000 * d);
        let train = Features {
            data: tr,
            labels: &labels[..1000],
            dim: d,
        };
        let test = Features {
            data: te,
            labels: &labels[1000..],
            dim: d,
        };
        let acc = LinearProbe::default().evaluate(train, test, 4).unwrap();
        assert!(acc.top1 > 99.0, "{acc:?}");
        // The form DGI's and MVGRL's code uses (raw features scaled and shifted, constant rate)
        // separates them too.
        let raw = LinearProbe {
            learning_rate: 0.01,
            weight_decay: 0.0,
            standardise: false,
            cosine_decay: false,
            ..LinearProbe::default()
        };
        let shifted: Vec<f32> = tr.iter().map(|v| v * 40.0 + 3.0).collect();
        let moved = Features {
            data: &shifted,
            labels: &labels[..1000],
            dim: d,
        };
        assert!(raw.evaluate(moved, moved, 4).unwrap().top1 > 95.0);
        // With labels unrelated to the features, test accuracy stays near chance.
        let shuffled: Vec<u32> = (0..n).map(|i| ((i * 7 + i / 3) % 4) as u32).collect();
        let train = Features {
            data: tr,
            labels: &shuffled[..1000],
            dim: d,
        };
        let test = Features {
            data: te,
            labels: &shuffled[1000..],
            dim: d,
        };
        let acc = LinearProbe::default().evaluate(train, test, 4).unwrap();
        assert!(acc.top1 < 45.0, "{acc:?}");
    }
}
