//! [`Forwarder`]: a follower's group commit towards the leader.
//!
//! Commands a follower's clients send while its previous `Forward` call is in flight queue up and go out
//! together in the next one, the way the leader's batcher groups them into one log entry: no timer, so a lone
//! check is forwarded at once, and under load one peer call carries many checks (and many stream messages).

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::peer::{PeerCall, PeerError};
use super::{Cluster, Peer};
use crate::command::{Command, CommandOutcome};
use crate::error::CheckError;

/// What one forwarded group of commands answers: the leader's outcomes, or why there are none.
pub(crate) type Forwarded = Result<Result<Vec<CommandOutcome>, CheckError>, PeerError>;

/// How many submissions may wait before `commit` itself waits (back-pressure).
const QUEUE_DEPTH: usize = 16_384;

/// How a forwarder groups commands.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForwardLimits {
    /// Most commands per call; a single larger submission still goes whole, alone.
    pub(crate) max_batch: usize,
    /// Most calls in flight to the leader at once.
    pub(crate) max_inflight: usize,
}

struct Pending {
    commands: Vec<Command>,
    reply: oneshot::Sender<Forwarded>,
}

/// The queue to one leader; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Forwarder {
    queue: mpsc::Sender<Pending>,
}

impl Forwarder {
    /// Starts forwarding to the leader at `addr`.
    pub(super) fn spawn(cluster: Cluster, addr: String, limits: ForwardLimits) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(cluster, addr, receiver, limits));
        Forwarder { queue }
    }

    /// Queues `commands` for the next call to the leader and waits for their outcomes.
    ///
    /// # Errors
    ///
    /// As the call: [`PeerError`] if the leader could not be reached or refused it, else the leader's answer.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future gives up the wait; the commands may still be committed if their call was sent.
    pub(crate) async fn commit(&self, commands: Vec<Command>, addr: &str) -> Forwarded {
        let (reply, answer) = oneshot::channel();
        let stopped = || PeerError::Unreachable { addr: addr.to_owned(), message: "forwarding stopped".to_owned() };
        self.queue.send(Pending { commands, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("commands", &self.commands.len()).finish_non_exhaustive()
    }
}

async fn run(cluster: Cluster, addr: String, mut receiver: mpsc::Receiver<Pending>, limits: ForwardLimits) {
    let slots = Arc::new(Semaphore::new(limits.max_inflight.max(1)));
    while let Some(first) = receiver.recv().await {
        // Wait for a call slot before taking more: the queue keeps filling meanwhile.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut commands = Vec::new();
        let mut replies = Vec::new();
        let mut next = Some(first);
        while let Some(pending) = next.take() {
            if !pending.reply.is_closed() {
                replies.push((pending.reply, pending.commands.len()));
                commands.extend(pending.commands);
            }
            if commands.len() < limits.max_batch.max(1) {
                next = receiver.try_recv().ok();
            }
        }
        if commands.is_empty() {
            continue;
        }
        let peer = match cluster.channel(&addr) {
            Some(channel) => Peer::new(cluster.clone(), addr.clone(), channel),
            None => {
                let error = PeerError::Refused { addr: addr.clone(), message: "not a valid address".to_owned() };
                for (reply, _) in replies {
                    let _ = reply.send(Err(error.clone()));
                }
                continue;
            }
        };
        tokio::spawn(async move {
            let answer: Forwarded = peer.call(&PeerCall::Commit(commands)).await;
            drop(slot);
            match answer {
                Ok(Ok(outcomes)) => {
                    let mut outcomes = outcomes.into_iter();
                    for (reply, count) in replies {
                        let _ = reply.send(Ok(Ok(outcomes.by_ref().take(count).collect())));
                    }
                }
                failed => {
                    for (reply, _) in replies {
                        let _ = reply.send(failed.clone());
                    }
                }
            }
        });
    }
}
