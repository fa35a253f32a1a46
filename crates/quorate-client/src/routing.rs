//! Where the next call goes: one lazy channel per endpoint, the cached leader, and nodes recently seen failing.
//!
//! Checks go to the leader when it is known (a follower would forward them: one more hop), else round-robin over
//! the configured endpoints and the members learnt from `Status`, skipping any that failed within
//! [`DOWN_COOLDOWN`]. The leader is learnt from
//! `Admin.Status` (its `leader_id` and that member's address), forgotten on any failure of a call sent to it, and
//! re-checked in the background once it is older than the leader refresh. A channel is dropped after a timeout or
//! a transport error, because tonic never revives an HTTP/2 connection that died silently; otherwise it is reused
//! by every call. No lock is held across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use quorate_proto::v1::admin_client::AdminClient;
use quorate_proto::v1::{Member, StatusRequest};
use tokio::time::Instant;
use tonic::service::interceptor::InterceptedService;

use crate::config::{Connector, Settings};
use crate::endpoint;
use crate::security::{Credentials, NodeChannel};

/// How long a node that failed is passed over while others are available.
pub(crate) const DOWN_COOLDOWN: Duration = Duration::from_secs(1);

/// The least time after a discovery that found no leader before the next one (an election in progress must not
/// turn every check into an extra `Status` round).
const DISCOVERY_GAP: Duration = Duration::from_millis(100);

/// Channels, leader and failure marks shared by every clone of a client.
#[derive(Debug)]
pub(crate) struct Routing {
    urls: Vec<String>,
    connect_timeout: Duration,
    call_timeout: Duration,
    discover_leader: bool,
    leader_refresh: Duration,
    connector: Option<Connector>,
    credentials: Credentials,
    next: AtomicUsize,
    state: Mutex<State>,
    /// Held while a discovery runs, so that concurrent calls do not all ask for the leader at once.
    discovering: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    channels: HashMap<String, NodeChannel>,
    down_until: HashMap<String, Instant>,
    leader: Option<Leader>,
    last_discovery: Option<Instant>,
    /// Members' addresses learnt from `Status` that were not configured: fallbacks if the configured ones die.
    learnt: Vec<String>,
}

#[derive(Debug, Clone)]
struct Leader {
    url: String,
    learnt: Instant,
}

impl Routing {
    pub(crate) fn new(settings: &Settings) -> Routing {
        Routing {
            urls: settings.urls.clone(),
            connect_timeout: settings.connect_timeout,
            call_timeout: settings.call_timeout,
            discover_leader: settings.discover_leader,
            leader_refresh: settings.leader_refresh,
            connector: settings.connector.clone(),
            credentials: settings.credentials.clone(),
            next: AtomicUsize::new(0),
            state: Mutex::default(),
            discovering: tokio::sync::Mutex::new(()),
        }
    }

    /// The configured endpoints, normalised.
    pub(crate) fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The leader's URL, if one is cached.
    pub(crate) fn leader(&self) -> Option<String> {
        self.state().leader.as_ref().map(|l| l.url.clone())
    }

    /// The channel to `url`, created on first use (connecting lazily) and reused afterwards.
    pub(crate) fn channel(&self, url: &str) -> Option<NodeChannel> {
        let mut state = self.state();
        if let Some(channel) = state.channels.get(url) {
            return Some(channel.clone());
        }
        let endpoint = endpoint::endpoint(url, &self.credentials, self.connect_timeout, None).ok()?;
        let channel = match &self.connector {
            Some(Connector(connect)) => connect(endpoint),
            None => endpoint.connect_lazy(),
        };
        let channel = InterceptedService::new(channel, self.credentials.token.clone());
        state.channels.insert(url.to_owned(), channel.clone());
        Some(channel)
    }

    /// A member's advertised public address as a URL with this client's scheme.
    fn member_url(&self, addr: &str) -> Option<String> {
        endpoint::normalize_for(addr, self.credentials.uses_tls()).ok()
    }

    /// Picks the node for the next attempt: the leader unless it failed recently, else the next configured
    /// endpoint that has not, else (all failed recently) the one that failed longest ago.
    pub(crate) fn next_target(&self, now: Instant) -> String {
        let state = self.state();
        let is_up = |url: &str| state.down_until.get(url).is_none_or(|until| *until <= now);
        if let Some(leader) = state.leader.as_ref().filter(|l| is_up(&l.url)) {
            return leader.url.clone();
        }
        let candidates: Vec<&String> = self.urls.iter().chain(&state.learnt).collect();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let rotation = (0..candidates.len()).map(|i| candidates[(start + i) % candidates.len()]);
        if let Some(url) = rotation.clone().find(|url| is_up(url)) {
            return url.clone();
        }
        rotation.min_by_key(|url| state.down_until.get(*url).copied()).cloned().unwrap_or_default()
    }

