//! `quorate.v1.Admin`: status, membership changes and the replicated policy set.
//!
//! Writes (membership, policies) run on the leader; a follower forwards them once, like checks.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ServerState;
use quorate_core::policy::PolicySet;
use quorate_proto::v1::admin_client::AdminClient;
use quorate_proto::v1::admin_server::Admin;
use quorate_proto::v1::{
    AddLearnerRequest, ChangeMembershipRequest, GetPoliciesRequest, LoadSignal, Member, MembershipResponse,
    PoliciesResponse, SetPoliciesRequest, StateDigestRequest, StateDigestResponse, StatusRequest, StatusResponse,
};
use tonic::{Request, Response, Status};

use super::router::{Route, Router, forwarded, is_forwarded};
use crate::command::{Request as RaftRequest, Response as RaftResponse};
use crate::raft::Node;

/// Membership changes wait for a learner to catch up, so they get longer than a check.
const MEMBERSHIP_DEADLINE: Duration = Duration::from_secs(30);

/// The admin API of one node.
#[derive(Debug, Clone)]
pub struct AdminService {
    router: Router,
}

impl AdminService {
    /// Serves admin calls through `router`.
    pub fn new(router: Router) -> Self {
        AdminService { router }
    }

    fn members(&self) -> Vec<Member> {
        let metrics = self.router.raft().metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| Member { id: *id, addr: node.addr.clone(), voter: voters.contains(id) })
            .collect()
    }

    /// Waits for the leader; `Ok(None)` means this node leads, `Ok(Some(client))` a client to forward to.
    async fn leader(&self, request_forwarded: bool) -> Result<Option<AdminClient<tonic::transport::Channel>>, Status> {
        let route = tokio::time::timeout(self.router.deadline(), self.router.route())
            .await
            .map_err(|_| super::status::no_leader(self.router.deadline()))?;
        match route {
            Route::Local => Ok(None),
            Route::Remote { .. } if request_forwarded => Err(Status::unavailable("this node is not the leader; retry")),
            Route::Remote { channel, .. } => Ok(Some(AdminClient::new(channel))),
        }
    }

    fn membership_response(&self, log_index: u64) -> MembershipResponse {
        MembershipResponse { members: self.members(), log_index }
    }
}

/// FNV-1a, 64 bits: a stable, dependency-free digest (not a security hash).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn fraction(ppm: u32) -> f64 {
    f64::from(ppm) / f64::from(quorate_core::adaptive::PPM)
}

fn raft_error(e: impl std::fmt::Display) -> Status {
    Status::failed_precondition(e.to_string())
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(&self, _request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let (policy_version, tracked_keys, cluster_load, multiplier, drivers) = {
            let replica = self.router.state_machine().replica();
            let drivers = replica
                .signals
                .drivers(replica.now)
                .iter()
                .map(|d| LoadSignal { name: d.name.to_owned(), value: fraction(d.value_ppm) })
                .collect::<Vec<_>>();
            (
                replica.policies.as_ref().map_or(0, |p| p.version()),
                replica.table.len() as u64,
                fraction(replica.cluster_load()),
                fraction(replica.multiplier().ppm()),
                drivers,
            )
        };
        let local = self.router.load().local();
        let metrics = self.router.raft().metrics().borrow().clone();
        let role = match metrics.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let applied = metrics.last_applied.map_or(0, |id| id.index);
        let addr = metrics.membership_config.membership().get_node(&metrics.id).map(|n| n.addr.clone());
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
        }))
    }

    async fn add_learner(&self, request: Request<AddLearnerRequest>) -> Result<Response<MembershipResponse>, Status> {
        let was_forwarded = is_forwarded(&request);
        let wire = request.into_inner();
        if wire.node_id == 0 || wire.addr.trim().is_empty() {
            return Err(Status::invalid_argument("node_id must be positive and addr must be host:port"));
        }
        if let Some(mut leader) = self.leader(was_forwarded).await? {
            return leader.add_learner(forwarded(wire)).await;
        }
        let added = tokio::time::timeout(
            MEMBERSHIP_DEADLINE,
            self.router.raft().add_learner(wire.node_id, Node { addr: wire.addr }, true),
        )
        .await
        .map_err(|_| Status::deadline_exceeded("the learner did not catch up in time"))?
        .map_err(raft_error)?;
        Ok(Response::new(self.membership_response(added.log_id.index)))
    }

    async fn change_membership(
        &self,
        request: Request<ChangeMembershipRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let was_forwarded = is_forwarded(&request);
        let wire = request.into_inner();
        let voters: BTreeSet<u64> = wire.voters.iter().copied().collect();
        if voters.is_empty() {
            return Err(Status::invalid_argument("voters must name at least one node"));
        }
        if let Some(mut leader) = self.leader(was_forwarded).await? {
            return leader.change_membership(forwarded(wire)).await;
        }
        let changed = tokio::time::timeout(MEMBERSHIP_DEADLINE, self.router.raft().change_membership(voters, false))
            .await
            .map_err(|_| Status::deadline_exceeded("the membership change did not commit in time"))?
            .map_err(raft_error)?;
        Ok(Response::new(self.membership_response(changed.log_id.index)))
    }

    async fn state_digest(
        &self,
        _request: Request<StateDigestRequest>,
    ) -> Result<Response<StateDigestResponse>, Status> {
        let replica = self.router.state_machine().replica().clone();
        let bytes = crate::raft::codec::encode(&replica.snapshot()).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(StateDigestResponse {
            applied_index: replica.last_applied.map_or(0, |id| id.index),
            digest: fnv1a(&bytes),
            tracked_keys: replica.table.len() as u64,
        }))
    }

    async fn get_policies(&self, _request: Request<GetPoliciesRequest>) -> Result<Response<PoliciesResponse>, Status> {
        let replica = self.router.state_machine().replica();
        let version = replica.policies.as_ref().map_or(0, |p| p.version());
        Ok(Response::new(PoliciesResponse { version, toml: replica.policy_toml.clone() }))
    }

    async fn set_policies(&self, request: Request<SetPoliciesRequest>) -> Result<Response<PoliciesResponse>, Status> {
        let was_forwarded = is_forwarded(&request);
        let wire = request.into_inner();
        PolicySet::from_toml(&wire.toml).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if let Some(mut leader) = self.leader(was_forwarded).await? {
            return leader.set_policies(forwarded(wire)).await;
        }
        let request = RaftRequest::SetPolicies { toml: wire.toml.clone(), expected_version: wire.expected_version };
        let written = tokio::time::timeout(self.router.deadline(), self.router.raft().client_write(request))
            .await
            .map_err(|_| super::status::no_leader(self.router.deadline()))?
            .map_err(|e| Status::unavailable(e.to_string()))?;
        match written.data {
            RaftResponse::Policies(Ok(version)) => Ok(Response::new(PoliciesResponse { version, toml: wire.toml })),
            RaftResponse::Policies(Err(message)) => Err(Status::failed_precondition(message)),
            other => Err(Status::internal(format!("unexpected response: {other:?}"))),
        }
    }
}
