//! all-MiniLM-L6-v2 through contrast (tokenizer, BERT, mean pooling) against
//! sentence-transformers: the same sentence embeddings and the same STS-B test Spearman.
//!
//! Needs the STS Benchmark (`CONTRAST_SHARED_DATASETS`, set by `.ci/run` when the project's
//! shared datasets are present) and the checkpoint (found in or fetched into the cache, as
//! `contrast reproduce simcse` does); skipped with a message otherwise. The reference values
//! in `tests/data/minilm_stsb_reference.json` come from `benches/peers/minilm_parity.py`.

use std::path::PathBuf;

use burn::backend::Flex;
use contrast_core::{Encoder, to_vec_f32};
use contrast_encoders::{BertPooling, load_bert};
use contrast_methods::{StsPairs, sts_score};
use contrast_text::{SentenceViews, Split, TextTokenizer, load_stsb, minilm_dir};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    spearman_x100_stsb_test: f64,
    sentences: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

fn cache() -> PathBuf {
    std::env::var_os("CONTRAST_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/contrast")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
}

#[test]
fn minilm_matches_sentence_transformers_on_sts_b() {
    let Some(shared) = std::env::var_os("CONTRAST_SHARED_DATASETS").map(PathBuf::from) else {
        eprintln!("skipped: CONTRAST_SHARED_DATASETS is not set");
        return;
    };
    let model = match minilm_dir(&cache()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("skipped: no all-MiniLM-L6-v2 checkpoint: {e}");
            return;
        }
    };
    let reference: Reference =
        serde_json::from_str(include_str!("data/minilm_stsb_reference.json"))
            .expect("reference JSON");
    let device = Default::default();
    let (bert, config) = load_bert::<Flex>(&model, BertPooling::Mean, &device).unwrap();
    let tokenizer = TextTokenizer::from_dir(&model)
        .unwrap()
        .with_max_len(128)
        .unwrap();
    tokenizer.check_vocab(config.vocab_size).unwrap();

    // Embeddings: cosine with sentence-transformers' (normalised) rows.
    let corpus = tokenizer.encode_corpus(&reference.sentences).unwrap();
    let views = SentenceViews::new(&corpus);
    let indices: Vec<usize> = (0..corpus.len()).collect();
    let rows = to_vec_f32(bert.embed(contrast_core::Views::plain::<Flex>(
        &views, &indices, &device,
    )));
    for (i, (ours, theirs)) in rows
        .chunks(config.hidden_size)
        .zip(&reference.embeddings)
        .enumerate()
    {
        let dot: f64 = ours
            .iter()
            .zip(theirs)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        let norm: f64 = ours
            .iter()
            .map(|a| f64::from(*a).powi(2))
            .sum::<f64>()
            .sqrt();
        let cos = dot / norm;
        assert!(
            cos >= 0.9999,
            "sentence {i}: cosine {cos} with sentence-transformers"
        );
    }

    // STS-B test Spearman.
    let stsb = load_stsb(&shared.join("stsbenchmark"), Split::Test).unwrap();
    let mut sentences = stsb.first.clone();
    sentences.extend(stsb.second.iter().cloned());
    let n = stsb.len();
    let corpus = tokenizer.encode_corpus(&sentences).unwrap();
    let task = StsPairs {
        name: "STS-B test".into(),
        pairs: (0..n).map(|i| (i, n + i)).collect(),
        gold: stsb.scores.iter().map(|&s| f64::from(s)).collect(),
    };
    let score = sts_score(&bert, &SentenceViews::new(&corpus), &task, 128, &device).unwrap();
    assert!(
        (score - reference.spearman_x100_stsb_test).abs() <= 0.1,
        "STS-B test Spearman {score:.4}, sentence-transformers {:.4}",
        reference.spearman_x100_stsb_test
    );
}
