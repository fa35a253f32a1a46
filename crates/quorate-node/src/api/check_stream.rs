//! `CheckStream`: a bidirectional stream of check messages, each decided through the check pipeline as a batch
//! and answered as soon as it is decided.
//!
//! One reader task per stream takes messages in order; each message is decided on its own task, so answers may
//! overtake each other. Back-pressure: a stream holds at most `max_stream_checks` checks in flight (a semaphore
//! of that many permits, one per check); the reader waits for permits before it reads on, so a client sending
//! faster than the cluster decides is slowed by HTTP/2 flow control, and a client that stops reading answers
//! stops only itself. A broken stream fails only its own checks: their answers have nowhere to go.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::Stream;
use quorate_proto::v1::{CheckStreamRequest, CheckStreamResponse, ItemError};
use tokio::sync::{Semaphore, mpsc};
use tonic::{Status, Streaming};

use super::rate_limiter::decide_all;
use super::status;
use crate::check::Pipeline;
use crate::error::CheckError;

/// Answers buffered per stream before the deciding tasks wait for the client to read.
const ANSWER_BUFFER: usize = 64;

/// The answers of one stream, as tonic sends them.
pub(crate) type AnswerStream = Pin<Box<dyn Stream<Item = Result<CheckStreamResponse, Status>> + Send>>;

/// Starts deciding the messages of `inbound` and returns the stream of answers.
pub(crate) fn serve(
    pipeline: Pipeline,
    inbound: Streaming<CheckStreamRequest>,
    max_items: usize,
    max_in_flight: usize,
) -> AnswerStream {
    let (answers, outbound) = mpsc::channel(ANSWER_BUFFER);
    tokio::spawn(read(pipeline, inbound, answers, max_items, max_in_flight));
    Box::pin(futures::stream::unfold(outbound, |mut outbound| async move {
        outbound.recv().await.map(|answer| (answer, outbound))
    }))
}

/// Reads messages in order and decides each on its own task, within the stream's in-flight budget.
async fn read(
    pipeline: Pipeline,
    mut inbound: Streaming<CheckStreamRequest>,
    answers: mpsc::Sender<Result<CheckStreamResponse, Status>>,
    max_items: usize,
    max_in_flight: usize,
) {
    let budget = Arc::new(Semaphore::new(max_in_flight));
    let in_flight: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    loop {
        let message = match inbound.message().await {
            Ok(Some(message)) => message,
            Ok(None) => return,
            // A malformed or oversized message, or a broken connection: the stream ends with that status.
            Err(status) => {
                let status = crate::api::wire_errors::rewrite(&status).unwrap_or(status);
                let _ = answers.send(Err(status)).await;
                return;
            }
        };
        let CheckStreamRequest { id, checks } = message;
        if checks.len() > max_items {
            let error = refused(format!("a message carries at most {max_items} checks, this one has {}", checks.len()));
            if answers.send(Ok(CheckStreamResponse { id, results: Vec::new(), error: Some(error) })).await.is_err() {
                return;
            }
            continue;
        }
        if !lock(&in_flight).insert(id) {
            let error = refused(format!("message id {id} is already in flight on this stream"));
            if answers.send(Ok(CheckStreamResponse { id, results: Vec::new(), error: Some(error) })).await.is_err() {
                return;
            }
            continue;
        }
        // Wait for room before reading on: the back-pressure. `checks.len() <= max_items <= max_in_flight`.
        let permits = u32::try_from(checks.len().max(1)).unwrap_or(u32::MAX);
        let Ok(permit) = budget.clone().acquire_many_owned(permits).await else { return };
        let (pipeline, answers, in_flight) = (pipeline.clone(), answers.clone(), in_flight.clone());
        tokio::spawn(async move {
            let results = decide_all(&pipeline, checks).await;
            // The client may be gone: its checks are decided all the same, the answer has nowhere to go.
            let _ = answers.send(Ok(CheckStreamResponse { id, results, error: None })).await;
            lock(&in_flight).remove(&id);
            drop(permit);
        });
    }
}

fn refused(message: String) -> ItemError {
    status::item_error(&CheckError::Invalid(quorate_core::CoreError::InvalidRequest(message)))
}

fn lock(ids: &Mutex<BTreeSet<u64>>) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
    ids.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
