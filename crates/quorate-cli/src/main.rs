//! The `quorate` binary: everything is in the library's [`quorate_cli::main`].

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    quorate_cli::main().await
}
