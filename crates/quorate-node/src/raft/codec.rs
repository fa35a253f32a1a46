//! The one encoding of everything Raft stores or sends: bincode 1.3 (log entries, votes, snapshots, RPCs).
//!
//! Pinned in one place because log entries on disk and payloads on the wire must agree across nodes and
//! versions. bincode is the fastest of the formats measured (stack-notes §5) and openraft's types use no serde
//! features it lacks.
//!
//! # Untrusted input
//!
//! Everything decoded here comes from a peer or from disk, so [`decode`] must turn any byte string into a value
//! or an error, never a panic, an abort or an allocation out of proportion to the input. bincode 1.3 decoding
//! from a slice does: a string or byte length beyond the end of the input is an error before anything is
//! allocated for it, and a sequence is preallocated from its claimed length only up to serde's cautious bound
//! (1 MiB), so a hostile length prefix (`u64::MAX` elements) costs at most 1 MiB per nested sequence (the
//! types here nest a handful) and fails at the end of its input. A size limit (`bincode::options().with_limit`)
//! would add nothing: bincode 1.3 ignores it when decoding from a slice, whose length already bounds what is
//! read. The input itself is bounded by its source: 64 MiB per peer message (`api::RAFT_MAX_BYTES`), one sled
//! record per stored value. The fuzz harnesses (`cargo test fuzz`; `codec/fuzz.rs` for the peer payloads) hold every
//! decoder to this.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encoding or decoding failed.
pub(crate) type CodecError = bincode::Error;

/// Encodes `value`.
///
/// # Errors
///
/// If `value` cannot be represented (never for Quorate's types in practice).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serialize(value)
}

/// Decodes a `T` from `bytes`; malformed input is an error, never a panic.
///
/// # Errors
///
/// If `bytes` is not a valid encoding of `T` (a length beyond its end included).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    bincode::deserialize(bytes)
}

#[cfg(test)]
mod fuzz;
