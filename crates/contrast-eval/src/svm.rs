//! Graph classification from frozen embeddings: a support-vector machine (RBF or linear) under
//! 10-fold stratified cross-validation, with `C` chosen inside each training fold (the protocol
//! of InfoGraph and GraphCL, which call scikit-learn's `SVC` in `GridSearchCV`, and of MVGRL,
//! which calls `LinearSVC`).

use linfa::prelude::*;
use linfa_svm::Svm;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use contrast_core::Error;

/// The `C` values searched in each training fold.
pub const SVM_C_GRID: [f64; 7] = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0];

/// The SVM's kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SvmKernel {
    /// `exp(-gamma |x - y|^2)` with scikit-learn's `gamma = 'scale'` (InfoGraph, GraphCL).
    #[default]
    Rbf,
    /// A linear machine as scikit-learn's `LinearSVC` (MVGRL): liblinear's dual coordinate
    /// descent for the squared hinge loss, an intercept as a constant feature 1 (regularised),
    /// one machine per class against the rest (one for two classes), tolerance 1e-4, at most
    /// 1,000 passes.
    Linear,
}

impl SvmKernel {
    /// `RBF` or `linear`, for reports.
    pub fn label(self) -> &'static str {
        match self {
            SvmKernel::Rbf => "RBF",
            SvmKernel::Linear => "linear",
        }
    }
}

/// Cross-validated SVM accuracy: settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SvmProtocol {
    /// The kernel (RBF).
    pub kernel: SvmKernel,
    /// Outer folds (10).
    pub folds: usize,
    /// Inner folds that pick `C` (5).
    pub inner_folds: usize,
    /// The `C` values tried.
    pub c_grid: Vec<f64>,
    /// Seed of the fold assignment.
    pub seed: u64,
}

impl Default for SvmProtocol {
    fn default() -> Self {
        SvmProtocol {
            kernel: SvmKernel::Rbf,
            folds: 10,
            inner_folds: 5,
            c_grid: SVM_C_GRID.to_vec(),
            seed: 0,
        }
    }
}

/// The outcome of [`SvmProtocol::evaluate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvAccuracy {
    /// Mean test accuracy over the outer folds, in percent.
    pub mean: f64,
    /// Their standard deviation (population), in percent.
    pub std: f64,
    /// Each outer fold's test accuracy, in percent.
    pub folds: Vec<f64>,
    /// The `C` picked in each outer fold.
    pub chosen_c: Vec<f64>,
}

/// Splits `labels` into `k` stratified folds: each class's instances are shuffled (seeded) and
/// dealt round-robin, so every fold holds about `1/k` of each class. Returns the fold of each
/// instance.
pub fn stratified_folds(labels: &[u32], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut fold = vec![0; labels.len()];
    let mut next = 0;
    for c in 0..classes {
        let mut members: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] as usize == c)
            .collect();
        members.shuffle(&mut rng);
        for i in members {
            fold[i] = next % k;
            next += 1;
        }
    }
    fold
}

/// The folds of one [`SvmProtocol::evaluate`]: the outer fold of each instance and, for each
/// outer fold, the inner fold of each of its training instances in the search for `C`. A run
/// writes it beside the embeddings it classified so that another implementation of the protocol
/// (scikit-learn's, in `benches/peers/svm_sklearn.py`) can be run on the very same splits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldAssignment {
    /// `outer[i]`: the outer fold that tests instance `i`.
    pub outer: Vec<usize>,
    /// `inner[k][i]`: the inner fold of instance `i` while outer fold `k` is held out (`None`
    /// for the instances of fold `k` itself).
    pub inner: Vec<Vec<Option<usize>>>,
}

impl FoldAssignment {
    /// The instances of fold `k`'s training set and of its test set, in index order.
    fn split(&self, k: usize) -> (Vec<usize>, Vec<usize>) {
        (0..self.outer.len()).partition(|&i| self.outer[i] != k)
    }
}

/// scikit-learn's `gamma = 'scale'`: `1 / (features * variance of all training values)`.
fn scale_gamma(x: ArrayView2<'_, f64>) -> f64 {
    let var = x.var(0.0);
    if var > 0.0 {
        1.0 / (x.ncols() as f64 * var)
    } else {
        1.0
    }
}

