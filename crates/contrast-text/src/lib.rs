//! Text data for contrastive learning: sentence corpora, NLI triplets and the STS evaluation
//! sets with typed errors.
//!
//! Parsers take bytes and a path (for messages) and never panic: a malformed file gives an
//! [`Error`] naming the file, the 1-based line and what was wrong. Loaders read the files and
//! call them.
//!
//! ```
//! use contrast_text::{Error, parse_semeval};
//! use std::path::Path;
//!
//! let set = parse_semeval(b"4.0\tA\tB\n\tC\tD\n", Path::new("s.tsv"), "STS")?;
//! assert_eq!((set.len(), set.unscored), (1, 1));
//! let err = parse_semeval(b"4.0\tA\tB\nfive\tC\tD\n", Path::new("s.tsv"), "STS").unwrap_err();
//! assert_eq!(err.to_string(), "s.tsv:2: score `five` is not a number");
//! # Ok::<(), Error>(())
//! ```
#![warn(missing_docs)]

mod data;
mod error;

pub use data::{
    SEMEVAL_SUBSETS, Sentences, Split, StsEval, StsSet, StsTask, Triplets, load_semeval,
    load_sentences, load_sick, load_sts_eval, load_stsb, load_triplets, parse_semeval,
    parse_sentences, parse_sick, parse_stsb, parse_triplets, sts_dirs,
};
pub use error::Error;
