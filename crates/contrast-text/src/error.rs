use std::path::{Path, PathBuf};

/// What can go wrong while reading text data, building a tokenizer or fetching files.
///
/// Format errors name the file and the 1-based line, so a user can open the file at the place
/// that is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused a read, a write or a directory listing.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line does not follow the file's format (or is not UTF-8).
    #[error("{path}:{line}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line number (of the record's first line for multi-line CSV records).
        line: usize,
        /// What was expected and what was found.
        reason: String,
    },
    /// The file holds nothing to load.
    #[error("{path}: {reason}")]
    Empty {
        /// The file.
        path: PathBuf,
        /// What is missing ("the file is empty", "no sentence, only blank lines").
        reason: String,
    },
    /// A compressed file or archive (bzip2, wheel) is corrupt or lacks an expected member.
    #[error("cannot read archive {path}: {reason}")]
    Archive {
        /// The file.
        path: PathBuf,
        /// What went wrong, in one line.
        reason: String,
    },
    /// The tokenizer could not be built or could not encode.
    #[error("tokenizer {path}: {reason}")]
    Tokenizer {
        /// The file (or folder) the tokenizer came from.
        path: PathBuf,
        /// What went wrong, in one line.
        reason: String,
    },
    /// The tokenizer knows more token ids than the model's embedding table has rows: the two
    /// come from different checkpoints.
    #[error(
        "tokenizer {path} has {tokenizer} tokens but the model's vocabulary has {model}: they do not belong to the same checkpoint"
    )]
    VocabMismatch {
        /// Where the tokenizer came from.
        path: PathBuf,
        /// The tokenizer's vocabulary size (with added tokens).
        tokenizer: usize,
        /// The model's vocabulary size.
        model: usize,
    },
    /// A dataset or model is not where it was looked for.
    #[error("{what} not found: {hint}")]
    NotFound {
        /// The dataset, file or model.
        what: String,
        /// How to get it.
        hint: String,
    },
    /// A configuration value is out of range (from `contrast-core`).
    #[error(transparent)]
    Core(#[from] contrast_core::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: &Path, line: usize, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.to_path_buf(),
            line,
            reason: reason.into(),
        }
    }

    pub(crate) fn empty(path: &Path, reason: impl Into<String>) -> Self {
        Error::Empty {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn archive(path: &Path, reason: impl Into<String>) -> Self {
        Error::Archive {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn tokenizer(path: &Path, reason: impl std::fmt::Display) -> Self {
        Error::Tokenizer {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// The bytes of a text file as UTF-8, without a leading byte-order mark.
///
/// # Errors
/// [`Error::Empty`] for no bytes at all, [`Error::Format`] naming the line and the byte within
/// it where the UTF-8 encoding breaks.
pub(crate) fn utf8_text<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a str, Error> {
    if bytes.is_empty() {
        return Err(Error::empty(path, "the file is empty"));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line = 1 + good.iter().filter(|&&b| b == b'\n').count();
        let column = 1 + good.len() - good.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        Error::format(
            path,
            line,
            format!("not valid UTF-8 (byte {column} of the line)"),
        )
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// The lines of `text` with their 1-based numbers, without `\n` or `\r\n`.
pub(crate) fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
}
