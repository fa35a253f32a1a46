//! This node's leases in the background: the task that renews the ones due, the task that returns what ran out
//! or expired, and the return at shutdown.

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use super::Pipeline;
use super::pipeline::Attempt;
use crate::command::{Applied, Command};

/// How often the returns task gives back leases that ran out or expired.
const RETURN_INTERVAL: Duration = Duration::from_millis(100);

/// How often the renewal task sends the renewals queued meanwhile, together: one log entry for all the hot keys
/// of a node rather than one Raft round each (every round costs the cluster ~1.5 ms of CPU here), and short next
/// to the last third of a lease in which it is renewed.
const RENEW_INTERVAL: Duration = Duration::from_millis(20);

impl Pipeline {
    /// Gives back, every [`RETURN_INTERVAL`], the unused units of this node's leases that ran out or expired, in
    /// one return entry; runs until aborted. A failed return is dropped: its units stay charged, which only
    /// under-admits.
    pub(crate) async fn run_lease_returns(self) {
        let mut ticks = tokio::time::interval(RETURN_INTERVAL);
        loop {
            ticks.tick().await;
            let holder = self.leases();
            let returns = holder.take_returns(Instant::now());
            if returns.is_empty() {
                continue;
            }
            if let Err(error) = self.return_leases(holder.id(), returns).await {
                tracing::debug!(%error, "could not return leases; their unused units stay charged");
            }
        }
    }

    /// Sends, every [`RENEW_INTERVAL`], the renewals queued since (leases in their last third), as one call:
    /// strict checks of the plans that found them due, asking for the next leases; runs until aborted. One batch
    /// is in flight at a time. A renewal that fails leaves the old lease to run out, and its key goes strict.
    pub(crate) async fn run_lease_renewals(self) {
        let mut ticks = tokio::time::interval(RENEW_INTERVAL);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let renewals = self.leases().take_renewals();
            if !renewals.is_empty() {
                self.renew(renewals).await;
            }
        }
    }

    async fn renew(&self, renewals: Vec<crate::leases::Renewal>) {
        let holder = self.leases();
        let sent_at = Instant::now();
        let mut commands = Vec::with_capacity(renewals.len());
        let mut asked = Vec::with_capacity(renewals.len());
        for renewal in renewals {
            match holder.ask(&renewal.policies, &renewal.plan, sent_at) {
                Some(ask) => {
                    commands.push(Command::Check { plan: renewal.plan.clone(), peek: false, lease: Some(ask) });
                    asked.push(renewal);
                }
                // The key cooled down: no lease is worth asking for.
                None => holder.renewed(&renewal, None, sent_at),
            }
        }
        if commands.is_empty() {
            return;
        }
        let mut outcomes = match self.commit(commands, sent_at + self.deadline()).await {
            Ok(outcomes) => outcomes.into_iter(),
            Err(attempt) => {
                if let Attempt::Failed(error) = attempt {
                    tracing::debug!(%error, "lease renewals failed");
                }
                Vec::new().into_iter()
            }
        };
        for renewal in &asked {
            match outcomes.next() {
                Some(Ok(Applied::Checked { outcome, grants })) => {
                    holder.renewed(renewal, Some((outcome.allowed, &grants)), sent_at);
                }
                other => {
                    tracing::debug!(?other, "lease renewal not granted");
                    holder.renewed(renewal, None, sent_at);
                }
            }
        }
    }

    /// Gives back every lease this node holds (it is stopping), waiting at most the pipeline's deadline.
    pub(crate) async fn return_all_leases(&self) {
        let holder = self.leases();
        let returns = holder.take_all();
        if returns.is_empty() {
            return;
        }
        if let Err(error) = self.return_leases(holder.id(), returns).await {
            tracing::debug!(%error, "could not return leases at shutdown; their unused units stay charged");
        }
    }
}
