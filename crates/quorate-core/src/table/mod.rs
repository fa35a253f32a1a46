//! The keyed limiter table: state per (policy, key), checked atomically, evicted when idle, capped, snapshotted.
//!
//! This is what every replica's state machine holds. All of it is a function of the calls made on it, in order:
//!
//! - **Atomic multi-limit checks.** A check names one or more limits; either every limit is charged or none is
//!   (a denied request consumes nothing). The overall decision is the most restrictive one.
//! - **Monotone time.** The table keeps the highest `now` it has seen and uses `max(now, that)`, so time never runs
//!   backwards inside it even if a caller's clock does.
//! - **Eviction.** A key is never stored in its fresh state (a peek or a denied check does not insert it), and an
//!   incremental sweep removes keys once their state is indistinguishable from a fresh key's. Eviction therefore
//!   never changes a decision. The sweep is deterministic: keys wait in one-second expiry slots and each due slot is
//!   processed in key order, so replicas (and a replica restored from a snapshot) evict the same keys at the same
//!   calls.
//! - **Key cap.** At most [`TableConfig::max_keys`] keys are tracked. When a check needs a new key and the table is
//!   full, every due slot is swept first; if the table is still full the check fails with
//!   [`CoreError::TableFull`] and charges nothing. Keys already tracked keep working, so a flood of new keys cannot
//!   reset or bypass the limits of existing ones.
//! - **Snapshots** list every policy's keys in sorted order with their state and expiry slot: the same table gives
//!   the same snapshot bytes, and a restored table behaves exactly like the original.

mod arena;
#[cfg(test)]
mod fuzz;
mod keyed;
#[cfg(test)]
mod lease_tests;
mod request;
mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::algorithm::Algorithm;
use crate::{CoreError, Decision, FixedWindow, Limiter, Nanos, SlidingWindow, TokenBucket, WindowCounter};
use keyed::{KeyedTable, Lookup};

pub use request::{CheckOutcome, Grant, LimitDecision, LimitRef};
pub use snapshot::{TableSnapshot, TableSnapshotView};

/// Identifies a policy within a table; the policy model assigns ids deterministically.
pub type PolicyId = u32;

/// Default [`TableConfig::max_keys`]: one million keys, about 60 MB of token buckets.
pub const DEFAULT_MAX_KEYS: usize = 1_000_000;

/// Default [`TableConfig::sweep_per_op`]: keeps up with one new key per operation (each key is examined about
/// twice before it is evicted), while each examination costs about a cache miss. Callers with idle time (the
/// node, between batches) sweep more.
pub const DEFAULT_SWEEP_PER_OP: usize = 2;

/// Settings of a [`LimiterTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableConfig {
    /// The most keys tracked at once, across all policies.
    pub max_keys: usize,
    /// How many due keys each check, peek or refund examines for eviction.
    pub sweep_per_op: usize,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig { max_keys: DEFAULT_MAX_KEYS, sweep_per_op: DEFAULT_SWEEP_PER_OP }
    }
}

/// Per-policy table, typed by algorithm.
#[derive(Debug, Clone)]
enum PolicyTable {
    TokenBucket(KeyedTable<TokenBucket>),
    SlidingWindow(KeyedTable<SlidingWindow>),
    WindowCounter(KeyedTable<WindowCounter>),
    FixedWindow(KeyedTable<FixedWindow>),
}

/// Runs `$body` with `$table` bound to the typed table and `$params` to the matching parameters.
macro_rules! with_table {
    ($policy_table:expr, $limiter:expr, |$table:ident, $params:ident| $body:expr) => {
        match ($policy_table, $limiter) {
            (PolicyTable::TokenBucket($table), Limiter::TokenBucket($params)) => $body,
            (PolicyTable::SlidingWindow($table), Limiter::SlidingWindow($params)) => $body,
            (PolicyTable::WindowCounter($table), Limiter::WindowCounter($params)) => $body,
            (PolicyTable::FixedWindow($table), Limiter::FixedWindow($params)) => $body,
            _ => unreachable!("policy tables are replaced when their algorithm changes"),
        }
    };
}

/// Runs `$body` with `$table` bound to whichever typed table this is.
macro_rules! any_table {
    ($policy_table:expr, |$table:ident| $body:expr) => {
        match $policy_table {
            PolicyTable::TokenBucket($table) => $body,
            PolicyTable::SlidingWindow($table) => $body,
            PolicyTable::WindowCounter($table) => $body,
            PolicyTable::FixedWindow($table) => $body,
        }
    };
}

