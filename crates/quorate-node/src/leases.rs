//! [`LeaseHolder`]: this node as a lease holder, deciding checks of hot keys locally from leased units.
//!
//! A check whose every limit is lease-enabled and covered by a live lease with enough units is decided here, with
//! no network round and no log entry. Otherwise it goes strict, and asks for leases on the way: one per limit
//! whose key this node saw often enough lately (a key seen less than twice per ttl is cold and gets none) and
//! sized by that demand. The grants come back with the strict decision, charged by the same log entry.
//!
//! Time: a grant says how long it is valid in cluster time from the entry that granted it. This node counts that
//! from the moment it *sent* the check (earlier than the grant), on its own monotonic clock, shortened by a drift
//! margin of [`DRIFT_PPM`] plus [`DRIFT_SLACK`]: it stops spending before the cluster considers the lease over.
//! Unused units of expired or replaced leases go back with an idempotent return entry (the `returns` task); a
//! crash loses them, which can only under-admit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use compact_str::CompactString;
use quorate_core::plan::Plan;
use quorate_core::policy::PolicySet;
use quorate_core::{CheckOutcome, Decision, LimitDecision, Nanos, PolicyId};
use tokio::time::Instant;

use crate::command::{HolderId, LeaseAsk, LeaseGrant, LeaseId, LeaseReturn};

/// Clock drift allowed between this node's monotonic clock and the cluster's: 1,000 ppm (0.1%).
pub(crate) const DRIFT_PPM: u64 = 1_000;
/// Fixed slack taken off every lease, for the time between the grant and this node learning of it.
pub(crate) const DRIFT_SLACK: Duration = Duration::from_millis(1);
/// A key must have been seen at least this often in the last ttl to be worth a lease.
pub(crate) const MIN_DEMAND_PER_TTL: u64 = 2;
/// The most keys whose demand is tracked: beyond, new keys are simply not leased.
const MAX_TRACKED_KEYS: usize = 100_000;

/// Where a lease lives: the policy set version, the table id and the key (a policy change retires every lease).
type Slot = (u64, PolicyId, CompactString);

/// One lease this node holds.
#[derive(Debug, Clone)]
struct Held {
    lease: LeaseId,
    left: u64,
    until: Instant,
    granted: Instant,
    /// The limit's decision when the lease was granted: what others had left, when it resets.
    decision: Decision,
}

/// How often a key was seen: decisions in the current ttl-long window, and in the previous one; and how long
/// its last lease could be spent (a lease ends early with the bucket it was charged to).
#[derive(Debug, Clone, Copy)]
struct Demand {
    since: Instant,
    current: u64,
    previous: u64,
    life: Option<Duration>,
}

#[derive(Debug, Default)]
struct State {
    leases: HashMap<Slot, Held>,
    demand: HashMap<Slot, Demand>,
    returns: Vec<LeaseReturn>,
    grants: RateMeter,
}

/// Events per second over the last [`RateMeter::SECONDS`] seconds, in one-second buckets.
#[derive(Debug, Default)]
struct RateMeter {
    /// (the second it counts, events in it), newest last.
    seconds: std::collections::VecDeque<(u64, u64)>,
}

impl RateMeter {
    const SECONDS: u64 = 10;

    fn add(&mut self, second: u64, events: u64) {
        match self.seconds.back_mut() {
            Some((s, n)) if *s == second => *n += events,
            _ => self.seconds.push_back((second, events)),
        }
        while self.seconds.front().is_some_and(|(s, _)| *s + Self::SECONDS <= second) {
            self.seconds.pop_front();
        }
    }

    /// The mean rate over the last full seconds before `second`.
    fn per_second(&self, second: u64) -> f64 {
        let counted: u64 =
            self.seconds.iter().filter(|(s, _)| *s < second && *s + Self::SECONDS >= second).map(|(_, n)| n).sum();
        counted as f64 / Self::SECONDS as f64
    }
}

/// This node's leases; shared by the pipeline and the returns task.
#[derive(Debug)]
pub(crate) struct LeaseHolder {
    id: HolderId,
    /// How much slower (ppm, negative: faster) this node's monotonic clock runs than real time: simulations only.
    drift_ppm: i64,
    state: Mutex<State>,
    leased_decisions: AtomicU64,
    /// When the holder started: the origin of the grant rate's seconds.
    started: Instant,
}

