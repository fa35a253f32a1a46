//! What quorate-node's fuzz harnesses share: the settings and mutators of `quorate_core::fuzzing`, the node's
//! sample values ([`samples`]) and the decode-and-round-trip check.
//!
//! Every decoder a peer, a client, a file or the disk can reach has a harness in a `fuzz` module next to it, so
//! `cargo test fuzz` runs them all (`-p quorate-core` has its own for policies and limiter snapshots). Each one
//! feeds its decoder fully random input and *mutated valid input*: real encodings or config files with bits
//! flipped, bytes and interesting integers (lengths, enum tags) overwritten, ranges inserted, deleted, duplicated
//! and cut off. A harness asserts that the decoder returns a value or a typed error, within `quorate_core::fuzzing::CASE_TIME_LIMIT`,
//! and that whatever it accepts encodes back to something it decodes to the same value.
//!
//! The normal test run (CI) runs `quorate_core::fuzzing::DEFAULT_CASES` cases per harness; the long run is one command:
//!
//! ```text
//! QUORATE_FUZZ_CASES=100000 cargo test --release -p quorate-node -p quorate-core --lib fuzz
//! ```
//!
//! A release build wraps on integer overflow where a debug build panics, so a long run in a debug build (slower,
//! about a fifth of the speed) or one with `CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true` (which rebuilds every
//! dependency once) also finds arithmetic that overflows on hostile input.
//!
//! Failures are not written to `proptest-regressions` files: proptest prints the shrunk input, and a fix keeps
//! it as a named regression test beside the harness.

#![allow(clippy::expect_used)]

use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::raft::codec;

pub(crate) mod samples;

pub(crate) use quorate_core::fuzzing::{TOML_TOKENS, config, mutated_bytes, mutated_text, timed};

/// Decodes `bytes` as a `T`: an error is fine, a value must encode to bytes that decode to the same encoding.
pub(crate) fn decodes_or_fails<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<Option<T>, TestCaseError> {
    let decoded = timed("decode", || codec::decode::<T>(bytes))?;
    let Ok(value) = decoded else { return Ok(None) };
    let encoded = codec::encode(&value).expect("a decoded value encodes");
    let again: T = codec::decode(&encoded).expect("an encoded value decodes");
    prop_assert_eq!(&codec::encode(&again).expect("encodes"), &encoded);
    Ok(Some(value))
}
