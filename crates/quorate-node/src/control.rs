//! [`Control`]: the cluster's admin writes — the policy set and the membership — run on the leader.
//!
//! Any node takes them: a follower forwards the write to the leader in one peer call, like a check. The policy
//! set is validated before it costs a log entry; membership changes wait for the change to complete.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::Membership;
use openraft::error::{ClientWriteError, RaftError};
use quorate_core::policy::PolicySet;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::cluster::{Cluster, PeerCall, Route};
use crate::command::{EntryResponse, LogEntry};
use crate::error::{AdminError, CheckError, PolicyError};
use crate::raft::{Node, NodeId};

/// Membership changes wait for a learner to catch up, so they get longer than a check.
pub(crate) const MEMBERSHIP_DEADLINE: Duration = Duration::from_secs(30);

/// A membership as the leader committed it: what a membership change answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MembershipChange {
    /// The log index of the membership entry.
    pub(crate) log_index: u64,
    /// Every member: id, address, and whether it votes.
    pub(crate) members: Vec<(NodeId, Node, bool)>,
}

impl MembershipChange {
    fn from_response(log_index: u64, membership: Option<&Membership<NodeId, Node>>) -> Self {
        let members = membership.map_or_else(Vec::new, |membership| {
            let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
            membership.nodes().map(|(id, node)| (*id, node.clone(), voters.contains(id))).collect()
        });
        MembershipChange { log_index, members }
    }
}

/// Admin writes, from any node.
#[derive(Debug, Clone)]
pub(crate) struct Control {
    cluster: Cluster,
    deadline: Duration,
}

impl Control {
    /// Admin writes of node `cluster`, waiting at most `deadline` for a leader and a policy commit.
    pub(crate) fn new(cluster: Cluster, deadline: Duration) -> Self {
        Control { cluster, deadline }
    }

    /// Replaces the policy set with `toml`, if the version in force is `expected_version` (0: any).
    ///
    /// # Errors
    ///
    /// [`AdminError::Policy`] if the set is invalid or the version differs; [`AdminError::Cluster`] if no leader
    /// committed it in time.
    pub(crate) async fn set_policies(&self, toml: String, expected_version: u64) -> Result<u64, AdminError> {
        PolicySet::from_toml(&toml).map_err(PolicyError::Invalid)?;
        match self.route().await? {
            Route::Local => self.set_policies_here(toml, expected_version).await,
            Route::Remote(peer) => {
                peer.call(&PeerCall::SetPolicies { toml, expected_version }).await.map_err(cluster)?
            }
        }
    }

    /// Replaces the policy set here, as the leader.
    ///
    /// # Errors
    ///
    /// As [`Control::set_policies`]; [`CheckError::NotLeader`] if this node does not lead.
    pub(crate) async fn set_policies_here(&self, toml: String, expected_version: u64) -> Result<u64, AdminError> {
        let write = self.cluster.raft().client_write(LogEntry::SetPolicies { toml, expected_version });
        let written = tokio::time::timeout(self.deadline, write)
            .await
            .map_err(|_| CheckError::NotCommitted(self.deadline))?
            .map_err(raft_error)?;
        match written.data {
            EntryResponse::Policies(result) => Ok(result?),
            other => Err(CheckError::Internal(format!("a policy change was answered with {other:?}")).into()),
        }
    }

    /// Adds node `id` at `node` as a learner and waits until it has caught up.
    ///
    /// # Errors
    ///
    /// [`AdminError::Timeout`] if it did not catch up in time; [`AdminError::Raft`] if Raft refused.
    pub(crate) async fn add_learner(&self, id: NodeId, node: Node) -> Result<MembershipChange, AdminError> {
        match self.route().await? {
            Route::Local => self.add_learner_here(id, node).await,
            Route::Remote(peer) => peer.call(&PeerCall::AddLearner { id, node }).await.map_err(cluster)?,
        }
    }

    /// Adds a learner here, as the leader.
    ///
    /// # Errors
    ///
    /// As [`Control::add_learner`].
    pub(crate) async fn add_learner_here(&self, id: NodeId, node: Node) -> Result<MembershipChange, AdminError> {
        let added = tokio::time::timeout(MEMBERSHIP_DEADLINE, self.cluster.raft().add_learner(id, node, true))
            .await
            .map_err(|_| AdminError::Timeout { what: "learner's catch-up".to_owned(), after: MEMBERSHIP_DEADLINE })?
            .map_err(raft_error)?;
        Ok(MembershipChange::from_response(added.log_id.index, added.membership.as_ref()))
    }

    /// Makes `voters` the voting members and waits until the change is committed.
    ///
    /// # Errors
    ///
    /// [`AdminError::Invalid`] for an empty set; [`AdminError::Timeout`] or [`AdminError::Raft`] otherwise.
    pub(crate) async fn change_membership(&self, voters: BTreeSet<NodeId>) -> Result<MembershipChange, AdminError> {
        if voters.is_empty() {
            return Err(AdminError::Invalid("voters must name at least one node".to_owned()));
        }
        match self.route().await? {
            Route::Local => self.change_membership_here(voters).await,
            Route::Remote(peer) => peer.call(&PeerCall::ChangeMembership { voters }).await.map_err(cluster)?,
        }
    }

    /// Changes the voters here, as the leader.
    ///
    /// # Errors
    ///
    /// As [`Control::change_membership`].
    pub(crate) async fn change_membership_here(
        &self,
        voters: BTreeSet<NodeId>,
    ) -> Result<MembershipChange, AdminError> {
        let changed = tokio::time::timeout(MEMBERSHIP_DEADLINE, self.cluster.raft().change_membership(voters, false))
            .await
            .map_err(|_| AdminError::Timeout { what: "membership change".to_owned(), after: MEMBERSHIP_DEADLINE })?
            .map_err(raft_error)?;
        Ok(MembershipChange::from_response(changed.log_id.index, changed.membership.as_ref()))
    }

    async fn route(&self) -> Result<Route, AdminError> {
        Ok(self.cluster.route(Instant::now() + self.deadline).await?)
    }
}

fn cluster(error: crate::cluster::PeerError) -> AdminError {
    AdminError::Cluster(error.into())
}

/// A write refused by Raft: "not the leader" is the cluster's state, anything else Raft's answer.
fn raft_error(error: RaftError<NodeId, ClientWriteError<NodeId, Node>>) -> AdminError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            AdminError::Cluster(CheckError::NotLeader { leader: forward.leader_id })
        }
        other => AdminError::Raft(other),
    }
}
