//! Property tests over every two-view loss: non-negativity where the loss is a negative
//! log-probability, invariance to the scale of the inputs (they are normalised), and
//! equivariance to a permutation of the batch. Flex only: proptest runs many cases.

use burn::tensor::{Tensor, TensorData};
use contrast_core::testing::Flex;
use contrast_core::to_vec_f32;
use proptest::prelude::*;

use crate::*;

type T = Tensor<Flex, 2>;

/// A named loss, as a function of the two views to its value, and whether it must be >= 0.
type Case = (&'static str, Box<dyn Fn(T, T) -> f32>, bool);

/// Every two-view loss.
fn losses() -> Vec<Case> {
    let device = Default::default();
    let v = |t: Tensor<Flex, 1>| to_vec_f32(t)[0];
    let clip = ClipLossConfig::new().init::<Flex>(&device);
    vec![
        (
            "nt_xent",
            Box::new(move |a, b| v(NtXentLossConfig::new().init().forward(a, b))),
            true,
        ),
        (
            "nt_xent_blocked",
            Box::new(move |a, b| v(NtXentLossConfig::new().init().forward_blocked(a, b, 3))),
            true,
        ),
        (
            "dcl",
            Box::new(move |a, b| v(DecoupledLossConfig::new().init().forward(a, b))),
            false,
        ),
        (
            "dclw",
            Box::new(move |a, b| {
                v(DecoupledLossConfig::new()
                    .with_von_mises_sigma(Some(0.5))
                    .init()
                    .forward(a, b))
            }),
            false,
        ),
        (
            "hcl",
            Box::new(move |a, b| v(HardNegativeLossConfig::new().init().forward(a, b))),
            true,
        ),
        (
            "inva_spread",
            Box::new(move |a, b| v(InvaSpreadLossConfig::new().init().forward(a, b))),
            true,
        ),
        (
            "simcse",
            Box::new(move |a, b| v(SimCseLossConfig::new().init().forward(a, b))),
            true,
        ),
        ("clip", Box::new(move |a, b| v(clip.forward(a, b))), true),
        (
            "info_nce_in_batch",
            Box::new(move |a: T, b: T| {
                let negatives = Tensor::cat(vec![a.clone().neg(), b.clone() * 2.0], 0);
                v(InfoNceLossConfig::new()
                    .with_in_batch_negatives(true)
                    .init()
                    .forward(a, b, negatives))
            }),
            true,
        ),
    ]
}

fn tensor(values: &[f32], n: usize, d: usize) -> T {
    Tensor::from_data(
        TensorData::new(values.to_vec(), [n, d]),
        &Default::default(),
    )
}

fn case() -> impl Strategy<Value = (usize, usize, Vec<f32>, Vec<usize>, f32)> {
    (2usize..6, 2usize..5).prop_flat_map(|(n, d)| {
        (
            Just(n),
            Just(d),
            proptest::collection::vec(-3.0f32..3.0, 2 * n * d),
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            0.05f32..20.0,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn invariants((n, d, x, perm, scale) in case()) {
        // Rows must not be near zero, where normalisation is ill-conditioned.
        prop_assume!(x.chunks(d).all(|r| r.iter().map(|v| v * v).sum::<f32>() > 0.05));
        let a = tensor(&x[..n * d], n, d);
        let b = tensor(&x[n * d..], n, d);
        let permute = |t: &[f32]| -> Vec<f32> { perm.iter().flat_map(|&i| t[i * d..(i + 1) * d].to_vec()).collect() };
        let pa = tensor(&permute(&x[..n * d]), n, d);
        let pb = tensor(&permute(&x[n * d..]), n, d);
        for (name, loss, non_negative) in losses() {
            let value = loss(a.clone(), b.clone());
            prop_assert!(value.is_finite(), "{name}: {value}");
            if non_negative {
                prop_assert!(value >= -1e-5, "{name} is negative: {value}");
            }
            let scaled = loss(a.clone() * scale, b.clone() * scale);
            prop_assert!((scaled - value).abs() <= 1e-3 * value.abs().max(1.0), "{name}: scale {scale} changed {value} to {scaled}");
            let permuted = loss(pa.clone(), pb.clone());
            prop_assert!((permuted - value).abs() <= 1e-4 * value.abs().max(1.0), "{name}: permutation changed {value} to {permuted}");
        }
    }

    /// SupCon and the label-masked NT-Xent are equivariant when labels move with their rows.
    #[test]
    fn label_losses_are_permutation_equivariant((n, d, x, perm, _scale) in case(), labels in proptest::collection::vec(0usize..3, 6)) {
        prop_assume!(x.chunks(d).all(|r| r.iter().map(|v| v * v).sum::<f32>() > 0.05));
        let labels = &labels[..n];
        let permute = |t: &[f32]| -> Vec<f32> { perm.iter().flat_map(|&i| t[i * d..(i + 1) * d].to_vec()).collect() };
        let plabels: Vec<usize> = perm.iter().map(|&i| labels[i]).collect();
        let (a, b) = (tensor(&x[..n * d], n, d), tensor(&x[n * d..], n, d));
        let (pa, pb) = (tensor(&permute(&x[..n * d]), n, d), tensor(&permute(&x[n * d..]), n, d));
        let sup = SupConLossConfig::new().with_temperature(0.2).with_base_temperature(0.2).init();
        let nt = NtXentLossConfig::new().init();
        let v = |t: Tensor<Flex, 1>| to_vec_f32(t)[0];
        let s1 = v(sup.forward(a.clone(), b.clone(), labels));
        let s2 = v(sup.forward(pa.clone(), pb.clone(), &plabels));
        prop_assert!(s1 >= 0.0 && (s1 - s2).abs() <= 1e-4 * s1.max(1.0), "{s1} vs {s2}");
        let m1 = v(nt.forward_with_labels(a, b, labels));
        let m2 = v(nt.forward_with_labels(pa, pb, &plabels));
        prop_assert!(m1 >= 0.0 && (m1 - m2).abs() <= 1e-4 * m1.max(1.0), "{m1} vs {m2}");
    }
}
