use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use contrast_core::{Error, NORM_EPS, l2_normalize_row};

use crate::matmul::{Layout, matmul};
use crate::{Features, check_pair};

/// Weighted k-nearest-neighbour classifier on L2-normalised embeddings (Wu et al. 2018,
/// InstDisc; the monitor of lightly and solo-learn).
///
/// ```text
/// score(c) = sum over the k most cosine-similar training rows j with label c of exp(s_j / T)
/// ```
/// The prediction is the class with the largest score.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct KnnClassifier {
    /// Neighbours (200 in InstDisc and lightly).
    pub k: usize,
    /// Temperature of the vote weights (0.1).
    pub temperature: f32,
}

impl Default for KnnClassifier {
    fn default() -> Self {
        KnnClassifier {
            k: 200,
            temperature: 0.1,
        }
    }
}

/// Accuracy of a classifier on a test split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Top-1 accuracy in percent.
    pub top1: f64,
    /// Test rows evaluated.
    pub count: usize,
}

const BLOCK: usize = 512;

impl KnnClassifier {
    /// Classifies every test row and returns the top-1 accuracy.
    ///
    /// Rows are L2-normalised here, so raw features can be passed. Runs on the host in blocks of
    /// 512 test rows (memory `512 x train rows` floats).
    ///
    /// # Errors
    /// `InvalidConfig` for `k == 0`, a non-positive temperature, empty or mismatched features,
    /// or labels not below `num_classes`.
    pub fn evaluate(
        &self,
        train: Features<'_>,
        test: Features<'_>,
        num_classes: usize,
    ) -> Result<Accuracy, Error> {
        if self.k == 0 {
            return Err(Error::invalid_config("knn.k", 0, "must be at least 1"));
        }
        contrast_core::ensure_positive("knn.temperature", self.temperature as f64)?;
        check_pair("knn", &train, &test, num_classes)?;
        let d = train.dim;
        let bank = normalized(train.data, d);
        let queries = normalized(test.data, d);
        let n_train = train.labels.len();
        let k = self.k.min(n_train);
        let inv_t = 1.0 / self.temperature;
        let mut correct = 0usize;
        let mut sims = vec![0f32; BLOCK * n_train];
        for (b, q) in queries.chunks(BLOCK * d).enumerate() {
            let rows = q.len() / d;
            let s = &mut sims[..rows * n_train];
            matmul(
                rows,
                n_train,
                d,
                q,
                Layout::Normal,
                &bank,
                Layout::Transposed,
                s,
            );
            correct += s
                .par_chunks(n_train)
                .enumerate()
                .map_init(
                    || (Vec::<u32>::with_capacity(n_train), vec![0f32; num_classes]),
                    |(idx, scores), (r, row)| {
                        idx.clear();
                        idx.extend(0..n_train as u32);
                        if k < n_train {
                            idx.select_nth_unstable_by(k - 1, |&a, &b| {
                                row[b as usize].total_cmp(&row[a as usize])
                            });
                        }
                        scores.fill(0.0);
                        for &j in &idx[..k] {
                            scores[train.labels[j as usize] as usize] +=
                                ((row[j as usize] - 1.0) * inv_t).exp();
                        }
                        let pred = argmax(scores);
                        usize::from(pred == test.labels[b * BLOCK + r] as usize)
                    },
                )
                .sum::<usize>();
        }
        Ok(Accuracy {
            top1: 100.0 * correct as f64 / test.labels.len() as f64,
            count: test.labels.len(),
        })
    }
}

pub(crate) fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

fn normalized(data: &[f32], d: usize) -> Vec<f32> {
    let mut out = data.to_vec();
    out.par_chunks_mut(d)
        .for_each(|r| l2_normalize_row(r, NORM_EPS));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_force(
        train: &Features<'_>,
        test: &Features<'_>,
        k: usize,
        t: f32,
        classes: usize,
    ) -> f64 {
        let d = train.dim;
        let norm = |r: &[f32]| {
            let mut r = r.to_vec();
            l2_normalize_row(&mut r, NORM_EPS);
            r
        };
        let mut correct = 0;
        for (i, q) in test.data.chunks(d).enumerate() {
            let q = norm(q);
            let mut s: Vec<(f32, usize)> = train
                .data
                .chunks(d)
                .enumerate()
                .map(|(j, r)| (norm(r).iter().zip(&q).map(|(a, b)| a * b).sum(), j))
                .collect();
            s.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut score = vec![0f64; classes];
            for &(sim, j) in &s[..k] {
                score[train.labels[j] as usize] += ((sim / t) as f64).exp();
            }
            let pred = (0..classes)
                .max_by(|&a, &b| score[a].total_cmp(&score[b]))
                .unwrap();
            correct += usize::from(pred == test.labels[i] as usize);
        }
        100.0 * correct as f64 / test.labels.len() as f64
    }

    #[test]
    fn agrees_with_brute_force() {
        let d = 6;
        let f = |i: usize| {
            ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) + if i % d == (i / d) % 3 { 1.0 } else { 0.0 }
        };
        let train: Vec<f32> = (0..600 * d).map(f).collect();
        let train_labels: Vec<u32> = (0..600).map(|i| (i % 3) as u32).collect();
        let test: Vec<f32> = (0..1100 * d).map(|i| f(i + 17)).collect();
        let test_labels: Vec<u32> = (0..1100).map(|i| ((i + 1) % 3) as u32).collect();
        let tr = Features {
            data: &train,
            labels: &train_labels,
            dim: d,
        };
        let te = Features {
            data: &test,
            labels: &test_labels,
            dim: d,
        };
        for (k, t) in [(1, 0.1), (20, 0.1), (200, 0.5), (1000, 0.1)] {
            let knn = KnnClassifier { k, temperature: t };
            let got = knn.evaluate(tr, te, 3).unwrap().top1;
            let want = brute_force(&tr, &te, k.min(600), t, 3);
            assert!((got - want).abs() < 0.2, "k={k}: {got} vs {want}");
        }
    }

    #[test]
    fn separable_clusters_are_perfect_and_errors_are_named() {
        let train = [1.0, 0.0, 0.9, 0.1, 0.0, 1.0, 0.1, 0.9];
        let labels = [0, 0, 1, 1];
        let test = [1.0, 0.05, 0.05, 1.0];
        let tr = Features {
            data: &train,
            labels: &labels,
            dim: 2,
        };
        let te = Features {
            data: &test,
            labels: &[0, 1],
            dim: 2,
        };
        let acc = KnnClassifier {
            k: 2,
            temperature: 0.1,
        }
        .evaluate(tr, te, 2)
        .unwrap();
        assert_eq!(acc.top1, 100.0);
        let msg = KnnClassifier {
            k: 0,
            temperature: 0.1,
        }
        .evaluate(tr, te, 2)
        .unwrap_err()
        .to_string();
        assert!(msg.contains("knn.k"), "{msg}");
        let msg = KnnClassifier::default()
            .evaluate(tr, te, 1)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("labels"), "{msg}");
    }
}
