//! [`Peer`]: the leader as a follower calls it, over the node-to-node service's `Forward` RPC.
//!
//! A call is a bincode-encoded [`PeerCall`]; the reply is the bincode-encoded result of that call's own type
//! (see each `Peer` method). Transport failures are [`PeerError`]s, kept apart from the leader's answers so that
//! callers retry exactly what may be retried.

use std::collections::BTreeSet;

use quorate_core::Nanos;
use quorate_proto::v1::RaftRequest;
use quorate_proto::v1::raft_client::RaftClient;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use super::Cluster;
use crate::command::{Command, CommandOutcome};
use crate::error::CheckError;
use crate::raft::{Node, NodeId, codec};

/// What a node asks of the leader for its own clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum PeerCall {
    /// Commit these commands (one batch's worth): `Result<Vec<CommandOutcome>, CheckError>`.
    Commit(Vec<Command>),
    /// Record a load signal, already scaled: `Result<(), CheckError>`.
    ReportLoad {
        /// The signal's name.
        name: String,
        /// Its reading in ppm.
        value_ppm: u32,
        /// How long it counts.
        ttl: Nanos,
    },
    /// Replace the policy set: `Result<u64, AdminError>` (the new version).
    SetPolicies {
        /// The policies TOML.
        toml: String,
        /// If non-zero, the version that must be in force.
        expected_version: u64,
    },
    /// Add a learner: `Result<MembershipChange, AdminError>`.
    AddLearner {
        /// The new node's id.
        id: NodeId,
        /// How it is reached.
        node: Node,
    },
    /// Change the voters: `Result<MembershipChange, AdminError>`.
    ChangeMembership {
        /// The new voters.
        voters: BTreeSet<NodeId>,
    },
}

/// Why a peer call got no answer from the leader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PeerError {
    /// The call may not have reached the leader, or its connection broke: retry, possibly at a new leader.
    #[error("the leader at {addr} could not be reached: {message}")]
    Unreachable {
        /// The leader's address.
        addr: String,
        /// What failed.
        message: String,
    },
    /// The leader refused the call itself (a payload it cannot decode): retrying will not help.
    #[error("the leader at {addr} refused the call: {message}")]
    Refused {
        /// The leader's address.
        addr: String,
        /// What it said.
        message: String,
    },
}

impl From<PeerError> for CheckError {
    fn from(error: PeerError) -> CheckError {
        match error {
            PeerError::Unreachable { .. } => CheckError::LeaderUnreachable { message: error.to_string() },
            PeerError::Refused { .. } => CheckError::PeerRefused { message: error.to_string() },
        }
    }
}

/// The leader, reached from a follower.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    cluster: Cluster,
    addr: String,
    client: RaftClient<Channel>,
}

impl Peer {
    pub(super) fn new(cluster: Cluster, addr: String, channel: Channel) -> Self {
        Peer { cluster, addr, client: RaftClient::new(channel) }
    }

    /// Commits `commands` on the leader and returns their outcomes in order: in one call, together with whatever
    /// else this node forwards meanwhile ([`super::forwarder`]).
    ///
    /// # Errors
    ///
    /// [`PeerError`] if the leader could not be reached or refused the call.
    pub(crate) async fn commit(
        &self,
        commands: Vec<Command>,
    ) -> Result<Result<Vec<CommandOutcome>, CheckError>, PeerError> {
        self.cluster.forwarder(&self.addr).commit(commands, &self.addr).await
    }

    /// Sends `call` and decodes the leader's answer.
    ///
    /// # Errors
    ///
    /// [`PeerError`] if the leader could not be reached or refused the call.
    pub(crate) async fn call<R: DeserializeOwned>(&self, call: &PeerCall) -> Result<R, PeerError> {
        let refused = |message: String| PeerError::Refused { addr: self.addr.clone(), message };
        let data = codec::encode(call).map_err(|e| refused(format!("encoding the call: {e}")))?;
        let reply = match self.client.clone().forward(RaftRequest { data }).await {
            Ok(reply) => reply.into_inner(),
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                return Err(refused(status.message().into()));
            }
            Err(status) => {
                // UNAVAILABLE, a broken connection (tonic reports it as UNKNOWN "transport error"), a timeout: the
                // leader may have crashed or moved. The channel may be dead for good: dial afresh next time.
                self.cluster.forget(&self.addr);
                return Err(PeerError::Unreachable { addr: self.addr.clone(), message: status.message().to_owned() });
            }
        };
        codec::decode(&reply.ok).map_err(|e| refused(format!("decoding the answer: {e}")))
    }
}
