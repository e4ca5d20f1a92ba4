use std::path::PathBuf;

/// What can go wrong while reading image-caption pairs.
///
/// Errors about a row name the pairs file and the row's 1-based line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A row or the header does not follow the format.
    #[error("{path}:{line}: {reason}")]
    Format {
        /// The pairs file.
        path: PathBuf,
        /// 1-based line (the record's first line).
        line: usize,
        /// What was expected and what was found.
        reason: String,
    },
    /// A row names an image that does not exist or cannot be decoded.
    #[error("{path}:{line}: image {image}: {reason}")]
    Image {
        /// The pairs file.
        path: PathBuf,
        /// 1-based line of the row.
        line: usize,
        /// The image's path as resolved.
        image: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The file holds no pair.
    #[error("{path}: {reason}")]
    Empty {
        /// The pairs file.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// Text side (from `contrast-text`).
    #[error(transparent)]
    Text(#[from] contrast_text::Error),
    /// Image side (from `contrast-vision`).
    #[error(transparent)]
    Vision(#[from] contrast_vision::Error),
}

impl Error {
    pub(crate) fn format(path: &std::path::Path, line: usize, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.to_path_buf(),
            line,
            reason: reason.into(),
        }
    }
}
