//! Command-line flags (etcd's names, defaults and `ETCD_*` environment variables) and the
//! validated [`Config`] the rest of the member is built from.
//!
//! A script written for etcd starts a skiff-store member by changing only the binary's name,
//! so the flags keep etcd's spelling and meaning. Parsing is separate from validation: the
//! `Flags` struct is what clap fills, [`Config::from_flags`] turns it into typed values and
//! rejects inconsistent input with a message that names the flag.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// etcd's default request size limit: 1.5 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 1536 * 1024;
/// etcd's default backend quota: 2 GiB.
pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// etcd's limit on operations in one Txn.
pub const MAX_TXN_OPS: usize = 128;

/// The flags of `skiff-store`, named as etcd names them.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "skiff-store",
    version,
    about = "An etcd v3 compatible Raft key-value store"
)]
pub struct Flags {
    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: `<name>.etcd`).
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Comma-separated URLs to listen on for client traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub listen_client_urls: String,
    /// Comma-separated client URLs of this member, advertised to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub advertise_client_urls: String,
    /// Comma-separated URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub listen_peer_urls: String,
    /// Comma-separated peer URLs of this member, advertised to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping: `name=peer-url,...`.
    #[arg(long, env = "ETCD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// `new` bootstraps a cluster; `existing` joins one this member was added to.
    #[arg(long, env = "ETCD_INITIAL_CLUSTER_STATE", default_value = "new")]
    pub initial_cluster_state: String,
    /// Initial cluster token, mixed into member and cluster ids.
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,
    /// Raise an alarm when the backend size exceeds this many bytes (0 = default 2 GiB).
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    pub quota_backend_bytes: u64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: u64,
    /// Number of committed entries that trigger a snapshot (and let older log be purged).
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,
    /// Entries kept behind a snapshot for slow followers to catch up from (etcd 3.6's flag).
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_SNAPSHOT_CATCHUP_ENTRIES",
        default_value_t = 5000
    )]
    pub experimental_snapshot_catchup_entries: u64,
    /// How often idle watchers that asked for progress notifications get one (a Go-style
    /// duration: `500ms`, `5s`, `10m`, `1h`).
    #[arg(
        long,
        env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL",
        default_value = "10m"
    )]
    pub experimental_watch_progress_notify_interval: String,
    /// Auto-compaction mode: `periodic` (keep a duration of history) or `revision` (keep a
    /// number of revisions).
    #[arg(long, env = "ETCD_AUTO_COMPACTION_MODE", default_value = "periodic")]
    pub auto_compaction_mode: String,
    /// Auto-compaction retention: for `periodic` a duration (`30m`, `1h`; a bare number is
    /// hours, as in etcd), for `revision` a number of revisions. 0 turns it off.
    #[arg(long, env = "ETCD_AUTO_COMPACTION_RETENTION", default_value = "0")]
    pub auto_compaction_retention: String,
    /// Extra URLs serving only `/metrics` and `/health` (they are always on the client URLs).
    #[arg(long, env = "ETCD_LISTEN_METRICS_URLS")]
    pub listen_metrics_urls: Option<String>,
    /// Log level filter (`error`, `warn`, `info`, `debug`, or a tracing filter expression).
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// TEST ONLY: acknowledge Raft log appends before they are fsynced. Loses acknowledged
    /// writes on power loss or kill -9; exists so the fault-injection tests can prove they
    /// catch such a store.
    #[arg(long, hide = true, default_value_t = false)]
    pub unsafe_no_fsync: bool,
    /// TEST ONLY: serve linearizable reads from local state without ReadIndex (stale reads).
    #[arg(long, hide = true, default_value_t = false)]
    pub unsafe_local_reads: bool,
}

/// Whether this member bootstraps a new cluster or joins an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    /// Bootstrap from `--initial-cluster` together with the other listed members.
    New,
    /// Join a cluster this member was added to with `MemberAdd`.
    Existing,
}

/// One entry of `--initial-cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMember {
    /// The member's `--name`.
    pub name: String,
    /// The member's peer URLs.
    pub peer_urls: Vec<String>,
    /// The member id, derived as etcd does from the peer URLs and the cluster token.
    pub id: u64,
}

