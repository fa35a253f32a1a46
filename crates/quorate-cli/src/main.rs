//! The `quorate` binary: everything is in the library's [`quorate_cli::main`].

use std::process::ExitCode;

/// mimalloc rather than glibc malloc, whose arena locking and consolidation took ~16% of a node's CPU under
/// bulk load (README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    quorate_cli::main().await
}
