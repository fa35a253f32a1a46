//! What the fuzz harnesses share: their proptest settings and the structure-aware mutators. Compiled for
//! quorate-core's own tests and, with the `fuzzing` feature, for quorate-node's (its dev-dependency turns it on;
//! no normal build does).
//!
//! Harnesses live in `fuzz` modules next to what they test (policy files and policy sets in `policy::fuzz`,
//! limiter snapshots in `table::fuzz`), so `cargo test fuzz` runs them all. Each feeds its decoder fully random
//! input and *mutated valid input*: real encodings or files with bits flipped, bytes and interesting integers
//! overwritten, ranges inserted, deleted, duplicated and cut off; it asserts that the decoder returns a value or
//! a typed error within [`CASE_TIME_LIMIT`], and that what it accepts survives a round trip.
//!
//! The normal test run (CI) runs [`DEFAULT_CASES`] cases per harness; the long run is one command:
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

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::Config;

/// The variable that sets the number of cases per harness.
pub const CASES_VAR: &str = "QUORATE_FUZZ_CASES";

/// Cases per harness in a normal test run: each harness stays well under two seconds in a debug build.
pub const DEFAULT_CASES: u32 = 256;

/// The longest one case may take, decoding included: far above any real decode, short of a hang.
pub const CASE_TIME_LIMIT: Duration = Duration::from_secs(5);

/// The harnesses' proptest settings: [`CASES_VAR`] cases (default [`DEFAULT_CASES`]), no regression files.
pub fn config() -> Config {
    Config { cases: cases(), failure_persistence: None, ..Config::default() }
}

/// The number of cases per harness: [`CASES_VAR`] if set to a number, else [`DEFAULT_CASES`].
pub fn cases() -> u32 {
    std::env::var(CASES_VAR).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(DEFAULT_CASES)
}

/// Runs `f`, failing the case if it took longer than [`CASE_TIME_LIMIT`].
pub fn timed<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    let start = Instant::now();
    let value = f();
    let took = start.elapsed();
    prop_assert!(took < CASE_TIME_LIMIT, "{} took {:?}", what, took);
    Ok(value)
}

/// Integers that matter to a length-prefixed or tagged format, as 8 little-endian bytes.
fn interesting_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(2),
        Just(0x7f),
        Just(0xff),
        Just(0xffff),
        Just(u64::from(u32::MAX)),
        Just(1 << 31),
        Just(1 << 40),
        Just(1 << 59),
        Just(i64::MAX as u64),
        Just(1 << 63),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        any::<u64>(),
    ]
}

/// One edit of a byte string; positions are taken modulo its length.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    SetByte(usize, u8),
    SetU32(usize, u32),
    SetU64(usize, u64),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Truncate(usize),
}

