//! Sentences to token ids with Hugging Face's `tokenizers`: a `tokenizer.json`, or a BERT
//! WordPiece tokenizer built from `vocab.txt`.

use std::path::{Path, PathBuf};

use contrast_core::HostTokens;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{
    AddedToken, PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::error::{read_file, utf8_text};
use crate::{Error, Triplets};

/// SimCSE's maximum sentence length in tokens, special tokens included.
pub const DEFAULT_MAX_LEN: usize = 32;

/// Sentences encoded per call of the parallel encoder (bounds the memory of the pieces that
/// truncation cuts off).
const CHUNK: usize = 4096;

/// A tokenizer that truncates every sentence to `max_len` tokens (special tokens included) and
/// pads a batch to its longest sentence.
///
/// The padding and truncation stored in a `tokenizer.json` are replaced: all-MiniLM-L6-v2's
/// file, for one, pads every sentence to 128 tokens, which would make a batch of short
/// sentences four times longer than it needs to be.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    max_len: usize,
    pad_id: u32,
    source: PathBuf,
}

/// The token ids of a vocabulary file (`vocab.txt`): one token per line, id = line index.
fn parse_vocab(text: &str, path: &Path) -> Result<std::collections::HashMap<String, u32>, Error> {
    let mut vocab = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let token = line.trim_end();
        let id =
            u32::try_from(i).map_err(|_| Error::format(path, i + 1, "more than 2^32 tokens"))?;
        if let Some(first) = vocab.insert(token.to_string(), id) {
            return Err(Error::format(
                path,
                i + 1,
                format!("token `{token}` already on line {}", first + 1),
            ));
        }
    }
    if vocab.is_empty() {
        return Err(Error::empty(path, "no token"));
    }
    Ok(vocab)
}

/// `do_lower_case` from a `tokenizer_config.json`, true when absent.
fn parse_lowercase(bytes: &[u8], path: &Path) -> Result<bool, Error> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::format(path, e.line(), format!("invalid JSON: {e}")))?;
    match value.get("do_lower_case") {
        None | Some(serde_json::Value::Null) => Ok(true),
        Some(serde_json::Value::Bool(b)) => Ok(*b),
        Some(other) => Err(Error::format(
            path,
            1,
            format!("`do_lower_case` is {other}, expected true or false"),
        )),
    }
}

impl TextTokenizer {
    /// Builds a BERT WordPiece tokenizer from the text of a `vocab.txt` (as Hugging Face's
    /// `BertTokenizerFast` does): BERT's normaliser (lower-casing if `lowercase`), BERT's
    /// pre-tokenizer, `[CLS] sentence [SEP]`. `path` names the file in errors.
    ///
    /// # Errors
    /// [`Error::Format`] for a repeated token or bytes that are not UTF-8, [`Error::Tokenizer`]
    /// when `[UNK]`, `[CLS]` or `[SEP]` is missing.
    pub fn from_vocab(vocab: &[u8], lowercase: bool, path: &Path) -> Result<Self, Error> {
        let text = utf8_text(vocab, path)?;
        let ids = parse_vocab(text, path)?;
        let id = |token: &str| {
            ids.get(token).copied().ok_or_else(|| {
                Error::tokenizer(path, format!("the vocabulary has no `{token}` token"))
            })
        };
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        id("[UNK]")?;
        let model = WordPiece::builder()
            .vocab(WordPiece::read_bytes(text.as_bytes()).map_err(|e| Error::tokenizer(path, e))?)
            .unk_token("[UNK]".into())
            .continuing_subword_prefix("##".into())
            .build()
            .map_err(|e| Error::tokenizer(path, e))?;
        let mut inner = Tokenizer::new(model);
        inner
            .with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
            .map_err(|e| Error::tokenizer(path, e))?;
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        inner.with_post_processor(Some(BertProcessing::new(
            ("[SEP]".into(), sep),
            ("[CLS]".into(), cls),
        )));
        inner.with_decoder(Some(WordPieceDecoder::default()));
        let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            .into_iter()
            .filter(|t| ids.contains_key(*t))
            .map(|t| AddedToken::from(t, true));
        inner
            .add_special_tokens(specials)
            .map_err(|e| Error::tokenizer(path, e))?;
        let pad_id = ids.get("[PAD]").copied().unwrap_or(0);
        Self::finish(inner, pad_id, path)
    }