/// A multiclass RBF SVM: one binary machine per pair of classes, majority vote (libsvm's
/// one-vs-one, as scikit-learn's `SVC`).
struct OneVsOne {
    machines: Vec<(u32, u32, Svm<f64, bool>)>,
    classes: usize,
}

/// A trained classifier of either kernel.
enum Machine {
    Rbf(OneVsOne),
    Linear(LinearOvr),
}

impl Machine {
    fn predict(&self, x: ArrayView2<'_, f64>) -> Vec<u32> {
        match self {
            Machine::Rbf(m) => m.predict(x),
            Machine::Linear(m) => m.predict(x),
        }
    }
}

fn fit(
    x: ArrayView2<'_, f64>,
    y: &[u32],
    classes: usize,
    c: f64,
    kernel: SvmKernel,
) -> Result<Machine, Error> {
    Ok(match kernel {
        SvmKernel::Rbf => Machine::Rbf(fit_rbf(x, y, classes, c)?),
        SvmKernel::Linear => Machine::Linear(LinearOvr::fit(x, y, classes, c)),
    })
}

/// liblinear's `solve_l2r_l1l2_svc` for the L2-loss (squared hinge) dual, without shrinking:
/// minimise `1/2 a' (Q + D) a - sum a` over `a >= 0`, `Q_ij = y_i y_j x_i . x_j`,
/// `D = 1 / (2C)`; `w = sum a_i y_i x_i`. `x` carries the constant bias column. Returns `w`.
fn linear_dual_cd(x: ArrayView2<'_, f64>, y: &[f64], c: f64, seed: u64) -> Array1<f64> {
    const EPS: f64 = 1e-4;
    const MAX_ITER: usize = 1000;
    let (n, d) = x.dim();
    let diag = 0.5 / c;
    let mut w = Array1::<f64>::zeros(d);
    let mut alpha = vec![0.0f64; n];
    let qd: Vec<f64> = x.rows().into_iter().map(|r| r.dot(&r) + diag).collect();
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    for _ in 0..MAX_ITER {
        order.shuffle(&mut rng);
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        for &i in &order {
            let xi = x.row(i);
            let g = y[i] * w.dot(&xi) - 1.0 + diag * alpha[i];
            let pg = if alpha[i] == 0.0 { g.min(0.0) } else { g };
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / qd[i]).max(0.0);
                w.scaled_add((alpha[i] - old) * y[i], &xi);
            }
        }
        if pg_max - pg_min <= EPS {
            break;
        }
    }
    w
}

/// `LinearSVC`'s multiclass scheme: one linear machine per class against the others (a single
/// one, for the second class, when there are two), prediction by the largest decision value.
struct LinearOvr {
    /// `(class, w)`, `w` of width `dim + 1` (the bias last).
    machines: Vec<(u32, Array1<f64>)>,
}

fn with_bias(x: ArrayView2<'_, f64>) -> Array2<f64> {
    let mut out = Array2::<f64>::ones((x.nrows(), x.ncols() + 1));
    out.slice_mut(ndarray::s![.., ..x.ncols()]).assign(&x);
    out
}

impl LinearOvr {
    fn fit(x: ArrayView2<'_, f64>, y: &[u32], classes: usize, c: f64) -> Self {
        let xb = with_bias(x);
        let targets: Vec<u32> = if classes == 2 {
            vec![1]
        } else {
            (0..classes as u32).collect()
        };
        let machines = targets
            .into_iter()
            .map(|k| {
                let ys: Vec<f64> = y.iter().map(|&l| if l == k { 1.0 } else { -1.0 }).collect();
                (k, linear_dual_cd(xb.view(), &ys, c, u64::from(k)))
            })
            .collect();
        LinearOvr { machines }
    }

    fn predict(&self, x: ArrayView2<'_, f64>) -> Vec<u32> {
        let xb = with_bias(x);
        xb.rows()
            .into_iter()
            .map(|r| {
                if let [(k, w)] = self.machines.as_slice() {
                    // Two classes: the machine of class 1 against class 0.
                    return if w.dot(&r) > 0.0 { *k } else { 1 - *k };
                }
                let mut best = (f64::NEG_INFINITY, 0u32);
                for (k, w) in &self.machines {
                    let v = w.dot(&r);
                    if v > best.0 {
                        best = (v, *k);
                    }
                }
                best.1
            })
            .collect()
    }
}

