//! The RocksDB key layout: every table lives in the default column family under a one-byte
//! prefix. One column family keeps crash recovery trivially consistent: with the RocksDB WAL
//! disabled, what survives a crash is the last flushed memtable, and a single column family's
//! flushes always hold whole write batches in order (RocksDB 7.8's C API cannot flush several
//! column families atomically on demand).
//!
//! | prefix | key                                   | value                                   |
//! |--------|---------------------------------------|-----------------------------------------|
//! | `m`    | internal meta name                    | revision, compact revision, compaction job, format |
//! | `u`    | caller's meta key                     | caller's opaque value                    |
//! | `h`    | BE main, BE sub                       | kind byte + etcd `KeyValue` protobuf     |
//! | `l`    | lease id (order-preserving)           | granted TTL, BE i64                      |
//! | `a`    | lease id (order-preserving), user key | empty: the key is attached to the lease  |
//!
//! Layout 1 also had a `k` table, key → latest version, and an `i` table, (escaped key,
//! revision) → put or tombstone, for reads at past revisions: two more memtable inserts per
//! change, at random positions of the skiplist. Layout 2 keeps what they told in memory
//! (`revisions.rs`, `index.rs`, rebuilt from the history at open, like etcd's `treeIndex`) and
//! drops both tables when it opens a layout 1 database.

use crate::view::Rev;

/// The caller's meta entries.
pub const TABLE_USER_META: u8 = b'u';
/// Layout 1's key → latest version table, dropped by layout 2.
pub const TABLE_KV_V1: u8 = b'k';
/// Layout 1's (key, revision) → kind table, dropped by layout 2.
pub const TABLE_INDEX_V1: u8 = b'i';
/// revision → change record: the history for watch replay, past reads and hashing.
pub const TABLE_HISTORY: u8 = b'h';
/// lease id → granted TTL.
pub const TABLE_LEASE: u8 = b'l';
/// (lease id, key) → (): the keys attached to each lease.
pub const TABLE_ATTACH: u8 = b'a';

// Internal meta entries live under prefix `m`.

/// Meta: the current store revision (BE i64).
pub const META_REVISION: &[u8] = b"mrevision";
/// Meta: the compact revision (BE i64); absent until the first compaction.
pub const META_COMPACT: &[u8] = b"mcompact";
/// Meta: the pending physical compaction, see `compact::Job`.
pub const META_COMPACT_JOB: &[u8] = b"mcompact-job";
/// Meta: the layout version, [`FORMAT_VERSION`] as BE u32.
pub const META_FORMAT: &[u8] = b"mformat";
/// The layout version this code writes.
pub const FORMAT_VERSION: u32 = 2;
/// The older layout this code upgrades on open: with the `k` and `i` tables.
pub const FORMAT_V1: u32 = 1;

const REV_BYTES: usize = 16;

