//! Serves the example API ([`axum_api_example::app`]) rate-limited by a Quorate cluster.
//!
//! # Running it
//!
//! In one terminal, start a local three-node cluster (127.0.0.1:7101-7103) with the sample tier policies:
//!
//! ```text
//! cargo run --release -p quorate-cli -- dev
//! ```
//!
//! In another, the API (on 127.0.0.1:8080):
//!
//! ```text
//! cargo run -p axum-api-example
//! ```
//!
//! Settings come from the environment:
//!
//! - `QUORATE_ENDPOINTS`: the cluster's nodes, comma-separated (default
//!   `127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103`, `quorate dev`'s);
//! - `LISTEN`: the address to serve on (default `127.0.0.1:8080`);
//! - `RUST_LOG`: what to log (default `info`).
//!
//! # Trying it
//!
//! An allowed request carries the limit that decided it (`user_1` matches no prefix rule: the `default` tier,
//! 60 per minute):
//!
//! ```text
//! $ curl -si -H 'x-api-key: user_1' 'http://127.0.0.1:8080/v1/chat?prompt=hi'
//! HTTP/1.1 200 OK
//! content-type: application/json
//! x-ratelimit-limit: 60
//! x-ratelimit-remaining: 59
//! x-ratelimit-reset: 1
//! ratelimit-policy: "default";q=60;w=60
//! ratelimit: "default";r=59;t=1
//! ...
//! ```
//!
//! Sixty requests in a row with a fresh default key pass; the 61st is denied until a token refills (one per
//! second):
//!
//! ```text
//! $ curl -s -o /dev/null -w '%{http_code} ' -H 'x-api-key: user_2' 'http://127.0.0.1:8080/v1/chat?n=[1-60]'; echo
//! 200 200 200 ... 200
//! $ curl -si -H 'x-api-key: user_2' http://127.0.0.1:8080/v1/chat
//! HTTP/1.1 429 Too Many Requests
//! x-ratelimit-limit: 60
//! x-ratelimit-remaining: 0
//! x-ratelimit-reset: 60
//! ratelimit-policy: "default";q=60;w=60
//! ratelimit: "default";r=0;t=60
//! retry-after: 1
//! ...
//! {"error":"rate_limit_exceeded","message":"rate limit exceeded (policy default); retry in 1 s","retry_after":1}
//! ```
//!
//! A key starting `agent_` gets the `agent` tier, 200 per minute; `/health` and `/docs` are never limited:
//!
//! ```text
//! $ curl -si -H 'x-api-key: agent_42' http://127.0.0.1:8080/v1/chat | grep -i '^ratelimit-policy'
//! ratelimit-policy: "agent";q=200;w=60
//! ```
//!
//! The README next to this crate has the whole transcript, and what a stopped cluster looks like.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use axum_api_example::app;
use quorate_client::{Client, FailureMode};
use tracing_subscriber::EnvFilter;

/// The cluster `quorate dev` starts when given no arguments.
const DEFAULT_ENDPOINTS: &str = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103";

/// Loopback only: exposing the example beyond this machine is a deliberate choice (set `LISTEN`).
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The example's settings, read from the environment.
#[derive(Debug)]
struct Settings {
    endpoints: String,
    listen: SocketAddr,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let endpoints = var("QUORATE_ENDPOINTS", DEFAULT_ENDPOINTS);
        let listen = var("LISTEN", DEFAULT_LISTEN);
        let listen = listen.parse().with_context(|| format!("invalid LISTEN {listen:?}: expected ip:port"))?;
        Ok(Settings { endpoints, listen })
    }
}

fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("axum-api-example: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let client = Client::builder(settings.endpoints.split(','))
        // Fail closed: while no node answers, limited requests get 503 and nothing is ever over-admitted. To keep
        // serving instead, pass `FailureMode::Open` (admit everything uncounted) or
        // `FailureMode::Local(LocalLimit::new(60, Duration::from_secs(60)))` (a bucket per key in this process).
        .failure_mode(FailureMode::Closed)
        .build()
        .with_context(|| format!("invalid QUORATE_ENDPOINTS {:?}", settings.endpoints))?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    tracing::info!(listen = %settings.listen, quorate = ?client.endpoints(), "serving the example API");
    let service = app(client).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async {
            // If the signal handler cannot be installed, serve until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await
        .context("serving")
}
