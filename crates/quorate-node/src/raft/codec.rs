//! The one encoding of everything Raft stores or sends: bincode 1.3 (log entries, votes, snapshots, RPCs),
//! behind a format header.
//!
//! Pinned in one place because log entries on disk and payloads on the wire must agree across nodes and
//! versions. bincode is the fastest of the formats measured (stack-notes §5) and openraft's types use no serde
//! features it lacks.
//!
//! Every encoding starts with [`MAGIC`] and a format version byte ([`FORMAT`]). A node that meets a newer
//! version than it understands gets a [`CodecError`] saying so: a log entry or snapshot it cannot read stops it
//! (openraft treats a storage error as fatal) instead of letting it apply something it does not understand, and
//! a newer peer's message is refused. Bytes without the header are format 0, what builds before the header
//! wrote: plain bincode of the same types. The upgrade rule is in the README (Upgrades).
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

/// What every encoding starts with: "QRT" and the format version.
pub(crate) const MAGIC: [u8; 3] = *b"QRT";

/// The format this build writes, and the newest it reads. Bump it when an encoded type changes, together with a
/// golden fixture of the new format (`tests/fixtures/`).
pub(crate) const FORMAT: u8 = 1;

/// Encodes `value`, header first.
///
/// # Errors
///
/// If `value` cannot be represented (never for Quorate's types in practice).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(&MAGIC);
    bytes.push(FORMAT);
    bincode::serialize_into(&mut bytes, value)?;
    Ok(bytes)
}

/// Encodes `value` into `out`, header first: the same bytes as [`encode`], streamed (a snapshot of a million keys
/// is half a gigabyte). `out` should buffer: bincode writes field by field.
///
/// # Errors
///
/// If `out` fails, or `value` cannot be represented.
pub(crate) fn encode_into<W: std::io::Write, T: Serialize + ?Sized>(mut out: W, value: &T) -> Result<(), CodecError> {
    out.write_all(&MAGIC)?;
    out.write_all(&[FORMAT])?;
    bincode::serialize_into(out, value)
}

/// Decodes a `T` from `bytes`; malformed input is an error, never a panic.
///
/// # Errors
///
/// If `bytes` is not a valid encoding of `T` (a length beyond its end included), or is of a newer format than
/// this build reads.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let body = match bytes {
        [b'Q', b'R', b'T', version, body @ ..] => {
            if *version > FORMAT {
                return Err(Box::new(bincode::ErrorKind::Custom(format!(
                    "format version {version} is newer than this node reads (up to {FORMAT}): upgrade this node \
                     before reading data or messages of a newer version (README: Upgrades)"
                ))));
            }
            body
        }
        legacy => legacy,
    };
    bincode::deserialize(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_encoding_is_the_same_bytes() {
        let value = (vec![1u64, 2, 3], "streamed".to_owned(), vec![vec![9u8; 100]; 50]);
        let mut streamed = Vec::new();
        encode_into(&mut streamed, &value).unwrap();
        assert_eq!(streamed, encode(&value).unwrap());
    }

    #[test]
    fn encodings_carry_the_format_and_newer_formats_are_refused() {
        let bytes = encode(&(7u64, "x".to_owned())).unwrap();
        assert_eq!(&bytes[..4], b"QRT\x01");
        assert_eq!(decode::<(u64, String)>(&bytes).unwrap(), (7, "x".to_owned()));
        let mut newer = bytes.clone();
        newer[3] = FORMAT + 1;
        let error = decode::<(u64, String)>(&newer).unwrap_err().to_string();
        assert!(error.contains("newer than this node reads"), "{error}");
        // Bytes written before the header (format 0) still decode.
        let legacy = bincode::serialize(&(7u64, "x".to_owned())).unwrap();
        assert_eq!(decode::<(u64, String)>(&legacy).unwrap(), (7, "x".to_owned()));
    }
}

#[cfg(test)]
mod fuzz;
