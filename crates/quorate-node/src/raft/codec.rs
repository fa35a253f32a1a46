//! The one encoding of everything Raft stores or sends: bincode 1.3 (log entries, votes, snapshots, RPCs).
//!
//! Pinned in one place because log entries on disk and payloads on the wire must agree across nodes and
//! versions. bincode is the fastest of the formats measured (stack-notes §5) and openraft's types use no serde
//! features it lacks.

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
/// If `bytes` is not a valid encoding of `T`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    bincode::deserialize(bytes)
}