    /// Loads a tokenizer from the bytes of a `tokenizer.json`. The pad id is the file's padding
    /// id, else the vocabulary's `[PAD]`, else 0. `path` names the file in errors.
    ///
    /// # Errors
    /// [`Error::Tokenizer`] when `tokenizers` cannot read the file.
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<Self, Error> {
        let inner = Tokenizer::from_bytes(bytes).map_err(|e| Error::tokenizer(path, e))?;
        let pad_id = inner
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| inner.token_to_id("[PAD]"))
            .unwrap_or(0);
        Self::finish(inner, pad_id, path)
    }

    /// Loads the tokenizer of a model folder: `tokenizer.json` if present, else a BERT
    /// WordPiece tokenizer from `vocab.txt` (lower-casing as `tokenizer_config.json`'s
    /// `do_lower_case` says, true when the file or the key is absent).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the folder has neither file, else as [`from_json`] and
    /// [`from_vocab`], plus [`Error::Io`].
    ///
    /// [`from_json`]: TextTokenizer::from_json
    /// [`from_vocab`]: TextTokenizer::from_vocab
    pub fn from_dir(dir: &Path) -> Result<Self, Error> {
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            return Self::from_json(&read_file(&json)?, &json);
        }
        let vocab = dir.join("vocab.txt");
        if !vocab.is_file() {
            return Err(Error::NotFound {
                what: format!("tokenizer.json or vocab.txt in {}", dir.display()),
                hint: "pass the folder of a Hugging Face model (it holds tokenizer.json, or \
                       vocab.txt for BERT models)"
                    .into(),
            });
        }
        let config = dir.join("tokenizer_config.json");
        let lowercase = if config.is_file() {
            parse_lowercase(&read_file(&config)?, &config)?
        } else {
            true
        };
        Self::from_vocab(&read_file(&vocab)?, lowercase, &vocab)
    }

    fn finish(mut inner: Tokenizer, pad_id: u32, source: &Path) -> Result<Self, Error> {
        inner.with_padding(None);
        let tokenizer = TextTokenizer {
            inner,
            max_len: 0,
            pad_id,
            source: source.to_path_buf(),
        };
        tokenizer.with_max_len(DEFAULT_MAX_LEN)
    }

    /// Special tokens added around each sentence (`[CLS]` and `[SEP]` for BERT).
    pub fn special_tokens(&self) -> usize {
        self.inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false))
    }

    /// The same tokenizer truncating sentences to `max_len` tokens, special tokens included
    /// (default [`DEFAULT_MAX_LEN`]).
    ///
    /// # Errors
    /// [`Error::Core`] when `max_len` leaves no room for a word besides the special tokens.
    pub fn with_max_len(mut self, max_len: usize) -> Result<Self, Error> {
        let special = self.special_tokens();
        if max_len <= special {
            return Err(contrast_core::Error::InvalidConfig {
                field: "max_len",
                value: max_len.to_string(),
                reason: format!(
                    "must exceed the {special} special tokens the tokenizer adds to each sentence"
                ),
            }
            .into());
        }
        self.inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| Error::tokenizer(&self.source, e))?;
        self.max_len = max_len;
        Ok(self)
    }

    /// The maximum sentence length in tokens, special tokens included.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The id that pads short rows.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The file the tokenizer was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Number of token ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Checks that every id this tokenizer produces has a row in a model's embedding table of
    /// `model_vocab` rows (a larger vocabulary means the tokenizer belongs to another
    /// checkpoint).
    ///
    /// # Errors
    /// [`Error::VocabMismatch`] when the tokenizer's vocabulary is larger than `model_vocab`.
    pub fn check_vocab(&self, model_vocab: usize) -> Result<(), Error> {
        let tokenizer = self.vocab_size();
        if tokenizer > model_vocab {
            return Err(Error::VocabMismatch {
                path: self.source.clone(),
                tokenizer,
                model: model_vocab,
            });
        }
        Ok(())
    }

    /// The `tokenizers` tokenizer inside (with this wrapper's truncation and no padding).
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Tokenises `sentences` in parallel and pads them to the longest one; also returns how
    /// many were truncated to [`max_len`](TextTokenizer::max_len).
    ///
    /// # Errors
    /// [`Error::Tokenizer`] naming the first sentence the tokenizer cannot encode.
    pub fn encode(&self, sentences: &[&str]) -> Result<(HostTokens, usize), Error> {
        let corpus = self.encode_corpus(sentences)?;
        let all: Vec<usize> = (0..corpus.len()).collect();
        Ok((corpus.batch(&all), corpus.truncated()))
    }

    /// Tokenises a whole corpus once, in parallel, so that batches are later cut from it
    /// without a tokenizer (and without a way to fail).
    ///
    /// # Errors
    /// [`Error::Tokenizer`] naming the first sentence the tokenizer cannot encode.
    pub fn encode_corpus<S: AsRef<str>>(&self, sentences: &[S]) -> Result<TokenizedCorpus, Error> {
        let mut out = TokenizedCorpus {
            ids: Vec::new(),
            type_ids: Vec::new(),
            offsets: vec![0],
            truncated: 0,
            pad_id: self.pad_id,
        };
        let mut any_type_id = false;
        for (c, chunk) in sentences.chunks(CHUNK).enumerate() {
            let inputs: Vec<&str> = chunk.iter().map(AsRef::as_ref).collect();
            let encodings = match self.inner.encode_batch_fast(inputs, true) {
                Ok(e) => e,
                Err(e) => return Err(self.first_failure(chunk, c * CHUNK, e)),
            };
            for e in &encodings {
                out.ids.extend_from_slice(e.get_ids());
                out.type_ids.extend_from_slice(e.get_type_ids());
                any_type_id |= e.get_type_ids().iter().any(|&t| t != 0);
                out.offsets.push(out.ids.len());
                out.truncated += usize::from(!e.get_overflowing().is_empty());
            }
        }
        if !any_type_id {
            out.type_ids = Vec::new();
        }
        Ok(out)
    }

    /// Encodes triplets (or pairs) column by column.
    ///
    /// # Errors
    /// As [`encode_corpus`](TextTokenizer::encode_corpus).
    pub fn encode_triplets(&self, triplets: &Triplets) -> Result<TokenizedTriplets, Error> {
        Ok(TokenizedTriplets {
            anchor: self.encode_corpus(&triplets.anchors)?,
            positive: self.encode_corpus(&triplets.positives)?,
            negative: triplets
                .negatives
                .as_ref()
                .map(|n| self.encode_corpus(n))
                .transpose()?,
        })
    }

    /// Finds which sentence of a chunk the tokenizer refuses, for the error message.
    fn first_failure<S: AsRef<str>>(
        &self,
        chunk: &[S],
        start: usize,
        err: tokenizers::Error,
    ) -> Error {
        for (i, s) in chunk.iter().enumerate() {
            if let Err(e) = self.inner.encode_fast(s.as_ref(), true) {
                return Error::tokenizer(&self.source, format!("sentence {}: {e}", start + i));
            }
        }
        Error::tokenizer(
            &self.source,
            format!("sentences {start}..{}: {err}", start + chunk.len()),
        )
    }
}

