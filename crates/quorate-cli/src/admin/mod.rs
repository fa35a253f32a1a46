//! The operator commands on a node's admin listener: `members`, `policies`, `snapshot`, `leader`.
//!
//! Each talks to one node's Admin service (default `127.0.0.1:7301`, where `quorate dev` and the sample configs
//! put node 1's admin listener), with the token and TLS files of [`CredentialArgs`]; writes go to the leader
//! through that node. Output is a table, or JSON with `--json`; errors print the gRPC code and the node's
//! message (`PERMISSION_DENIED: token "api-servers" lacks the admin role ...`).

pub mod leader;
pub mod members;
pub mod policies;
pub mod snapshot;

use std::time::Duration;

use anyhow::Context as _;
use quorate_client::NodeChannel;
use quorate_client::endpoint::{connect, normalize_for};
use quorate_proto::v1::admin_client::AdminClient;

use crate::credentials::CredentialArgs;
use crate::grpc::status_line;

/// Where and how to reach a node's admin listener.
#[derive(clap::Args, Debug, Clone)]
pub struct AdminTarget {
    /// The node's admin listener, as host:port (https:// is implied by --ca).
    #[arg(long, global = true, default_value = "127.0.0.1:7301", value_name = "ADDR")]
    pub endpoint: String,
    /// Prints JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Milliseconds allowed for connecting and for each answer (membership changes wait for catch-up).
    #[arg(long, global = true, default_value_t = 30_000, value_name = "MS")]
    pub timeout_ms: u64,
    /// Token and TLS files (the admin role is needed once tokens are configured).
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

impl AdminTarget {
    /// An Admin client connected to the endpoint.
    ///
    /// # Errors
    ///
    /// Bad credentials files, an invalid endpoint, or no connection within the timeout.
    pub async fn connect(&self) -> anyhow::Result<AdminClient<NodeChannel>> {
        let credentials = self.credentials.credentials()?;
        let url = normalize_for(&self.endpoint, credentials.uses_tls())?;
        let timeout = Duration::from_millis(self.timeout_ms);
        let channel = connect(&url, &credentials, timeout.min(Duration::from_secs(5)), Some(timeout))
            .await
            .with_context(|| format!("connecting to the admin listener at {url}"))?;
        Ok(AdminClient::new(channel))
    }
}

/// A failed admin call as an error that says which call and what the node answered.
pub(crate) fn failed(call: &str, status: &tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{call}: {}", status_line(status))
}
