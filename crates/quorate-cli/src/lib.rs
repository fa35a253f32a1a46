//! The `quorate` command line: run a node or a local cluster, and talk to a cluster.
//!
//! - `serve --config node1.toml`: one node ([`serve`]).
//! - `dev`: a local three-node cluster with the sample tier policies ([`dev`]).
//! - `check`, `status`, `bench`: clients of a running cluster ([`check`], [`status`], [`bench`]).

pub mod bench;
pub mod check;
pub mod connect;
pub mod dev;
pub mod serve;
pub mod status;

use clap::{Parser, Subcommand};

/// Quorate: a replicated rate-limiter cluster for API servers.
#[derive(Debug, Parser)]
#[command(name = "quorate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one node from its config file.
    Serve(serve::ServeArgs),
    /// Run a local three-node cluster on 127.0.0.1 with the sample tier policies.
    Dev(dev::DevArgs),
    /// Ask a cluster for one decision and print it with the HTTP headers it implies.
    Check(check::CheckArgs),
    /// Show every node of a cluster: role, leader, term, indexes.
    Status(status::StatusArgs),
    /// Closed-loop load against a cluster: checks/s and latency percentiles.
    Bench(bench::BenchArgs),
}

/// Runs the parsed command line.
///
/// # Errors
///
/// Whatever the command failed with; `main` prints it once.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Dev(args) => dev::run(args).await,
        Command::Check(args) => check::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Bench(args) => bench::run(args).await,
    }
}

/// Resolves when the process receives Ctrl-C (SIGINT) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
