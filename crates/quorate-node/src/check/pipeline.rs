//! [`Pipeline`]: plan, commit strictly on the leader, or decide degraded. See the [module docs](super).

use std::sync::Arc;
use std::time::Duration;

use quorate_core::Nanos;
use quorate_core::plan::{Check, Plan, Refund};
use quorate_core::policy::PolicySet;
use tokio::time::Instant;

use super::Verdict;
use super::degraded::{DegradedContext, DegradedLimiter};
use super::local_journal::LocalCharge;
use crate::batcher::Batcher;
use crate::clock::Clock;
use crate::cluster::{Cluster, PeerError, Route};
use crate::command::{Applied, Command, CommandOutcome, HolderId, LeaseAsk, LeaseReturn};
use crate::error::CheckError;
use crate::leases::LeaseHolder;
use crate::metrics::NodeMetrics;
use crate::raft::state_machine::StateMachineStore;

/// A check as the pipeline takes it: the validated check, and whose leases it may use or ask for.
#[derive(Debug, Clone)]
pub(crate) struct CheckCall {
    /// The check.
    pub(crate) check: Check,
    /// `Some` if a client holds leases and asks for them with this check: it is then never decided from this
    /// node's leases, and the grants go back to the client. `None`: this node's leases decide and are asked for.
    pub(crate) client_lease: Option<ClientLease>,
}

impl CheckCall {
    /// A check decided with this node's leases.
    pub(crate) fn node(check: Check) -> Self {
        CheckCall { check, client_lease: None }
    }
}

/// The leases a client asks for with a check: up to `want` units of each lease-enabled limit, after giving back
/// `returns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientLease {
    /// The client's holder id.
    pub(crate) holder: HolderId,
    /// Units wanted per limit.
    pub(crate) want: u64,
    /// Its leases of this check's limits that it gives back first.
    pub(crate) returns: Vec<LeaseReturn>,
}

/// Pause before trying again after the leader moved or could not be reached.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// How often to look whether this node has applied a newer policy set, after a plan went stale.
const POLICY_POLL: Duration = Duration::from_millis(10);

/// What a [`Pipeline`] is built from.
pub(crate) struct PipelineParts {
    /// The cluster as this node sees it.
    pub(crate) cluster: Cluster,
    /// The leader-side batcher (used when this node leads).
    pub(crate) batcher: Batcher,
    /// The local state machine: the policy set and multiplier in force here.
    pub(crate) state_machine: StateMachineStore,
    /// How long a request may wait for a leader and a commit.
    pub(crate) deadline: Duration,
    /// The node's clock, for degraded decisions.
    pub(crate) clock: Arc<dyn Clock>,
    /// The limiter for `on_no_quorum` modes.
    pub(crate) degraded: DegradedLimiter,
    /// This node's leases.
    pub(crate) leases: LeaseHolder,
    /// How recently a leading node must have heard from a quorum to count as a working leader.
    pub(crate) quorum_ack_within: Duration,
    /// Where the decisions and their latencies are counted.
    pub(crate) metrics: Arc<NodeMetrics>,
}

/// The one path of every check and refund; cheap to clone.
#[derive(Clone)]
pub(crate) struct Pipeline {
    inner: Arc<PipelineParts>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("deadline", &self.inner.deadline).finish_non_exhaustive()
    }
}

/// How one attempt to commit failed.
pub(super) enum Attempt {
    /// Nothing was committed and a new attempt may succeed: the leader moved, or could not be reached.
    Retry,
    /// The attempt failed for good (the error says whether for want of a quorum).
    Failed(CheckError),
}

impl Pipeline {
    /// Builds the pipeline from its parts.
    pub(crate) fn new(parts: PipelineParts) -> Self {
        Pipeline { inner: Arc::new(parts) }
    }

    /// The policy set this node has applied.
    ///
    /// # Errors
    ///
    /// [`CheckError::NoPolicies`] until the first leader has installed one.
    pub(crate) fn policies(&self) -> Result<Arc<PolicySet>, CheckError> {
        self.inner.state_machine.policies().ok_or(CheckError::NoPolicies)
    }

    /// Decides one check, with this node's leases.
    ///
    /// # Errors
    ///
    /// As [`Pipeline::check_many`] for its one check.
    pub(crate) async fn check(&self, check: Check) -> Result<Verdict, CheckError> {
        let mut verdicts = self.check_many(vec![CheckCall::node(check)]).await;
        verdicts.pop().unwrap_or_else(|| Err(CheckError::Internal("a check got no verdict".to_owned())))
    }