impl PolicyTable {
    fn new(limiter: Limiter) -> Self {
        match limiter {
            Limiter::TokenBucket(p) => PolicyTable::TokenBucket(KeyedTable::new(p)),
            Limiter::SlidingWindow(p) => PolicyTable::SlidingWindow(KeyedTable::new(p)),
            Limiter::WindowCounter(p) => PolicyTable::WindowCounter(KeyedTable::new(p)),
            Limiter::FixedWindow(p) => PolicyTable::FixedWindow(KeyedTable::new(p)),
        }
    }

    fn same_algorithm(&self, limiter: &Limiter) -> bool {
        matches!(
            (self, limiter),
            (PolicyTable::TokenBucket(_), Limiter::TokenBucket(_))
                | (PolicyTable::SlidingWindow(_), Limiter::SlidingWindow(_))
                | (PolicyTable::WindowCounter(_), Limiter::WindowCounter(_))
                | (PolicyTable::FixedWindow(_), Limiter::FixedWindow(_))
        )
    }

    fn len(&self) -> usize {
        any_table!(self, |t| t.len())
    }
}

/// Whether an evaluation may charge the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Evaluate only; never insert or charge.
    Peek,
    /// Charge if allowed, inserting the key if needed.
    Commit,
}

/// Rate-limit state for every tracked (policy, key), deterministic and bounded.
///
/// See the [crate docs](crate) for an example; the guarantees are those of the keyed table: atomic multi-limit
/// checks, monotone time, eviction that never changes a decision, a key cap, canonical snapshots.
#[derive(Debug, Clone)]
pub struct LimiterTable {
    config: TableConfig,
    now: Nanos,
    len: usize,
    policies: BTreeMap<PolicyId, PolicyTable>,
}

impl LimiterTable {
    /// Creates an empty table.
    pub fn new(config: TableConfig) -> Self {
        LimiterTable { config, now: 0, len: 0, policies: BTreeMap::new() }
    }

    /// The table's settings.
    pub fn config(&self) -> TableConfig {
        self.config
    }

    /// The number of keys tracked, across all policies.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns true if no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The latest time the table has seen: every operation runs at `max(now, this)`.
    pub fn now(&self) -> Nanos {
        self.now
    }

    /// Checks one limit and charges `cost` if allowed: the fast path of [`LimiterTable::check`].
    ///
    /// # Errors
    ///
    /// As [`LimiterTable::check`].
    pub fn check_one(&mut self, now: Nanos, limit: &LimitRef<'_>, cost: u64) -> Result<Decision, CoreError> {
        validate(std::slice::from_ref(limit), Costs::Uniform(cost))?;
        let now = self.advance_clock(now);
        self.ensure_room(now, std::slice::from_ref(limit))?;
        let decision = self.evaluate(now, limit, cost, Mode::Commit);
        self.sweep(now, self.config.sweep_per_op);
        Ok(decision)
    }

