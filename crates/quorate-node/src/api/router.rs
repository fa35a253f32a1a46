//! [`Router`]: decides whether a request is served here (this node leads) or forwarded to the leader.
//!
//! A forwarded request carries the [`FORWARDED`] metadata key; a node that receives one but is not the leader
//! answers UNAVAILABLE instead of forwarding again, so a stale view of the leader can never make a loop.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quorate_core::TableConfig;
use quorate_core::adaptive::Multiplier;
use quorate_core::policy::{Descriptor, PolicySet};
use quorate_proto::v1::CheckResponse;
use tonic::Status;
use tonic::transport::Channel;

use super::status;
use crate::batcher::{BatchError, Batcher};
use crate::clock::Clock;
use crate::command::{Command, CommandOutcome};
use crate::degraded::DegradedLimiter;
use crate::load::LoadTracker;
use crate::raft::limits::resolve_check;
use crate::raft::network::lazy_channel;
use crate::raft::state_machine::StateMachineStore;
use crate::raft::{NodeId, Raft};
use crate::transport::Transport;

/// Metadata key marking a request forwarded by a follower.
pub(crate) const FORWARDED: &str = "quorate-forwarded";

/// How long to wait between looks for a leader.
const LEADER_POLL: Duration = Duration::from_millis(20);

/// Pause before retrying after the leader moved.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Where the answer to an executed command came from.
#[derive(Debug)]
pub enum Outcome<T> {
    /// This node leads: the outcome of applying the command.
    Local(CommandOutcome),
    /// The leader's answer to the forwarded call.
    Forwarded(T),
}

/// Where a request goes.
#[derive(Debug, Clone)]
pub enum Route {
    /// This node is the leader.
    Local,
    /// Forward to the leader at `addr`.
    Remote {
        /// The leader's address.
        addr: String,
        /// A (cached, lazy) channel to it.
        channel: Channel,
    },
}

/// What a [`Router`] is built from.
pub struct RouterParts {
    /// This node's id.
    pub id: NodeId,
    /// The Raft handle.
    pub raft: Raft,
    /// The leader-side batcher.
    pub batcher: Batcher,
    /// The local state machine.
    pub state_machine: StateMachineStore,
    /// How long a request may wait for a leader and a commit.
    pub deadline: Duration,
    /// Load signals collected on this node.
    pub load: LoadTracker,
    /// The node's clock.
    pub clock: Arc<dyn Clock>,
    /// The network leaders are reached over.
    pub transport: Transport,
    /// How long without a working leader before `local` policies spend this node's share.
    pub local_grace: Duration,
}

impl std::fmt::Debug for RouterParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterParts").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Shared state of a node's API services.
#[derive(Debug, Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

struct Inner {
    id: NodeId,
    raft: Raft,
    batcher: Batcher,
    state_machine: StateMachineStore,
    deadline: Duration,
    channels: Mutex<BTreeMap<String, Channel>>,
    load: LoadTracker,
    clock: Arc<dyn Clock>,
    degraded: DegradedLimiter,
    transport: Transport,
    local_grace: Duration,
    leaderless_since: Mutex<Option<tokio::time::Instant>>,
}

impl Router {
    /// Creates the router of node `id`.
    pub fn new(parts: RouterParts) -> Self {
        let RouterParts { id, raft, batcher, state_machine, deadline, load, clock, transport, local_grace } = parts;
        let channels = Mutex::new(BTreeMap::new());
        let degraded = DegradedLimiter::new(TableConfig::default());
        Router {
            inner: Arc::new(Inner {
                id,
                raft,
                batcher,
                state_machine,
                deadline,
                channels,
                load,
                clock,
                degraded,
                transport,
                local_grace,
                leaderless_since: Mutex::new(None),
            }),
        }
    }

    /// Decides a check without the cluster, by each policy's `on_no_quorum` mode (see [`crate::degraded`]).
    ///
    /// # Errors
    ///
    /// As [`DegradedLimiter::decide`], or UNAVAILABLE if no policy set was ever applied here.
    pub fn decide_degraded(&self, descriptors: &[Descriptor], cost: u64, peek: bool) -> Result<CheckResponse, Status> {
        let policies = self.policies()?;
        let multiplier = self.inner.state_machine.replica().multiplier();
        let voters = self.inner.raft.metrics().borrow().membership_config.membership().voter_ids().count() as u64;
        let now = self.inner.clock.now();
        let local_allowed = self.leaderless_for_grace();
        self.inner.degraded.decide(&policies, multiplier, voters, descriptors, cost, peek, now, local_allowed)
    }

    /// Whether this node has been without a working leader for the whole local grace period (see
    /// [`crate::degraded`]): no leader known, or this node leads but no quorum has acknowledged it lately.
    fn leaderless_for_grace(&self) -> bool {
        let grace = self.inner.local_grace;
        let healthy = {
            let metrics = self.inner.raft.metrics();
            let metrics = metrics.borrow();
            match metrics.current_leader {
                Some(id) if id == self.inner.id => {
                    metrics.millis_since_quorum_ack.is_some_and(|ms| u128::from(ms) * 2 < grace.as_millis())
                }
                Some(_) => true,
                None => false,
            }
        };
        let mut since = self.inner.leaderless_since.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if healthy {
            *since = None;
            return false;
        }
        let started = *since.get_or_insert_with(tokio::time::Instant::now);
        started.elapsed() >= grace
    }

    /// Records that a strict decision went through: the node has a working leader.
    fn note_strict_success(&self) {
        *self.inner.leaderless_since.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }

    /// The load signals collected on this node.
    pub fn load(&self) -> &LoadTracker {
        &self.inner.load
    }

