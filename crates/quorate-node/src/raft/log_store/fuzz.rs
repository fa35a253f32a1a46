//! Fuzz harnesses of what the log store reads back from sled at start and on every read: entries under their
//! index keys and the vote, committed and purged pointers. A damaged record is a storage error, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

use super::{decode_entry, key};
use crate::fuzzing::samples;
use crate::fuzzing::{config, decodes_or_fails, mutated_bytes, timed};
use crate::raft::codec::{decode, encode};
use crate::raft::typ::{LogId, Vote};

fn entry_seeds() -> Vec<Vec<u8>> {
    samples::entries().iter().map(|e| encode(e).expect("encodes")).collect()
}

fn meta_seeds() -> Vec<Vec<u8>> {
    vec![
        encode(&samples::vote()).expect("encodes"),
        encode(&Vote::new(4, 2)).expect("encodes"),
        encode(&samples::log_id(2, 9)).expect("encodes"),
        encode(&Some(samples::log_id(2, 9))).expect("encodes"),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// A `logs` record and its key, both damaged: the entry of that index, or an error.
    #[test]
    fn fuzz_stored_log_entry(
        bytes in mutated_bytes(entry_seeds()),
        index in prop_oneof![1u64..8, any::<u64>()],
        key_len in prop_oneof![8 => Just(8usize), 1 => 0usize..16],
    ) {
        let mut record_key = key(index).to_vec();
        record_key.resize(key_len, 0);
        if let Ok(entry) = timed("decode", || decode_entry(&record_key, &bytes))? {
            prop_assert_eq!(key_len, 8);
            prop_assert_eq!(entry.log_id.index, index);
            prop_assert!(decode_entry(&record_key, &encode(&entry).expect("encodes")).is_ok());
        }
    }

    /// The `meta` pointers, damaged.
    #[test]
    fn fuzz_stored_meta(bytes in mutated_bytes(meta_seeds())) {
        decodes_or_fails::<Vote>(&bytes)?;
        decodes_or_fails::<LogId>(&bytes)?;
        decodes_or_fails::<Option<LogId>>(&bytes)?;
    }
}

#[test]
fn fuzz_seed_entries_decode_under_their_keys() {
    for entry in samples::entries() {
        let bytes = encode(&entry).unwrap();
        assert_eq!(decode_entry(&key(entry.log_id.index), &bytes).unwrap().log_id, entry.log_id);
        assert!(decode_entry(&key(entry.log_id.index + 1), &bytes).is_err());
    }
    let _: Vote = decode(&meta_seeds()[0]).unwrap();
}
