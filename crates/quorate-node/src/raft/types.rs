//! The Raft type configuration and the short aliases the rest of the node uses for openraft's generic types.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::command::{Request, Response};

/// A node's id in the cluster: a positive integer from the node's config file.
pub type NodeId = u64;

/// What the cluster knows about a node: the address its gRPC server is reached at (Raft, API and admin).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// `host:port` of the node's gRPC server, as other nodes and clients reach it.
    pub addr: String,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr)
    }
}

openraft::declare_raft_types!(
    /// Quorate's Raft types: log entries carry [`Request`]s, the state machine answers [`Response`]s.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = super::runtime::QuorateRuntime,
);

/// The Raft handle of a node.
pub type Raft = openraft::Raft<TypeConfig>;

/// Short aliases of openraft's generic types, instantiated for [`TypeConfig`].
pub mod typ {
    use super::{Node, NodeId, TypeConfig};

    /// A log entry.
    pub type Entry = openraft::Entry<TypeConfig>;
    /// A log id (term, leader, index).
    pub type LogId = openraft::LogId<NodeId>;
    /// A vote.
    pub type Vote = openraft::Vote<NodeId>;
    /// Storage errors reported to openraft.
    pub type StorageError = openraft::StorageError<NodeId>;
    /// The membership config stored with its log id.
    pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
    /// Snapshot metadata.
    pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
    /// A snapshot with its data.
    pub type Snapshot = openraft::Snapshot<TypeConfig>;
    /// A Raft-level error with an API-specific error `E`.
    pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<NodeId, E>;
    /// An RPC error with a remote error `E`.
    pub type RpcError<E = openraft::error::Infallible> = openraft::error::RPCError<NodeId, Node, RaftError<E>>;
    /// The error of `client_write`.
    pub type ClientWriteError = openraft::error::ClientWriteError<NodeId, Node>;
    /// The "not the leader, try this one" error.
    pub type ForwardToLeader = openraft::error::ForwardToLeader<NodeId, Node>;
    /// The error of InstallSnapshot.
    pub type InstallSnapshotError = openraft::error::InstallSnapshotError;
    /// AppendEntries request.
    pub type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
    /// AppendEntries response.
    pub type AppendEntriesResponse = openraft::raft::AppendEntriesResponse<NodeId>;
    /// Vote request.
    pub type VoteRequest = openraft::raft::VoteRequest<NodeId>;
    /// Vote response.
    pub type VoteResponse = openraft::raft::VoteResponse<NodeId>;
    /// InstallSnapshot request.
    pub type InstallSnapshotRequest = openraft::raft::InstallSnapshotRequest<TypeConfig>;
    /// InstallSnapshot response.
    pub type InstallSnapshotResponse = openraft::raft::InstallSnapshotResponse<NodeId>;
}