    /// Decides several checks, each atomically on its own, committed together when they fit one batch.
    ///
    /// Every check is planned. One that this node's leases cover is decided here, at once. The others are
    /// committed strictly on the leader, in one batch or one peer call, asking for leases for hot keys (or for the
    /// client that holds them). Checks planned against a policy set that changed before they were applied are
    /// planned again. If no leader commits them within the deadline, each is decided by its policies'
    /// `on_no_quorum` modes.
    ///
    /// Each result is the check's [`Verdict`] or its own [`CheckError`], in the order of `calls`.
    pub(crate) async fn check_many(&self, calls: Vec<CheckCall>) -> Vec<Result<Verdict, CheckError>> {
        let started = Instant::now();
        let results = self.decide_many(calls).await;
        self.inner.metrics.record_checks(&results, started.elapsed(), self.inner.cluster.is_leader());
        results
    }

    /// [`Pipeline::check_many`] without the counting.
    async fn decide_many(&self, calls: Vec<CheckCall>) -> Vec<Result<Verdict, CheckError>> {
        let started = Instant::now();
        let deadline = started + self.inner.deadline;
        let holder = &self.inner.leases;
        let mut results: Vec<Option<Result<Verdict, CheckError>>> = calls.iter().map(|_| None).collect();
        loop {
            let policies = match self.policies() {
                Ok(policies) => policies,
                Err(error) => return finish(results, &error),
            };
            let now = Instant::now();
            let mut planned = Vec::new();
            let mut commands = Vec::new();
            for (i, call) in calls.iter().enumerate() {
                if results[i].is_some() {
                    continue;
                }
                let plan = match Plan::check(&policies, &call.check) {
                    Ok(plan) => plan,
                    Err(error) => {
                        results[i] = Some(Err(error.into()));
                        continue;
                    }
                };
                let lease = match &call.client_lease {
                    Some(ClientLease { holder, want, returns }) => Some(LeaseAsk {
                        holder: *holder,
                        want: vec![*want; plan.limits.len()],
                        returns: returns.clone(),
                    }),
                    None if call.check.peek => None,
                    None => {
                        if let Some(outcome) = holder.try_local(&policies, &plan, now) {
                            results[i] = Some(Ok(Verdict::leased(outcome, plan, policies.clone())));
                            continue;
                        }
                        holder.ask(&policies, &plan, now)
                    }
                };
                commands.push(Command::Check { plan: plan.clone(), peek: call.check.peek, lease });
                planned.push((i, plan));
            }
            if planned.is_empty() {
                return finish(results, &CheckError::Internal("no check left to decide".to_owned()));
            }
            // A node cut off for longer than the grace period answers at once rather than making every caller
            // wait out the deadline for a leader it will not find; it is healthy again as soon as a leader
            // reaches it.
            if self.cut_off() {
                let error = CheckError::NoLeader { waited: self.inner.degraded.grace() };
                self.decide_all_degraded(&policies, planned, &calls, &mut results, &error).await;
                return finish(results, &error);
            }
            match self.commit(commands, deadline).await {
                Ok(outcomes) => {
                    let mut stale = false;
                    for ((i, plan), outcome) in planned.into_iter().zip(outcomes) {
                        results[i] = match outcome {
                            Ok(Applied::Checked { outcome, grants }) => {
                                // The node keeps its own leases; a client's go back to it with the decision.
                                let grants = match calls[i].client_lease {
                                    Some(_) => grants,
                                    None => {
                                        holder.adopt(&plan, &grants, now);
                                        Vec::new()
                                    }
                                };
                                Some(Ok(Verdict::strict(outcome, plan, policies.clone(), grants)))
                            }
                            Ok(Applied::Refunded | Applied::Returned) => {
                                Some(Err(CheckError::Internal("a check was answered as something else".to_owned())))
                            }
                            Err(CheckError::PolicyChanged { .. }) if Instant::now() < deadline => {
                                stale = true;
                                None
                            }
                            Err(error) => Some(Err(error)),
                        };
                    }
                    if stale {
                        self.wait_for_newer_policies(policies.version(), deadline).await;
                    }
                }
                Err(Attempt::Retry) => {
                    if let Err(error) = self.pause_before_retry(started, deadline).await {
                        self.decide_all_degraded(&policies, planned, &calls, &mut results, &error).await;
                    }
                }
                Err(Attempt::Failed(error)) => {
                    self.decide_all_degraded(&policies, planned, &calls, &mut results, &error).await
                }
            }
            if results.iter().all(Option::is_some) {
                return finish(results, &CheckError::Internal("unreachable".to_owned()));
            }
        }
    }

