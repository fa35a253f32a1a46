//! The Raft type configuration and the short aliases the rest of the node uses for openraft's generic types.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::command::{EntryResponse, LogEntry};

/// A node's id in the cluster: a positive integer from the node's config file.
pub type NodeId = u64;

/// What the cluster knows about a node: where its peers and its clients reach it. Part of the replicated
/// membership, so every node and every client (through `Status`) sees the same addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// `host:port` of its peer listener: Raft and forwarded calls. Its TLS certificate must name this host.
    pub peer_addr: String,
    /// `host:port` of its public listener: where clients are routed.
    pub public_addr: String,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (public {})", self.peer_addr, self.public_addr)
    }
}

openraft::declare_raft_types!(
    /// Quorate's Raft types: log entries carry [`LogEntry`]s, the state machine answers [`EntryResponse`]s.
    pub(crate) TypeConfig:
        D = LogEntry,
        R = EntryResponse,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = super::runtime::QuorateRuntime,
);

/// The Raft handle of a node.
pub(crate) type Raft = openraft::Raft<TypeConfig>;

/// Short aliases of openraft's generic types, instantiated for [`TypeConfig`].
pub(crate) mod typ {
    use super::{Node, NodeId, TypeConfig};

    /// A log entry.
    pub(crate) type Entry = openraft::Entry<TypeConfig>;
    /// What Raft reports about itself.
    pub(crate) type RaftMetrics = openraft::RaftMetrics<NodeId, Node>;
    /// A log id (term, leader, index).
    pub(crate) type LogId = openraft::LogId<NodeId>;
    /// A vote.
    pub(crate) type Vote = openraft::Vote<NodeId>;
    /// Storage errors reported to openraft.
    pub(crate) type StorageError = openraft::StorageError<NodeId>;
    /// The membership config stored with its log id.
    pub(crate) type StoredMembership = openraft::StoredMembership<NodeId, Node>;
    /// Snapshot metadata.
    pub(crate) type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
    /// A snapshot with its data.
    pub(crate) type Snapshot = openraft::Snapshot<TypeConfig>;
    /// A Raft-level error with an API-specific error `E`.
    pub(crate) type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<NodeId, E>;
    /// An RPC error with a remote error `E`.
    pub(crate) type RpcError<E = openraft::error::Infallible> = openraft::error::RPCError<NodeId, Node, RaftError<E>>;
    /// The error of InstallSnapshot.
    pub(crate) type InstallSnapshotError = openraft::error::InstallSnapshotError;
    /// AppendEntries request.
    pub(crate) type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
    /// AppendEntries response.
    pub(crate) type AppendEntriesResponse = openraft::raft::AppendEntriesResponse<NodeId>;
    /// Vote request.
    pub(crate) type VoteRequest = openraft::raft::VoteRequest<NodeId>;
    /// Vote response.
    pub(crate) type VoteResponse = openraft::raft::VoteResponse<NodeId>;
    /// InstallSnapshot request.
    pub(crate) type InstallSnapshotRequest = openraft::raft::InstallSnapshotRequest<TypeConfig>;
    /// InstallSnapshot response.
    pub(crate) type InstallSnapshotResponse = openraft::raft::InstallSnapshotResponse<NodeId>;
}
