//! The `quorate` binary, built inside the test crate so that cluster tests can spawn it (see Cargo.toml).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    quorate_cli::main().await
}
