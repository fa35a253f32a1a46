//! Giving leases back: the background task that returns what ran out or expired, and the return at shutdown.

use std::time::Duration;

use tokio::time::Instant;

use super::Pipeline;

/// How often the returns task gives back leases that ran out or expired.
const RETURN_INTERVAL: Duration = Duration::from_millis(100);

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
