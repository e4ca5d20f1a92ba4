//! BatchSampler properties: batches distinct and in range, coverage per epoch, restart = 1
//! stays next to the start, determinism, no hang on disconnected graphs, state round trip, and
//! the paper's effect on clustered data: same-cluster pairs rise with p and with M.

use contrast_core::IndexSampler;
use contrast_sampler::{
    BatchSampler, BatchSamplerConfig, Coverage, NeighbourSearch, same_class_pair_share,
};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// `clusters` Gaussian clusters in `d` dimensions, `n` points; returns (embeddings, labels).
fn clustered(n: usize, d: usize, clusters: usize, spread: f32, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let centres: Vec<f32> = (0..clusters * d)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let mut x = Vec::with_capacity(n * d);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % clusters;
        labels.push(c as u32);
        for t in 0..d {
            // Sum of uniforms: a cheap, seeded, roughly Gaussian perturbation.
            let g: f32 = (0..4).map(|_| rng.random_range(-1.0f32..1.0)).sum::<f32>() * 0.5;
            x.push(centres[c * d + t] + spread * g);
        }
    }
    (x, labels)
}

#[allow(clippy::too_many_arguments)]
fn sampler(
    n: usize,
    b: usize,
    m: usize,
    k: usize,
    p: f64,
    coverage: Coverage,
    emb: Vec<f32>,
    d: usize,
) -> BatchSampler {
    let mut c = BatchSamplerConfig::new(b);
    c.candidates = m;
    c.neighbours = k;
    c.restart = p;
    c.restart_min = p;
    c.warmup_epochs = 0;
    c.coverage = coverage;
    c.seed = 5;
    let mut s = BatchSampler::new(c, n).unwrap();
    s.set_embeddings(emb, d).unwrap();
    s
}

fn epoch(s: &mut BatchSampler, e: usize) -> Vec<Vec<usize>> {
    s.begin_epoch(e);
    std::iter::from_fn(|| s.next_batch()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn batches_are_distinct_in_range_and_cover_the_epoch(
        n in 10usize..120, b in 2usize..12, k in 1usize..8, m in 1usize..60, p in 0.0f64..1.0,
        reference in any::<bool>(), seed in 0u64..1000,
    ) {
        prop_assume!(b <= n);
        let (emb, _) = clustered(n, 3, 3, 0.3, seed);
        let coverage = if reference { Coverage::Reference } else { Coverage::ExactlyOnce };
        let mut s = sampler(n, b, m, k, p, coverage, emb, 3);
        let batches = epoch(&mut s, 0);
        let mut seen = vec![0usize; n];
        for batch in &batches {
            let mut sorted = batch.clone();
            sorted.sort_unstable();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), batch.len(), "duplicate inside a batch");
            prop_assert!(batch.iter().all(|&i| i < n));
            prop_assert!(batch.len() <= b);
            for &i in batch { seen[i] += 1; }
        }
        prop_assert!(seen.iter().all(|&c| c >= 1), "an instance was never sampled");
        if !reference {
            prop_assert!(seen.iter().all(|&c| c == 1), "exactly-once mode repeated an instance");
            prop_assert_eq!(batches.len(), n.div_ceil(b));
        } else {
            prop_assert!(batches.iter().all(|x| x.len() == b));
        }
    }
}

#[test]
fn restart_one_stays_in_the_start_neighbourhood() {
    let n = 400;
    let (emb, _) = clustered(n, 4, 4, 0.3, 1);
    let mut s = sampler(n, 8, 400, 10, 1.0, Coverage::Reference, emb, 4);
    s.begin_epoch(0);
    for _ in 0..20 {
        let batch = s.next_batch().unwrap();
        let start = batch[0];
        let hood = s.graph().unwrap().neighbours_of(start).to_vec();
        // K = 10 >= batch - 1, so the walk never needs a top-up.
        assert!(
            batch[1..].iter().all(|j| hood.contains(&(*j as u32))),
            "{batch:?} not within {hood:?}"
        );
    }
    assert_eq!(s.stats().top_ups, 0);
}

#[test]
fn deterministic_with_a_seed_and_resumable() {
    let n = 500;
    let (emb, _) = clustered(n, 8, 5, 0.3, 2);
    let mut a = sampler(n, 32, 100, 10, 0.2, Coverage::ExactlyOnce, emb.clone(), 8);
    let mut b = sampler(n, 32, 100, 10, 0.2, Coverage::ExactlyOnce, emb.clone(), 8);
    assert_eq!(epoch(&mut a, 0), epoch(&mut b, 0));
    // State after epoch 0 restores into a fresh sampler that then produces the same epoch 1.
    let bytes = a.state_bytes();
    let mut c = sampler(
        n,
        32,
        100,
        10,
        0.2,
        Coverage::ExactlyOnce,
        vec![0.0; n * 8],
        8,
    );
    c.load_state_bytes(&bytes).unwrap();
    assert_eq!(epoch(&mut a, 1), epoch(&mut c, 1));
    assert!(c.load_state_bytes(&bytes[..bytes.len() / 2]).is_err());
}

#[test]
fn disconnected_graph_does_not_hang_and_counts_top_ups() {
    // Pairs of identical points far apart: every node's only useful neighbour is its twin.
    let n = 200;
    let emb: Vec<f32> = (0..n)
        .flat_map(|i| {
            let a = (i / 2) as f32 * 0.7;
            [a.cos(), a.sin()]
        })
        .collect();
    let mut s = sampler(n, 16, 2, 1, 0.1, Coverage::Reference, emb, 2);
    let batches = epoch(&mut s, 0);
    assert!(batches.iter().all(|b| b.len() == 16));
    assert!(s.stats().top_ups > 0 && s.stats().stalled_batches > 0);
}

fn pair_share(m: usize, p: f64, emb: &[f32], labels: &[u32]) -> f64 {
    let n = labels.len();
    let mut s = sampler(n, 256, m, 100, p, Coverage::Reference, emb.to_vec(), 32);
    s.begin_epoch(0);
    let shares: Vec<f64> = (0..20)
        .map(|_| same_class_pair_share(&s.next_batch().unwrap(), labels))
        .collect();
    shares.iter().sum::<f64>() / shares.len() as f64
}

#[test]
fn clustered_data_same_cluster_share_rises_with_m_and_p() {
    let (emb, labels) = clustered(20_000, 32, 10, 0.6, 3);
    let small = pair_share(100, 0.2, &emb, &labels);
    let mid = pair_share(1000, 0.2, &emb, &labels);
    let full = pair_share(20_000, 0.2, &emb, &labels);
    eprintln!("same-cluster share by M: 100 -> {small:.3}, 1000 -> {mid:.3}, N -> {full:.3}");
    assert!(small < mid && mid < full, "share must rise with M");
    assert!(full > 0.9, "M = N: batches are one cluster ({full:.3})");
    let low_p = pair_share(1000, 0.0, &emb, &labels);
    let high_p = pair_share(1000, 0.9, &emb, &labels);
    eprintln!("same-cluster share by p (M = 1000): 0 -> {low_p:.3}, 0.9 -> {high_p:.3}");
    assert!(
        high_p > low_p,
        "share must rise with the restart probability"
    );
    // Random batches of 10 balanced clusters: about 0.1.
    let random: f64 = {
        let mut rng = Pcg64Mcg::seed_from_u64(0);
        let batch: Vec<usize> = (0..256).map(|_| rng.random_range(0..20_000)).collect();
        same_class_pair_share(&batch, &labels)
    };
    assert!(random < 0.15, "{random}");
    let _ = NeighbourSearch::Auto;
}
