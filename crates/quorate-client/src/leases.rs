//! Client leases ([`ClientBuilder::leases`](crate::ClientBuilder::leases)): an API server decides checks of its
//! hot keys in-process, from quota the cluster leased to it, with no network call.
//!
//! A check whose every descriptor has a live lease with enough units left is decided here. Otherwise it goes to
//! the cluster and asks for leases on the way: for descriptors this client saw at least twice in the last
//! lease-length window (a cold key takes none), about twice that demand; the cluster grants at most the policy's
//! `max_share` of the limit, never from its `reserve`, and only on lease-enabled policies. A grant is valid for
//! `valid_for` from when the check was *sent*, on this process's monotonic clock, shortened by 1,000 ppm plus
//! 1 ms for clock drift. Unused units of leases that expire or are replaced go back in one `ReturnLeases` call
//! every 100 ms, and all of them on [`Client::close`](crate::Client::close); a crash leaves them charged, which
//! can only under-admit.
//!
//! # What a leased decision says
//!
//! `allowed` is true (a lease never denies: when its units run out the check goes to the cluster, which decides
//! strictly). `remaining` is what the cluster had left for others when the lease was granted plus what this lease
//! still holds: exact when this client is the key's only holder, an upper estimate otherwise. `reset_after` is the
//! grant's, less the time since. `limit`, the policy name and the window are the cluster's.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use quorate_proto::v1 as pb;
use tokio::time::Instant;

use crate::decision::{Decision, LimitDecision};
use crate::descriptors::{Descriptor, Descriptors};

/// Clock drift allowed between this process and the cluster: 1,000 ppm.
pub const LEASE_DRIFT_PPM: u64 = 1_000;
/// Fixed slack taken off every lease, for the time between the grant and this client learning of it.
pub const LEASE_DRIFT_SLACK: Duration = Duration::from_millis(1);
/// How long demand is counted over before any grant says how long leases live.
const DEFAULT_WINDOW: Duration = Duration::from_millis(250);
/// A descriptor seen at least this often in one window is worth a lease.
const MIN_DEMAND: u64 = 2;
/// The most descriptors whose demand is tracked.
const MAX_TRACKED: usize = 100_000;

/// One lease this client holds.
#[derive(Debug, Clone)]
struct Held {
    lease: u64,
    left: u64,
    until: Instant,
    granted: Instant,
    /// The limit as the grant described it (remaining: what others had left).
    status: LimitDecision,
}

/// How often a descriptor was seen: checks in the current window, and in the previous one.
#[derive(Debug, Clone, Copy)]
struct Demand {
    since: Instant,
    current: u64,
    previous: u64,
}

impl Demand {
    fn new(now: Instant) -> Self {
        Demand { since: now, current: 1, previous: 0 }
    }

    /// Counts one check at `now`, windows being `window` long.
    fn note(&mut self, window: Duration, now: Instant) {
        let elapsed = now.duration_since(self.since);
        if elapsed >= window * 2 {
            *self = Demand { since: now, current: 0, previous: 0 };
        } else if elapsed >= window {
            *self = Demand { since: now, current: 0, previous: self.current };
        }
        self.current += 1;
    }

    fn seen(&self) -> u64 {
        self.current.max(self.previous)
    }
}

/// What this client knows of one descriptor: its demand, and its lease if it holds one. One map, so that a
/// decision from a lease looks each descriptor up once to count it and once to spend from it.
#[derive(Debug, Clone)]
struct Tracked {
    demand: Demand,
    held: Option<Held>,
}

#[derive(Debug, Default)]
struct State {
    keys: HashMap<Descriptor, Tracked, foldhash::quality::RandomState>,
    returns: Vec<pb::LeaseReturn>,
    /// How long the last grant was valid: the demand window.
    window: Option<Duration>,
}

/// This client's leases.
#[derive(Debug)]
pub(crate) struct Leases {
    holder: u64,
    state: Mutex<State>,
}

