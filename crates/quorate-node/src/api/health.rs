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

/// Reports SERVING while this node knows a leader and has a policy set, NOT_SERVING otherwise; runs until
/// aborted.
pub(crate) async fn report_health(reporter: HealthReporter, raft: Raft, state_machine: StateMachineStore) {
    let mut reported = None;
    loop {
        let has_leader = raft.metrics().borrow().current_leader.is_some();
        let ready = has_leader && state_machine.replica().policies.is_some();
        let status = if ready { ServingStatus::Serving } else { ServingStatus::NotServing };
        if reported != Some(status) {
            set_all(&reporter, status).await;
            tracing::info!(node = raft.metrics().borrow().id, %status, "health");
            reported = Some(status);
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}
