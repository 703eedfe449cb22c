//! Who this member is: its member id and cluster id, persisted in the data dir.
//!
//! - A member of a **new** cluster derives both ids from `--initial-cluster` and the token.
//! - A member started with `--initial-cluster-state existing` was added with `MemberAdd`,
//!   which chose a fresh id; the member asks the peers of `--initial-cluster` for the member
//!   list and finds itself by its peer URLs (as etcd does).
//! - A data dir made by `skiff-store snapshot restore` carries the ids and the initial
//!   membership of the new cluster it seeds (`bootstrap`).
//!
//! The first answer is written to `member/identity.json` (temp file, fsync, rename, and every
//! directory entry on the way fsynced) before the member starts Raft or answers any peer, and
//! every later start uses that file, so flags cannot change a member's identity.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use skiff_wal::durable;

use super::membership::ClusterInfo;
use crate::config::{ClusterState, Config};
use crate::raft::network::{PeerConn, PeerMethod};
use crate::raft::MemberNode;

/// How long a joining member keeps asking peers for the member list.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one `ListMembers` call.
const LIST_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// One member of the membership a restored data dir bootstraps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapMember {
    /// Member id.
    pub id: u64,
    /// Member name.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
}

/// The persisted identity of a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// This member's id.
    pub member_id: u64,
    /// The cluster's id.
    pub cluster_id: u64,
    /// Set by `snapshot restore`: the initial membership of the new cluster, used instead of
    /// the flags when the Raft log is still empty.
    #[serde(default)]
    pub bootstrap: Option<Vec<BootstrapMember>>,
}

/// Why the identity could not be settled.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The identity file cannot be read or written.
    #[error("failed to {what} {path}: {source}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The identity file is not valid JSON of the expected shape.
    #[error("{path} is corrupt ({source}); restore the member from a snapshot or re-add it")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// No peer answered, or none knows a member with these peer URLs.
    #[error("could not join the existing cluster: {0}")]
    Join(String),
}

/// The identity file of a data dir.
pub fn identity_path(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("identity.json")
}

/// Reads the identity file, if there is one.
pub fn load(data_dir: &Path) -> Result<Option<Identity>, IdentityError> {
    let path = identity_path(data_dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| IdentityError::Corrupt { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(IdentityError::Io {
            what: "read",
            path,
            source,
        }),
    }
}

/// Writes the identity file durably: the data dir and `member/` are created with their
/// directory entries fsynced (a lost `member/` entry would make the member forget its id
/// after a power cut), then the file is written to a temporary name, fsynced, renamed and its
/// directory fsynced. Once this returns the identity survives a crash.
pub fn store(data_dir: &Path, id: &Identity) -> Result<(), IdentityError> {
    let path = identity_path(data_dir);
    let io = |what| {
        let path = path.clone();
        move |source| IdentityError::Io { what, path, source }
    };
    let dir = path.parent().expect("identity file has a parent");
    durable::create_dir_all(dir).map_err(io("create the directory of"))?;
    let bytes = serde_json::to_vec_pretty(id).expect("an identity serializes");
    durable::write_file(&path, &bytes).map_err(io("write"))
}

/// Settles this member's identity: the stored one, else derived (new cluster) or looked up
/// from the peers (existing cluster), and stores it.
pub async fn resolve(cfg: &Config) -> Result<Identity, IdentityError> {
    if let Some(id) = load(&cfg.data_dir)? {
        return Ok(id);
    }
    let id = match cfg.cluster_state {
        ClusterState::New => Identity {
            member_id: cfg.member_id,
            cluster_id: cfg.cluster_id,
            bootstrap: None,
        },
        ClusterState::Existing => discover(cfg).await?,
    };
    store(&cfg.data_dir, &id)?;
    Ok(id)
}

fn same_urls(a: &[String], b: &[String]) -> bool {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort();
    b.sort();
    a == b
}

/// Asks the other members of `--initial-cluster` for the member list and finds this
/// member in it by its advertised peer URLs.
async fn discover(cfg: &Config) -> Result<Identity, IdentityError> {
    let peers: Vec<MemberNode> = cfg
        .initial_cluster
        .iter()
        .filter(|m| !same_urls(&m.peer_urls, &cfg.advertise_peer_urls))
        .map(|m| MemberNode {
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
        })
        .collect();
    if peers.is_empty() {
        return Err(IdentityError::Join(
            "--initial-cluster lists no other member to ask for the member list".into(),
        ));
    }
    let start = Instant::now();
    let mut last_error = String::new();
    while start.elapsed() < DISCOVERY_TIMEOUT {
        for peer in &peers {
            let conn = match PeerConn::connect(peer) {
                Ok(c) => c,
                Err(e) => {
                    last_error = e.to_string();
                    continue;
                }
            };
            match conn
                .call::<_, ClusterInfo>(PeerMethod::ListMembers, &(), LIST_CALL_TIMEOUT)
                .await
            {
                // A peer that has not caught up with the MemberAdd yet does not list this
                // member; another peer (or the same one a little later) will.
                Ok(info) => match find_self(cfg, info) {
                    Ok(id) => return Ok(id),
                    Err(e) => {
                        tracing::debug!(peer = %peer, error = %e, "peer does not list this member yet");
                        last_error = format!("{peer}: {e}");
                    }
                },
                Err(e) => {
                    tracing::debug!(peer = %peer, error = %e, "member list lookup failed");
                    last_error = format!("{peer}: {e}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(IdentityError::Join(format!(
        "no member of --initial-cluster listed this member within {DISCOVERY_TIMEOUT:?} (last error: {last_error})"
    )))
}

fn find_self(cfg: &Config, info: ClusterInfo) -> Result<Identity, IdentityError> {
    let me = info
        .members
        .iter()
        .find(|m| same_urls(&m.peer_urls, &cfg.advertise_peer_urls))
        .ok_or_else(|| {
            IdentityError::Join(format!(
                "the cluster has no member with peer URLs {:?}; add it first with `etcdctl member add {} --peer-urls={}`",
                cfg.advertise_peer_urls,
                cfg.name,
                cfg.advertise_peer_urls.join(",")
            ))
        })?;
    tracing::info!(
        member_id = format!("{:x}", me.id),
        cluster_id = format!("{:x}", info.cluster_id),
        "found this member in the existing cluster"
    );
    Ok(Identity {
        member_id: me.id,
        cluster_id: info.cluster_id,
        bootstrap: None,
    })
}