impl Leases {
    /// An empty cache with a fresh random holder id (top bit set, as the cluster requires of clients).
    pub(crate) fn new() -> Self {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher
            .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        Leases { holder: hasher.finish() | (1 << 63), state: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// This client's holder id.
    pub(crate) fn holder(&self) -> u64 {
        self.holder
    }

    /// Decides a check of `cost` from held leases if every descriptor has one with enough units; counts the
    /// demand either way. A check naming one descriptor twice is never decided here: the cluster refuses it.
    pub(crate) fn try_local(&self, descriptors: &Descriptors, cost: u64, now: Instant) -> Option<Decision> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let window = state.window.unwrap_or(DEFAULT_WINDOW);
        let mut covered = !descriptors.is_empty();
        for descriptor in descriptors.iter() {
            match state.keys.get_mut(descriptor) {
                Some(tracked) => {
                    tracked.demand.note(window, now);
                    covered &= tracked.held.as_ref().is_some_and(|held| held.until > now && held.left >= cost);
                }
                None => {
                    if state.keys.len() < MAX_TRACKED {
                        state.keys.insert(descriptor.clone(), Tracked { demand: Demand::new(now), held: None });
                    }
                    covered = false;
                }
            }
        }
        if !covered || has_duplicates(descriptors) {
            return None;
        }
        let mut limits = Vec::with_capacity(descriptors.len());
        for descriptor in descriptors.iter() {
            let held = state.keys.get_mut(descriptor)?.held.as_mut()?;
            held.left -= cost;
            let mut status = held.status.clone();
            status.allowed = true;
            status.remaining = status.remaining.saturating_add(held.left);
            status.reset_after = status.reset_after.saturating_sub(now.duration_since(held.granted));
            status.retry_after = Duration::ZERO;
            limits.push(status);
        }
        Some(Decision::leased(limits))
    }

    /// The lease to ask for with a check of `descriptors` that goes to the cluster at `now`: units per
    /// lease-enabled limit, `None` if no descriptor is hot.
    ///
    /// Leases of these descriptors that cannot serve the check (spent, expired or too small) go back with the
    /// ask: the cluster counts a holder's leases against its share until they are returned, so one left to
    /// expire would hold back the renewal for the rest of its life.
    pub(crate) fn ask(&self, descriptors: &Descriptors, cost: u64, now: Instant) -> Option<pb::LeaseRequest> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let seen = descriptors.iter().filter_map(|d| state.keys.get(d)).map(|t| t.demand.seen()).max()?;
        if seen < MIN_DEMAND {
            return None;
        }
        let mut returns = Vec::new();
        for descriptor in descriptors.iter() {
            let Some(tracked) = state.keys.get_mut(descriptor) else { continue };
            if let Some(held) = tracked.held.take_if(|held| held.until <= now || held.left < cost) {
                returns.push(pb::LeaseReturn { lease_id: held.lease, unused: held.left });
            }
        }
        // Demand is counted over the last lease's life: ask for it with half again as headroom. More than will be
        // spent only parks units that others then wait for until they come back.
        Some(pb::LeaseRequest { holder: self.holder, units: seen.div_ceil(2) * 3 * cost.max(1), returns })
    }

    /// Takes the leases granted with a check of `descriptors` sent at `sent_at`; a lease it replaces goes back.
    pub(crate) fn adopt(&self, descriptors: &Descriptors, grants: &[pb::LeaseGrant], sent_at: Instant) {
        let mut guard = self.lock();
        let state = &mut *guard;
        for grant in grants {
            let Some(descriptor) = descriptors.iter().nth(grant.descriptor as usize) else { continue };
            let Some(status) = grant.status.as_ref() else { continue };
            state.window = Some(Duration::from_nanos(grant.valid_for_ns).max(Duration::from_millis(10)));
            let held = Held {
                lease: grant.lease_id,
                left: grant.units,
                until: sent_at + usable(grant.valid_for_ns),
                granted: sent_at,
                status: LimitDecision::from_wire(status),
            };
            let tracked = state
                .keys
                .entry(descriptor.clone())
                .or_insert_with(|| Tracked { demand: Demand::new(sent_at), held: None });
            if let Some(old) = tracked.held.replace(held) {
                state.returns.push(pb::LeaseReturn { lease_id: old.lease, unused: old.left });
            }
        }
    }

    /// Takes the leases that ran out or expired by `now`, and the returns queued; forgets descriptors neither
    /// leased nor seen for 10 s.
    pub(crate) fn take_returns(&self, now: Instant) -> Vec<pb::LeaseReturn> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut returns = std::mem::take(&mut state.returns);
        state.keys.retain(|_, tracked| {
            if let Some(held) = tracked.held.take_if(|held| held.until <= now || held.left == 0) {
                returns.push(pb::LeaseReturn { lease_id: held.lease, unused: held.left });
            }
            tracked.held.is_some() || now.duration_since(tracked.demand.since) < Duration::from_secs(10)
        });
        returns
    }

    /// Takes every lease (the client is closing).
    pub(crate) fn take_all(&self) -> Vec<pb::LeaseReturn> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut returns = std::mem::take(&mut state.returns);
        for tracked in state.keys.values_mut() {
            if let Some(held) = tracked.held.take() {
                returns.push(pb::LeaseReturn { lease_id: held.lease, unused: held.left });
            }
        }
        returns
    }
}