fn fit_rbf(x: ArrayView2<'_, f64>, y: &[u32], classes: usize, c: f64) -> Result<OneVsOne, Error> {
    let gamma = scale_gamma(x);
    let mut machines = Vec::new();
    for a in 0..classes as u32 {
        for b in a + 1..classes as u32 {
            let rows: Vec<usize> = (0..y.len()).filter(|&i| y[i] == a || y[i] == b).collect();
            if rows.is_empty() {
                continue;
            }
            let records = x.select(Axis(0), &rows);
            let targets: Array1<bool> = rows.iter().map(|&i| y[i] == a).collect();
            let has_both = targets.iter().any(|&t| t) && targets.iter().any(|&t| !t);
            if !has_both {
                continue;
            }
            let data = Dataset::new(records, targets);
            let svm = Svm::<f64, bool>::params()
                .pos_neg_weights(c, c)
                .gaussian_kernel(1.0 / gamma)
                // libsvm's tolerance. Not its shrinking: linfa-svm 0.8.1's shrinking indexes out
                // of bounds on real data (solver_smo.rs:601, seen on MUTAG embeddings).
                .eps(1e-3)
                .fit(&data)
                .map_err(|e| Error::invalid_config("svm", c, format!("training failed: {e}")))?;
            machines.push((a, b, svm));
        }
    }
    Ok(OneVsOne { machines, classes })
}

impl OneVsOne {
    fn predict(&self, x: ArrayView2<'_, f64>) -> Vec<u32> {
        let mut votes = vec![0u32; x.nrows() * self.classes];
        for (a, b, svm) in &self.machines {
            let pred: Array1<bool> = svm.predict(&x);
            for (r, &is_a) in pred.iter().enumerate() {
                let winner = if is_a { *a } else { *b } as usize;
                votes[r * self.classes + winner] += 1;
            }
        }
        votes
            .chunks(self.classes)
            .map(|v| {
                // Ties go to the lower class index, as libsvm's vote does.
                let mut best = 0;
                for (c, &n) in v.iter().enumerate() {
                    if n > v[best] {
                        best = c;
                    }
                }
                best as u32
            })
            .collect()
    }
}

fn accuracy(pred: &[u32], truth: &[u32]) -> f64 {
    let right = pred.iter().zip(truth).filter(|(p, t)| p == t).count();
    100.0 * right as f64 / truth.len().max(1) as f64
}

