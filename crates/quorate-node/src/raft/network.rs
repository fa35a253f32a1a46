//! Outbound Raft RPCs over tonic: openraft's requests, bincode-encoded, to each peer's `quorate.v1.Raft` service.
//!
//! Two pitfalls from stack-notes §5 are handled here. A silently dead HTTP/2 connection (a partition that dropped
//! packets without FIN/RST) is never repaired by tonic, so the channel is replaced after any timeout or transport
//! error. And the AppendEntries deadline is openraft's `hard_ttl` (the heartbeat interval): the node config sizes
//! the heartbeat for its largest batches.

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::{Arc, Mutex};

use openraft::error::{NetworkError, RemoteError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use quorate_proto::v1::RaftRequest;
use quorate_proto::v1::raft_client::RaftClient;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use super::typ::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotError, InstallSnapshotRequest, InstallSnapshotResponse,
    RaftError, RpcError, VoteRequest, VoteResponse,
};
use super::{Node, NodeId, TypeConfig, codec};
use crate::transport::Dialer;

/// Creates one [`PeerConnection`] per (peer, stream) openraft asks for.
#[derive(Debug, Clone, Default)]
pub(crate) struct NetworkFactory {
    id: NodeId,
    dialer: Dialer,
    contact: Contact,
}

impl NetworkFactory {
    /// The network of node `id`, dialling with `dialer`.
    pub(crate) fn new(id: NodeId, dialer: Dialer) -> Self {
        NetworkFactory { id, dialer, contact: Contact::default() }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerConnection {
        PeerConnection {
            id: self.id,
            target,
            addr: node.peer_addr.clone(),
            client: None,
            dialer: self.dialer.clone(),
            contact: self.contact.clone(),
        }
    }
}

/// Whether each peer answered its last RPC, shared by all connections to it, so that a change is logged once.
///
/// openraft logs every failed RPC at ERROR (and the default log filter silences it); what an operator needs is
/// the transitions: a peer not up yet at start (info: normal while a cluster starts), a peer lost (warn), a peer
/// back (info).
#[derive(Debug, Clone, Default)]
struct Contact(Arc<Mutex<BTreeMap<NodeId, bool>>>);

impl Contact {
    fn record(&self, node: NodeId, target: NodeId, addr: &str, reached: Result<(), &dyn std::fmt::Display>) {
        let now = reached.is_ok();
        let before = {
            let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            map.insert(target, now)
        };
        match (before, reached) {
            (None, Err(error)) => tracing::info!(node, peer = target, %addr, %error, "peer not reachable yet"),
            (Some(true), Err(error)) => tracing::warn!(node, peer = target, %addr, %error, "lost contact with peer"),
            (None | Some(false), Ok(())) => tracing::info!(node, peer = target, %addr, "peer reachable"),
            (Some(true), Ok(())) | (Some(false), Err(_)) => {}
        }
    }
}

/// A connection to one peer, re-dialled after any failure.
#[derive(Debug)]
pub(crate) struct PeerConnection {
    id: NodeId,
    target: NodeId,
    addr: String,
    client: Option<RaftClient<Channel>>,
    dialer: Dialer,
    contact: Contact,
}

impl PeerConnection {
    fn client(&mut self) -> Result<RaftClient<Channel>, tonic::transport::Error> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let client = RaftClient::new(self.dialer.channel(&self.addr)?);
        self.client = Some(client.clone());
        Ok(client)
    }

    /// Sends one RPC and decodes its reply, mapping every failure to the error openraft expects.
    async fn call<Req, Resp, E>(
        &mut self,
        action: RPCTypes,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RpcError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: Error + DeserializeOwned,
    {
        let data = codec::encode(request).map_err(|e| RpcError::Network(NetworkError::new(&e)))?;
        let mut client = self.client().map_err(|e| RpcError::Unreachable(Unreachable::new(&e)))?;
        let ttl = option.hard_ttl();
        let mut grpc_request = tonic::Request::new(RaftRequest { data });
        grpc_request.set_timeout(ttl);
        let sent = async move {
            match action {
                RPCTypes::AppendEntries => client.append_entries(grpc_request).await,
                RPCTypes::Vote => client.vote(grpc_request).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(grpc_request).await,
            }
        };
        let reply = match tokio::time::timeout(ttl, sent).await {
            Err(_) => {
                self.client = None;
                let timeout = Timeout { action, id: self.id, target: self.target, timeout: ttl };
                self.contact.record(self.id, self.target, &self.addr, Err(&timeout));
                return Err(RpcError::Timeout(timeout));
            }
            Ok(Err(status)) => {
                // Replace the channel: a connection that failed once may be dead for good (stack-notes §5).
                self.client = None;
                self.contact.record(self.id, self.target, &self.addr, Err(&status.message()));
                return Err(match status.code() {
                    tonic::Code::Unavailable => RpcError::Unreachable(Unreachable::new(&status)),
                    tonic::Code::DeadlineExceeded => {
                        RpcError::Timeout(Timeout { action, id: self.id, target: self.target, timeout: ttl })
                    }
                    _ => RpcError::Network(NetworkError::new(&status)),
                });
            }
            Ok(Ok(reply)) => {
                self.contact.record(self.id, self.target, &self.addr, Ok(()));
                reply.into_inner()
            }
        };
        if !reply.err.is_empty() {
            let remote: RaftError<E> =
                codec::decode(&reply.err).map_err(|e| RpcError::Network(NetworkError::new(&e)))?;
            return Err(RpcError::RemoteError(RemoteError::new(self.target, remote)));
        }
        codec::decode(&reply.ok).map_err(|e| RpcError::Network(NetworkError::new(&e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse, RpcError> {
        self.call(RPCTypes::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse, RpcError<InstallSnapshotError>> {
        self.call(RPCTypes::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(&mut self, rpc: VoteRequest, option: RPCOption) -> Result<VoteResponse, RpcError> {
        self.call(RPCTypes::Vote, &rpc, &option).await
    }
}
