//! `quorate serve --config node1.toml`: runs one node until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use quorate_node::{NodeConfig, SystemClock, start_node};

use crate::output;

/// Arguments of `quorate serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The node's TOML config file (see `deploy/node1.toml`).
    #[arg(long, short)]
    pub config: PathBuf,
}

/// Runs the node until a shutdown signal, then stops it cleanly.
///
/// # Errors
///
/// If the config is invalid or the node cannot start.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = NodeConfig::load(&args.config)?;
    let node = start_node(config, Arc::new(SystemClock::new())).await.context("starting the node")?;
    output::println(format_args!("node {} serving on {}", node.id(), node.local_addr()))?;
    tokio::select! {
        () = super::shutdown_signal() => {}
        fatal = node.fatal() => {
            // Raft stopped on its own (a disk that filled or failed, a log it cannot read): the node can decide
            // nothing and answers NOT_SERVING; exit so that systemd (Restart=on-failure) or an operator steps in.
            tracing::error!(error = %fatal, "Raft stopped: exiting");
            let _ = node.shutdown().await;
            anyhow::bail!("Raft stopped on this node: {fatal}");
        }
    }
    tracing::info!("shutting down");
    node.shutdown().await.context("stopping the node")?;
    Ok(())
}