/// Sentences tokenised once, unpadded, from which padded batches are cut.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenizedCorpus {
    ids: Vec<u32>,
    /// Empty when every type id is 0 (single sentences).
    type_ids: Vec<u32>,
    /// Sentence `i` is `ids[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<usize>,
    truncated: usize,
    pad_id: u32,
}

impl TokenizedCorpus {
    /// Number of sentences.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// True when there is no sentence.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sentences that were longer than the tokenizer's `max_len` and were cut.
    pub fn truncated(&self) -> usize {
        self.truncated
    }

    /// The id that pads short rows.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Token ids of sentence `i`, special tokens included.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn ids(&self, i: usize) -> &[u32] {
        &self.ids[self.offsets[i]..self.offsets[i + 1]]
    }

    /// The sentences `indices` (repeats allowed), padded to the longest of them.
    ///
    /// # Panics
    /// If an index is not below [`len`](TokenizedCorpus::len).
    pub fn batch(&self, indices: &[usize]) -> HostTokens {
        let seq_len = indices
            .iter()
            .map(|&i| self.offsets[i + 1] - self.offsets[i])
            .max()
            .unwrap_or(0);
        let n = indices.len() * seq_len;
        let mut host = HostTokens {
            ids: Vec::with_capacity(n),
            type_ids: Vec::with_capacity(n),
            mask: Vec::with_capacity(n),
            batch: indices.len(),
            seq_len,
            pad_id: self.pad_id,
        };
        for &i in indices {
            let range = self.offsets[i]..self.offsets[i + 1];
            let pad = seq_len - range.len();
            host.ids.extend_from_slice(&self.ids[range.clone()]);
            host.ids.extend(std::iter::repeat_n(self.pad_id, pad));
            if self.type_ids.is_empty() {
                host.type_ids.extend(std::iter::repeat_n(0, seq_len));
            } else {
                host.type_ids
                    .extend_from_slice(&self.type_ids[range.clone()]);
                host.type_ids.extend(std::iter::repeat_n(0, pad));
            }
            host.mask.extend(std::iter::repeat_n(1, range.len()));
            host.mask.extend(std::iter::repeat_n(0, pad));
        }
        host
    }
}