    /// Gives leases back: their unused units return into the buckets they were charged to.
    ///
    /// # Errors
    ///
    /// [`CheckError`] if no leader applied the return within the deadline (the units then stay charged, which
    /// only under-admits).
    pub(crate) async fn return_leases(&self, holder: HolderId, returns: Vec<LeaseReturn>) -> Result<(), CheckError> {
        let deadline = Instant::now() + self.inner.deadline;
        match self.commit(vec![Command::ReturnLeases { holder, returns }], deadline).await {
            Ok(mut outcomes) => match outcomes.pop() {
                Some(Ok(_)) => Ok(()),
                Some(Err(error)) => Err(error),
                None => Err(CheckError::Internal("a return got no outcome".to_owned())),
            },
            Err(Attempt::Retry) => Err(CheckError::NoLeader { waited: self.inner.deadline }),
            Err(Attempt::Failed(error)) => Err(error),
        }
    }

    /// How long a request may wait for a leader and a commit.
    pub(super) fn deadline(&self) -> Duration {
        self.inner.deadline
    }

    /// This node's leases.
    pub(crate) fn leases(&self) -> &LeaseHolder {
        &self.inner.leases
    }

    /// Gives a refund's units back, strictly: there is no degraded refund.
    ///
    /// # Errors
    ///
    /// [`CheckError`] if the refund is invalid or no leader applied it within the deadline (it may or may not
    /// have been applied then).
    pub(crate) async fn refund(&self, refund: &Refund) -> Result<(), CheckError> {
        let started = Instant::now();
        let deadline = started + self.inner.deadline;
        loop {
            let policies = self.policies()?;
            let plan = Plan::refund(&policies, refund)?;
            let mut outcomes = match self.commit(vec![Command::Refund { plan }], deadline).await {
                Ok(outcomes) => outcomes,
                Err(Attempt::Retry) => {
                    self.pause_before_retry(started, deadline).await?;
                    continue;
                }
                Err(Attempt::Failed(error)) => return Err(error),
            };
            match outcomes.pop() {
                Some(Ok(Applied::Refunded)) => return Ok(()),
                Some(Err(CheckError::PolicyChanged { .. })) if Instant::now() < deadline => {
                    self.wait_for_newer_policies(policies.version(), deadline).await;
                }
                Some(Err(error)) => return Err(error),
                Some(Ok(Applied::Checked { .. } | Applied::Returned)) | None => {
                    return Err(CheckError::Internal("a refund got no refund outcome".to_owned()));
                }
            }
        }
    }

    /// Commits commands a peer forwarded: here or not at all (a forwarded request is never forwarded again).
    ///
    /// # Errors
    ///
    /// [`CheckError::NotLeader`] if this node does not lead; otherwise as [`Batcher::submit`].
    pub(crate) async fn commit_forwarded(&self, commands: Vec<Command>) -> Result<Vec<CommandOutcome>, CheckError> {
        self.inner.batcher.submit(commands).await
    }

    /// Commits `commands` on the leader, once: the callers plan again and retry on [`Attempt::Retry`], so that
    /// the commands go to the leader by value, never copied.
    pub(super) async fn commit(
        &self,
        commands: Vec<Command>,
        deadline: Instant,
    ) -> Result<Vec<CommandOutcome>, Attempt> {
        match tokio::time::timeout_at(deadline, self.attempt(commands, deadline)).await {
            Ok(Ok(outcomes)) => {
                self.inner.degraded.observe_leader(true);
                Ok(outcomes)
            }
            Ok(Err(attempt)) => Err(attempt),
            Err(_) => Err(Attempt::Failed(CheckError::NotCommitted(self.inner.deadline))),
        }
    }

    /// Waits a moment before a retry; returns the error to give up with if the deadline leaves no time for one.
    async fn pause_before_retry(&self, started: Instant, deadline: Instant) -> Result<(), CheckError> {
        if Instant::now() + RETRY_PAUSE >= deadline {
            return Err(CheckError::NoLeader { waited: started.elapsed() });
        }
        tokio::time::sleep(RETRY_PAUSE).await;
        Ok(())
    }

