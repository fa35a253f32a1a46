//! `quorate.v1.Admin`: status, membership changes and the replicated policy set, as thin adapters.
//!
//! Reads answer from this node's own view; writes run on the leader through [`Control`], which forwards them
//! from a follower in one peer call, like checks.

use std::collections::BTreeSet;

use openraft::ServerState;
use quorate_proto::v1::admin_server::Admin;
use quorate_proto::v1::{
    AddLearnerRequest, CampaignRequest, CampaignResponse, ChangeMembershipRequest, GetPoliciesRequest, LoadSignal,
    Member, MembershipResponse, PoliciesResponse, SetPoliciesRequest, SnapshotRequest, SnapshotResponse,
    StateDigestRequest, StateDigestResponse, StatusRequest, StatusResponse,
};
use tonic::{Request, Response, Status};

use super::status;
use crate::check::Pipeline;
use crate::config::host_port;
use crate::control::{Control, MembershipChange};
use crate::error::AdminError;
use crate::load::LoadTracker;
use crate::raft::state_machine::StateMachineStore;
use crate::raft::{Node, NodeId, Raft, codec};

/// The admin API of one node.
#[derive(Clone)]
pub(crate) struct AdminService {
    raft: Raft,
    state_machine: StateMachineStore,
    load: LoadTracker,
    control: Control,
    pipeline: Pipeline,
    /// A leader that has heard from no quorum for this long reports `has_quorum = false`.
    quorum_within: std::time::Duration,
}

impl std::fmt::Debug for AdminService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminService").finish_non_exhaustive()
    }
}

impl AdminService {
    /// Serves admin calls for the node of `raft`, `state_machine` and `pipeline` (for its leases), writes
    /// through `control`.
    pub(crate) fn new(
        raft: Raft,
        state_machine: StateMachineStore,
        load: LoadTracker,
        control: Control,
        pipeline: Pipeline,
        quorum_within: std::time::Duration,
    ) -> Self {
        AdminService { raft, state_machine, load, control, pipeline, quorum_within }
    }

    fn members(&self) -> Vec<Member> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        membership.nodes().map(|(id, node)| member(*id, node, voters.contains(id))).collect()
    }
}

/// The answer to a membership change, as the leader committed it.
fn membership_response(change: MembershipChange) -> MembershipResponse {
    let members = change.members.into_iter().map(|(id, node, voter)| member(id, &node, voter)).collect();
    MembershipResponse { members, log_index: change.log_index }
}

fn member(id: NodeId, node: &Node, voter: bool) -> Member {
    Member { id, addr: node.public_addr.clone(), voter, peer_addr: node.peer_addr.clone() }
}

/// FNV-1a, 64 bits: a stable, dependency-free digest (not a security hash).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn fraction(ppm: u32) -> f64 {
    f64::from(ppm) / f64::from(quorate_core::adaptive::PPM)
}

/// How long Campaign waits for its outcome.
const ADMIN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long Snapshot waits for the snapshot: built at idle priority, one of a million keys takes 5 s on an idle
/// node and 15 s on a busy one; below the CLI's default timeout of 30 s.
const SNAPSHOT_WAIT: std::time::Duration = std::time::Duration::from_secs(25);

/// Elections Campaign starts before it answers with another leader.
const CAMPAIGN_ATTEMPTS: usize = 5;