/// The key of a one-byte-prefixed table entry.
fn prefixed(table: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.push(table);
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// The exclusive upper bound of a whole table.
pub fn table_end(table: u8) -> Vec<u8> {
    vec![table + 1]
}

/// The bytes of an i64 that sort like the numbers (sign bit flipped).
fn ordered_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

fn ordered_i64_decode(b: &[u8]) -> i64 {
    let raw = u64::from_be_bytes(b.try_into().expect("8 bytes"));
    (raw ^ (1 << 63)) as i64
}

/// Big-endian revision bytes. Revisions are never negative, so plain BE sorts correctly.
pub fn rev_bytes(rev: Rev) -> [u8; REV_BYTES] {
    assert!(rev.main >= 0 && rev.sub >= 0, "negative revision {rev:?}");
    let mut out = [0; REV_BYTES];
    out[..8].copy_from_slice(&rev.main.to_be_bytes());
    out[8..].copy_from_slice(&rev.sub.to_be_bytes());
    out
}

fn rev_decode(b: &[u8]) -> Rev {
    let main = i64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
    let sub = i64::from_be_bytes(b[8..16].try_into().expect("8 bytes"));
    Rev { main, sub }
}

/// `u` ++ caller key.
pub fn user_meta_key(key: &[u8]) -> Vec<u8> {
    prefixed(TABLE_USER_META, &[key])
}

/// `h` ++ BE main ++ BE sub.
pub fn history_key(rev: Rev) -> Vec<u8> {
    prefixed(TABLE_HISTORY, &[&rev_bytes(rev)])
}

/// The revision of a `h` entry. Panics on a key of another shape: the table holds nothing else.
pub fn history_key_decode(raw: &[u8]) -> Rev {
    assert!(
        raw.len() == 1 + REV_BYTES && raw[0] == TABLE_HISTORY,
        "corrupt history key {raw:?}"
    );
    rev_decode(&raw[1..])
}

/// `l` ++ lease id.
pub fn lease_key(id: i64) -> Vec<u8> {
    prefixed(TABLE_LEASE, &[&ordered_i64(id)])
}

/// The lease id of a `l` entry.
pub fn lease_key_decode(raw: &[u8]) -> i64 {
    assert!(
        raw.len() == 9 && raw[0] == TABLE_LEASE,
        "corrupt lease key {raw:?}"
    );
    ordered_i64_decode(&raw[1..])
}

/// `a` ++ lease id: the prefix of the attachments of one lease.
pub fn attach_prefix(id: i64) -> Vec<u8> {
    prefixed(TABLE_ATTACH, &[&ordered_i64(id)])
}

/// `a` ++ lease id ++ key.
pub fn attach_key(id: i64, key: &[u8]) -> Vec<u8> {
    prefixed(TABLE_ATTACH, &[&ordered_i64(id), key])
}

/// The user key of an attachment entry.
pub fn attach_key_user_key(raw: &[u8]) -> &[u8] {
    assert!(
        raw.len() >= 9 && raw[0] == TABLE_ATTACH,
        "corrupt lease attachment key {raw:?}"
    );
    &raw[9..]
}

/// The exclusive end of all keys starting with `prefix` (which is never all `0xFF` here).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    panic!("prefix {prefix:?} has no successor");
}

/// BE encoding of an i64 meta value.
pub fn i64_value(v: i64) -> [u8; 8] {
    v.to_be_bytes()
}

/// Decodes an i64 meta value; panics (with the meta key) if it is not 8 bytes.
pub fn i64_value_decode(key: &[u8], raw: &[u8]) -> i64 {
    let bytes: [u8; 8] = raw
        .try_into()
        .unwrap_or_else(|_| panic!("corrupt meta value for {key:?}: {raw:?}"));
    i64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    // History keys sort by (main, sub) revision and decode back: the revision index is
    // rebuilt by reading them in order.
    #[test]
    fn history_keys_sort_by_revision_and_round_trip() {
        let revs = [(0, 0), (1, 0), (1, 5), (255, 0), (256, 0), (i64::MAX, 0)]
            .map(|(main, sub)| Rev { main, sub });
        let keys: Vec<_> = revs.iter().map(|&r| history_key(r)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (rev, key) in revs.iter().zip(&keys) {
            assert_eq!(history_key_decode(key), *rev);
        }
    }

    // Lease ids keep numeric order in their byte encoding, negative ids included.
    #[test]
    fn lease_ids_sort_numerically() {
        let ids = [i64::MIN, -5, 0, 1, 7, i64::MAX];
        let raw: Vec<_> = ids.iter().map(|&id| lease_key(id)).collect();
        assert!(raw.windows(2).all(|w| w[0] < w[1]));
        for (id, r) in ids.iter().zip(&raw) {
            assert_eq!(lease_key_decode(r), *id);
        }
        assert_eq!(attach_key_user_key(&attach_key(-3, b"x")), b"x");
    }

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"a\xFF"), b"b".to_vec());
        assert_eq!(prefix_end(b"ab"), b"ac".to_vec());
    }
}
