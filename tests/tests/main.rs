//! One test binary for this crate's integration tests: each module was its own binary, and every
//! binary links the whole node, so one link instead of several keeps CI's disk and build time small.

mod adaptive;
mod admin_cli;
mod bulk;
mod cluster;
mod degraded;
mod failover;
mod leases;
mod local_mode;
mod metrics;
mod partition;
mod rolling_restart;
mod security;
mod storage;
