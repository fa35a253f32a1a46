//! The node's errors: [`NodeError`] for starting and stopping, [`CheckError`] for a check's failures,
//! [`PolicyError`] and [`AdminError`] for admin writes, [`ConfigError`] for a bad config file.
//!
//! Every error a client can see becomes a `tonic::Status` in one place, `api/status.rs`. [`CheckError`],
//! [`PolicyError`] and [`AdminError`] are serializable because a leader hands them back to the follower that
//! forwarded the request.

use std::path::PathBuf;
use std::time::Duration;

use openraft::error::{ClientWriteError, Fatal, InitializeError, RaftError};
use quorate_core::CoreError;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::raft::{Node, NodeId};

/// Error returned when a node cannot be configured, started or stopped.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Returned when the config file is missing, unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// Returned when the data directory or its sled database cannot be opened.
    #[error("storage at {path}: {source}")]
    Storage {
        /// The data directory.
        path: PathBuf,
        /// What sled or the file system said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Returned when the data directory is damaged or went back in time: it no longer holds a vote or log
    /// entries this node acknowledged, so rejoining under the same id could lose committed decisions.
    #[error(
        "the data directory {} is damaged: {problem}\nThis node may have forgotten Raft entries it acknowledged, \
         so it must not rejoin under its id. Remove it from the cluster (quorate members remove --id {id}), move \
         {} aside, start the node with a new id and add it (quorate members add): it copies the state from the \
         leader.",
        path.display(), path.display()
    )]
    Damaged {
        /// This node's id.
        id: NodeId,
        /// The data directory.
        path: PathBuf,
        /// What is wrong, naming the file.
        problem: String,
    },

    /// Returned when a listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// What the OS said.
        source: std::io::Error,
    },

    /// Returned when a listener's TLS files cannot be used.
    #[error("{listener} listener TLS: {source}")]
    Tls {
        /// `public`, `peer` or `admin`.
        listener: &'static str,
        /// What is wrong with which file.
        source: crate::tls::TlsError,
    },

    /// Returned when the Raft timings do not make a valid openraft config.
    #[error("raft config: {0}")]
    RaftConfig(#[from] openraft::ConfigError),

    /// Returned when openraft stopped with a fatal error (a storage failure, a panic).
    #[error("raft: {0}")]
    Raft(#[from] Fatal<NodeId>),

    /// Returned when a new cluster cannot be initialised from the configured members.
    #[error("initialising the cluster: {0}")]
    Initialize(#[from] RaftError<NodeId, InitializeError<NodeId, Node>>),

    /// Returned when Raft's core task could not be joined at shutdown.
    #[error("stopping raft: {0}")]
    Shutdown(#[from] tokio::task::JoinError),

    /// Returned when the gRPC reflection service cannot index the compiled-in descriptors (a build defect).
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Error returned when a config file cannot be read or has a bad value; `field` names the key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}{field}: {problem}", .file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default())]
pub struct ConfigError {
    /// The file, once known.
    pub file: Option<PathBuf>,
    /// The key, e.g. `raft.heartbeat` or `peers[1].addr` (the file itself for read and syntax errors).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, problem: impl std::fmt::Display) -> ConfigError {
        ConfigError { file: None, field: field.into(), problem: problem.to_string() }
    }

    /// The same error, naming the file it is in.
    pub fn in_file(self, file: impl Into<PathBuf>) -> ConfigError {
        ConfigError { file: Some(file.into()), ..self }
    }
}

/// Why a check or refund got no decision from the cluster.
///
/// Variants fall in three groups: bad input (`Invalid`), state of the cluster a client can do nothing about but
/// wait (`NoPolicies`, `TableFull`), and no quorum within the deadline (see [`CheckError::is_no_quorum`]), which
/// is what degraded modes answer.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CheckError {
    /// Returned when the request is malformed or cannot be planned against the policy set.
    #[error("{0}")]
    Invalid(CoreError),

    /// Returned when a check needs a new key while the key table is full.
    #[error("the limiter table is full ({max_keys} keys tracked): new keys are refused until idle keys expire")]
    TableFull {
        /// The configured maximum number of tracked keys.
        max_keys: usize,
    },

    /// Returned before the first leader has installed a policy set.
    #[error("the cluster has no policy set yet: the first leader installs it shortly after start")]
    NoPolicies,

    /// Returned when the policy set changed between planning and applying; the pipeline plans again.
    #[error("the policy set changed from version {planned} to {current} while the request was in flight; retry")]
    PolicyChanged {
        /// The version the request was planned with.
        planned: u64,
        /// The version in force when it was applied.
        current: u64,
    },

    /// Returned when no leader was known, or none answered, within the deadline.
    #[error("no leader answered within {waited:?}: the cluster may be electing or partitioned")]
    NoLeader {
        /// How long the node looked for one.
        waited: Duration,
    },

    /// Returned when the leader proposed the request but no quorum committed it within the deadline.
    #[error("no quorum committed the request within {0:?}; retry, possibly on another node")]
    NotCommitted(Duration),

    /// Returned when a node asked to commit is not (or no longer) the leader.
    #[error("this node is not the leader (the leader just changed); retry")]
    NotLeader {
        /// The leader, if this node knows it.
        leader: Option<NodeId>,
    },

    /// Returned when the leader could not be reached, or the connection to it broke mid-call.
    #[error("{message}")]
    LeaderUnreachable {
        /// What failed, naming the leader's address.
        message: String,
    },

    /// Returned when this node's Raft has stopped for good (a storage failure).
    #[error("raft has stopped on this node: {0}")]
    Fatal(Box<Fatal<NodeId>>),

    /// Returned when a decision this node made alone in `local` mode could not be recorded on its disk: it is
    /// refused rather than answered, so that a restart can never hand out the node's share twice.
    #[error("could not record a local-mode decision on this node's disk: {0}")]
    LocalJournal(String),

    /// Returned while the node shuts down.
    #[error("the node is shutting down")]
    Stopped,

    /// Returned when an internal invariant failed (a defect, never bad input).
    #[error("internal error: {0}")]
    Internal(String),

    /// Returned when the leader refused a forwarded request for a reason other than the request itself (e.g. a
    /// node of another version); the message is the leader's.
    #[error("the leader refused the forwarded request: {message}")]
    PeerRefused {
        /// What the leader said.
        message: String,
    },
}

impl CheckError {
    /// Whether the failure means "no quorum within the deadline": the case a policy's `on_no_quorum` mode
    /// decides instead of an error.
    pub fn is_no_quorum(&self) -> bool {
        matches!(
            self,
            CheckError::NoLeader { .. }
                | CheckError::NotCommitted(_)
                | CheckError::LeaderUnreachable { .. }
                | CheckError::NotLeader { .. }
                | CheckError::Fatal(_)
                | CheckError::Stopped
        )
    }
}

impl From<CoreError> for CheckError {
    fn from(error: CoreError) -> CheckError {
        match error {
            CoreError::TableFull { max_keys } => CheckError::TableFull { max_keys },
            other => CheckError::Invalid(other),
        }
    }
}

/// Why a new policy set was not applied.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PolicyError {
    /// Returned when the request expected another version than the one in force (optimistic concurrency).
    #[error("policy set version is {current}, not the expected {expected}")]
    VersionMismatch {
        /// The version in force.
        current: u64,
        /// The version the request expected.
        expected: u64,
    },
    /// Returned when the policies TOML is invalid.
    #[error("{0}")]
    Invalid(CoreError),
}

/// Why an admin write (policies, membership) failed.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdminError {
    /// Returned when the request itself is invalid (the message says why).
    #[error("{0}")]
    Invalid(String),
    /// Returned when the policy set was refused.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Returned when no leader could be reached, or it could not commit, in time.
    #[error(transparent)]
    Cluster(#[from] CheckError),
    /// Returned when Raft refused the write (e.g. a membership change while another is in progress).
    #[error("{0}")]
    Raft(RaftError<NodeId, ClientWriteError<NodeId, Node>>),
    /// Returned when a membership change did not complete within its deadline.
    #[error("the {what} did not complete within {after:?}")]
    Timeout {
        /// What timed out.
        what: String,
        /// The deadline.
        after: Duration,
    },
}