    /// One attempt: through the batcher if this node leads, else in one peer call to the leader.
    async fn attempt(&self, commands: Vec<Command>, deadline: Instant) -> Result<Vec<CommandOutcome>, Attempt> {
        let retryable = |error: &CheckError| {
            matches!(error, CheckError::NotLeader { .. } | CheckError::Fatal(_) | CheckError::Stopped)
        };
        match self.inner.cluster.route(deadline).await.map_err(Attempt::Failed)? {
            Route::Local => match self.inner.batcher.submit(commands).await {
                Ok(outcomes) => Ok(outcomes),
                // Lost the lead between looking and proposing: nothing was written.
                Err(error @ CheckError::NotLeader { .. }) => {
                    tracing::debug!(%error, "not the leader any more; retrying");
                    Err(Attempt::Retry)
                }
                Err(error) => Err(Attempt::Failed(error)),
            },
            Route::Remote(peer) => match peer.commit(commands).await {
                Ok(Ok(outcomes)) => Ok(outcomes),
                // The peer is not (or no longer) a working leader: ask again who leads.
                Ok(Err(error)) if retryable(&error) => Err(Attempt::Retry),
                Ok(Err(error)) => Err(Attempt::Failed(error)),
                // Found by the crash_and_restart_leader simulation: a leader that dies mid-call must be retried,
                // not answered. The first call may have committed, so a retry may charge twice: that only ever
                // denies more.
                Err(error @ PeerError::Unreachable { .. }) => {
                    tracing::debug!(%error, "leader unreachable; retrying");
                    Err(Attempt::Retry)
                }
                Err(error @ PeerError::Refused { .. }) => Err(Attempt::Failed(error.into())),
            },
        }
    }

    /// Waits until this node has applied a policy set other than `version`, or until `deadline`.
    async fn wait_for_newer_policies(&self, version: u64, deadline: Instant) {
        while Instant::now() + POLICY_POLL < deadline {
            if self.policies().is_ok_and(|p| p.version() != version) {
                return;
            }
            tokio::time::sleep(POLICY_POLL).await;
        }
    }

    /// Answers every planned check after a failed commit: degraded if the failure was for want of a quorum,
    /// else with the error. Local-mode charges go to disk in one flush before any of them is answered; if that
    /// fails, the checks that charged are refused.
    async fn decide_all_degraded(
        &self,
        policies: &Arc<PolicySet>,
        planned: Vec<(usize, Plan)>,
        calls: &[CheckCall],
        results: &mut [Option<Result<Verdict, CheckError>>],
        error: &CheckError,
    ) {
        if !error.is_no_quorum() {
            for (i, _) in planned {
                results[i] = Some(Err(error.clone()));
            }
            return;
        }
        let now = self.inner.clock.now();
        let mut charges = Vec::new();
        let mut charged = Vec::new();
        for (i, plan) in planned {
            results[i] = Some(match self.decide_degraded(policies, plan, calls[i].check.peek, now) {
                Ok((verdict, spent)) => {
                    if !spent.is_empty() {
                        charges.extend(spent);
                        charged.push(i);
                    }
                    Ok(verdict)
                }
                Err(error) => Err(error),
            });
        }
        if let Err(error) = self.inner.degraded.record(&charges, now).await {
            tracing::error!(%error, "could not record local-mode decisions; refusing them");
            for i in charged {
                results[i] = Some(Err(CheckError::LocalJournal(error.to_string())));
            }
        }
    }

    /// Whether this node has been without a working leader for the whole grace period.
    fn cut_off(&self) -> bool {
        let healthy = self.inner.cluster.has_working_leader(self.inner.quorum_ack_within);
        self.inner.degraded.observe_leader(healthy)
    }

    /// Decides a planned check by its policies' `on_no_quorum` modes, at `now` on this node's clock; with the
    /// local charges it made.
    fn decide_degraded(
        &self,
        policies: &Arc<PolicySet>,
        plan: Plan,
        peek: bool,
        now: Nanos,
    ) -> Result<(Verdict, Vec<LocalCharge>), CheckError> {
        let local_allowed = self.cut_off();
        let context = DegradedContext {
            multiplier: self.inner.state_machine.replica().multiplier(),
            voters: self.inner.cluster.voters(),
            now,
        };
        tracing::debug!(local_allowed, "no quorum: degraded decision");
        let decided = self.inner.degraded.decide(policies, &plan, peek, context, local_allowed)?;
        Ok((Verdict::degraded(decided.outcome, plan, policies.clone()), decided.charges))
    }
}

/// Fills every undecided result with `error`.
fn finish(results: Vec<Option<Result<Verdict, CheckError>>>, error: &CheckError) -> Vec<Result<Verdict, CheckError>> {
    results.into_iter().map(|r| r.unwrap_or_else(|| Err(error.clone()))).collect()
}
