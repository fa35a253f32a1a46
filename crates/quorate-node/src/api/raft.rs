//! Inbound Raft RPCs: decodes openraft's requests, hands them to the local Raft, encodes the result.
//!
//! A malformed payload from a peer is an `INVALID_ARGUMENT` status, never a panic (design.md invariant 6).

use quorate_proto::v1::raft_server;
use quorate_proto::v1::{RaftReply, RaftRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use crate::raft::{Raft, codec};

/// The `quorate.v1.Raft` service of one node.
#[derive(Clone)]
pub struct RaftService {
    raft: Raft,
}

impl std::fmt::Debug for RaftService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftService").finish_non_exhaustive()
    }
}

impl RaftService {
    /// Serves Raft RPCs for `raft`.
    pub fn new(raft: Raft) -> Self {
        RaftService { raft }
    }
}

fn decode<T: DeserializeOwned>(request: Request<RaftRequest>) -> Result<T, Status> {
    codec::decode(&request.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("malformed raft payload: {e}")))
}

fn reply<T: Serialize, E: Serialize>(result: Result<T, E>) -> Result<Response<RaftReply>, Status> {
    let encoded = match &result {
        Ok(ok) => codec::encode(ok).map(|ok| RaftReply { ok, err: Vec::new() }),
        Err(err) => codec::encode(err).map(|err| RaftReply { ok: Vec::new(), err }),
    };
    encoded.map(Response::new).map_err(|e| Status::internal(format!("encoding raft reply: {e}")))
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
}
