//! Keys and values of the write workloads: pure functions of the request's sequence number,
//! so every client task generates its own keys without shared state or locks.
//!
//! A key is the index in the key space as zero-padded decimal, exactly `key_size` bytes
//! (`00000042` for index 42 and size 8), readable in `etcdctl get` and sorted like the index.

use super::options::KeyValueOptions;
use super::BenchError;

/// Generates the keys and the value of `put` / `txn-put`.
#[derive(Debug, Clone)]
pub struct KeyGen {
    key_size: usize,
    space: u64,
    sequential: bool,
    value: Vec<u8>,
}

impl KeyGen {
    /// Validates the shape: the key space must fit in `key_size` decimal digits.
    pub fn new(o: &KeyValueOptions) -> Result<KeyGen, BenchError> {
        if o.key_size == 0 || o.key_space_size == 0 {
            return Err(BenchError::InvalidOptions(
                "--key-size and --key-space-size must be at least 1".into(),
            ));
        }
        let digits = (o.key_space_size - 1).to_string().len();
        if digits > o.key_size {
            return Err(BenchError::InvalidOptions(format!(
                "--key-size {} cannot hold {} distinct keys as decimal numbers; \
                 use --key-size {digits} or more",
                o.key_size, o.key_space_size
            )));
        }
        Ok(KeyGen {
            key_size: o.key_size,
            space: o.key_space_size,
            sequential: o.sequential_keys,
            value: value_of_size(o.val_size),
        })
    }

    /// The key written by request `seq` (its `op`-th put when a request holds several).
    /// The keys of one request are distinct while `ops_per_request <= key space` (a Txn
    /// may not put one key twice): sequential keys are consecutive, random ones start at a
    /// random index and continue consecutively.
    pub fn key(&self, seq: u64, ops_per_request: u64, op: u64) -> Vec<u8> {
        let index = if self.sequential {
            seq.wrapping_mul(ops_per_request).wrapping_add(op) % self.space
        } else {
            (mix64(seq) % self.space + op) % self.space
        };
        format!("{index:0width$}", width = self.key_size).into_bytes()
    }

    /// Distinct keys.
    pub fn space(&self) -> u64 {
        self.space
    }

    /// The value every put writes.
    pub fn value(&self) -> &[u8] {
        &self.value
    }
}

/// A value of `size` printable bytes (not all one byte, so compression does not flatter
/// either store).
pub fn value_of_size(size: usize) -> Vec<u8> {
    (0..size as u64)
        .map(|i| b'a' + (mix64(i) % 26) as u8)
        .collect()
}

/// splitmix64: a cheap, well-spread hash that turns sequence numbers into random-looking
/// key indexes, deterministic so runs are repeatable.
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn opts(key_size: usize, space: u64, sequential: bool) -> KeyValueOptions {
        KeyValueOptions {
            key_size,
            val_size: 16,
            key_space_size: space,
            sequential_keys: sequential,
        }
    }

    // Sequential keys walk the key space in order, wrap, and have exactly key_size bytes.
    #[test]
    fn sequential_keys_wrap() {
        let g = KeyGen::new(&opts(8, 1000, true)).unwrap();
        assert_eq!(g.key(0, 1, 0), b"00000000");
        assert_eq!(g.key(42, 1, 0), b"00000042");
        assert_eq!(g.key(1000, 1, 0), b"00000000");
        // Request 3 of a 4-put txn writes keys 12..16.
        assert_eq!(g.key(3, 4, 1), b"00000013");
    }

    // Random keys stay in the key space and cover most of it.
    #[test]
    fn random_keys_cover_the_space() {
        let g = KeyGen::new(&opts(4, 100, false)).unwrap();
        let keys: HashSet<Vec<u8>> = (0..2000).map(|i| g.key(i, 1, 0)).collect();
        assert!(keys.len() > 95, "only {} distinct keys", keys.len());
        assert!(keys
            .iter()
            .all(|k| k.len() == 4 && k.as_slice() < b"0100".as_slice()));
    }

    // The random keys of one multi-put request never repeat (etcd rejects such a Txn).
    #[test]
    fn keys_of_one_request_are_distinct() {
        let g = KeyGen::new(&opts(2, 10, false)).unwrap();
        for seq in 0..100 {
            let keys: HashSet<Vec<u8>> = (0..10).map(|op| g.key(seq, 10, op)).collect();
            assert_eq!(keys.len(), 10, "request {seq}");
        }
    }

    // A key space that cannot be written in key_size digits is rejected with the fix.
    #[test]
    fn too_small_keys_are_rejected() {
        let err = KeyGen::new(&opts(2, 1000, true)).unwrap_err().to_string();
        assert!(err.contains("--key-size 3"), "{err}");
        assert!(KeyGen::new(&opts(3, 1000, true)).is_ok());
        assert!(KeyGen::new(&opts(0, 1, true)).is_err());
    }

    // Values have the requested size.
    #[test]
    fn values_have_their_size() {
        assert_eq!(value_of_size(256).len(), 256);
        assert!(value_of_size(0).is_empty());
    }
}
