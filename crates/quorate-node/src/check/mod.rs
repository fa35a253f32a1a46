//! The check pipeline: one path for every check and refund, whichever API it came in through.
//!
//! `Check`, Envoy `ShouldRateLimit` and `Refund` are thin adapters: each turns its wire message into a validated
//! [`Check`](quorate_core::plan::Check) or [`Refund`](quorate_core::plan::Refund) and hands it to the
//! [`Pipeline`], which
//!
//! 1. plans it once against the policy set this node has applied ([`quorate_core::plan::Plan`]);
//! 2. commits the plan on the leader: through this node's batcher if it leads, else forwarded to the leader in one
//!    peer call; the answer comes once the entry is applied (design.md invariant 2);
//! 3. if no leader committed it within the deadline, decides it by each policy's `on_no_quorum` ([`degraded`]).
//!
//! The answer is a [`Verdict`], or a [`CheckError`](crate::error::CheckError) that `api/status.rs` turns into a
//! gRPC status.

pub(crate) mod degraded;
pub(crate) mod local_journal;
mod pipeline;
mod returns;
mod verdict;

pub(crate) use pipeline::{CheckCall, ClientLease, Pipeline, PipelineParts};
pub(crate) use verdict::Verdict;