fn mutation(dictionary: &'static [&'static str]) -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![Just(0u8), Just(1), Just(0x7f), Just(0x80), Just(0xff), any::<u8>()];
    let inserted = prop_oneof![
        prop::collection::vec(any::<u8>(), 1..16),
        interesting_u64().prop_map(|n| n.to_le_bytes().to_vec()),
        prop::sample::select(dictionary.to_vec()).prop_map(|token| token.as_bytes().to_vec()),
    ];
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        (any::<usize>(), byte).prop_map(|(at, b)| Mutation::SetByte(at, b)),
        (any::<usize>(), interesting_u64()).prop_map(|(at, n)| Mutation::SetU32(at, n as u32)),
        (any::<usize>(), interesting_u64()).prop_map(|(at, n)| Mutation::SetU64(at, n)),
        (any::<usize>(), inserted).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), 1usize..16).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (any::<usize>(), any::<usize>()).prop_map(|(from, to)| Mutation::Duplicate(from, to)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// A position in `len` bytes (0 for none).
fn at(position: &usize, len: usize) -> usize {
    if len == 0 { 0 } else { position % len }
}

fn overwrite(bytes: &mut [u8], from: usize, with: &[u8]) {
    for (i, b) in with.iter().enumerate() {
        if let Some(slot) = bytes.get_mut(from + i) {
            *slot = *b;
        }
    }
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    match mutation {
        Mutation::FlipBit(i, bit) => {
            if len > 0 {
                bytes[at(i, len)] ^= 1 << bit;
            }
        }
        Mutation::SetByte(i, b) => {
            if len > 0 {
                bytes[at(i, len)] = *b;
            }
        }
        Mutation::SetU32(i, n) => overwrite(bytes, at(i, len), &n.to_le_bytes()),
        Mutation::SetU64(i, n) => overwrite(bytes, at(i, len), &n.to_le_bytes()),
        Mutation::Insert(i, inserted) => {
            let at = at(i, len + 1).min(len);
            bytes.splice(at..at, inserted.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let from = at(i, len);
            bytes.drain(from..(from + n).min(len));
        }
        Mutation::Duplicate(from, to) => {
            if len > 0 {
                let from = at(from, len);
                let chunk: Vec<u8> = bytes[from..(from + 16).min(len)].to_vec();
                let to = at(to, len);
                bytes.splice(to..to, chunk);
            }
        }
        Mutation::Truncate(i) => bytes.truncate(at(i, len)),
    }
}

/// Byte strings made from `seeds` (valid encodings): each one unchanged or with 1 to 8 mutations, or fully random.
pub fn mutated_bytes(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    mutated_with(seeds, &[])
}

/// As [`mutated_bytes`], inserting the tokens of `dictionary` too (keywords and punctuation of a text format).
pub fn mutated_with(seeds: Vec<Vec<u8>>, dictionary: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let seeds = prop::sample::select(seeds);
    let dictionary = if dictionary.is_empty() { &["\0"][..] } else { dictionary };
    prop_oneof![
        1 => seeds.clone(),
        6 => (seeds, prop::collection::vec(mutation(dictionary), 1..8)).prop_map(|(mut bytes, mutations)| {
            for mutation in &mutations {
                apply(&mut bytes, mutation);
            }
            bytes
        }),
        2 => prop::collection::vec(any::<u8>(), 0..256),
    ]
}

/// Text made from `seeds` (valid files) as [`mutated_with`] makes bytes, read as UTF-8 (lossily), or random text.
pub fn mutated_text(seeds: Vec<String>, dictionary: &'static [&'static str]) -> impl Strategy<Value = String> {
    let bytes = mutated_with(seeds.into_iter().map(String::into_bytes).collect(), dictionary)
        .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    prop_oneof![4 => bytes, 1 => "\\PC{0,200}", 1 => ".{0,200}"]
}

/// Tokens of TOML, for [`mutated_text`]: what turns one valid file into another, or into a near miss.
pub const TOML_TOKENS: &[&str] = &[
    "=",
    "\"",
    "'",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    ",",
    ".",
    "\n",
    "#",
    "\\",
    "\"\"\"",
    "true",
    "false",
    "0",
    "-1",
    "1e400",
    "nan",
    "inf",
    "-inf",
    "18446744073709551615",
    "9223372036854775808",
    "0x7f",
    "1979-05-27T07:32:00Z",
    "\"1ns\"",
    "\"0s\"",
    "\"99999999999999years\"",
    "\"584542046090years\"",
    "\"\"",
    "\"\u{0}\"",
    "\"é\"",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_mutations_stay_in_bounds() {
        let mut bytes = Vec::new();
        for mutation in [
            Mutation::FlipBit(0, 3),
            Mutation::Delete(5, 3),
            Mutation::Duplicate(1, 2),
            Mutation::SetU64(0, u64::MAX),
            Mutation::Truncate(0),
        ] {
            apply(&mut bytes, &mutation);
        }
        apply(&mut bytes, &Mutation::Insert(0, vec![1, 2, 3]));
        apply(&mut bytes, &Mutation::SetU64(usize::MAX, u64::MAX));
        assert_eq!(bytes.len(), 3);
    }
}
