//! [`LeaseHolder`]: this node as a lease holder, deciding checks of hot keys locally from leased units.
//!
//! A check whose every limit is lease-enabled and covered by a live lease with enough units is decided here, with
//! no network round and no log entry. Otherwise it goes strict, and asks for leases on the way: one per limit
//! whose key this node saw often enough lately (a key seen less than twice per ttl is cold and gets none) and
//! sized by that demand. The grants come back with the strict decision, charged by the same log entry.
//!
//! Renewal: a local decision that finds one of its leases in its last third (of life or units) queues their
//! renewal, which the renewal task (`check::returns`) sends every 20 ms together with the others: strict checks
//! of the same plans, while the old leases keep deciding; so a hot key never falls into a gap where its checks go
//! strict. Each renewal's own charge backs the decision that triggered it: it is credited to the lease being
//! renewed, which returns it if unused (see [`LeaseHolder::renewed`] for when it may be).
//!
//! Time: a grant says how long it is valid in cluster time from the entry that granted it. This node counts that
//! from the moment it *sent* the check (earlier than the grant), on its own monotonic clock, shortened by a drift
//! margin of [`DRIFT_PPM`] plus [`DRIFT_SLACK`]: it stops spending before the cluster considers the lease over.
//! Unused units of expired or replaced leases go back with an idempotent return entry (the `returns` task); a
//! crash loses them, which can only under-admit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    /// Units it may still spend.
    left: u64,
    /// Units it could spend when it was granted.
    granted_units: u64,
    until: Instant,
    granted: Instant,
    /// Where its renewal stands.
    renewal: RenewalPhase,
    /// The limit's decision when the lease was granted: what others had left, when it resets.
    decision: Decision,
}

impl Held {
    /// Whether the lease is in its last third, of its life or of its units: time to ask for the next one, so
    /// that a hot key never waits for a strict round between two leases. A third leaves the renewal task's tick
    /// and a Raft round before the lease ends (83 ms of a 250 ms lease).
    fn due(&self, now: Instant) -> bool {
        let life = self.until.saturating_duration_since(self.granted);
        let left = self.until.saturating_duration_since(now);
        left * 3 <= life || self.left.saturating_mul(3) <= self.granted_units
    }

    /// What goes back to the cluster: the unused units, never more than the grant charged.
    fn give_back(&self) -> LeaseReturn {
        LeaseReturn { lease: self.lease, unused: self.left.min(self.granted_units) }
    }
}

/// Where the renewal of a held lease stands. A lease is renewed at most once: if the renewal brings no new lease
/// (near the limit, none is granted), the old one runs out and its key goes strict again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RenewalPhase {
    /// Not asked for yet.
    Idle,
    /// Asked for: the lease is parked rather than returned if it ends before the answer, which may credit it.
    InFlight,
    /// Answered, or given up.
    Over,
}

/// A renewal asked for: the plan whose leases it renews, the policy set it was planned with, and the leases it
/// renews, one per limit of the plan, in order.
#[derive(Debug, Clone)]
pub(crate) struct Renewal {
    /// The policy set the plan was made with.
    pub(crate) policies: Arc<PolicySet>,
    /// The plan of the local decision that found the leases due.
    pub(crate) plan: Plan,
    leases: Vec<LeaseId>,
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
    /// Renewals asked for, sent together by the renewal task.
    renewals: Vec<Renewal>,
    /// Leases that ended while their renewal was in flight, returned once it is answered.
    parked: HashMap<LeaseId, Held>,
    grants: RateMeter,
}

