use std::path::PathBuf;

/// What can stop a reproduction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value, a device or a shape was wrong (from `contrast-core`).
    #[error(transparent)]
    Core(#[from] contrast_core::Error),
    /// Training stopped (checkpoint, NaN loss, monitor; from `contrast-methods`).
    #[error(transparent)]
    Train(#[from] contrast_methods::Error),
    /// Images could not be loaded (from `contrast-vision`).
    #[error(transparent)]
    Vision(#[from] contrast_vision::Error),
    /// Sentences, STS sets or a tokenizer could not be loaded (from `contrast-text`).
    #[error(transparent)]
    Text(#[from] contrast_text::Error),
    /// Image-caption pairs could not be loaded (from `contrast-pairs`).
    #[error(transparent)]
    Pairs(#[from] contrast_pairs::Error),
    /// Graphs could not be loaded (from `contrast-graph`).
    #[error(transparent)]
    Graph(#[from] contrast_graph::Error),
    /// A file could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A method's config file could not be read.
    #[error("method config {path}: {reason}")]
    MethodConfig {
        /// The JSON file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// A report or plot could not be produced.
    #[error("cannot write the report: {0}")]
    Report(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
