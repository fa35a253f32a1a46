//! Group commit at the leader: commands queue up while one batch is being replicated, then go out as one entry.
//!
//! openraft 0.9 turns every `client_write` into its own log entry and fsync (stack-notes §4, pitfall 1), so the
//! application batches. There is no timer: an idle cluster sends a lone check at once, and under load the queue
//! fills while the previous batch is in flight, so batches grow with the load. Each batch carries the leader's
//! clock reading, the cluster time every replica applies it at. Callers get their outcomes once the entry is
//! committed and applied (design.md invariant 2).

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, Fatal, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::clock::Clock;
use crate::command::{Command, CommandOutcome, EntryResponse, LogEntry};
use crate::error::CheckError;
use crate::metrics::NodeMetrics;
use crate::raft::Raft;

/// How many submissions may wait in the queue before `submit` itself waits (back-pressure).
const QUEUE_DEPTH: usize = 16_384;

/// One caller's commands and where their outcomes go.
struct Pending {
    commands: Vec<Command>,
    reply: oneshot::Sender<Result<Vec<CommandOutcome>, CheckError>>,
}

/// How the batcher seals and pipelines entries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    /// Most commands sealed into one entry; a single larger submission still goes out whole, alone.
    pub(crate) max_batch: usize,
    /// Most entries proposed and not yet committed at once: more overlaps replication round trips, fewer makes
    /// larger batches.
    pub(crate) max_inflight: usize,
    /// How long an entry may take to commit before its callers get [`CheckError::NotCommitted`].
    pub(crate) write_timeout: Duration,
}

/// The handle callers submit commands through; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    queue: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("commands", &self.commands.len()).finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the batching task for `raft`.
    pub(crate) fn spawn(raft: Raft, clock: Arc<dyn Clock>, limits: BatchLimits, metrics: Arc<NodeMetrics>) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH);
        let limits = BatchLimits {
            max_batch: limits.max_batch.max(1),
            max_inflight: limits.max_inflight.max(1),
            write_timeout: limits.write_timeout,
        };
        tokio::spawn(run(raft, clock, receiver, limits, metrics));
        Batcher { queue }
    }

    /// Queues `commands` for the next batch (they stay together, in order) and waits for their outcomes.
    ///
    /// # Errors
    ///
    /// [`CheckError::NotLeader`], [`CheckError::NotCommitted`], [`CheckError::Fatal`] or [`CheckError::Stopped`]
    /// if the batch could not be committed; after a timeout the commands may or may not have been applied (never
    /// twice).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future gives up the wait; the commands may still be applied if their batch was already sealed.
    pub(crate) async fn submit(&self, commands: Vec<Command>) -> Result<Vec<CommandOutcome>, CheckError> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send(Pending { commands, reply }).await.map_err(|_| CheckError::Stopped)?;
        outcome.await.map_err(|_| CheckError::Stopped)?
    }
}

async fn run(
    raft: Raft,
    clock: Arc<dyn Clock>,
    mut receiver: mpsc::Receiver<Pending>,
    limits: BatchLimits,
    metrics: Arc<NodeMetrics>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_inflight));
    while let Some(first) = receiver.recv().await {
        // Wait for an in-flight slot before sealing: the queue keeps filling meanwhile, so batches grow with load.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut commands = Vec::with_capacity(limits.max_batch.min(64));
        let mut replies = Vec::new();
        let mut next = Some(first);
        while let Some(pending) = next.take() {
            // Callers that already gave up (deadline passed) are not worth a slot in the log.
            if !pending.reply.is_closed() {
                replies.push((pending.reply, pending.commands.len()));
                commands.extend(pending.commands);
            }
            if commands.len() < limits.max_batch {
                next = receiver.try_recv().ok();
            }
        }
        if commands.is_empty() {
            continue;
        }
        metrics.batch_checks.observe(commands.len() as f64);
        metrics.entries_proposed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let entry = LogEntry::Batch { time: clock.now(), commands };
        let raft = raft.clone();
        tokio::spawn(async move {
            let outcomes = write(&raft, entry, limits.write_timeout).await;
            drop(slot);
            match outcomes {
                Ok(outcomes) => {
                    let mut outcomes = outcomes.into_iter();
                    for (reply, count) in replies {
                        let _ = reply.send(Ok(outcomes.by_ref().take(count).collect()));
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, callers = replies.len(), "batch failed");
                    for (reply, _) in replies {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
        });
    }
}

/// Proposes one batch and waits for its outcomes.
async fn write(raft: &Raft, entry: LogEntry, write_timeout: Duration) -> Result<Vec<CommandOutcome>, CheckError> {
    let expected = match &entry {
        LogEntry::Batch { commands, .. } => commands.len(),
        _ => 0,
    };
    match tokio::time::timeout(write_timeout, raft.client_write(entry)).await {
        Err(_) => Err(CheckError::NotCommitted(write_timeout)),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
            Err(CheckError::NotLeader { leader: forward.leader_id })
        }
        // Only membership writes fail this way, never a batch; treat it as "not written here".
        Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(_)))) => {
            Err(CheckError::NotLeader { leader: None })
        }
        Ok(Err(RaftError::Fatal(Fatal::Stopped))) => Err(CheckError::Stopped),
        Ok(Err(RaftError::Fatal(fatal))) => Err(CheckError::Fatal(Box::new(fatal))),
        Ok(Ok(written)) => match written.data {
            EntryResponse::Batch(outcomes) if outcomes.len() == expected => Ok(outcomes),
            other => Err(CheckError::Internal(format!("a batch of {expected} was answered with {other:?}"))),
        },
    }
}
