//! Writing to standard output without panicking: `println!` panics when the reader went away
//! (`quorate status | head -1`); these return the error instead, and `main` ends quietly on a broken pipe.

use std::fmt::Display;
use std::io::{self, Write};

/// Writes `text` to standard output and flushes it.
///
/// # Errors
///
/// The write error, e.g. [`io::ErrorKind::BrokenPipe`] when the reader has closed the pipe.
pub(crate) fn print(text: impl Display) -> io::Result<()> {
    let mut out = io::stdout().lock();
    write!(out, "{text}")?;
    out.flush()
}

/// Writes `text` and a newline to standard output.
///
/// # Errors
///
/// As [`print`].
pub(crate) fn println(text: impl Display) -> io::Result<()> {
    print(format_args!("{text}\n"))
}

/// Whether `error` (or what caused it) is a write to a pipe whose reader is gone: not a failure of the command.
pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe))
}