/// Validated configuration of one member.
#[derive(Debug, Clone)]
pub struct Config {
    /// This member's name.
    pub name: String,
    /// This member's id.
    pub member_id: u64,
    /// The cluster id, derived from the initial members.
    pub cluster_id: u64,
    /// Root of this member's files.
    pub data_dir: PathBuf,
    /// Socket addresses for client traffic (gRPC + `/health` + `/metrics`).
    pub listen_client: Vec<SocketAddr>,
    /// Advertised client URLs.
    pub advertise_client_urls: Vec<String>,
    /// Socket addresses for peer traffic.
    pub listen_peer: Vec<SocketAddr>,
    /// Advertised peer URLs.
    pub advertise_peer_urls: Vec<String>,
    /// Extra metrics listeners.
    pub listen_metrics: Vec<SocketAddr>,
    /// The members of `--initial-cluster`.
    pub initial_cluster: Vec<InitialMember>,
    /// `--initial-cluster-token`, mixed into the ids of members added later.
    pub initial_cluster_token: String,
    /// New cluster or joining an existing one.
    pub cluster_state: ClusterState,
    /// Raft heartbeat interval.
    pub heartbeat: Duration,
    /// Raft election timeout.
    pub election_timeout: Duration,
    /// Backend size that raises the NOSPACE alarm.
    pub quota_backend_bytes: u64,
    /// Largest accepted client request, in bytes.
    pub max_request_bytes: u64,
    /// Applied entries between two Raft snapshots.
    pub snapshot_count: u64,
    /// Log entries kept behind a snapshot.
    pub snapshot_catchup_entries: u64,
    /// Interval of periodic watch progress notifications.
    pub watch_progress_notify_interval: Duration,
    /// Auto-compaction by the leader, if on.
    pub auto_compaction: Option<AutoCompaction>,
    /// Test-only: acknowledge appends before fsync.
    pub unsafe_no_fsync: bool,
    /// Test-only: linearizable reads served locally.
    pub unsafe_local_reads: bool,
}

/// What the leader's auto-compaction keeps (see `server/compactor.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Keep this much history (time).
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(i64),
}

/// Parses `--auto-compaction-mode` and `--auto-compaction-retention` as etcd does.
pub fn parse_auto_compaction(
    mode: &str,
    retention: &str,
) -> Result<Option<AutoCompaction>, ConfigError> {
    let retention = retention.trim();
    let bad = |reason: String| ConfigError::BadFlag {
        flag: "auto-compaction-retention",
        reason,
    };
    match mode {
        "periodic" => {
            if let Ok(hours) = retention.parse::<u64>() {
                return Ok((hours > 0)
                    .then(|| AutoCompaction::Periodic(Duration::from_secs(hours * 3600))));
            }
            let d = parse_duration("auto-compaction-retention", retention)?;
            Ok((!d.is_zero()).then_some(AutoCompaction::Periodic(d)))
        }
        "revision" => {
            let n: i64 = retention.parse().map_err(|_| {
                bad(format!(
                    "{retention:?} is not a number of revisions (revision mode)"
                ))
            })?;
            if n < 0 {
                return Err(bad(format!("{n} revisions: must not be negative")));
            }
            Ok((n > 0).then_some(AutoCompaction::Revision(n)))
        }
        other => Err(ConfigError::BadFlag {
            flag: "auto-compaction-mode",
            reason: format!("{other:?} is neither \"periodic\" nor \"revision\""),
        }),
    }
}

