use std::path::PathBuf;

/// What can stop a training run or an experiment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value, a device or a shape was wrong (from `contrast-core`).
    #[error(transparent)]
    Core(#[from] contrast_core::Error),
    /// A file could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint is unreadable (truncated, corrupt, or from another configuration).
    #[error("checkpoint {path} cannot be used: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The disk cannot hold the run's checkpoints (checked before training starts).
    #[error("cannot write checkpoints to {dir}: {reason}")]
    NoSpace {
        /// The run folder.
        dir: PathBuf,
        /// Free and needed space.
        reason: String,
    },
    /// Another process is writing into the run folder.
    #[error(
        "{dir} is in use by another run ({holder}); wait for it to finish or pick another --out"
    )]
    Locked {
        /// The run folder.
        dir: PathBuf,
        /// Who holds the lock, as its lock file says (`process <pid>`).
        holder: String,
    },
    /// The data-parallel group stopped (see [`contrast_parallel::PeerError`]).
    #[error(transparent)]
    Peer(contrast_parallel::PeerError),
    /// The loss became NaN or infinite; the run stopped before the optimiser step.
    #[error(
        "the loss is {value} at epoch {epoch}, step {step} (global step {global_step}); the run \
         stopped without updating the weights. {checkpoint}Resuming with the same settings would \
         diverge again: start again with a lower learning rate or a higher temperature (--overwrite, \
         or another --out)."
    )]
    NonFiniteLoss {
        /// Epoch (0-based).
        epoch: usize,
        /// Step within the epoch.
        step: usize,
        /// Step since the start of training.
        global_step: usize,
        /// The loss value.
        value: f32,
        /// Sentence about the last good checkpoint.
        checkpoint: String,
    },
}

/// A data-parallel group failed: a peer died or hangs, or burn-collective refused.
impl From<contrast_parallel::PeerError> for Error {
    fn from(e: contrast_parallel::PeerError) -> Self {
        Error::Peer(e)
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
