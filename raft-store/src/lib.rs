//! `skiff-store`: a drop-in etcd v3 replacement built on openraft, a write-ahead log and an
//! MVCC state machine on RocksDB.
//!
//! Crate map:
//! - [`batched_io`]: a socket wrapper that gathers writes until a flush, used on the
//!   client port and by `skiff-bench`'s connections.
//! - [`bench`]: the engine of `skiff-bench`, an etcd-benchmark-like load generator for any
//!   etcd v3 endpoint set (workloads, pacing, latency histograms, reports).
//! - [`config`]: etcd's flags and the validated member configuration.
//! - [`memory`]: process-wide memory settings of the binaries (no transparent huge pages).
//! - [`raft`]: openraft's type config, the log store over `skiff-wal`, the state machine
//!   over `skiff-mvcc`, and the outbound peer network.
//! - [`restore`]: `skiff-store snapshot restore`, seeding a new cluster from a snapshot.
//! - [`snapshot_file`]: the operator snapshot file (`etcdctl snapshot save`) framing.
//! - [`server`]: one running member: the etcd gRPC services (KV, Lease, Cluster,
//!   Maintenance), the peer service, write batching and forwarding, linearizable reads,
//!   lease expiry, `/health` and `/metrics`.
//!
//! The storage engines are separate crates with no knowledge of Raft: `skiff-wal`
//! (segmented, CRC-framed, group-committed log) and `skiff-mvcc` (etcd's revision model on
//! RocksDB).

pub mod batched_io;
pub mod bench;
pub mod config;
pub mod memory;
pub mod raft;
pub mod restore;
pub mod server;
pub mod snapshot_file;