/// A flag value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A URL flag holds something that is not `http://host:port`.
    #[error("invalid URL {url:?} in --{flag}: {reason}")]
    BadUrl {
        /// The flag's name.
        flag: &'static str,
        /// The offending value.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `--initial-cluster` is malformed or does not list this member.
    #[error("invalid --initial-cluster: {0}")]
    BadInitialCluster(String),
    /// Any other flag with an unusable value.
    #[error("invalid --{flag}: {reason}")]
    BadFlag {
        /// The flag's name.
        flag: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl Config {
    /// Validates the flags and derives ids, addresses and paths.
    pub fn from_flags(f: &Flags) -> Result<Config, ConfigError> {
        let advertise_peer_urls = split_urls(&f.initial_advertise_peer_urls);
        let default_cluster = format!("{}={}", f.name, advertise_peer_urls.join(","));
        let initial_cluster = parse_initial_cluster(
            f.initial_cluster.as_deref().unwrap_or(&default_cluster),
            &f.initial_cluster_token,
        )?;
        let me = initial_cluster
            .iter()
            .find(|m| m.name == f.name)
            .ok_or_else(|| {
                ConfigError::BadInitialCluster(format!(
                    "this member's --name {:?} is not listed; add `{}={}`",
                    f.name,
                    f.name,
                    advertise_peer_urls.join(",")
                ))
            })?;
        let cluster_state = match f.initial_cluster_state.as_str() {
            "new" => ClusterState::New,
            "existing" => ClusterState::Existing,
            other => {
                return Err(ConfigError::BadFlag {
                    flag: "initial-cluster-state",
                    reason: format!("{other:?} is neither \"new\" nor \"existing\""),
                })
            }
        };
        check_timing(f.heartbeat_interval, f.election_timeout)?;
        Ok(Config {
            name: f.name.clone(),
            member_id: me.id,
            cluster_id: cluster_id(&initial_cluster, &f.initial_cluster_token),
            data_dir: f
                .data_dir
                .clone()
                .unwrap_or_else(|| format!("{}.etcd", f.name).into()),
            listen_client: resolve_all("listen-client-urls", &f.listen_client_urls)?,
            advertise_client_urls: split_urls(&f.advertise_client_urls),
            listen_peer: resolve_all("listen-peer-urls", &f.listen_peer_urls)?,
            advertise_peer_urls,
            listen_metrics: match &f.listen_metrics_urls {
                Some(urls) => resolve_all("listen-metrics-urls", urls)?,
                None => Vec::new(),
            },
            initial_cluster,
            initial_cluster_token: f.initial_cluster_token.clone(),
            cluster_state,
            heartbeat: Duration::from_millis(f.heartbeat_interval),
            election_timeout: Duration::from_millis(f.election_timeout),
            quota_backend_bytes: if f.quota_backend_bytes == 0 {
                DEFAULT_QUOTA_BACKEND_BYTES
            } else {
                f.quota_backend_bytes
            },
            max_request_bytes: f.max_request_bytes,
            snapshot_count: f.snapshot_count.max(1),
            snapshot_catchup_entries: f.experimental_snapshot_catchup_entries,
            watch_progress_notify_interval: parse_duration(
                "experimental-watch-progress-notify-interval",
                &f.experimental_watch_progress_notify_interval,
            )?,
            auto_compaction: parse_auto_compaction(
                &f.auto_compaction_mode,
                &f.auto_compaction_retention,
            )?,
            unsafe_no_fsync: f.unsafe_no_fsync,
            unsafe_local_reads: f.unsafe_local_reads,
        })
    }

    /// The minimum lease TTL etcd enforces: 1.5 election timeouts, rounded up to seconds.
    pub fn min_lease_ttl_secs(&self) -> i64 {
        let ms = self.election_timeout.as_millis() as i64 * 3 / 2;
        (ms + 999) / 1000
    }
}

fn check_timing(heartbeat_ms: u64, election_ms: u64) -> Result<(), ConfigError> {
    if heartbeat_ms == 0 {
        return Err(ConfigError::BadFlag {
            flag: "heartbeat-interval",
            reason: "must be greater than 0".into(),
        });
    }
    // etcd requires the election timeout to be at least 5 heartbeats so a healthy leader
    // is never voted out between two heartbeats.
    if election_ms < 5 * heartbeat_ms {
        return Err(ConfigError::BadFlag {
            flag: "election-timeout",
            reason: format!(
                "{election_ms} ms must be at least 5 times --heartbeat-interval ({heartbeat_ms} ms)"
            ),
        });
    }
    Ok(())
}

/// Splits a comma-separated URL list, dropping empty items.
pub fn split_urls(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect()
}

/// Parses `name=url,name=url2,other=url3` (a name may repeat for several URLs).
pub fn parse_initial_cluster(s: &str, token: &str) -> Result<Vec<InitialMember>, ConfigError> {
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, url) = item.split_once('=').ok_or_else(|| {
            ConfigError::BadInitialCluster(format!("{item:?} is not of the form name=url"))
        })?;
        url_host_port(url).map_err(|reason| ConfigError::BadUrl {
            flag: "initial-cluster",
            url: url.to_string(),
            reason,
        })?;
        by_name
            .entry(name.to_string())
            .or_default()
            .push(url.to_string());
    }
    if by_name.is_empty() {
        return Err(ConfigError::BadInitialCluster("no members listed".into()));
    }
    Ok(by_name
        .into_iter()
        .map(|(name, mut peer_urls)| {
            peer_urls.sort();
            let id = member_id(&peer_urls, token);
            InitialMember {
                name,
                peer_urls,
                id,
            }
        })
        .collect())
}

/// A member id from its sorted peer URLs and the cluster token (as etcd derives it from a
/// hash of the same inputs), never 0.
pub fn member_id(sorted_peer_urls: &[String], token: &str) -> u64 {
    let mut h = Fnv64::default();
    for u in sorted_peer_urls {
        h.write(u.as_bytes());
    }
    h.write(token.as_bytes());
    h.finish().max(1)
}

/// The cluster id of a new cluster: a hash of its members' ids and the cluster token.
pub fn cluster_id(members: &[InitialMember], token: &str) -> u64 {
    let mut ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    ids.sort_unstable();
    let mut h = Fnv64::default();
    for id in ids {
        h.write(&id.to_be_bytes());
    }
    h.write(token.as_bytes());
    h.finish().max(1)
}

/// FNV-1a: stable across builds and platforms, unlike `DefaultHasher`.
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Extracts `host:port` from `http://host:port[/]`.
pub fn url_host_port(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| "only http:// URLs are supported (TLS comes later)".to_string())?;
    let hostport = rest.trim_end_matches('/');
    if hostport.is_empty() || !hostport.contains(':') {
        return Err("expected http://host:port".into());
    }
    Ok(hostport.to_string())
}

