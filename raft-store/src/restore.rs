//! `skiff-store snapshot restore`: seeds the data dir of one member of a NEW cluster from an
//! operator snapshot (`etcdctl snapshot save`), like `etcdctl snapshot restore` does for
//! etcd.
//!
//! The snapshot's keys, revisions, history and leases are kept; everything that belonged to
//! the old cluster is dropped (applied marker, Raft membership, published member attributes,
//! removed-member set, alarms). The member gets the ids of the new cluster (derived from
//! `--initial-cluster` and `--initial-cluster-token`, as for a new cluster) and an empty Raft
//! log; its identity file records the new membership, so the first start bootstraps it.
//! Run it once per member, with the same file and flags except `--name` /
//! `--initial-advertise-peer-urls` / `--data-dir`.
//!
//! The whole file is checked (SHA-256, then the stream's header, per-chunk and trailer
//! CRC-32C and record count) before anything is kept: a corrupt or truncated file leaves no data dir behind.

use std::path::{Path, PathBuf};

use clap::Parser;
use skiff_mvcc::{Mvcc, MvccOptions};

use crate::config::{cluster_id, parse_initial_cluster, split_urls};
use crate::server::identity::{self, BootstrapMember, Identity};
use crate::snapshot_file;

/// `skiff-store snapshot restore FILE [flags]` (etcdctl's flag names and defaults).
#[derive(Debug, Parser)]
#[command(name = "skiff-store snapshot restore")]
pub struct RestoreFlags {
    /// The snapshot file written by `etcdctl snapshot save`.
    pub file: PathBuf,
    /// Path to the data directory to create (must not exist or be empty).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Initial cluster configuration for restore bootstrap.
    #[arg(long, default_value = "default=http://localhost:2380")]
    pub initial_cluster: String,
    /// Initial cluster token for the etcd cluster during restore bootstrap.
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(long, default_value = "http://localhost:2380")]
    pub initial_advertise_peer_urls: String,
}

/// Why a restore failed. Nothing is left in the data dir after any of these.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The target data dir already holds files.
    #[error("data-dir {0:?} exists and is not empty; restore into a new directory")]
    DataDirNotEmpty(PathBuf),
    /// The flags describe an impossible cluster.
    #[error("invalid flags: {0}")]
    Flags(String),
    /// The snapshot cannot be read.
    #[error("failed to open snapshot {path:?}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The snapshot is damaged, truncated or not a skiff-store snapshot.
    #[error("snapshot {path:?} is not usable: {source}")]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// The cause (checksum mismatch, truncation, ...).
        source: skiff_mvcc::SnapshotError,
    },
    /// The file's framing or SHA-256 is wrong (truncated or damaged download).
    #[error("snapshot {path:?} is not usable: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: crate::snapshot_file::SnapshotFileError,
    },
    /// The new state machine could not be written.
    #[error("failed to write the restored state: {0}")]
    Storage(#[from] skiff_mvcc::StorageError),
    /// The identity file could not be written.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// Creating the data dir failed.
    #[error("failed to create data-dir {path:?}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What a restore produced.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The data dir that was created.
    pub data_dir: PathBuf,
    /// The new member id.
    pub member_id: u64,
    /// The new cluster id.
    pub cluster_id: u64,
    /// The store revision the snapshot holds.
    pub revision: i64,
}

fn is_empty_or_missing(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => !dir.exists(),
    }
}

/// Runs a restore; on failure the data dir is removed again.
pub fn restore(f: &RestoreFlags) -> Result<Restored, RestoreError> {
    let data_dir = f
        .data_dir
        .clone()
        .unwrap_or_else(|| format!("{}.etcd", f.name).into());
    if !is_empty_or_missing(&data_dir) {
        return Err(RestoreError::DataDirNotEmpty(data_dir));
    }
    let members = parse_initial_cluster(&f.initial_cluster, &f.initial_cluster_token)
        .map_err(|e| RestoreError::Flags(e.to_string()))?;
    let me = members.iter().find(|m| m.name == f.name).ok_or_else(|| {
        RestoreError::Flags(format!(
            "--name {:?} is not listed in --initial-cluster",
            f.name
        ))
    })?;
    let mut advertised = split_urls(&f.initial_advertise_peer_urls);
    advertised.sort();
    if advertised != me.peer_urls {
        return Err(RestoreError::Flags(format!(
            "--initial-advertise-peer-urls {advertised:?} differ from the URLs --initial-cluster lists for {:?} ({:?})",
            f.name, me.peer_urls
        )));
    }
    let ident = Identity {
        member_id: me.id,
        cluster_id: cluster_id(&members, &f.initial_cluster_token),
        bootstrap: Some(
            members
                .iter()
                .map(|m| BootstrapMember {
                    id: m.id,
                    name: m.name.clone(),
                    peer_urls: m.peer_urls.clone(),
                })
                .collect(),
        ),
    };
    let res = write_data_dir(f, &data_dir, &ident);
    if res.is_err() {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    res
}

fn write_data_dir(
    f: &RestoreFlags,
    data_dir: &Path,
    ident: &Identity,
) -> Result<Restored, RestoreError> {
    let file = std::fs::read(&f.file).map_err(|source| RestoreError::Open {
        path: f.file.clone(),
        source,
    })?;
    let mut stream = snapshot_file::unwrap(&file).map_err(|source| RestoreError::File {
        path: f.file.clone(),
        source,
    })?;
    let kv_dir = data_dir.join("member").join("kv");
    skiff_wal::durable::create_dir_all(&kv_dir).map_err(|source| RestoreError::CreateDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let mvcc = Mvcc::open(&kv_dir, MvccOptions::default())?;
    mvcc.install_snapshot(&mut stream)
        .map_err(|source| RestoreError::Snapshot {
            path: f.file.clone(),
            source,
        })?;
    mvcc.clear_meta()?;
    mvcc.flush()?;
    let revision = mvcc.current_revision();
    drop(mvcc);
    identity::store(data_dir, ident)?;
    Ok(Restored {
        data_dir: data_dir.to_path_buf(),
        member_id: ident.member_id,
        cluster_id: ident.cluster_id,
        revision,
    })
}
