//! The node-to-node service (`quorate.v1.Raft`): openraft's RPCs, and `Forward`, the calls a follower makes on
//! the leader for its own clients ([`PeerCall`]).
//!
//! A malformed payload from a peer is an `INVALID_ARGUMENT` status, never a panic (design.md invariant 6).

use quorate_proto::v1::raft_server;
use quorate_proto::v1::{RaftReply, RaftRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use super::status;
use crate::check::Pipeline;
use crate::cluster::PeerCall;
use crate::control::Control;
use crate::load::LoadReporter;
use crate::raft::{Raft, codec};

/// The `quorate.v1.Raft` service of one node.
#[derive(Clone)]
pub(crate) struct RaftService {
    raft: Raft,
    pipeline: Pipeline,
    load: LoadReporter,
    control: Control,
}

impl std::fmt::Debug for RaftService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftService").finish_non_exhaustive()
    }
}

impl RaftService {
    /// Serves Raft RPCs for `raft` and peer calls through the pipeline, load reporter and admin control.
    pub(crate) fn new(raft: Raft, pipeline: Pipeline, load: LoadReporter, control: Control) -> Self {
        RaftService { raft, pipeline, load, control }
    }

    /// Runs one peer call here, as the leader (or answers that this node is not).
    async fn forward(&self, call: PeerCall) -> Result<RaftReply, Status> {
        match call {
            PeerCall::Commit(commands) => ok(&self.pipeline.commit_forwarded(commands).await),
            PeerCall::ReportLoad { name, value_ppm, ttl } => ok(&self.load.report_here(&name, value_ppm, ttl)),
            PeerCall::SetPolicies { toml, expected_version } => {
                ok(&self.control.set_policies_here(toml, expected_version).await)
            }
            PeerCall::AddLearner { id, node } => ok(&self.control.add_learner_here(id, node).await),
            PeerCall::ChangeMembership { voters } => ok(&self.control.change_membership_here(voters).await),
        }
    }
}

fn decode<T: DeserializeOwned>(request: Request<RaftRequest>) -> Result<T, Status> {
    codec::decode(&request.into_inner().data).map_err(|e| status::malformed_peer_payload(&e))
}

/// Encodes an openraft result: its `Ok` or its `Err` side.
fn reply<T: Serialize, E: Serialize>(result: Result<T, E>) -> Result<Response<RaftReply>, Status> {
    let encoded = match &result {
        Ok(ok) => codec::encode(ok).map(|ok| RaftReply { ok, err: Vec::new() }),
        Err(err) => codec::encode(err).map(|err| RaftReply { ok: Vec::new(), err }),
    };
    encoded.map(Response::new).map_err(|e| status::encoding_failed(&e))
}

/// Encodes a peer call's answer, whatever it is, as the reply's `ok`.
fn ok<T: Serialize>(answer: &T) -> Result<RaftReply, Status> {
    codec::encode(answer).map(|ok| RaftReply { ok, err: Vec::new() }).map_err(|e| status::encoding_failed(&e))
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        reply(self.raft.append_entries(decode(request)?).await)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        reply(self.raft.vote(decode(request)?).await)
    }

    async fn install_snapshot(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        reply(self.raft.install_snapshot(decode(request)?).await)
    }

    async fn forward(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let call: PeerCall = decode(request)?;
        self.forward(call).await.map(Response::new)
    }
}