fn admin_status(error: AdminError) -> Status {
    status::from_admin(&error)
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(&self, _request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let holder = self.pipeline.leases();
        let (policy_version, tracked_keys, cluster_load, multiplier, drivers, lease_grants, leases_outstanding) = {
            let replica = self.state_machine.replica();
            let drivers = replica
                .signals
                .drivers(replica.now())
                .iter()
                .map(|d| LoadSignal { name: d.name.to_owned(), value: fraction(d.value_ppm) })
                .collect::<Vec<_>>();
            (
                replica.policies.as_ref().map_or(0, |p| p.version()),
                replica.table.len() as u64,
                fraction(replica.cluster_load()),
                fraction(replica.multiplier().ppm()),
                drivers,
                replica.leases.grants_to(holder.id()),
                replica.leases.len() as u64,
            )
        };
        let local = self.load.local();
        let metrics = self.raft.metrics().borrow().clone();
        let role = match metrics.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let applied = metrics.last_applied.map_or(0, |id| id.index);
        let has_quorum = super::health::working_leader(&metrics, self.quorum_within);
        let raft_error = metrics.running_state.as_ref().err().map(ToString::to_string).unwrap_or_default();
        let addr = metrics.membership_config.membership().get_node(&metrics.id).map(|n| n.public_addr.clone());
        Ok(Response::new(StatusResponse {
            node_id: metrics.id,
            role: role.to_owned(),
            leader_id: metrics.current_leader.unwrap_or(0),
            term: metrics.current_term,
            commit_index: applied,
            applied_index: applied,
            members: self.members(),
            policy_version,
            tracked_keys,
            addr: addr.unwrap_or_default(),
            snapshot_index: metrics.snapshot.map_or(0, |id| id.index),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            cpu: fraction(local.cpu_ppm),
            memory: fraction(local.memory_ppm),
            cluster_load,
            multiplier,
            drivers,
            leases_held: holder.held() as u64,
            leased_decisions: holder.leased_decisions(),
            lease_grants,
            leases_outstanding,
            lease_grants_per_sec: holder.grants_per_second(),
            has_quorum,
            raft_error,
        }))
    }

    async fn add_learner(&self, request: Request<AddLearnerRequest>) -> Result<Response<MembershipResponse>, Status> {
        let wire = request.into_inner();
        if wire.node_id == 0 {
            return Err(admin_status(AdminError::Invalid("node_id must be positive".to_owned())));
        }
        for (field, addr) in [("addr", &wire.addr), ("peer_addr", &wire.peer_addr)] {
            host_port(field, addr).map_err(|e| admin_status(AdminError::Invalid(e.to_string())))?;
        }
        let node = Node { peer_addr: wire.peer_addr, public_addr: wire.addr };
        let change = self.control.add_learner(wire.node_id, node).await.map_err(admin_status)?;
        Ok(Response::new(membership_response(change)))
    }

    async fn change_membership(
        &self,
        request: Request<ChangeMembershipRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let voters: BTreeSet<u64> = request.into_inner().voters.into_iter().collect();
        let change = self.control.change_membership(voters).await.map_err(admin_status)?;
        Ok(Response::new(membership_response(change)))
    }

    async fn state_digest(
        &self,
        _request: Request<StateDigestRequest>,
    ) -> Result<Response<StateDigestResponse>, Status> {
        let replica = self.state_machine.replica().clone();
        let bytes = codec::encode(&replica.snapshot()).map_err(|e| status::encoding_failed(&e))?;
        Ok(Response::new(StateDigestResponse {
            applied_index: replica.last_applied.map_or(0, |id| id.index),
            digest: fnv1a(&bytes),
            tracked_keys: replica.table.len() as u64,
        }))
    }

    async fn snapshot(&self, _request: Request<SnapshotRequest>) -> Result<Response<SnapshotResponse>, Status> {
        let applied = self.raft.metrics().borrow().last_applied.map_or(0, |id| id.index);
        self.raft.trigger().snapshot().await.map_err(|e| Status::unavailable(format!("raft stopped: {e}")))?;
        let mut metrics = self.raft.metrics();
        let built = metrics.wait_for(|m| m.snapshot.is_some_and(|id| id.index >= applied));
        match tokio::time::timeout(SNAPSHOT_WAIT, built).await {
            Ok(Ok(m)) => Ok(Response::new(SnapshotResponse { snapshot_index: m.snapshot.map_or(0, |id| id.index) })),
            Ok(Err(_)) => Err(Status::unavailable("raft stopped while the snapshot was being built")),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "the snapshot up to index {applied} was not built within {SNAPSHOT_WAIT:?}; it may still finish"
            ))),
        }
    }

    async fn campaign(&self, _request: Request<CampaignRequest>) -> Result<Response<CampaignResponse>, Status> {
        // An election this node starts can still go to another (a vote crossing a heartbeat): it tries a few times
        // within the wait, and answers with whoever leads in the end.
        let deadline = tokio::time::Instant::now() + ADMIN_WAIT;
        let me = self.raft.metrics().borrow().id;
        for _ in 0..CAMPAIGN_ATTEMPTS {
            let term = self.raft.metrics().borrow().current_term;
            self.raft.trigger().elect().await.map_err(|e| Status::unavailable(format!("raft stopped: {e}")))?;
            let mut metrics = self.raft.metrics();
            let settled = metrics.wait_for(|m| m.current_term > term && m.current_leader.is_some());
            match tokio::time::timeout_at(deadline, settled).await {
                Ok(Ok(m)) if m.current_leader == Some(me) => {
                    return Ok(Response::new(CampaignResponse { leader_id: me, term: m.current_term }));
                }
                Ok(Ok(_)) => continue,
                Ok(Err(_)) => return Err(Status::unavailable("raft stopped during the election")),
                Err(_) => {
                    return Err(Status::deadline_exceeded(format!("no leader was elected within {ADMIN_WAIT:?}")));
                }
            }
        }
        let m = self.raft.metrics().borrow().clone();
        Ok(Response::new(CampaignResponse { leader_id: m.current_leader.unwrap_or(0), term: m.current_term }))
    }

    async fn get_policies(&self, _request: Request<GetPoliciesRequest>) -> Result<Response<PoliciesResponse>, Status> {
        let replica = self.state_machine.replica();
        let version = replica.policies.as_ref().map_or(0, |p| p.version());
        Ok(Response::new(PoliciesResponse { version, toml: replica.policy_toml.clone() }))
    }

    async fn set_policies(&self, request: Request<SetPoliciesRequest>) -> Result<Response<PoliciesResponse>, Status> {
        let wire = request.into_inner();
        let version =
            self.control.set_policies(wire.toml.clone(), wire.expected_version).await.map_err(admin_status)?;
        Ok(Response::new(PoliciesResponse { version, toml: wire.toml }))
    }
}