/// Triplets (or pairs) tokenised once, one corpus per column; instance `i` is row `i` of each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenizedTriplets {
    /// The anchors (`sent0`).
    pub anchor: TokenizedCorpus,
    /// The positives (`sent1`).
    pub positive: TokenizedCorpus,
    /// The hard negatives (`hard_neg`), when the data has them.
    pub negative: Option<TokenizedCorpus>,
}

impl TokenizedTriplets {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.anchor.len()
    }

    /// True when there is no row.
    pub fn is_empty(&self) -> bool {
        self.anchor.is_empty()
    }

    /// Sentences cut to the tokenizer's `max_len`, over all columns.
    pub fn truncated(&self) -> usize {
        self.anchor.truncated()
            + self.positive.truncated()
            + self.negative.as_ref().map_or(0, TokenizedCorpus::truncated)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A BERT-style vocabulary small enough to read: ids 0-4 are the special tokens.
    pub(crate) const VOCAB: &str = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\non\nmat\n.\n##s\nun\n##believ\n##able\n";

    pub(crate) fn tokenizer() -> TextTokenizer {
        TextTokenizer::from_vocab(VOCAB.as_bytes(), true, Path::new("vocab.txt")).unwrap()
    }

    #[test]
    fn wordpiece_lowercases_splits_and_pads_to_the_longest() {
        let t = tokenizer();
        assert_eq!((t.vocab_size(), t.pad_id(), t.max_len()), (15, 0, 32));
        let (h, truncated) = t.encode(&["The cats sat.", "Unbelievable dog"]).unwrap();
        assert_eq!(truncated, 0);
        // [CLS] the cat ##s sat . [SEP]: 7 tokens, the longest row; "dog" is unknown.
        assert_eq!((h.batch, h.seq_len, h.pad_id), (2, 7, 0));
        assert_eq!(&h.ids[..7], &[2, 5, 6, 11, 7, 10, 3]);
        assert_eq!(&h.ids[7..], &[2, 12, 13, 14, 1, 3, 0]);
        assert_eq!(&h.mask[7..], &[1, 1, 1, 1, 1, 1, 0]);
        assert_eq!(h.type_ids, vec![0; 14]);
    }

    #[test]
    fn truncation_keeps_the_special_tokens_and_is_counted() {
        let t = tokenizer().with_max_len(4).unwrap();
        let (h, truncated) = t
            .encode(&["the cat sat on the mat", "cat", "the mat"])
            .unwrap();
        assert_eq!(truncated, 1);
        assert_eq!(h.seq_len, 4);
        assert_eq!(&h.ids[..4], &[2, 5, 6, 3]);
        assert_eq!(&h.ids[4..8], &[2, 6, 3, 0]);
        assert_eq!(&h.mask[4..8], &[1, 1, 1, 0]);
        assert_eq!(&h.ids[8..], &[2, 5, 9, 3]);
        let e = tokenizer().with_max_len(2).unwrap_err().to_string();
        assert!(e.contains("`max_len` = 2"), "{e}");
    }

    #[test]
    fn batches_of_a_corpus_repeat_and_reorder() {
        let t = tokenizer();
        let corpus = t.encode_corpus(&["cat", "the cat sat", ""]).unwrap();
        assert_eq!(corpus.len(), 3);
        assert_eq!(corpus.ids(2), &[2, 3]);
        let h = corpus.batch(&[2, 0, 2]);
        assert_eq!((h.batch, h.seq_len), (3, 3));
        assert_eq!(h.ids, vec![2, 3, 0, 2, 6, 3, 2, 3, 0]);
        let empty = corpus.batch(&[]);
        assert_eq!((empty.batch, empty.seq_len, empty.ids.len()), (0, 0, 0));
    }

    #[test]
    fn lowercase_off_keeps_capitals_unknown() {
        let t = TextTokenizer::from_vocab(VOCAB.as_bytes(), false, Path::new("v")).unwrap();
        let (h, _) = t.encode(&["The cat"]).unwrap();
        assert_eq!(h.ids, vec![2, 1, 6, 3]);
    }

    #[test]
    fn vocabulary_errors_name_the_problem() {
        let e = TextTokenizer::from_vocab(b"[PAD]\n[UNK]\n[SEP]\n", true, Path::new("v.txt"));
        assert_eq!(
            e.unwrap_err().to_string(),
            "tokenizer v.txt: the vocabulary has no `[CLS]` token"
        );
        let e = TextTokenizer::from_vocab(b"a\nb\na\n", true, Path::new("v.txt")).unwrap_err();
        assert_eq!(e.to_string(), "v.txt:3: token `a` already on line 1");
        let e = TextTokenizer::from_vocab(b"", true, Path::new("v.txt")).unwrap_err();
        assert!(matches!(e, Error::Empty { .. }));
        let e = tokenizer().check_vocab(10).unwrap_err().to_string();
        assert!(
            e.contains("has 15 tokens but the model's vocabulary has 10"),
            "{e}"
        );
        tokenizer().check_vocab(30522).unwrap();
    }

    #[test]
    fn lowercase_flag_comes_from_the_config() {
        let p = Path::new("tokenizer_config.json");
        assert!(parse_lowercase(b"{}", p).unwrap());
        assert!(!parse_lowercase(br#"{"do_lower_case": false}"#, p).unwrap());
        assert!(parse_lowercase(br#"{"do_lower_case": 1}"#, p).is_err());
        let e = parse_lowercase(b"{\n\"a\": ", p).unwrap_err().to_string();
        assert!(
            e.starts_with("tokenizer_config.json:2: invalid JSON"),
            "{e}"
        );
    }

    #[test]
    fn json_tokenizer_round_trips_and_drops_the_files_padding() {
        // A tokenizer.json written by `tokenizers` itself from the vocabulary above, with the
        // fixed padding to 128 that all-MiniLM-L6-v2's file carries.
        let mut inner = tokenizer().inner().clone();
        inner.with_padding(Some(tokenizers::PaddingParams {
            strategy: tokenizers::PaddingStrategy::Fixed(128),
            pad_id: 4,
            ..Default::default()
        }));
        let json = inner.to_string(false).unwrap();
        let t = TextTokenizer::from_json(json.as_bytes(), Path::new("tokenizer.json")).unwrap();
        assert_eq!(t.pad_id(), 4);
        let (h, _) = t.encode(&["cat", "the cat"]).unwrap();
        assert_eq!(h.seq_len, 4);
        assert_eq!(h.ids, vec![2, 6, 3, 4, 2, 5, 6, 3]);
        let e = TextTokenizer::from_json(b"{}", Path::new("tokenizer.json")).unwrap_err();
        assert!(
            e.to_string().starts_with("tokenizer tokenizer.json: "),
            "{e}"
        );
    }

    #[test]
    fn from_dir_prefers_tokenizer_json_and_reads_the_config() {
        let dir = std::env::temp_dir().join(format!("contrast-text-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = TextTokenizer::from_dir(&dir).unwrap_err().to_string();
        assert!(e.contains("tokenizer.json or vocab.txt"), "{e}");
        std::fs::write(dir.join("vocab.txt"), VOCAB).unwrap();
        std::fs::write(
            dir.join("tokenizer_config.json"),
            r#"{"do_lower_case": false}"#,
        )
        .unwrap();
        let t = TextTokenizer::from_dir(&dir).unwrap();
        assert_eq!(t.encode(&["The"]).unwrap().0.ids, vec![2, 1, 3]);
        let json = tokenizer().inner().to_string(false).unwrap();
        std::fs::write(dir.join("tokenizer.json"), json).unwrap();
        let t = TextTokenizer::from_dir(&dir).unwrap();
        assert_eq!(t.encode(&["The"]).unwrap().0.ids, vec![2, 5, 3]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