impl SvmProtocol {
    /// Cross-validated accuracy of an SVM with [`kernel`](Self::kernel) on `features` (`[rows, dim]` row-major) with
    /// `labels` in `0..classes`.
    ///
    /// # Errors
    /// `ShapeMismatch` when the features are not `labels.len()` rows of `dim`; `InvalidConfig`
    /// for fewer than two classes, a label out of range, too few instances for the folds, an
    /// empty `C` grid or a non-finite feature.
    pub fn evaluate(
        &self,
        features: &[f32],
        dim: usize,
        labels: &[u32],
        classes: usize,
    ) -> Result<CvAccuracy, Error> {
        if dim == 0 || features.len() != labels.len() * dim {
            return Err(Error::ShapeMismatch {
                op: "SvmProtocol::evaluate",
                expected: format!("{} rows of {dim}", labels.len()),
                found: format!("{} values", features.len()),
            });
        }
        if classes < 2 {
            return Err(Error::invalid_config("classes", classes, "need at least 2"));
        }
        if let Some(&l) = labels.iter().find(|&&l| l as usize >= classes) {
            return Err(Error::invalid_config(
                "labels",
                l,
                format!("must be below {classes}"),
            ));
        }
        if labels.len() < self.folds.max(2) || self.inner_folds < 2 || self.folds < 2 {
            return Err(Error::invalid_config(
                "folds",
                self.folds,
                format!(
                    "{} instances cannot fill {} folds",
                    labels.len(),
                    self.folds
                ),
            ));
        }
        if self.c_grid.is_empty() {
            return Err(Error::invalid_config(
                "c_grid",
                "[]",
                "needs at least one C",
            ));
        }
        if features.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid_config(
                "features",
                "NaN or inf",
                "must be finite",
            ));
        }
        let x = Array2::from_shape_vec(
            (labels.len(), dim),
            features.iter().map(|&v| f64::from(v)).collect(),
        )
        .expect("length checked");
        let folds = self.assignment(labels);
        // The outer folds are independent: one per rayon task.
        let outcomes: Vec<Result<(f64, f64), Error>> = (0..self.folds)
            .into_par_iter()
            .map(|k| {
                let (train, test) = folds.split(k);
                let (xt, yt) = (x.select(Axis(0), &train), pick(labels, &train));
                let inner: Vec<usize> = train
                    .iter()
                    .map(|&i| folds.inner[k][i].expect("a training instance"))
                    .collect();
                let c = self.pick_c(xt.view(), &yt, classes, &inner)?;
                let model = fit(xt.view(), &yt, classes, c, self.kernel)?;
                let pred = model.predict(x.select(Axis(0), &test).view());
                Ok((accuracy(&pred, &pick(labels, &test)), c))
            })
            .collect();
        let mut scores = Vec::with_capacity(self.folds);
        let mut chosen = Vec::with_capacity(self.folds);
        for o in outcomes {
            let (score, c) = o?;
            scores.push(score);
            chosen.push(c);
        }
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        let std =
            (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / scores.len() as f64).sqrt();
        Ok(CvAccuracy {
            mean,
            std,
            folds: scores,
            chosen_c: chosen,
        })
    }

    /// The folds [`evaluate`](Self::evaluate) uses for `labels`: stratified outer folds drawn
    /// with [`seed`](Self::seed), and within each outer fold's training set stratified inner
    /// folds drawn with a seed of their own.
    pub fn assignment(&self, labels: &[u32]) -> FoldAssignment {
        let outer = stratified_folds(labels, self.folds, self.seed);
        let inner = (0..self.folds)
            .map(|k| {
                let train: Vec<usize> = (0..labels.len()).filter(|&i| outer[i] != k).collect();
                let drawn = stratified_folds(
                    &pick(labels, &train),
                    self.inner_folds,
                    self.seed ^ (0x5eed_0000 + k as u64),
                );
                let mut of = vec![None; labels.len()];
                for (&i, f) in train.iter().zip(drawn) {
                    of[i] = Some(f);
                }
                of
            })
            .collect();
        FoldAssignment { outer, inner }
    }

    /// The `C` of the grid with the best mean accuracy over the inner folds `fold` (one per
    /// training instance) of a training fold (the first best on ties, as `GridSearchCV`).
    fn pick_c(
        &self,
        x: ArrayView2<'_, f64>,
        y: &[u32],
        classes: usize,
        fold: &[usize],
    ) -> Result<f64, Error> {
        let mut best = (f64::NEG_INFINITY, self.c_grid[0]);
        for &c in &self.c_grid {
            let mut total = 0.0;
            for k in 0..self.inner_folds {
                let train: Vec<usize> = (0..y.len()).filter(|&i| fold[i] != k).collect();
                let test: Vec<usize> = (0..y.len()).filter(|&i| fold[i] == k).collect();
                if train.is_empty() || test.is_empty() {
                    continue;
                }
                let model = fit(
                    x.select(Axis(0), &train).view(),
                    &pick(y, &train),
                    classes,
                    c,
                    self.kernel,
                )?;
                let pred = model.predict(x.select(Axis(0), &test).view());
                total += accuracy(&pred, &pick(y, &test));
            }
            if total > best.0 {
                best = (total, c);
            }
        }
        Ok(best.1)
    }
}

