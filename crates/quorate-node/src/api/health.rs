//! gRPC health (`grpc.health.v1.Health`): a node is SERVING once it knows a leader and has applied a policy set.
//!
//! The overall status (`""`) and each public service's report the same thing, NOT_SERVING before. A background
//! task started by [`crate::node::start_node`] polls the node's Raft metrics and state machine; a load balancer
//! or Envoy's gRPC health check can then skip nodes that cannot answer yet.

use std::time::Duration;

use quorate_proto::envoy::service::ratelimit::v3::rate_limit_service_server::SERVICE_NAME as ENVOY;
use quorate_proto::v1::admin_server::SERVICE_NAME as ADMIN;
use quorate_proto::v1::rate_limiter_server::SERVICE_NAME as RATE_LIMITER;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::raft::Raft;
use crate::raft::state_machine::StateMachineStore;

/// How often the health task looks at the node's state.
pub(crate) const HEALTH_POLL: Duration = Duration::from_millis(100);

/// The services whose health is reported: the overall status `""` and the public APIs.
pub(crate) const REPORTED_SERVICES: [&str; 4] = ["", RATE_LIMITER, ADMIN, ENVOY];

/// Sets every reported service to `status`.
pub(crate) async fn set_all(reporter: &HealthReporter, status: ServingStatus) {
    for service in REPORTED_SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// Reports SERVING while this node's Raft runs, it knows a working leader (itself only if a quorum acked it
/// within `quorum_within`) and it has a policy set; NOT_SERVING otherwise, at once when Raft stops. Runs until
/// aborted.
pub(crate) async fn report_health(
    reporter: HealthReporter,
    raft: Raft,
    state_machine: StateMachineStore,
    quorum_within: Duration,
) {
    let mut reported = None;
    loop {
        let working = working_leader(&raft.metrics().borrow(), quorum_within);
        let ready = working && state_machine.policies().is_some();
        let status = if ready { ServingStatus::Serving } else { ServingStatus::NotServing };
        if reported != Some(status) {
            set_all(&reporter, status).await;
            tracing::info!(node = raft.metrics().borrow().id, %status, "health");
            reported = Some(status);
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}

/// Whether this node's Raft runs and knows a leader that works: another node, or itself with a quorum's ack
/// within `quorum_within` (a leader cut off from its followers keeps its role until it hears of a new term).
pub(crate) fn working_leader(metrics: &crate::raft::typ::RaftMetrics, quorum_within: Duration) -> bool {
    if metrics.running_state.is_err() || metrics.state == openraft::ServerState::Shutdown {
        return false;
    }
    match metrics.current_leader {
        Some(id) if id == metrics.id => {
            metrics.state == openraft::ServerState::Leader
                && metrics.millis_since_quorum_ack.is_some_and(|ms| u128::from(ms) < quorum_within.as_millis())
        }
        Some(_) => true,
        None => false,
    }
}