impl State {
    /// Gives up a lease that ended or was replaced: back to the cluster, or parked while its renewal is out.
    fn retire(&mut self, held: Held) {
        match held.renewal {
            RenewalPhase::InFlight => {
                self.parked.insert(held.lease, held);
            }
            RenewalPhase::Idle | RenewalPhase::Over => self.returns.push(held.give_back()),
        }
    }
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
    ///
    /// When one of the leases is in its last third and none is being renewed, it queues their renewal
    /// ([`LeaseHolder::take_renewals`]): a strict check of the same plan, sent in the background while the old
    /// leases keep deciding ([`LeaseHolder::renewed`]). Without it every lease of a hot key would end in a gap
    /// where its checks go strict and wait for a Raft round.
    pub(crate) fn try_local(&self, policies: &Arc<PolicySet>, plan: &Plan, now: Instant) -> Option<CheckOutcome> {
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
        let mut due = false;
        let mut renewed = false;
        for limit in &plan.limits {
            let held = state.leases.get_mut(&slot(plan, limit.table_id(), &limit.key))?;
            held.left -= limit.cost.get();
            due |= held.due(now);
            renewed |= held.renewal != RenewalPhase::Idle;
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
        if due && !renewed {
            let mut leases = Vec::with_capacity(plan.limits.len());
            for limit in &plan.limits {
                let held = state.leases.get_mut(&slot(plan, limit.table_id(), &limit.key))?;
                held.renewal = RenewalPhase::InFlight;
                leases.push(held.lease);
            }
            state.renewals.push(Renewal { policies: policies.clone(), plan: plan.clone(), leases });
        }
        drop(state);
        self.leased_decisions.fetch_add(1, Ordering::Relaxed);
        let decision = limits.iter().map(|l| l.decision).min_by_key(|d| d.remaining)?;
        Some(CheckOutcome { allowed: true, decision, limits })
    }

    /// Takes the renewals queued since the last call, to send together.
    pub(crate) fn take_renewals(&self) -> Vec<Renewal> {
        std::mem::take(&mut self.lock().renewals)
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
                match held.renewal {
                    RenewalPhase::InFlight => state.retire(held),
                    RenewalPhase::Idle | RenewalPhase::Over => returns.push(held.give_back()),
                }
            }
        }
        Some(LeaseAsk { holder: self.id, want, returns })
    }

    /// Takes the answer to `renewal`, the strict check of its plan sent at `sent_at` that no caller waits for
    /// (`None`: it failed or was never sent).
    ///
    /// An allowed renewal charged the check's own cost, in the entry that granted the new leases. The check that
    /// triggered it was spent from the lease being renewed; so the charge goes to that lease, as if that check had
    /// been strict, and the lease returns it with its unused units: if the answer came before the lease ended, so
    /// that the charge fell in the window or bucket the lease was charged to. Otherwise it goes to the new lease
    /// of that limit, charged at the same moment, whose units it joins (a lease gives back at most what it was
    /// granted, so the charge is kept if that lease ends with more unused). With neither, it is kept: only ever
    /// less admitted.
    pub(crate) fn renewed(&self, renewal: &Renewal, answer: Option<(bool, &[LeaseGrant])>, sent_at: Instant) {
        let plan = &renewal.plan;
        let now = Instant::now();
        let allowed = answer.is_some_and(|(allowed, _)| allowed);
        let mut state = self.lock();
        let mut to_new_lease = Vec::new();
        for (i, (limit, &renewed)) in plan.limits.iter().zip(&renewal.leases).enumerate() {
            let mut credited = false;
            let mut credit = |held: &mut Held| {
                if allowed && now < held.until {
                    held.left = held.left.saturating_add(limit.cost.get());
                    credited = true;
                }
                held.renewal = RenewalPhase::Over;
            };
            match state.leases.get_mut(&slot(plan, limit.table_id(), &limit.key)) {
                Some(held) if held.lease == renewed => credit(held),
                _ => {
                    if let Some(mut held) = state.parked.remove(&renewed) {
                        credit(&mut held);
                        state.returns.push(held.give_back());
                    }
                }
            }
            if allowed && !credited {
                to_new_lease.push(i);
            }
        }
        drop(state);
        let Some((true, grants)) = answer else { return };
        self.adopt(plan, grants, sent_at);
        let mut state = self.lock();
        for i in to_new_lease {
            let (Some(limit), Some(grant)) = (plan.limits.get(i), grants.iter().find(|g| g.limit == i)) else {
                continue;
            };
            if let Some(held) = state.leases.get_mut(&slot(plan, limit.table_id(), &limit.key))
                && held.lease == grant.lease
            {
                held.left = held.left.saturating_add(limit.cost.get());
            }
        }
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
                granted_units: grant.units,
                until: sent_at + drifted(usable(grant.valid_for), self.drift_ppm),
                granted: sent_at,
                renewal: RenewalPhase::Idle,
                decision: grant.decision,
            };
            let slot = slot(plan, limit.table_id(), &limit.key);
            if let Some(demand) = state.demand.get_mut(&slot) {
                demand.life = Some(Duration::from_nanos(grant.valid_for));
            }
            if let Some(old) = state.leases.insert(slot, held) {
                state.retire(old);
            }
        }
    }

    /// Takes every lease that has run out or expired by `now`, and the returns queued, for one return entry.
    pub(crate) fn take_returns(&self, now: Instant) -> Vec<LeaseReturn> {
        let mut state = self.lock();
        let mut over = Vec::new();
        state.leases.retain(|_, held| {
            let ended = held.until <= now || held.left == 0;
            if ended {
                over.push(held.clone());
            }
            !ended
        });
        for held in over {
            state.retire(held);
        }
        let returns = std::mem::take(&mut state.returns);
        // Keys not seen for a while stop being tracked.
        state.demand.retain(|_, demand| now.duration_since(demand.since) < Duration::from_secs(10));
        returns
    }

    /// Gives up every lease (the node is stopping): their unused units, to return.
    pub(crate) fn take_all(&self) -> Vec<LeaseReturn> {
        let mut state = self.lock();
        let mut returns = std::mem::take(&mut state.returns);
        returns.extend(state.leases.drain().map(|(_, held)| held.give_back()));
        returns.extend(state.parked.drain().map(|(_, held)| held.give_back()));
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

    use quorate_core::plan::{Check, Cost};
    use quorate_core::policy::Descriptor;

    fn leased_policy() -> Arc<PolicySet> {
        Arc::new(
            PolicySet::from_toml(
                "[policies.p]\nalgorithm = \"token_bucket\"\nlimit = 1000\nperiod = \"1m\"\nlease = { ttl = \"1s\" }\n\
                 [[rules]]\ndimension = \"k\"\npolicy = \"p\"\n",
            )
            .unwrap(),
        )
    }

    fn hot_plan(policies: &PolicySet) -> Plan {
        Plan::check(policies, &Check::new(vec![Descriptor::new("k", "hot")], Cost::ONE)).unwrap()
    }

    fn grant(lease: LeaseId, units: u64) -> LeaseGrant {
        let decision = Decision { allowed: true, limit: 1000, remaining: 500, reset_after: 0, retry_after: 0 };
        LeaseGrant { limit: 0, lease, units, valid_for: 1_000_000_000, decision }
    }

    /// Spends from the leases until a decision queues a renewal; how many decisions that took.
    fn spend_until_due(holder: &LeaseHolder, policies: &Arc<PolicySet>, plan: &Plan) -> (usize, Renewal) {
        for spent in 1..=100 {
            assert!(holder.try_local(policies, plan, Instant::now()).is_some(), "the lease covers the check");
            if let Some(renewal) = holder.take_renewals().pop() {
                return (spent, renewal);
            }
        }
        panic!("no renewal was asked for");
    }

    #[test]
    fn a_lease_in_its_last_third_is_renewed_once_and_the_renewal_charge_goes_back_with_it() {
        let (policies, holder) = (leased_policy(), LeaseHolder::new(1, 0));
        let plan = hot_plan(&policies);
        holder.adopt(&plan, &[grant(7, 8)], Instant::now());
        // 8 units: the decision that leaves 2 (under a third) asks for the renewal, the others do not.
        let (spent, renewal) = spend_until_due(&holder, &policies, &plan);
        assert_eq!((spent, renewal.plan.limits.len()), (6, 1));
        assert!(holder.try_local(&policies, &plan, Instant::now()).is_some());
        assert!(holder.take_renewals().is_empty(), "asked for twice");
        // Allowed, with a new lease: the renewal's own charge backs a decision of the old lease, which goes back
        // with one unit more than it had left (1 + 1), and the new lease decides from now on.
        holder.renewed(&renewal, Some((true, &[grant(8, 10)])), Instant::now());
        assert_eq!(holder.take_returns(Instant::now()), vec![LeaseReturn { lease: 7, unused: 2 }]);
        assert!(holder.try_local(&policies, &plan, Instant::now()).is_some());
        assert!(holder.take_renewals().is_empty());
        assert_eq!(holder.take_all(), vec![LeaseReturn { lease: 8, unused: 9 }]);
    }

    #[test]
    fn a_renewal_without_a_new_lease_credits_the_old_one_or_a_parked_one_and_a_denied_one_nothing() {
        let (policies, holder) = (leased_policy(), LeaseHolder::new(1, 0));
        let plan = hot_plan(&policies);
        // Allowed but nothing granted (near the limit): the old lease keeps deciding with the charge added.
        holder.adopt(&plan, &[grant(1, 4)], Instant::now());
        let (spent, renewal) = spend_until_due(&holder, &policies, &plan);
        assert_eq!(spent, 3);
        holder.renewed(&renewal, Some((true, &[])), Instant::now());
        assert_eq!(holder.take_all(), vec![LeaseReturn { lease: 1, unused: 2 }]);

        // The lease ran out while its renewal was in flight: parked, not returned, until the answer credits it.
        holder.adopt(&plan, &[grant(2, 4)], Instant::now());
        let (_, renewal) = spend_until_due(&holder, &policies, &plan);
        assert!(holder.try_local(&policies, &plan, Instant::now()).is_some());
        assert!(holder.try_local(&policies, &plan, Instant::now()).is_none(), "the lease is spent");
        assert_eq!(holder.take_returns(Instant::now()), vec![], "returned while its renewal was in flight");
        holder.renewed(&renewal, Some((true, &[])), Instant::now());
        assert_eq!(holder.take_returns(Instant::now()), vec![LeaseReturn { lease: 2, unused: 1 }]);

        // Denied (or failed): nothing was charged, nothing is credited, and the lease is not renewed again.
        holder.adopt(&plan, &[grant(3, 4)], Instant::now());
        let (_, renewal) = spend_until_due(&holder, &policies, &plan);
        holder.renewed(&renewal, Some((false, &[])), Instant::now());
        assert!(holder.try_local(&policies, &plan, Instant::now()).is_some());
        assert!(holder.take_renewals().is_empty());
        assert_eq!(holder.take_all(), vec![LeaseReturn { lease: 3, unused: 0 }]);
    }

    #[test]
    fn a_renewal_answered_after_its_lease_ended_credits_the_new_lease_or_nothing() {
        let (policies, holder) = (leased_policy(), LeaseHolder::new(1, 0));
        let plan = hot_plan(&policies);
        // A lease of 10 ms: the charge of a renewal answered after it ended may fall in a later window.
        let mut short = grant(4, 4);
        short.valid_for = 10_000_000;
        holder.adopt(&plan, &[short], Instant::now());
        let (_, renewal) = spend_until_due(&holder, &policies, &plan);
        std::thread::sleep(Duration::from_millis(15));
        assert_eq!(holder.take_returns(Instant::now()), vec![], "parked while its renewal was in flight");
        holder.renewed(&renewal, Some((true, &[])), Instant::now());
        assert_eq!(holder.take_returns(Instant::now()), vec![LeaseReturn { lease: 4, unused: 1 }]);

        // With a new lease, the charge joins it instead: charged in the same entry, spent first.
        let mut short = grant(5, 4);
        short.valid_for = 10_000_000;
        holder.adopt(&plan, &[short], Instant::now());
        let (_, renewal) = spend_until_due(&holder, &policies, &plan);
        std::thread::sleep(Duration::from_millis(15));
        holder.renewed(&renewal, Some((true, &[grant(6, 10)])), Instant::now());
        assert_eq!(holder.take_returns(Instant::now()), vec![LeaseReturn { lease: 5, unused: 1 }]);
        assert!(holder.try_local(&policies, &plan, Instant::now()).is_some());
        assert_eq!(holder.take_all(), vec![LeaseReturn { lease: 6, unused: 10 }], "11 units, 1 spent");
    }
}