impl LeaseHolder {
    /// The holder of node `id`, whose monotonic clock runs `drift_ppm` slow (0 in production).
    pub(crate) fn new(id: HolderId, drift_ppm: i64) -> Self {
        let started = Instant::now();
        LeaseHolder { id, drift_ppm, state: Mutex::default(), leased_decisions: AtomicU64::new(0), started }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decides `plan` from held leases if every limit has one with enough units left: spends them and returns
    /// the decision. Counts the demand either way.
    pub(crate) fn try_local(&self, policies: &PolicySet, plan: &Plan, now: Instant) -> Option<CheckOutcome> {
        let mut state = self.lock();
        let mut covered = true;
        for limit in &plan.limits {
            let slot = slot(plan, limit.table_id(), &limit.key);
            let ttl = lease_ttl(policies, limit.table_id());
            note_demand(&mut state.demand, &slot, ttl, now);
            let live = state.leases.get(&slot).is_some_and(|h| h.until > now && h.left >= limit.cost.get());
            covered &= live;
        }
        if !covered || plan.limits.is_empty() {
            return None;
        }
        let mut limits = Vec::with_capacity(plan.limits.len());
        for limit in &plan.limits {
            let held = state.leases.get_mut(&slot(plan, limit.table_id(), &limit.key))?;
            held.left -= limit.cost.get();
            let elapsed = u64::try_from(now.duration_since(held.granted).as_nanos()).unwrap_or(u64::MAX);
            let decision = Decision {
                allowed: true,
                limit: held.decision.limit,
                // What others had left at the grant, plus what this lease still holds: an upper estimate.
                remaining: held.decision.remaining.saturating_add(held.left),
                reset_after: held.decision.reset_after.saturating_sub(elapsed),
                retry_after: 0,
            };
            limits.push(LimitDecision { policy: limit.table_id(), base_limit: limit.base_limit(policies), decision });
        }
        drop(state);
        self.leased_decisions.fetch_add(1, Ordering::Relaxed);
        let decision = limits.iter().map(|l| l.decision).min_by_key(|d| d.remaining)?;
        Some(CheckOutcome { allowed: true, decision, limits })
    }

    /// The leases worth asking for with a strict check of `plan`: for each lease-enabled limit whose key is hot,
    /// its demand over the time the lease can be spent (the ttl, or less when leases of this key end early with
    /// their bucket), with half again as headroom; the replicas cap it at the holder's share. `None` if no key is
    /// hot. Asking for more than will be spent only parks units that others then wait for until they come back.
    ///
    /// Leases of the plan's keys that cannot serve it (spent, expired or too small) go back with the ask: the
    /// replicas count a holder's leases against its share until they are returned.
    pub(crate) fn ask(&self, policies: &PolicySet, plan: &Plan, now: Instant) -> Option<LeaseAsk> {
        let mut state = self.lock();
        let want: Vec<u64> = plan
            .limits
            .iter()
            .map(|limit| {
                let Some(ttl) = lease_ttl(policies, limit.table_id()) else { return 0 };
                let Some(demand) = state.demand.get(&slot(plan, limit.table_id(), &limit.key)) else { return 0 };
                let seen = demand.current.max(demand.previous);
                if seen < MIN_DEMAND_PER_TTL {
                    return 0;
                }
                let life = demand.life.unwrap_or(ttl).min(ttl);
                let expected = (seen as f64 * life.as_secs_f64() / ttl.as_secs_f64() * 1.5).ceil() as u64;
                expected.max(1).saturating_mul(limit.cost.get())
            })
            .collect();
        if want.iter().all(|&w| w == 0) {
            return None;
        }
        let mut returns = Vec::new();
        for limit in &plan.limits {
            let slot = slot(plan, limit.table_id(), &limit.key);
            let spent = state.leases.get(&slot).is_some_and(|h| h.until <= now || h.left < limit.cost.get());
            if spent && let Some(held) = state.leases.remove(&slot) {
                returns.push(LeaseReturn { lease: held.lease, unused: held.left });
            }
        }
        Some(LeaseAsk { holder: self.id, want, returns })
    }

    /// Takes the leases granted with a strict check of `plan` that was sent at `sent_at`; a lease it replaces
    /// goes back with its unused units.
    pub(crate) fn adopt(&self, plan: &Plan, grants: &[LeaseGrant], sent_at: Instant) {
        if grants.is_empty() {
            return;
        }
        let mut state = self.lock();
        let second = sent_at.duration_since(self.started).as_secs();
        state.grants.add(second, grants.len() as u64);
        for grant in grants {
            let Some(limit) = plan.limits.get(grant.limit) else { continue };
            let held = Held {
                lease: grant.lease,
                left: grant.units,
                until: sent_at + drifted(usable(grant.valid_for), self.drift_ppm),
                granted: sent_at,
                decision: grant.decision,
            };
            let slot = slot(plan, limit.table_id(), &limit.key);
            if let Some(demand) = state.demand.get_mut(&slot) {
                demand.life = Some(Duration::from_nanos(grant.valid_for));
            }
            if let Some(old) = state.leases.insert(slot, held) {
                state.returns.push(LeaseReturn { lease: old.lease, unused: old.left });
            }
        }
    }

    /// Takes every lease that has run out or expired by `now`, and the returns queued, for one return entry.
    pub(crate) fn take_returns(&self, now: Instant) -> Vec<LeaseReturn> {
        let mut state = self.lock();
        let mut returns = std::mem::take(&mut state.returns);
        state.leases.retain(|_, held| {
            let over = held.until <= now || held.left == 0;
            if over {
                returns.push(LeaseReturn { lease: held.lease, unused: held.left });
            }
            !over
        });
        // Keys not seen for a while stop being tracked.
        state.demand.retain(|_, demand| now.duration_since(demand.since) < Duration::from_secs(10));
        returns
    }

    /// Gives up every lease (the node is stopping): their unused units, to return.
    pub(crate) fn take_all(&self) -> Vec<LeaseReturn> {
        let mut state = self.lock();
        let mut returns = std::mem::take(&mut state.returns);
        returns.extend(state.leases.drain().map(|(_, held)| LeaseReturn { lease: held.lease, unused: held.left }));
        returns
    }

    /// Leases this node holds now.
    pub(crate) fn held(&self) -> usize {
        self.lock().leases.len()
    }

    /// Leases granted to this node per second, over the last ten seconds.
    pub(crate) fn grants_per_second(&self) -> f64 {
        let second = Instant::now().duration_since(self.started).as_secs();
        self.lock().grants.per_second(second)
    }

    /// Decisions this node made from leases since it started.
    pub(crate) fn leased_decisions(&self) -> u64 {
        self.leased_decisions.load(Ordering::Relaxed)
    }

    /// This holder's id (the node's).
    pub(crate) fn id(&self) -> HolderId {
        self.id
    }
}

fn slot(plan: &Plan, table_id: PolicyId, key: &CompactString) -> Slot {
    (plan.policy_version, table_id, key.clone())
}

/// The lease lifetime of policy `id`, if its keys may be leased.
fn lease_ttl(policies: &PolicySet, id: PolicyId) -> Option<Duration> {
    policies.policy(id).and_then(|p| p.lease()).map(|lease| Duration::from_nanos(lease.ttl))
}

/// Counts one decision on `slot`; windows are one ttl long (a policy without leases is not tracked).
fn note_demand(demand: &mut HashMap<Slot, Demand>, slot: &Slot, ttl: Option<Duration>, now: Instant) {
    let Some(ttl) = ttl else { return };
    if let Some(seen) = demand.get_mut(slot) {
        let elapsed = now.duration_since(seen.since);
        if elapsed >= ttl * 2 {
            *seen = Demand { since: now, current: 0, previous: 0, life: seen.life };
        } else if elapsed >= ttl {
            *seen = Demand { since: now, current: 0, previous: seen.current, life: seen.life };
        }
        seen.current += 1;
    } else if demand.len() < MAX_TRACKED_KEYS {
        demand.insert(slot.clone(), Demand { since: now, current: 1, previous: 0, life: None });
    }
}

/// How long `duration` measured on a clock running `drift_ppm` slow lasts in real time.
fn drifted(duration: Duration, drift_ppm: i64) -> Duration {
    let scaled = duration.as_nanos() as i128 * (1_000_000 + i128::from(drift_ppm)) / 1_000_000;
    Duration::from_nanos(u64::try_from(scaled.max(0)).unwrap_or(u64::MAX))
}

/// How long a lease valid for `valid_for` of cluster time may be spent on this node's clock: shortened by the
/// drift margin.
pub(crate) fn usable(valid_for: Nanos) -> Duration {
    let margin = valid_for / 1_000_000 * DRIFT_PPM + valid_for % 1_000_000 * DRIFT_PPM / 1_000_000;
    Duration::from_nanos(valid_for.saturating_sub(margin)).saturating_sub(DRIFT_SLACK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_shortened_by_the_drift_margin() {
        // 250 ms less 0.1% (250 µs) less 1 ms.
        assert_eq!(usable(250_000_000), Duration::from_micros(250_000 - 250 - 1_000));
        assert_eq!(usable(500_000), Duration::ZERO, "shorter than the slack: nothing to spend");
    }
}
