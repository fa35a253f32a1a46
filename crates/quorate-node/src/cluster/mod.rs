//! The cluster as one node sees it: who leads, how to reach them, and the calls a node makes on the leader.
//!
//! - [`Cluster`]: the leader this node knows of (from its Raft metrics), waiting for one within a deadline, the
//!   voters, and a cache of one lazy channel per peer.
//! - [`Peer`] ([`peer`]): the leader as a follower reaches it, over the node-to-node service's `Forward` call:
//!   many checks in one call, load reports, admin writes. A leader answers `NotLeader` rather than forwarding
//!   again, so a stale view of the leader can never make a loop.

mod forwarder;
mod peer;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use openraft::ServerState;
use tokio::time::Instant;
use tonic::transport::Channel;

pub(crate) use forwarder::ForwardLimits;
pub(crate) use peer::{Peer, PeerCall, PeerError};

use forwarder::Forwarder;

use crate::error::CheckError;
use crate::raft::{NodeId, Raft};
use crate::transport::Dialer;

/// How long to wait between looks for a leader.
const LEADER_POLL: Duration = Duration::from_millis(20);

/// Where a request for the leader goes.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    /// This node is the leader.
    Local,
    /// Another node leads.
    Remote(Peer),
}

/// One node's view of the cluster; cheap to clone.
#[derive(Clone)]
pub(crate) struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    id: NodeId,
    raft: Raft,
    dialer: Dialer,
    limits: ForwardLimits,
    channels: Mutex<BTreeMap<String, Channel>>,
    forwarders: Mutex<BTreeMap<String, Forwarder>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("id", &self.inner.id).finish_non_exhaustive()
    }
}

impl Cluster {
    /// The cluster as node `id` sees it through `raft`, reaching peers with `dialer` and forwarding commands
    /// to the leader within `limits`.
    pub(crate) fn new(id: NodeId, raft: Raft, dialer: Dialer, limits: ForwardLimits) -> Self {
        let inner = Inner {
            id,
            raft,
            dialer,
            limits,
            channels: Mutex::new(BTreeMap::new()),
            forwarders: Mutex::new(BTreeMap::new()),
        };
        Cluster { inner: Arc::new(inner) }
    }

    /// This node's id.
    pub(crate) fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The Raft handle.
    pub(crate) fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// Where the leader is right now, if this node knows one it can reach.
    pub(crate) fn route_now(&self) -> Option<Route> {
        let (leader, addr) = {
            let metrics = self.inner.raft.metrics();
            let metrics = metrics.borrow();
            let leader = metrics.current_leader?;
            let addr = metrics.membership_config.membership().get_node(&leader).map(|n| n.peer_addr.clone());
            (leader, addr)
        };
        if leader == self.inner.id {
            return Some(Route::Local);
        }
        let addr = addr?;
        let channel = self.channel(&addr)?;
        Some(Route::Remote(Peer::new(self.clone(), addr, channel)))
    }

    /// Waits until a leader is known, at most until `deadline`.
    ///
    /// # Errors
    ///
    /// [`CheckError::NoLeader`] if none is known by then.
    pub(crate) async fn route(&self, deadline: Instant) -> Result<Route, CheckError> {
        let started = Instant::now();
        loop {
            if let Some(route) = self.route_now() {
                return Ok(route);
            }
            if Instant::now() + LEADER_POLL > deadline {
                return Err(CheckError::NoLeader { waited: started.elapsed() });
            }
            tokio::time::sleep(LEADER_POLL).await;
        }
    }

    /// Whether this node is the leader.
    pub(crate) fn is_leader(&self) -> bool {
        self.inner.raft.metrics().borrow().current_leader == Some(self.inner.id)
    }

    /// The number of voters in the membership this node knows.
    pub(crate) fn voters(&self) -> u64 {
        self.inner.raft.metrics().borrow().membership_config.membership().voter_ids().count() as u64
    }

    /// Whether this node has a working leader: it follows a known leader, or it leads and a quorum acknowledged
    /// it within `within`.
    pub(crate) fn has_working_leader(&self, within: Duration) -> bool {
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow();
        match metrics.current_leader {
            Some(id) if id == self.inner.id => {
                metrics.state == ServerState::Leader
                    && metrics.millis_since_quorum_ack.is_some_and(|ms| u128::from(ms) < within.as_millis())
            }
            Some(_) => true,
            None => false,
        }
    }

    /// Drops the cached channel to `addr` after a failure, so the next call dials afresh (a connection that
    /// died silently is never revived by tonic: stack-notes §5).
    pub(crate) fn forget(&self, addr: &str) {
        self.channels().remove(addr);
    }

    /// The forwarding queue to the leader at `addr`, started on first use.
    pub(crate) fn forwarder(&self, addr: &str) -> Forwarder {
        let mut forwarders = self.inner.forwarders.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        forwarders
            .entry(addr.to_owned())
            .or_insert_with(|| Forwarder::spawn(self.clone(), addr.to_owned(), self.inner.limits))
            .clone()
    }

    pub(crate) fn channel(&self, addr: &str) -> Option<Channel> {
        let mut channels = self.channels();
        if let Some(channel) = channels.get(addr) {
            return Some(channel.clone());
        }
        let channel = self.inner.dialer.channel(addr).ok()?;
        channels.insert(addr.to_owned(), channel.clone());
        Some(channel)
    }

    fn channels(&self) -> MutexGuard<'_, BTreeMap<String, Channel>> {
        self.inner.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
