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
    /// How log lines on standard error look: `human` (text) or `json` (one JSON object per line, for log
    /// collectors). Also `QUORATE_LOG_FORMAT`.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "QUORATE_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The format of the log lines written to standard error (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable text lines, coloured on a terminal.
    #[default]
    Human,
    /// One JSON object per line: `timestamp`, `level`, `fields` (with `message`), `target` and the current
    /// span(s); never coloured.
    Json,
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
    init_logging(cli.log_format);
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

/// Sets up logging to standard error in `format`: `QUORATE_LOG` (an `EnvFilter` directive) or
/// [`DEFAULT_LOG_FILTER`].
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("QUORATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let ansi = std::io::stderr().is_terminal();
    log_subscriber(format, filter, std::io::stderr, ansi).init();
}

/// The subscriber [`init_logging`] installs, writing to `writer` (tests give it a buffer).
fn log_subscriber<W>(
    format: LogFormat,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Human => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(builder.json().with_ansi(false).finish()),
    }
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex, PoisonError};

    use clap::Parser;

    use super::{Cli, LogFormat, log_subscriber};

    /// A log destination the test can read back.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
        }
    }

    /// Logs one info event with a field and one debug event (filtered out) in `format`, returns the output.
    fn log_one(format: LogFormat) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let filter = tracing_subscriber::EnvFilter::new("info");
        let subscriber = log_subscriber(format, filter, move || writer.clone(), false);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(node = 3, "peer reached");
            tracing::debug!("not shown");
        });
        buffer.text()
    }

    #[test]
    fn json_format_writes_one_json_object_per_event() {
        let text = log_one(LogFormat::Json);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let event: serde_json::Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(event["level"], "INFO", "{text}");
        assert_eq!(event["fields"]["message"], "peer reached", "{text}");
        assert_eq!(event["fields"]["node"], 3, "{text}");
        assert!(event["timestamp"].is_string(), "{text}");
        assert!(event["target"].as_str().is_some_and(|t| t.starts_with("quorate_cli")), "{text}");
    }

    #[test]
    fn human_format_is_plain_text() {
        let text = log_one(LogFormat::Human);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("INFO") && text.contains("peer reached") && text.contains("node=3"), "{text}");
        assert!(!text.trim_start().starts_with('{') && !text.contains('\u{1b}'), "{text}");
    }

    #[test]
    fn log_format_is_global_and_human_by_default() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|cli| cli.log_format);
        assert_eq!(parse(&["quorate", "dev"]).ok(), Some(LogFormat::Human));
        assert_eq!(parse(&["quorate", "--log-format", "json", "dev"]).ok(), Some(LogFormat::Json));
        assert_eq!(
            parse(&["quorate", "serve", "--config", "n.toml", "--log-format", "json"]).ok(),
            Some(LogFormat::Json)
        );
        assert!(parse(&["quorate", "--log-format", "xml", "dev"]).is_err());
    }
}
