//! [`Coalescer`]: concurrent checks of one client grouped into `CheckBatch` calls, with no timer.
//!
//! Checks queue while `max_inflight` batch calls are in flight and go out together in the next one, so a lone
//! check is sent at once and under load one call carries many; it is the client-side twin of a node's batcher.
//! A whole batch is sent and retried like one check ([`Caller::call`] with [`Call::Check`] if any of its checks
//! charges). Within an answered batch each check has its own decision or error; a check answered UNAVAILABLE
//! on its own (say, the policy set changed under it) is sent again alone, as a lone check would have been
//! retried.

use std::sync::Arc;

use quorate_proto::v1::check_result::Result as Outcome;
use quorate_proto::v1::rate_limiter_client::RateLimiterClient;
use quorate_proto::v1::{CheckBatchRequest, CheckRequest, CheckResponse};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::Code;

use crate::caller::{Call, Caller};
use crate::error::ClientError;

/// One queued check and where its answer goes.
struct Queued {
    request: CheckRequest,
    reply: oneshot::Sender<Result<CheckResponse, ClientError>>,
}

/// The queue of one client's checks; the task behind it ends when the client (and so the queue) is dropped.
#[derive(Debug)]
pub(crate) struct Coalescer {
    queue: mpsc::UnboundedSender<Queued>,
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queued").finish_non_exhaustive()
    }
}

impl Coalescer {
    /// Starts grouping checks sent through `caller`: at most `max_batch` per call, `max_inflight` calls at once.
    pub(crate) fn spawn(caller: Arc<Caller>, max_batch: usize, max_inflight: usize) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(caller, receiver, max_batch.max(1), max_inflight.max(1)));
        Coalescer { queue }
    }

    /// Queues `request` for the next batch and waits for its answer.
    ///
    /// # Errors
    ///
    /// As a lone check's call: [`ClientError`].
    pub(crate) async fn check(&self, request: CheckRequest, caller: &Caller) -> Result<CheckResponse, ClientError> {
        let (reply, answer) = oneshot::channel();
        let queued = Queued { request, reply };
        if let Err(mpsc::error::SendError(queued)) = self.queue.send(queued) {
            // The task is gone (its runtime shut down): send this one alone.
            return send_one(caller, queued.request).await;
        }
        match answer.await {
            Ok(answer) => answer,
            Err(_) => Err(ClientError::Rpc { code: Code::Cancelled, message: "the client's batching stopped".into() }),
        }
    }
}

async fn run(
    caller: Arc<Caller>,
    mut receiver: mpsc::UnboundedReceiver<Queued>,
    max_batch: usize,
    max_inflight: usize,
) {
    let slots = Arc::new(Semaphore::new(max_inflight));
    while let Some(first) = receiver.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match receiver.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        batch.retain(|queued| !queued.reply.is_closed());
        let caller = caller.clone();
        tokio::spawn(async move {
            send(&caller, batch).await;
            drop(slot);
        });
    }
}

/// Sends one batch and answers each of its checks.
async fn send(caller: &Arc<Caller>, mut batch: Vec<Queued>) {
    if batch.len() <= 1 {
        if let Some(queued) = batch.pop() {
            let _ = queued.reply.send(send_one(caller, queued.request).await);
        }
        return;
    }
    let checks: Vec<CheckRequest> = batch.iter().map(|queued| queued.request.clone()).collect();
    let kind = if checks.iter().all(|check| check.peek) { Call::Read } else { Call::Check };
    let answer = caller
        .call(kind, |channel| {
            let request = CheckBatchRequest { checks: checks.clone() };
            async move { RateLimiterClient::new(channel).check_batch(request).await.map(|r| r.into_inner().results) }
        })
        .await;
    let results = match answer {
        Ok(results) if results.len() == batch.len() => results,
        Ok(results) => {
            let error = ClientError::Rpc {
                code: Code::Internal,
                message: format!("a batch of {} checks was answered with {} results", batch.len(), results.len()),
            };
            for queued in batch {
                let _ = queued.reply.send(Err(error.clone()));
            }
            return;
        }
        Err(error) => {
            for queued in batch {
                let _ = queued.reply.send(Err(error.clone()));
            }
            return;
        }
    };
    for (queued, result) in batch.into_iter().zip(results) {
        let answer = match result.result {
            Some(Outcome::Decision(decision)) => Ok(decision),
            Some(Outcome::Error(error)) if error.code == Code::Unavailable as i32 => {
                // Retried alone, beside the others' answers rather than before them.
                let caller = caller.clone();
                tokio::spawn(async move {
                    let _ = queued.reply.send(send_one(&caller, queued.request).await);
                });
                continue;
            }
            Some(Outcome::Error(error)) => {
                Err(ClientError::from_status(&tonic::Status::new(error.code.into(), error.message)))
            }
            None => Err(ClientError::Rpc { code: Code::Internal, message: "a batch result was empty".into() }),
        };
        let _ = queued.reply.send(answer);
    }
}

/// Sends one check in its own `Check` call.
pub(crate) async fn send_one(caller: &Caller, request: CheckRequest) -> Result<CheckResponse, ClientError> {
    let kind = if request.peek { Call::Read } else { Call::Check };
    caller
        .call(kind, |channel| {
            let request = request.clone();
            async move { RateLimiterClient::new(channel).check(request).await.map(tonic::Response::into_inner) }
        })
        .await
}
