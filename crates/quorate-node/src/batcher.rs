//! Group commit at the leader: checks queue up while one batch is being replicated, then go out as one entry.
//!
//! openraft 0.9 turns every `client_write` into its own log entry and fsync (stack-notes §4, pitfall 1), so the
//! application batches. There is no timer: an idle cluster sends a lone check at once, and under load the queue
//! fills while the previous batch is in flight, so batches grow with the load. Each batch carries the leader's
//! clock reading, the cluster time every replica applies it at. Callers get their outcome once the entry is
//! committed and applied (design.md invariant 2).

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::clock::Clock;
use crate::command::{Command, CommandOutcome, Request, Response};
use crate::raft::{NodeId, Raft};

/// How many callers may wait in the queue before `submit` itself waits (back-pressure).
const QUEUE_DEPTH: usize = 16_384;

/// Why a submitted command got no outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Returned when this node is not (or no longer) the leader.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// Returned when the batch was not committed within the write timeout (no quorum reachable).
    #[error("the batch was not committed within {0:?}: no quorum reachable")]
    Timeout(Duration),
    /// Returned when Raft failed otherwise.
    #[error("raft: {0}")]
    Raft(String),
    /// Returned when the batcher has stopped (the node is shutting down).
    #[error("the node is shutting down")]
    Stopped,
}

struct Pending {
    command: Command,
    reply: oneshot::Sender<Result<CommandOutcome, BatchError>>,
}

/// How the batcher seals and pipelines entries.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most commands sealed into one entry.
    pub max_batch: usize,
    /// Most entries proposed and not yet committed at once: more overlaps replication round trips, fewer makes
    /// larger batches.
    pub max_inflight: usize,
    /// How long an entry may take to commit before its callers get [`BatchError::Timeout`].
    pub write_timeout: Duration,
}

/// The handle callers submit commands through; cheap to clone.
#[derive(Debug, Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("command", &self.command).finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the batching task for `raft`.
    pub fn spawn(raft: Raft, clock: Arc<dyn Clock>, limits: BatchLimits) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH);
        let limits = BatchLimits {
            max_batch: limits.max_batch.max(1),
            max_inflight: limits.max_inflight.max(1),
            write_timeout: limits.write_timeout,
        };
        tokio::spawn(run(raft, clock, receiver, limits));
        Batcher { queue }
    }

    /// Queues `command` for the next batch and waits for its outcome.
    ///
    /// # Errors
    ///
    /// [`BatchError`] if the batch could not be committed; the command may or may not have been applied when the
    /// error is a timeout (it is never applied twice).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future gives up the wait; the command may still be applied if its batch was already sealed.
    pub async fn submit(&self, command: Command) -> Result<CommandOutcome, BatchError> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send(Pending { command, reply }).await.map_err(|_| BatchError::Stopped)?;
        outcome.await.map_err(|_| BatchError::Stopped)?
    }
}

async fn run(raft: Raft, clock: Arc<dyn Clock>, mut receiver: mpsc::Receiver<Pending>, limits: BatchLimits) {
    let slots = Arc::new(Semaphore::new(limits.max_inflight));
    while let Some(first) = receiver.recv().await {
        // Wait for an in-flight slot before sealing: the queue keeps filling meanwhile, so batches grow with load.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut commands = Vec::with_capacity(limits.max_batch.min(64));
        let mut replies = Vec::with_capacity(commands.capacity());
        let mut next = Some(first);
        while let Some(pending) = next.take() {
            // Callers that already gave up (deadline passed) are not worth a slot in the log.
            if !pending.reply.is_closed() {
                commands.push(pending.command);
                replies.push(pending.reply);
            }
            if commands.len() < limits.max_batch {
                next = receiver.try_recv().ok();
            }
        }
        if commands.is_empty() {
            continue;
        }
        let request = Request::Batch { time: clock.now(), commands };
        let raft = raft.clone();
        tokio::spawn(async move {
            let outcomes = write(&raft, request, replies.len(), limits.write_timeout).await;
            drop(slot);
            match outcomes {
                Ok(outcomes) => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, callers = replies.len(), "batch failed");
                    for reply in replies {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
        });
    }
}

/// Proposes one batch and waits for its outcomes.
async fn write(
    raft: &Raft,
    request: Request,
    expected: usize,
    write_timeout: Duration,
) -> Result<Vec<CommandOutcome>, BatchError> {
    match tokio::time::timeout(write_timeout, raft.client_write(request)).await {
        Err(_) => Err(BatchError::Timeout(write_timeout)),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
            Err(BatchError::NotLeader { leader: forward.leader_id })
        }
        Ok(Err(e)) => Err(BatchError::Raft(e.to_string())),
        Ok(Ok(written)) => match written.data {
            Response::Batch(outcomes) if outcomes.len() == expected => Ok(outcomes),
            other => Err(BatchError::Raft(format!("unexpected response to a batch: {other:?}"))),
        },
    }
}