    /// Records a failed attempt on `url`: passed over for a while, no longer the leader, and its channel dropped
    /// if the connection may be dead.
    pub(crate) fn failed(&self, url: &str, drop_channel: bool, now: Instant) {
        let mut state = self.state();
        state.down_until.insert(url.to_owned(), now + DOWN_COOLDOWN);
        if state.leader.as_ref().is_some_and(|l| l.url == url) {
            state.leader = None;
        }
        if drop_channel {
            state.channels.remove(url);
        }
    }

    /// Records a successful call on `url`.
    pub(crate) fn succeeded(&self, url: &str) {
        let mut state = self.state();
        if state.down_until.contains_key(url) {
            state.down_until.remove(url);
        }
    }

    /// True if no leader is cached, discovery is on and no fruitless discovery ran within [`DISCOVERY_GAP`].
    pub(crate) fn needs_discovery(&self, now: Instant) -> bool {
        let state = self.state();
        self.discover_leader
            && state.leader.is_none()
            && state.last_discovery.is_none_or(|at| now.saturating_duration_since(at) >= DISCOVERY_GAP)
    }

    /// Re-checks an old cached leader in the background, so that calls follow a leadership change that made
    /// nothing fail.
    pub(crate) fn refresh_if_stale(self: &Arc<Self>, now: Instant) {
        {
            let mut state = self.state();
            let Some(leader) = state.leader.as_mut() else { return };
            if now.saturating_duration_since(leader.learnt) < self.leader_refresh {
                return;
            }
            // Restart the clock now, so that one refresh runs per period even if it finds no leader.
            leader.learnt = now;
        }
        if self.discovering.try_lock().is_ok() {
            let routing = Arc::clone(self);
            tokio::spawn(async move { routing.discover(Instant::now() + routing.call_timeout).await });
        }
    }

    /// Asks the nodes, in rotation, which one leads, until one knows or `deadline` passes; caches the answer. If
    /// another discovery is running, returns at once (the caller falls back to the rotation).
    pub(crate) async fn discover(&self, deadline: Instant) {
        let Ok(_running) = self.discovering.try_lock() else {
            return;
        };
        for url in self.discovery_order() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let Some(channel) = self.channel(&url) else { continue };
            let budget = self.call_timeout.min(deadline - now);
            let status = match tokio::time::timeout(budget, AdminClient::new(channel).status(StatusRequest {})).await {
                Ok(Ok(response)) => response.into_inner(),
                Ok(Err(status)) => {
                    tracing::debug!(%url, code = ?status.code(), "leader discovery: status call failed");
                    self.failed(&url, true, Instant::now());
                    continue;
                }
                Err(_) => {
                    self.failed(&url, true, Instant::now());
                    continue;
                }
            };
            self.learn_members(&status.members);
            if status.leader_id == 0 {
                continue;
            }
            // The node we reached is known to be reachable at `url`; any other leader at its advertised address.
            let leader_url = if status.node_id == status.leader_id {
                Some(url.clone())
            } else {
                status.members.iter().find(|m| m.id == status.leader_id).and_then(|m| self.member_url(&m.addr))
            };
            // A follower that has not noticed yet that its leader died still names it: a leader this client saw
            // fail within the cooldown is believed only from its own mouth.
            let recently_failed = |leader: &str| {
                status.node_id != status.leader_id
                    && self.state().down_until.get(leader).is_some_and(|until| *until > Instant::now())
            };
            if let Some(leader_url) = leader_url.filter(|leader| !recently_failed(leader)) {
                tracing::debug!(%leader_url, leader_id = status.leader_id, "leader discovered");
                self.state().leader = Some(Leader { url: leader_url, learnt: Instant::now() });
                return;
            }
        }
        // Only a fruitless discovery holds the next one back; losing a leader that was found asks again at once.
        self.state().last_discovery = Some(Instant::now());
    }

    /// Configured and learnt endpoints in rotation order, those not failing first: a dead node must not use up
    /// the discovery's time while a live one could answer.
    fn discovery_order(&self) -> Vec<String> {
        let state = self.state();
        let now = Instant::now();
        let mut candidates: Vec<String> = self.urls.iter().chain(&state.learnt).cloned().collect();
        let n = candidates.len();
        candidates.rotate_left(self.next.load(Ordering::Relaxed) % n.max(1));
        candidates.sort_by_key(|url| state.down_until.get(url).is_some_and(|until| *until > now));
        candidates
    }

    /// Remembers the current members' addresses that are not configured endpoints (only with discovery on: it means the
    /// advertised addresses are reachable from here).
    fn learn_members(&self, members: &[Member]) {
        let mut learnt: Vec<String> = members.iter().filter_map(|m| self.member_url(&m.addr)).collect();
        learnt.retain(|url| !self.urls.contains(url));
        learnt.dedup();
        // The latest membership replaces the previous one: removed nodes stop being tried.
        self.state().learnt = learnt;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
