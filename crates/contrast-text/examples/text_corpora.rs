//! Fetches the Wikipedia corpus and all-MiniLM-L6-v2 into a cache folder, then checks that the
//! model's `tokenizer.json` and a tokenizer built from its `vocab.txt` give the same ids.
//!
//! ```text
//! cargo run --release -p contrast-text --example text_corpora -- [CACHE] [GENSIM_WHEEL]
//! ```
//! `CACHE` defaults to `~/.cache/contrast`; with a gensim wheel, the extraction counts are
//! printed too. With `CONTRAST_SHARED_DATASETS` set, the STS sentences are tokenised as well.

use std::path::PathBuf;
use std::time::Instant;

use contrast_text::{
    TextTokenizer, load_sentences, load_sts_eval, minilm_dir, wiki_sentences_file,
    wiki_sentences_from_wheel,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let cache = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/contrast")
    });
    std::fs::create_dir_all(&cache)?;
    if let Some(wheel) = args.next() {
        let t = Instant::now();
        let w = wiki_sentences_from_wheel(&PathBuf::from(wheel))?;
        println!("from the wheel: {:?} in {:.2?}", w.counts, t.elapsed());
    }

    let t = Instant::now();
    let file = wiki_sentences_file(&cache)?;
    let wiki = load_sentences(&file)?;
    println!(
        "wiki: {} sentences in {} ({:.2?})",
        wiki.len(),
        file.display(),
        t.elapsed()
    );

    let t = Instant::now();
    let dir = minilm_dir(&cache)?;
    println!("MiniLM: {} ({:.2?})", dir.display(), t.elapsed());
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json"))?)?;
    let model_vocab = config["vocab_size"].as_u64().unwrap_or(0) as usize;

    let json = TextTokenizer::from_dir(&dir)?;
    json.check_vocab(model_vocab)?;
    let vocab = TextTokenizer::from_vocab(
        &std::fs::read(dir.join("vocab.txt"))?,
        true,
        &dir.join("vocab.txt"),
    )?;
    let mut sentences = wiki.sentences.clone();
    if let Some(root) = std::env::var_os("CONTRAST_SHARED_DATASETS") {
        for task in load_sts_eval(&PathBuf::from(root))?.tasks {
            for set in task.sets {
                sentences.extend(set.first);
                sentences.extend(set.second);
            }
        }
    }
    let t = Instant::now();
    let a = json.encode_corpus(&sentences)?;
    let elapsed = t.elapsed();
    let b = vocab.encode_corpus(&sentences)?;
    let differ = (0..a.len()).filter(|&i| a.ids(i) != b.ids(i)).count();
    println!(
        "tokenised {} sentences in {elapsed:.2?} (vocab {}, model {model_vocab}, pad id {}): {} truncated to {} tokens; tokenizer.json and vocab.txt differ on {differ}",
        a.len(),
        json.vocab_size(),
        json.pad_id(),
        a.truncated(),
        json.max_len()
    );
    if differ > 0 {
        return Err(format!("{differ} sentences tokenise differently").into());
    }
    Ok(())
}
