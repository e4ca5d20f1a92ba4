use std::path::PathBuf;

/// What can go wrong while reading or preparing image data.
///
/// Every variant names the file and, for format errors, the byte offset, so a user can tell a
/// truncated download from a wrong file.
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
    /// The file ends before the data its header (or record layout) announces.
    #[error(
        "{path} is truncated: {what} needs {expected} bytes from offset {offset}, found {found}"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read (a header, image records...).
        what: String,
        /// Where the missing data starts.
        offset: u64,
        /// Bytes needed.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The file's content does not follow its format.
    #[error("{path}: invalid data at offset {offset}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Byte offset of the offending field.
        offset: u64,
        /// What was expected and what was found.
        reason: String,
    },
    /// An image file could not be decoded.
    #[error("cannot decode image {path}: {reason}")]
    Image {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// A dataset is not where it was looked for.
    #[error("{what} not found: {hint}")]
    NotFound {
        /// The dataset or file.
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

    pub(crate) fn format(path: &std::path::Path, offset: u64, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}