fn pick(labels: &[u32], idx: &[usize]) -> Vec<u32> {
    idx.iter().map(|&i| labels[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three Gaussian blobs in 2-D, `per` points each.
    fn blobs(per: usize, spread: f64) -> (Vec<f32>, Vec<u32>) {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        let centres = [(0.0, 0.0), (4.0, 0.0), (0.0, 4.0)];
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for (c, &(cx, cy)) in centres.iter().enumerate() {
            for _ in 0..per {
                let (a, b): (f64, f64) = (
                    rand::RngExt::random_range(&mut rng, -1.0..1.0),
                    rand::RngExt::random_range(&mut rng, -1.0..1.0),
                );
                x.push((cx + spread * a) as f32);
                x.push((cy + spread * b) as f32);
                y.push(c as u32);
            }
        }
        (x, y)
    }

    #[test]
    fn separable_classes_score_100_and_folds_are_stratified() {
        let (x, y) = blobs(20, 0.5);
        let acc = SvmProtocol::default().evaluate(&x, 2, &y, 3).unwrap();
        assert_eq!(acc.folds.len(), 10);
        assert!((acc.mean - 100.0).abs() < 1e-9, "{acc:?}");
        let fold = stratified_folds(&y, 10, 3);
        for k in 0..10 {
            for c in 0..3 {
                let n = (0..y.len()).filter(|&i| fold[i] == k && y[i] == c).count();
                assert_eq!(n, 2, "fold {k} class {c}");
            }
        }
    }

    /// The written folds are the ones evaluated: outer folds from the seed, inner folds over
    /// each training set only, stratified, and a different seed gives other folds.
    #[test]
    fn the_fold_assignment_is_the_evaluated_one() {
        let (_, y) = blobs(20, 0.5);
        let p = SvmProtocol {
            seed: 3,
            ..SvmProtocol::default()
        };
        let f = p.assignment(&y);
        assert_eq!(f.outer, stratified_folds(&y, 10, 3));
        assert_eq!(f.inner.len(), 10);
        for (k, inner) in f.inner.iter().enumerate() {
            for (i, (of, &outer)) in inner.iter().zip(&f.outer).enumerate() {
                assert_eq!(of.is_none(), outer == k, "fold {k} instance {i}");
            }
            // 54 training instances, 18 per class: 3 or 4 of each class per inner fold.
            for j in 0..5 {
                for c in 0..3 {
                    let n = (0..y.len())
                        .filter(|&i| inner[i] == Some(j) && y[i] == c)
                        .count();
                    assert!((3..=4).contains(&n), "fold {k} inner {j} class {c}: {n}");
                }
            }
        }
        assert_ne!(SvmProtocol::default().assignment(&y), f);
    }

    /// Two classes split by a line: the linear kernel separates them; rings (one class inside
    /// the other) it cannot, where the RBF kernel does.
    #[test]
    fn the_linear_kernel_separates_lines_not_rings() {
        let (x, y) = blobs(20, 0.5);
        let two: Vec<usize> = (0..y.len()).filter(|&i| y[i] < 2).collect();
        let xs: Vec<f32> = two.iter().flat_map(|&i| [x[2 * i], x[2 * i + 1]]).collect();
        let ys: Vec<u32> = two.iter().map(|&i| y[i]).collect();
        let linear = SvmProtocol {
            kernel: SvmKernel::Linear,
            ..SvmProtocol::default()
        };
        assert!((linear.evaluate(&xs, 2, &ys, 2).unwrap().mean - 100.0).abs() < 1e-9);
        let (mut rx, mut ry) = (Vec::new(), Vec::new());
        for i in 0..60 {
            let t = i as f64 * 0.37;
            let r = if i % 2 == 0 { 1.0 } else { 3.0 };
            rx.extend([(r * t.cos()) as f32, (r * t.sin()) as f32]);
            ry.push((i % 2) as u32);
        }
        let rbf = SvmProtocol::default()
            .evaluate(&rx, 2, &ry, 2)
            .unwrap()
            .mean;
        let lin = linear.evaluate(&rx, 2, &ry, 2).unwrap().mean;
        assert!(rbf > 95.0 && lin < 80.0, "rbf {rbf}, linear {lin}");
    }

    #[test]
    fn random_labels_score_near_chance_and_bad_input_is_named() {
        let (x, mut y) = blobs(20, 0.5);
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
        y.shuffle(&mut rng);
        let acc = SvmProtocol::default().evaluate(&x, 2, &y, 3).unwrap();
        assert!(acc.mean < 70.0, "{acc:?}");
        let p = SvmProtocol::default();
        assert!(
            p.evaluate(&x[..5], 2, &y, 3)
                .unwrap_err()
                .to_string()
                .contains("rows")
        );
        assert!(
            p.evaluate(&x, 2, &y, 1)
                .unwrap_err()
                .to_string()
                .contains("classes")
        );
        let mut bad = x.clone();
        bad[0] = f32::NAN;
        assert!(
            p.evaluate(&bad, 2, &y, 3)
                .unwrap_err()
                .to_string()
                .contains("finite")
        );
    }
}