/// Whether a descriptor appears twice (checks carry a handful: comparing pairs beats hashing).
fn has_duplicates(descriptors: &Descriptors) -> bool {
    let all = descriptors.iter().as_slice();
    all.iter().enumerate().any(|(i, a)| all[i + 1..].contains(a))
}

/// How long a lease valid for `valid_for_ns` may be spent on this process's clock.
fn usable(valid_for_ns: u64) -> Duration {
    let margin = valid_for_ns / 1_000_000 * LEASE_DRIFT_PPM + valid_for_ns % 1_000_000 * LEASE_DRIFT_PPM / 1_000_000;
    Duration::from_nanos(valid_for_ns.saturating_sub(margin)).saturating_sub(LEASE_DRIFT_SLACK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Source;

    fn grant(descriptor: u32, units: u64, remaining: u64) -> pb::LeaseGrant {
        pb::LeaseGrant {
            lease_id: 7,
            descriptor,
            units,
            valid_for_ns: 250_000_000,
            status: Some(pb::LimitStatus {
                policy: "agent".into(),
                key: "api_key=a".into(),
                allowed: true,
                limit: 200,
                base_limit: 200,
                remaining,
                reset_after_ns: 1_000_000_000,
                retry_after_ns: 0,
                window_ns: 60_000_000_000,
            }),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_decides_locally_until_its_units_or_its_time_run_out() {
        let leases = Leases::new();
        assert!(leases.holder() >= 1 << 63);
        let key = Descriptors::new().api_key("a");
        let now = Instant::now();
        assert!(leases.try_local(&key, 1, now).is_none());
        assert!(leases.ask(&key, 1, now).is_none(), "seen once: cold");
        assert!(leases.try_local(&key, 1, now).is_none());
        assert_eq!(leases.ask(&key, 1, now).map(|a| a.units), Some(3), "seen twice: ask for that and half again");
        leases.adopt(&key, &[grant(0, 3, 150)], now);
        let first = leases.try_local(&key, 1, now).unwrap();
        assert_eq!((first.allowed, first.source, first.degraded), (true, Source::Lease, false));
        assert_eq!(first.remaining(), Some(152), "others' 150 plus the lease's 2 left");
        assert!(leases.try_local(&key, 2, now).is_some());
        assert!(leases.try_local(&key, 1, now).is_none(), "the units ran out");
        // The spent lease goes back with the next ask, not when it expires.
        let renew = leases.ask(&key, 1, now).unwrap();
        assert_eq!(renew.returns, [pb::LeaseReturn { lease_id: 7, unused: 0 }]);
        leases.adopt(&key, &[grant(0, 5, 100)], now);
        tokio::time::advance(Duration::from_millis(249)).await;
        assert!(leases.try_local(&key, 1, Instant::now()).is_none(), "expired, drift margin included");
        let returns = leases.take_returns(Instant::now());
        // The second lease expired with 5 unused.
        assert_eq!(returns.iter().map(|r| r.unused).collect::<Vec<_>>(), [5]);
    }

    #[test]
    fn a_check_is_local_only_if_every_descriptor_is_leased() {
        let leases = Leases::new();
        let both = Descriptors::new().api_key("a").agent_id("p");
        let now = Instant::now();
        leases.adopt(&both, &[grant(0, 10, 100)], now);
        assert!(leases.try_local(&both, 1, now).is_none());
        assert!(leases.try_local(&Descriptors::new().api_key("a"), 1, now).is_some());
    }

    #[test]
    fn a_descriptor_named_twice_goes_to_the_cluster_and_spends_nothing() {
        let leases = Leases::new();
        let key = Descriptors::new().api_key("a");
        let twice = Descriptors::new().api_key("a").api_key("a");
        let now = Instant::now();
        leases.adopt(&key, &[grant(0, 1, 100)], now);
        assert!(leases.try_local(&twice, 1, now).is_none());
        assert!(leases.try_local(&key, 1, now).is_some(), "the unit is still there");
        assert!(leases.try_local(&key, 1, now).is_none());
    }
}
