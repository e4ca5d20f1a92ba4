/// Why a data-parallel run stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The group's layout cannot work (no peers, a rank out of range, a missing address).
    #[error("invalid peer group: {0}")]
    Config(String),
    /// Another peer of this process stopped with an error or a panic; this one stopped at its
    /// next collective operation instead of waiting for it forever.
    #[error("{peer} failed ({reason}); {me} stopped at {what}")]
    PeerFailed {
        /// The peer that failed, in words (`peer 1 of 2 (device 1 of node 0)`).
        peer: String,
        /// Its error.
        reason: String,
        /// This peer, in words.
        me: String,
        /// The operation this peer was waiting in.
        what: String,
    },
    /// A collective operation got no answer in time: a peer or node died or hangs.
    #[error(
        "{me} waited {seconds:.0} s at {what} without an answer from {missing}: that peer died \
         or hangs; every peer stops (the last checkpoint is intact, --resume continues on the \
         same number of peers)"
    )]
    Timeout {
        /// This peer, in words.
        me: String,
        /// The operation.
        what: String,
        /// How long it waited.
        seconds: f64,
        /// Who did not arrive, in words.
        missing: String,
    },
    /// burn-collective or another node refused an operation (mismatched shapes or settings
    /// between peers or nodes).
    #[error("{me}: the group refused {what}: {reason}")]
    Collective {
        /// This peer, in words.
        me: String,
        /// The operation.
        what: String,
        /// Its error.
        reason: String,
    },
    /// A peer's work panicked (its message is kept; the other peers stop).
    #[error("{me} panicked: {message}")]
    Panicked {
        /// The peer, in words.
        me: String,
        /// The panic's message.
        message: String,
    },
    /// Parameters differ between peers after an optimiser step (checked in debug builds).
    #[error("{me}: parameters differ from the group's mean after step {step}: {detail}")]
    Diverged {
        /// This peer, in words.
        me: String,
        /// The global step.
        step: usize,
        /// The first differing parameter tensor and its sums.
        detail: String,
    },
}
