//! [`NodeError`]: what can go wrong starting or running a node.

use thiserror::Error;

/// Error returned when a node cannot be configured, started or stopped.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Returned when the config file is missing, unreadable or invalid; the message names the field.
    #[error("config: {0}")]
    Config(String),

    /// Returned when the data directory or its sled database cannot be opened.
    #[error("storage at {path}: {source}")]
    Storage {
        /// The data directory.
        path: String,
        /// What sled or the file system said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Returned when the listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// What the OS said.
        source: std::io::Error,
    },

    /// Returned when openraft refuses to start or fails fatally.
    #[error("raft: {0}")]
    Raft(String),

    /// Returned when the gRPC reflection service cannot index the compiled-in descriptors (a build defect).
    #[error("reflection: {0}")]
    Reflection(String),
}