    /// The node's clock (the leader stamps signals with it).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The Raft handle.
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// The leader's batcher (used when this node leads).
    pub fn batcher(&self) -> &Batcher {
        &self.inner.batcher
    }

    /// The local state machine.
    pub fn state_machine(&self) -> &StateMachineStore {
        &self.inner.state_machine
    }

    /// How long a request may wait for a leader and a commit.
    pub fn deadline(&self) -> Duration {
        self.inner.deadline
    }

    /// The policy set this node has applied, or UNAVAILABLE if the cluster has none yet.
    ///
    /// # Errors
    ///
    /// UNAVAILABLE while no policy set is installed.
    pub fn policies(&self) -> Result<Arc<PolicySet>, Status> {
        self.inner.state_machine.replica().policies.clone().ok_or_else(|| {
            Status::unavailable("the cluster has no policy set yet: the first leader installs it shortly after start")
        })
    }

    /// Checks a check command against the local policy set before it costs a log entry; other commands pass.
    ///
    /// # Errors
    ///
    /// INVALID_ARGUMENT saying what is wrong; UNAVAILABLE if there are no policies yet.
    pub fn validate_check(&self, command: &Command) -> Result<(), Status> {
        let Command::Check { descriptors, cost, overrides, .. } = command else { return Ok(()) };
        let policies = self.policies()?;
        resolve_check(&policies, Multiplier::ONE, descriptors, (*cost).max(1), overrides)
            .map(|_| ())
            .map_err(Status::invalid_argument)
    }

    /// Runs `command` on the leader: through the local batcher if this node leads, else by calling `forward` on
    /// the leader's channel. Bounded by the router's deadline.
    ///
    /// A request that was itself forwarded (`is_forwarded`) is never forwarded again: if this node no longer
    /// leads, the caller gets UNAVAILABLE and retries.
    ///
    /// # Errors
    ///
    /// The status of a failed commit or forward ([`status::from_batch`]), or UNAVAILABLE when no leader answered
    /// within the deadline.
    pub async fn execute<T, F, Fut>(
        &self,
        command: &Command,
        is_forwarded: bool,
        forward: F,
    ) -> Result<Outcome<T>, Status>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let deadline = self.deadline();
        let attempt = async {
            loop {
                match self.route().await {
                    Route::Local => match self.batcher().submit(command.clone()).await {
                        Ok(outcome) => {
                            self.note_strict_success();
                            return Ok(Outcome::Local(outcome));
                        }
                        Err(BatchError::NotLeader { .. }) if !is_forwarded => tokio::time::sleep(RETRY_PAUSE).await,
                        Err(error) => return Err(status::from_batch(&error)),
                    },
                    Route::Remote { .. } if is_forwarded => {
                        return Err(Status::unavailable(
                            "this node is not the leader (the leader just changed); retry",
                        ));
                    }
                    Route::Remote { addr, channel } => match forward(channel).await {
                        Ok(answer) => {
                            self.note_strict_success();
                            return Ok(Outcome::Forwarded(answer));
                        }
                        // Found by the crash_and_restart_leader simulation: a leader that dies mid-call surfaces as
                        // UNKNOWN "transport error", which must be retried like UNAVAILABLE, not returned.
                        Err(status) if status::is_connection_failure(&status) => {
                            self.forget(&addr);
                            tokio::time::sleep(RETRY_PAUSE).await;
                        }
                        Err(status) => return Err(status),
                    },
                }
            }
        };
        tokio::time::timeout(deadline, attempt).await.unwrap_or_else(|_| Err(status::no_leader(deadline)))
    }

    /// Checks a refund against the local policy set before it costs a log entry.
    ///
    /// # Errors
    ///
    /// INVALID_ARGUMENT saying what is wrong; UNAVAILABLE if there are no policies yet.
    pub fn validate(&self, descriptors: &[Descriptor], cost: u64) -> Result<(), Status> {
        let policies = self.policies()?;
        crate::raft::replica::resolve(&policies, descriptors, cost).map(|_| ()).map_err(Status::invalid_argument)
    }

    /// Waits until a leader is known and says where to send the request. Callers bound the wait with
    /// [`Router::deadline`].
    pub async fn route(&self) -> Route {
        loop {
            let leader = {
                let metrics = self.inner.raft.metrics();
                let metrics = metrics.borrow();
                metrics.current_leader.map(|id| {
                    let addr = metrics.membership_config.membership().get_node(&id).map(|n| n.addr.clone());
                    (id, addr)
                })
            };
            match leader {
                Some((id, _)) if id == self.inner.id => return Route::Local,
                Some((_, Some(addr))) => {
                    if let Some(channel) = self.channel(&addr) {
                        return Route::Remote { addr, channel };
                    }
                }
                _ => {}
            }
            tokio::time::sleep(LEADER_POLL).await;
        }
    }

    /// Drops the cached channel to `addr` after a failure, so the next request dials afresh.
    pub fn forget(&self, addr: &str) {
        self.channels().remove(addr);
    }

    fn channel(&self, addr: &str) -> Option<Channel> {
        let mut channels = self.channels();
        if let Some(channel) = channels.get(addr) {
            return Some(channel.clone());
        }
        let channel = lazy_channel(self.inner.transport, addr).ok()?;
        channels.insert(addr.to_owned(), channel.clone());
        Some(channel)
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Channel>> {
        self.inner.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").field("id", &self.id).field("deadline", &self.deadline).finish_non_exhaustive()
    }
}

/// Returns true if `request` was forwarded by another node.
pub(crate) fn is_forwarded<T>(request: &tonic::Request<T>) -> bool {
    request.metadata().get(FORWARDED).is_some()
}

/// Wraps `message` as a request marked forwarded.
pub fn forwarded<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    request
}