    /// Checks `cost` against every limit; charges all of them if all allow it, none otherwise.
    ///
    /// # Errors
    ///
    /// - [`CoreError::ZeroCost`] if `cost` is 0; [`CoreError::NoLimits`] if `limits` is empty;
    /// - [`CoreError::DuplicateLimit`] if a (policy, key) appears twice;
    /// - [`CoreError::CostExceedsLimit`] if `cost` exceeds a limit's base limit, so it could never be allowed;
    /// - [`CoreError::TableFull`] if a new key would have to be tracked while the table is full.
    ///
    /// Nothing is charged when an error is returned.
    pub fn check(&mut self, now: Nanos, limits: &[LimitRef<'_>], cost: u64) -> Result<CheckOutcome, CoreError> {
        self.check_costs(now, limits, Costs::Uniform(cost))
    }

    /// Checks every limit with its own cost, `costs[i]` for `limits[i]`; charges all of them if all allow their
    /// cost, none otherwise. This is [`LimiterTable::check`] for requests that weigh differently per limit (Envoy's
    /// per-descriptor `hits_addend`).
    ///
    /// # Errors
    ///
    /// As [`LimiterTable::check`], each cost checked against its own limit, and [`CoreError::InvalidRequest`] if
    /// `costs` and `limits` differ in length. Nothing is charged when an error is returned.
    pub fn check_each(
        &mut self,
        now: Nanos,
        limits: &[LimitRef<'_>],
        costs: &[u64],
    ) -> Result<CheckOutcome, CoreError> {
        self.check_costs(now, limits, Costs::Each(costs))
    }

    fn check_costs(
        &mut self,
        now: Nanos,
        limits: &[LimitRef<'_>],
        costs: Costs<'_>,
    ) -> Result<CheckOutcome, CoreError> {
        validate(limits, costs)?;
        let now = self.advance_clock(now);
        let outcome = if let [limit] = limits {
            self.ensure_room(now, limits)?;
            let decision = self.evaluate(now, limit, costs.get(0), Mode::Commit);
            single_outcome(limit, decision)
        } else {
            let trial = self.evaluate_all(now, limits, costs, Mode::Peek);
            if trial.allowed {
                self.ensure_room(now, limits)?;
                self.evaluate_all(now, limits, costs, Mode::Commit)
            } else {
                trial
            }
        };
        self.sweep(now, self.config.sweep_per_op);
        Ok(outcome)
    }

    /// Evaluates `cost` against every limit without charging anything or tracking new keys.
    ///
    /// `remaining` is what is available now; `allowed` says whether a check of `cost` would pass.
    ///
    /// # Errors
    ///
    /// As [`LimiterTable::check`], except that a full table is no error.
    pub fn peek(&mut self, now: Nanos, limits: &[LimitRef<'_>], cost: u64) -> Result<CheckOutcome, CoreError> {
        self.peek_costs(now, limits, Costs::Uniform(cost))
    }

    /// Evaluates every limit with its own cost, `costs[i]` for `limits[i]`, without charging anything: the peek
    /// form of [`LimiterTable::check_each`].
    ///
    /// # Errors
    ///
    /// As [`LimiterTable::check_each`], except that a full table is no error.
    pub fn peek_each(&mut self, now: Nanos, limits: &[LimitRef<'_>], costs: &[u64]) -> Result<CheckOutcome, CoreError> {
        self.peek_costs(now, limits, Costs::Each(costs))
    }

    fn peek_costs(&mut self, now: Nanos, limits: &[LimitRef<'_>], costs: Costs<'_>) -> Result<CheckOutcome, CoreError> {
        validate(limits, costs)?;
        let now = self.advance_clock(now);
        let outcome = self.evaluate_all(now, limits, costs, Mode::Peek);
        self.sweep(now, self.config.sweep_per_op);
        Ok(outcome)
    }

    /// Gives `amount` units back to every limit, e.g. to settle a reservation that used less than it reserved.
    ///
    /// A limit never goes below its fresh state, and an untracked key is left untracked.
    ///
    /// # Errors
    ///
    /// [`CoreError::ZeroCost`], [`CoreError::NoLimits`] and [`CoreError::DuplicateLimit`] as for a check.
    pub fn refund(&mut self, now: Nanos, limits: &[LimitRef<'_>], amount: u64) -> Result<(), CoreError> {
        if amount == 0 {
            return Err(CoreError::ZeroCost);
        }
        validate_shape(limits)?;
        let now = self.advance_clock(now);
        for limit in limits {
            let Some(policy_table) = self.policies.get_mut(&limit.policy) else { continue };
            if !policy_table.same_algorithm(&limit.limiter) {
                continue;
            }
            with_table!(policy_table, limit.limiter, |table, params| {
                table.set_params(&params);
                table.refund(now, limit.key, amount, limit.effective_limit);
            });
        }
        self.sweep(now, self.config.sweep_per_op);
        Ok(())
    }

    /// Grants up to `want` units of `limit` at `now` for a lease, keeping `reserve` units free for strict checks:
    /// charges the units exactly as a check of that cost would, or grants nothing (and charges nothing) when
    /// fewer than `reserve + 1` units are free. See [`Grant`].
    ///
    /// # Errors
    ///
    /// [`CoreError::TableFull`] if the key is new and the table is full (nothing is charged).
    pub fn grant(&mut self, now: Nanos, limit: &LimitRef<'_>, want: u64, reserve: u64) -> Result<Grant, CoreError> {
        let now = self.advance_clock(now);
        let horizon = limit.limiter.charge_horizon(now);
        let free = self.evaluate(now, limit, 1, Mode::Peek);
        let cap = limit.effective_limit.clamp(1, limit.limiter.base_limit());
        let units = want.min(cap).min(free.remaining.saturating_sub(reserve));
        if !free.allowed || units == 0 {
            return Ok(Grant { units: 0, decision: free, horizon });
        }
        self.ensure_room(now, std::slice::from_ref(limit))?;
        let decision = self.evaluate(now, limit, units, Mode::Commit);
        // `remaining` promised room for `units`; an algorithm whose estimate disagrees grants nothing.
        let units = if decision.allowed { units } else { 0 };
        self.sweep(now, self.config.sweep_per_op);
        Ok(Grant { units, decision, horizon })
    }

    /// Gives back `amount` units of `limit` that a lease charged at `charged_at` and never used: out of the bucket
    /// or window they were charged to, so that a return never frees capacity the units were not counted in
    /// ([`Algorithm::return_units`]). An untracked key stays untracked.
    pub fn return_units(&mut self, now: Nanos, charged_at: Nanos, limit: &LimitRef<'_>, amount: u64) {
        let now = self.advance_clock(now);
        if amount == 0 {
            return;
        }
        if let Some(policy_table) = self.policies.get_mut(&limit.policy)
            && policy_table.same_algorithm(&limit.limiter)
        {
            with_table!(policy_table, limit.limiter, |table, params| {
                table.set_params(&params);
                table.return_units(charged_at, now, limit.key, amount, limit.effective_limit);
            });
        }
    }

    /// Evicts up to `budget` due keys whose state has become fresh; returns how many were evicted.
    ///
    /// Checks already sweep a little ([`TableConfig::sweep_per_op`]); a caller may sweep more when idle.
    pub fn sweep(&mut self, now: Nanos, budget: usize) -> usize {
        let now = self.advance_clock(now);
        let mut left = budget;
        let mut evicted = 0;
        for policy_table in self.policies.values_mut() {
            if left == 0 {
                break;
            }
            let (examined, removed) = any_table!(policy_table, |t| t.sweep(now, left));
            left -= examined;
            evicted += removed;
        }
        self.len -= evicted;
        evicted
    }

    /// Lists every tracked (policy, key) in sorted order, for status pages and debugging.
    pub fn keys(&self) -> Vec<(PolicyId, &str)> {
        let mut keys = Vec::with_capacity(self.len);
        for (&policy, table) in &self.policies {
            any_table!(table, |t| keys.extend(t.sorted_keys().into_iter().map(|k| (policy, k))));
        }
        keys
    }

    /// Forgets every key of `policy`, e.g. when the policy is deleted. Returns how many keys were dropped.
    pub fn remove_policy(&mut self, policy: PolicyId) -> usize {
        let removed = self.policies.remove(&policy).map_or(0, |t| t.len());
        self.len -= removed;
        removed
    }

    /// Renumbers policies after the policy set changed: `map` gives each old id its new id, or `None` if the policy
    /// is gone (its keys are dropped). Keys keep their state; a policy whose parameters changed adopts them on its
    /// next use (counts stay counts, a bucket's arrival time stays a time).
    pub fn remap_policies(&mut self, map: impl Fn(PolicyId) -> Option<PolicyId>) {
        let old = std::mem::take(&mut self.policies);
        self.len = 0;
        for (id, table) in old {
            if let Some(new_id) = map(id) {
                self.len += table.len();
                self.policies.insert(new_id, table);
            }
        }
    }

    /// Moves the table's time forward to `now` (never back) and returns the time in force, `max(now, before)`.
    ///
    /// Every operation does this itself; a replica calls it for log entries that carry time but no check, so
    /// that the table is the one place where cluster time is made monotone.
    pub fn advance_clock(&mut self, now: Nanos) -> Nanos {
        self.now = self.now.max(now);
        self.now
    }

    /// Makes sure every new key among `limits` fits under the key cap, sweeping all due keys if needed.
    fn ensure_room(&mut self, now: Nanos, limits: &[LimitRef<'_>]) -> Result<(), CoreError> {
        if self.len + limits.len() <= self.config.max_keys {
            return Ok(());
        }
        let new_keys = limits.iter().filter(|l| !self.contains(l)).count();
        if self.len + new_keys <= self.config.max_keys {
            return Ok(());
        }
        self.sweep(now, usize::MAX);
        if self.len + new_keys <= self.config.max_keys {
            Ok(())
        } else {
            Err(CoreError::TableFull { max_keys: self.config.max_keys })
        }
    }

    fn contains(&self, limit: &LimitRef<'_>) -> bool {
        self.policies
            .get(&limit.policy)
            .is_some_and(|t| t.same_algorithm(&limit.limiter) && any_table!(t, |t| t.contains(limit.key)))
    }

    fn evaluate_all(&mut self, now: Nanos, limits: &[LimitRef<'_>], costs: Costs<'_>, mode: Mode) -> CheckOutcome {
        let mut results = Vec::with_capacity(limits.len());
        let mut overall: Option<Decision> = None;
        for (i, limit) in limits.iter().enumerate() {
            let decision = self.evaluate(now, limit, costs.get(i), mode);
            if overall.is_none_or(|o| decision.is_more_restrictive_than(&o)) {
                overall = Some(decision);
            }
            results.push(LimitDecision { policy: limit.policy, base_limit: limit.limiter.base_limit(), decision });
        }
        // validate() guarantees at least one limit.
        let decision =
            overall.unwrap_or(Decision { allowed: false, limit: 0, remaining: 0, reset_after: 0, retry_after: 0 });
        CheckOutcome { allowed: results.iter().all(|r| r.decision.allowed), decision, limits: results }
    }

    /// Evaluates one limit; in [`Mode::Commit`] charges it if allowed. The caller has ensured room for new keys.
    fn evaluate(&mut self, now: Nanos, limit: &LimitRef<'_>, cost: u64, mode: Mode) -> Decision {
        let policy_table = self.policies.entry(limit.policy).or_insert_with(|| PolicyTable::new(limit.limiter));
        if !policy_table.same_algorithm(&limit.limiter) {
            // The policy switched algorithms: old state has no meaning under the new one.
            self.len -= policy_table.len();
            *policy_table = PolicyTable::new(limit.limiter);
        }
        let effective = limit.effective_limit.clamp(1, limit.limiter.base_limit());
        let (decision, inserted) = with_table!(policy_table, limit.limiter, |table, params| {
            table.set_params(&params);
            if cost > effective {
                // Possible only while an adaptive limit is tighter than the cost; the base limit admits it, so
                // the request is not an error, but it cannot pass before the limit relaxes.
                let mut decision = table.peek(now, limit.key, 1, effective);
                decision.allowed = false;
                decision.retry_after = decision.reset_after.max(params.period());
                (decision, false)
            } else {
                match mode {
                    Mode::Peek => (table.peek(now, limit.key, cost, effective), false),
                    Mode::Commit => match table.charge(now, limit.key, cost, effective) {
                        Lookup::Existing(decision) => (decision, false),
                        Lookup::Inserted(decision) => (decision, true),
                    },
                }
            }
        });
        if inserted {
            self.len += 1;
        }
        decision
    }
}

/// The cost of each limit in a check: one for all, or one each.
#[derive(Debug, Clone, Copy)]
enum Costs<'a> {
    Uniform(u64),
    Each(&'a [u64]),
}

impl Costs<'_> {
    /// The cost of limit `i`; `validate` has checked that there is one.
    fn get(self, i: usize) -> u64 {
        match self {
            Costs::Uniform(cost) => cost,
            Costs::Each(costs) => costs.get(i).copied().unwrap_or(0),
        }
    }
}

/// Checks the costs and the shape of a limit list.
fn validate(limits: &[LimitRef<'_>], costs: Costs<'_>) -> Result<(), CoreError> {
    if let Costs::Uniform(0) = costs {
        return Err(CoreError::ZeroCost);
    }
    if let Costs::Each(each) = costs
        && each.len() != limits.len()
    {
        return Err(CoreError::InvalidRequest(format!(
            "a check of {} limits was given {} costs",
            limits.len(),
            each.len()
        )));
    }
    validate_shape(limits)?;
    for (i, limit) in limits.iter().enumerate() {
        let cost = costs.get(i);
        if cost == 0 {
            return Err(CoreError::ZeroCost);
        }
        let base = limit.limiter.base_limit();
        if cost > base {
            return Err(CoreError::CostExceedsLimit { policy: format!("#{}", limit.policy), cost, limit: base });
        }
    }
    Ok(())
}

fn validate_shape(limits: &[LimitRef<'_>]) -> Result<(), CoreError> {
    if limits.is_empty() {
        return Err(CoreError::NoLimits);
    }
    for (i, a) in limits.iter().enumerate() {
        if limits[..i].iter().any(|b| a.policy == b.policy && a.key == b.key) {
            return Err(CoreError::DuplicateLimit { policy: format!("#{}", a.policy), key: a.key.to_owned() });
        }
    }
    Ok(())
}

fn single_outcome(limit: &LimitRef<'_>, decision: Decision) -> CheckOutcome {
    CheckOutcome {
        allowed: decision.allowed,
        decision,
        limits: vec![LimitDecision { policy: limit.policy, base_limit: limit.limiter.base_limit(), decision }],
    }
}
