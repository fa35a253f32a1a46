//! The `quorate` command line: run a node or a local cluster, and talk to a cluster.
//!
//! - `serve --config node1.toml`: one node ([`serve`]), on quorate-node's library API.
//! - `dev`: a local three-node cluster with the sample tier policies ([`dev`]).
//! - `check`, `status`, `bench`: clients of a running cluster ([`check`], [`status`], [`bench`](mod@bench)), on
//!   quorate-client (its endpoints, failover and headers), with a token and TLS files ([`credentials`]).
//! - `certs init`, `token new`: the certificates and API tokens of a secured cluster ([`certs`], [`token`]).
//!
//! The binary's `main` is [`main`]: it parses the command line, sets up logging, runs the command and reports
//! its error once, ripgrep-style.

pub mod admin;
pub mod bench;
pub mod certs;
pub mod check;
pub mod credentials;
pub mod dev;
mod grpc;
mod output;
pub mod serve;
pub mod status;
pub mod token;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The log filter used unless `QUORATE_LOG` sets one: Quorate's own events at info, other crates' warnings.
///
/// openraft is silenced: it logs every failed RPC to a peer at ERROR, also the expected ones while a cluster
/// starts. The node logs what matters of it itself (peers reached and lost, leader changes, storage failures).
pub const DEFAULT_LOG_FILTER: &str = "warn,openraft=off,quorate_node=info,quorate_cli=info";

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
    /// Lists, adds or removes members (on a node's admin listener).
    Members(admin::members::MembersArgs),
    /// Gets, sets (with a diff and optimistic concurrency), validates or diffs the policy set.
    Policies(admin::policies::PoliciesArgs),
    /// Makes a node build a snapshot now.
    Snapshot(admin::snapshot::SnapshotArgs),
    /// Shows the leader, or makes a node campaign for leadership (`leader elect`).
    Leader(admin::leader::LeaderArgs),
    /// Makes the certificates of a TLS cluster (`certs init`).
    Certs(certs::CertsArgs),
    /// Makes API tokens (`token new --role check`).
    Token(token::TokenArgs),
}

/// Runs the `quorate` command line of this process and returns its exit code: the error, if any, is printed once
/// (`error: ...` with its causes); a closed standard output (`quorate status | head -1`) ends the command quietly.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away: nothing left to say to anyone.
        Err(error) if output::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up logging to standard error: `QUORATE_LOG` (an `EnvFilter` directive) or [`DEFAULT_LOG_FILTER`].
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("QUORATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
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
        Command::Members(args) => admin::members::run(args).await,
        Command::Policies(args) => admin::policies::run(args).await,
        Command::Snapshot(args) => admin::snapshot::run(args).await,
        Command::Leader(args) => admin::leader::run(args).await,
        Command::Certs(args) => certs::run(args),
        Command::Token(args) => token::run(args),
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
