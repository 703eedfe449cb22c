//! Value encodings of the tables in `layout.rs`, checked on every read.
//!
//! Records are etcd's own `mvccpb.KeyValue` protobuf, so that `hash_kv` hashes the same bytes
//! as etcd's bolt backend. A record that fails to decode or breaks an invariant (version 0,
//! wrong key, ...) means the database is corrupt or the code is wrong: the store panics with
//! the offending key rather than serve wrong data.

use etcd_client::proto::PbKeyValue;
use prost::Message;

/// Whether a change wrote a version or a tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Put: the key has a value at this revision.
    Put,
    /// A deletion: the key does not exist from this revision on.
    Tombstone,
}

const KIND_PUT: u8 = b'p';
const KIND_TOMBSTONE: u8 = b't';

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Put => KIND_PUT,
            Kind::Tombstone => KIND_TOMBSTONE,
        }
    }

    fn from_byte(b: u8, what: &dyn std::fmt::Debug) -> Kind {
        match b {
            KIND_PUT => Kind::Put,
            KIND_TOMBSTONE => Kind::Tombstone,
            other => panic!("corrupt record kind {other} for {what:?}"),
        }
    }
}

fn check_version(kv: &PbKeyValue) {
    assert!(
        kv.version >= 1 && kv.create_revision >= 1 && kv.mod_revision >= kv.create_revision,
        "corrupt version record {kv:?}"
    );
}

/// The etcd `KeyValue` bytes of a history record: the full version for a put, only the key for
/// a tombstone (what etcd writes to its `key` bucket).
pub fn etcd_bytes(kind: Kind, kv: &PbKeyValue) -> Vec<u8> {
    match kind {
        Kind::Put => kv.encode_to_vec(),
        Kind::Tombstone => PbKeyValue {
            key: kv.key.clone(),
            ..Default::default()
        }
        .encode_to_vec(),
    }
}

/// Encodes a `h` value: kind byte + etcd `KeyValue` bytes.
pub fn encode_history(kind: Kind, kv: &PbKeyValue) -> Vec<u8> {
    if kind == Kind::Put {
        check_version(kv);
    }
    let body = etcd_bytes(kind, kv);
    let mut out = Vec::with_capacity(1 + body.len());
    out.push(kind.byte());
    out.extend_from_slice(&body);
    out
}

/// A decoded history record.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRecord {
    /// Put or tombstone.
    pub kind: Kind,
    /// The version written (for a tombstone only `key` is set).
    pub kv: PbKeyValue,
}

impl HistoryRecord {
    /// The etcd `KeyValue` bytes of the record (what `hash_kv` hashes).
    pub fn body(raw: &[u8]) -> &[u8] {
        &raw[1..]
    }
}

/// The kind of a `h` value stored at revision `main`, without decoding the rest.
pub fn history_kind(main: i64, raw: &[u8]) -> Kind {
    let kind = raw
        .first()
        .unwrap_or_else(|| panic!("empty history record at revision {main}"));
    Kind::from_byte(*kind, &main)
}

/// Decodes a `h` value stored at revision `main`. Panics if it is corrupt.
pub fn decode_history(main: i64, raw: &[u8]) -> HistoryRecord {
    let (&kind, body) = raw
        .split_first()
        .unwrap_or_else(|| panic!("empty history record at revision {main}"));
    let kind = Kind::from_byte(kind, &main);
    let kv = PbKeyValue::decode(body)
        .unwrap_or_else(|e| panic!("corrupt history record at revision {main}: {e}"));
    if kind == Kind::Put {
        check_version(&kv);
        assert_eq!(kv.mod_revision, main, "history record misplaced: {kv:?}");
    }
    HistoryRecord { kind, kv }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv() -> PbKeyValue {
        PbKeyValue {
            key: b"k".to_vec(),
            create_revision: 2,
            mod_revision: 5,
            version: 3,
            value: b"v".to_vec(),
            lease: 9,
        }
    }

    // Records round-trip, and the history body is exactly etcd's protobuf.
    #[test]
    fn records_round_trip() {
        let h = encode_history(Kind::Put, &kv());
        assert_eq!(
            decode_history(5, &h),
            HistoryRecord {
                kind: Kind::Put,
                kv: kv()
            }
        );
        assert_eq!(HistoryRecord::body(&h), kv().encode_to_vec().as_slice());
        let t = decode_history(6, &encode_history(Kind::Tombstone, &kv()));
        assert_eq!(t.kind, Kind::Tombstone);
        assert_eq!(t.kv.key, b"k");
        assert_eq!(t.kv.value, b"");
    }

    // A damaged record is a broken invariant and panics loudly instead of returning garbage.
    #[test]
    #[should_panic(expected = "corrupt")]
    fn corrupt_record_panics() {
        decode_history(3, &[b'p', 0xFF, 0xFF, 0xFF]);
    }
}
