//! Outbound Raft RPCs over tonic: openraft's requests, bincode-encoded, to each peer's `quorate.v1.Raft` service.
//!
//! Two pitfalls from stack-notes §5 are handled here. A silently dead HTTP/2 connection (a partition that dropped
//! packets without FIN/RST) is never repaired by tonic, so the channel is replaced after any timeout or transport
//! error. And the AppendEntries deadline is openraft's `hard_ttl` (the heartbeat interval): the node config sizes
//! the heartbeat for its largest batches.

use std::error::Error;
use std::time::Duration;

use openraft::error::{NetworkError, RemoteError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use quorate_proto::v1::RaftRequest;
use quorate_proto::v1::raft_client::RaftClient;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, Endpoint};

use super::typ::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotError, InstallSnapshotRequest, InstallSnapshotResponse,
    RaftError, RpcError, VoteRequest, VoteResponse,
};
use super::{Node, NodeId, TypeConfig, codec};
use crate::transport::Transport;

/// How long a connection attempt to a peer may take before the RPC counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Builds a lazy tonic channel to `addr` (`host:port`) over `transport`: nothing is dialled until the first call.
///
/// # Errors
///
/// If `addr` is not a valid authority.
pub fn lazy_channel(transport: Transport, addr: &str) -> Result<Channel, tonic::transport::Error> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5));
    Ok(transport.channel(endpoint))
}

/// Creates one [`PeerConnection`] per (peer, stream) openraft asks for.
#[derive(Debug, Clone, Default)]
pub struct NetworkFactory {
    /// This node's id, for timeout errors.
    pub id: NodeId,
    /// The network peers are reached over.
    pub transport: Transport,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerConnection {
        PeerConnection { id: self.id, target, addr: node.addr.clone(), client: None, transport: self.transport }
    }
}

/// A connection to one peer, re-dialled after any failure.
#[derive(Debug)]
pub struct PeerConnection {
    id: NodeId,
    target: NodeId,
    addr: String,
    client: Option<RaftClient<Channel>>,
    transport: Transport,
}

impl PeerConnection {
    fn client(&mut self) -> Result<RaftClient<Channel>, tonic::transport::Error> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let client = RaftClient::new(lazy_channel(self.transport, &self.addr)?);
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
                return Err(RpcError::Timeout(Timeout { action, id: self.id, target: self.target, timeout: ttl }));
            }
            Ok(Err(status)) => {
                // Replace the channel: a connection that failed once may be dead for good (stack-notes §5).
                self.client = None;
                return Err(match status.code() {
                    tonic::Code::Unavailable => RpcError::Unreachable(Unreachable::new(&status)),
                    tonic::Code::DeadlineExceeded => {
                        RpcError::Timeout(Timeout { action, id: self.id, target: self.target, timeout: ttl })
                    }
                    _ => RpcError::Network(NetworkError::new(&status)),
                });
            }
            Ok(Ok(reply)) => reply.into_inner(),
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