fn resolve_all(flag: &'static str, urls: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    use std::net::ToSocketAddrs;
    let mut out = Vec::new();
    for url in split_urls(urls) {
        let hp = url_host_port(&url).map_err(|reason| ConfigError::BadUrl {
            flag,
            url: url.clone(),
            reason,
        })?;
        let addrs = hp.to_socket_addrs().map_err(|e| ConfigError::BadUrl {
            flag,
            url: url.clone(),
            reason: e.to_string(),
        })?;
        // Listening on the first resolved address matches what etcd does for `localhost`.
        out.extend(addrs.take(1));
    }
    if out.is_empty() {
        return Err(ConfigError::BadFlag {
            flag,
            reason: "no URL given".into(),
        });
    }
    Ok(out)
}

/// Parses a Go-style duration (`250ms`, `5s`, `10m`, `1h`, or combinations like `1m30s`) as
/// etcd's duration flags take them. Zero is refused: an interval must be positive.
pub fn parse_duration(flag: &'static str, s: &str) -> Result<Duration, ConfigError> {
    let bad = |reason: String| ConfigError::BadFlag { flag, reason };
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad("empty duration; use e.g. 5s or 10m".into()));
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| bad(format!("{s:?} has a number without a unit (ms, s, m, h)")))?;
        let (num, tail) = rest.split_at(digits);
        let value: f64 = num
            .parse()
            .map_err(|_| bad(format!("{s:?} is not a duration like 5s or 10m")))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let secs = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => {
                return Err(bad(format!(
                    "unknown unit {other:?} in {s:?} (use ms, s, m, h)"
                )))
            }
        };
        total += Duration::from_secs_f64(value * secs);
        rest = next;
    }
    if total.is_zero() {
        return Err(bad(format!("{s:?} must be positive")));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        let d = |s| parse_duration("x", s);
        assert_eq!(d("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(d("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(d("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(d("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "10", "5x", "0s", "s"] {
            assert!(d(bad).is_err(), "{bad:?} should be refused");
        }
    }

    // etcd's auto-compaction flags: a bare number is hours in periodic mode, 0 is off.
    #[test]
    fn auto_compaction_flags_parse_as_in_etcd() {
        let p = parse_auto_compaction;
        assert_eq!(p("periodic", "0").unwrap(), None);
        assert_eq!(
            p("periodic", "1").unwrap(),
            Some(AutoCompaction::Periodic(Duration::from_secs(3600)))
        );
        assert_eq!(
            p("periodic", "30m").unwrap(),
            Some(AutoCompaction::Periodic(Duration::from_secs(1800)))
        );
        assert_eq!(p("revision", "0").unwrap(), None);
        assert_eq!(
            p("revision", "1000").unwrap(),
            Some(AutoCompaction::Revision(1000))
        );
        for (mode, retention) in [
            ("revision", "1h"),
            ("revision", "-5"),
            ("periodic", "x"),
            ("daily", "1"),
        ] {
            let err = p(mode, retention).unwrap_err().to_string();
            assert!(err.contains("auto-compaction"), "{mode} {retention}: {err}");
        }
    }

    // A three-member --initial-cluster parses into three distinct, stable ids.
    #[test]
    fn initial_cluster_parses_and_ids_are_stable() {
        let s = "a=http://127.0.0.1:2380,b=http://127.0.0.1:2381,c=http://127.0.0.1:2382";
        let m = parse_initial_cluster(s, "tok").unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].name, "a");
        let again = parse_initial_cluster(s, "tok").unwrap();
        assert_eq!(m, again);
        assert_ne!(m[0].id, m[1].id);
        let other_token = parse_initial_cluster(s, "tok2").unwrap();
        assert_ne!(m[0].id, other_token[0].id);
    }

    // Malformed cluster strings and URLs are rejected with the flag named.
    #[test]
    fn bad_input_is_named() {
        assert!(parse_initial_cluster("a", "t").is_err());
        let e = parse_initial_cluster("a=https://x:1", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("initial-cluster"), "{e}");
        let flags = Flags::parse_from(["skiff-store", "--election-timeout", "100"]);
        let e = Config::from_flags(&flags).unwrap_err().to_string();
        assert!(e.contains("election-timeout"), "{e}");
    }

    // With election timeout 1000 ms the minimum lease TTL is 2 s, as in etcd.
    #[test]
    fn min_ttl_matches_etcd() {
        let flags = Flags::parse_from(["skiff-store"]);
        let cfg = Config::from_flags(&flags).unwrap();
        assert_eq!(cfg.min_lease_ttl_secs(), 2);
    }
}
