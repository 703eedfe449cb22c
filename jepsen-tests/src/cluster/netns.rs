//! The local cluster backend: every member in its own network namespace.
//!
//! Setup claims a free *slot* by creating the bridge `sj<slot>br` (creation is atomic, so
//! parallel runs never share one), gives the bridge `10.A.B.1/24` and member `i` the address
//! `10.A.B.(10+i)` on a veth pair, and lets bridged traffic through the root namespace's
//! `FORWARD` chain (Docker sets its policy to DROP). Members listen on the standard ports 2379
//! and 2380 of their own address. Partitions are `iptables -A INPUT -s <peer> -j DROP` rules
//! inside member namespaces, so only member-to-member traffic is cut; the harness (on the
//! bridge address) always reaches every member.
//!
//! Everything is torn down on drop, also during a panic: processes killed, disks unmounted,
//! namespaces, bridge and the FORWARD rule removed. A run killed with SIGKILL leaves its slot
//! behind; `skiff-jepsen cleanup` removes such leftovers.

use super::disk::LoopDisk;
use super::{sys, Cluster, ClusterError, StartMode};
use crate::nemesis::grudge::Grudge;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Number of slots: 10.200.0.0 to 10.255.255.0, one /24 each.
const SLOTS: u32 = 56 * 256;
/// Prefix of every interface and namespace this backend creates.
pub const NAME_PREFIX: &str = "sj";
/// Client port of every member (each has its own address).
pub const CLIENT_PORT: u16 = 2379;
/// Peer port of every member.
pub const PEER_PORT: u16 = 2380;

/// How to build a [`NetnsCluster`].
#[derive(Debug, Clone)]
pub struct NetnsOptions {
    /// Number of members (3 or 5 usually).
    pub members: usize,
    /// The server binary: `skiff-store` or `etcd` (same flags).
    pub binary: PathBuf,
    /// Directory for data dirs, disk images and member logs.
    pub dir: PathBuf,
    /// Extra flags for every member (e.g. `--unsafe-local-reads`).
    pub extra_args: Vec<String>,
    /// Put each data dir on a loop-mounted ext4 image, which the power-loss fault needs.
    pub loop_disks: bool,
}

#[derive(Debug, Default)]
struct MemberState {
    child: Option<Child>,
    paused: bool,
    disk: Option<LoopDisk>,
    membership: Membership,
}

/// Where a member stands after membership changes, which decides the flags it starts with.
///
/// ```text
///  Settled ──wipe──▶ Wiped ──start(Join)──▶ Joining ──confirm_joined──▶ Settled
///                      ▲                      │ start(Initial) = start(Join) again
///                      └────────wipe──────────┘
/// ```
#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum Membership {
    /// Started from the initial cluster, or its join was confirmed: its data dir decides who
    /// it is, and a restart uses the initial flags (which a member with data ignores).
    #[default]
    Settled,
    /// The data dir was wiped for a membership change: starting it with the initial cluster
    /// would bootstrap a second cluster, so only a join may start it.
    Wiped,
    /// Started as a joining member with this `--initial-cluster`. Until the member has served
    /// a read, it may not have stored its new identity yet (a kill or power loss during its
    /// join leaves the data dir empty), and a restart with the initial flags would bootstrap
    /// it under its old, removed id; so every restart joins again with the same flags.
    Joining(String),
}

impl Membership {
    /// The flags a start asked for as `requested` uses, or why the start is refused.
    fn start_mode(&self, requested: StartMode) -> Result<StartMode, &'static str> {
        match (self, requested) {
            (_, join @ StartMode::Join(_)) => Ok(join),
            (Membership::Settled, StartMode::Initial) => Ok(StartMode::Initial),
            (Membership::Joining(cluster), StartMode::Initial) => {
                Ok(StartMode::Join(cluster.clone()))
            }
            (Membership::Wiped, StartMode::Initial) => Err(
                "its data dir was wiped for a membership change; it can only join (MemberAdd, \
                 then a start with StartMode::Join)",
            ),
        }
    }

    /// The state after a member was started with `mode`.
    fn started(&self, mode: &StartMode) -> Membership {
        match mode {
            StartMode::Join(cluster) => Membership::Joining(cluster.clone()),
            StartMode::Initial => self.clone(),
        }
    }
}

/// A cluster of member processes, one network namespace each. See the module docs.
#[derive(Debug)]
pub struct NetnsCluster {
    options: NetnsOptions,
    slot: u32,
    members: Vec<Mutex<MemberState>>,
    /// Serialises iptables changes so concurrent heals and partitions do not interleave.
    net: Mutex<()>,
    namespaces_created: usize,
    forward_rule: bool,
}

/// Checks that this machine can host a namespaced cluster: root, `ip`, `iptables`, `mount`,
/// `mkfs.ext4`. The error says what is missing.
pub fn preflight() -> Result<(), ClusterError> {
    if !sys::is_root() {
        return Err(ClusterError::Preflight(
            "network namespaces, iptables and loop mounts need root; run as root (or in CI as \
             root)"
                .into(),
        ));
    }
    for tool in ["ip", "iptables", "mount", "mkfs.ext4"] {
        if sys::run("sh", &["-c", &format!("command -v {tool}")]).is_err() {
            return Err(ClusterError::Preflight(format!(
                "`{tool}` is missing; install iproute2, iptables, mount and e2fsprogs \
                 (scripts/setup.sh does)"
            )));
        }
    }
    Ok(())
}

impl NetnsCluster {
    /// Builds the network and the disks and starts every member. Does not wait for health.
    pub fn start(options: NetnsOptions) -> Result<NetnsCluster, ClusterError> {
        preflight()?;
        if !options.binary.exists() {
            return Err(ClusterError::Preflight(format!(
                "server binary {} does not exist; build it with `cargo build -p skiff-store \
                 --bin skiff-store` or pass --binary",
                options.binary.display()
            )));
        }
        std::fs::create_dir_all(&options.dir).map_err(|source| ClusterError::Io {
            path: options.dir.clone(),
            source,
        })?;
        refuse_busy_dir(&options.dir)?;
        let slot = claim_slot()?;
        let mut cluster = NetnsCluster {
            members: (0..options.members).map(|_| Mutex::default()).collect(),
            options,
            slot,
            net: Mutex::new(()),
            namespaces_created: 0,
            forward_rule: false,
        };
        cluster.build_network()?;
        cluster.build_disks()?;
        for i in 0..cluster.size() {
            cluster.start(i, StartMode::Initial)?;
        }
        tracing::info!(slot, bridge = %cluster.bridge(), "cluster started");
        Ok(cluster)
    }

    fn bridge(&self) -> String {
        format!("{NAME_PREFIX}{}br", self.slot)
    }

    fn namespace(&self, i: usize) -> String {
        format!("{NAME_PREFIX}{}m{i}", self.slot)
    }

    fn subnet(&self) -> String {
        format!("10.{}.{}", 200 + self.slot / 256, self.slot % 256)
    }

    /// The address of member `i`.
    pub fn ip(&self, i: usize) -> String {
        format!("{}.{}", self.subnet(), 10 + i)
    }

    fn build_network(&mut self) -> Result<(), ClusterError> {
        let bridge = self.bridge();
        sys::run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}.1/24", self.subnet()),
                "dev",
                &bridge,
            ],
        )?;
        sys::run("ip", &["link", "set", &bridge, "up"])?;
        sys::run("iptables", &forward_rule("-I", &bridge))?;
        self.forward_rule = true;
        for i in 0..self.size() {
            let ns = self.namespace(i);
            let host = format!("{NAME_PREFIX}{}v{i}", self.slot);
            let inner = format!("{NAME_PREFIX}{}p{i}", self.slot);
            sys::run("ip", &["netns", "add", &ns])?;
            self.namespaces_created = i + 1;
            sys::run(
                "ip",
                &["link", "add", &host, "type", "veth", "peer", "name", &inner],
            )?;
            sys::run("ip", &["link", "set", &inner, "netns", &ns])?;
            sys::run("ip", &["link", "set", &host, "master", &bridge])?;
            sys::run("ip", &["link", "set", &host, "up"])?;
            let address = format!("{}/24", self.ip(i));
            sys::run_in(&ns, "ip", &["addr", "add", &address, "dev", &inner])?;
            sys::run_in(&ns, "ip", &["link", "set", &inner, "up"])?;
            sys::run_in(&ns, "ip", &["link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    fn build_disks(&mut self) -> Result<(), ClusterError> {
        if !self.options.loop_disks {
            return Ok(());
        }
        for i in 0..self.size() {
            let image = self.options.dir.join(format!("m{i}.img"));
            let mount = self.options.dir.join(format!("m{i}.disk"));
            let disk = LoopDisk::create(&image, &mount)?;
            self.member(i).disk = Some(disk);
        }
        Ok(())
    }

    fn data_dir(&self, i: usize, state: &MemberState) -> PathBuf {
        match &state.disk {
            Some(disk) => disk.path().join("data"),
            None => self.options.dir.join(format!("m{i}.data")),
        }
    }

    fn member(&self, i: usize) -> MutexGuard<'_, MemberState> {
        // A poisoned member lock only means a panic elsewhere; the state is still usable for
        // killing and tearing down.
        self.members[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn initial_cluster(&self) -> String {
        (0..self.size())
            .map(|i| format!("{}={}", self.name(i), self.peer_url(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(
        &self,
        i: usize,
        state: &MemberState,
        mode: &StartMode,
    ) -> Result<Child, ClusterError> {
        let fail = |detail: String| ClusterError::Member {
            action: "start",
            member: i,
            detail,
        };
        let log_path = self.log_path(i);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|err| fail(format!("{}: {err}", log_path.display())))?;
        let log_err = log.try_clone().map_err(|err| fail(err.to_string()))?;
        let (cluster, state_flag) = match mode {
            StartMode::Initial => (self.initial_cluster(), "new"),
            StartMode::Join(cluster) => (cluster.clone(), "existing"),
        };
        let (client, peer) = (self.client_url(i), self.peer_url(i));
        let data_dir = self.data_dir(i, state);
        let mut command = Command::new(&self.options.binary);
        command
            .args(["--name", &self.name(i)])
            .arg("--data-dir")
            .arg(&data_dir)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args([
                "--initial-cluster",
                &cluster,
                "--initial-cluster-state",
                state_flag,
            ])
            .args(["--initial-cluster-token", "skiff-jepsen"])
            .args(&self.options.extra_args)
            // Real etcd refuses to start on some architectures without this; skiff ignores it.
            .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // The child enters the namespace itself and execs the binary, so its pid is the
        // server's pid and signals reach it directly.
        let _netns = sys::enter_netns(&mut command, &self.namespace(i))
            .map_err(|err| fail(format!("network namespace {}: {err}", self.namespace(i))))?;
        command.spawn().map_err(|err| fail(err.to_string()))
    }
}

fn forward_rule<'a>(action: &'a str, bridge: &'a str) -> [&'a str; 8] {
    [
        action, "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT",
    ]
}

/// Refuses a run directory that still has file systems mounted under it (a previous run that
/// has not finished tearing down): mounting over them and unmounting later would unmount the
/// wrong one.
fn refuse_busy_dir(dir: &Path) -> Result<(), ClusterError> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let busy: Vec<&str> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter(|mount| Path::new(mount).starts_with(&dir))
        .collect();
    if busy.is_empty() {
        return Ok(());
    }
    Err(ClusterError::Preflight(format!(
        "{} still has mounts ({}) from another run; wait for it to finish, use another --out, \
         or run `skiff-jepsen cleanup`",
        dir.display(),
        busy.join(", ")
    )))
}

/// Claims the first free slot at or after a pid-derived start by creating its bridge.
fn claim_slot() -> Result<u32, ClusterError> {
    let start = std::process::id() % SLOTS;
    let mut last = None;
    for offset in 0..64 {
        let slot = (start + offset * 97) % SLOTS;
        let bridge = format!("{NAME_PREFIX}{slot}br");
        match sys::run("ip", &["link", "add", &bridge, "type", "bridge"]) {
            Ok(_) => return Ok(slot),
            Err(err) => last = Some(err),
        }
    }
    Err(ClusterError::Preflight(format!(
        "no free network slot after 64 attempts (last: {}); remove leftovers with \
         `skiff-jepsen cleanup`",
        last.map_or_else(String::new, |e| e.to_string())
    )))
}

impl Cluster for NetnsCluster {
    fn size(&self) -> usize {
        self.options.members
    }

    fn client_url(&self, i: usize) -> String {
        format!("http://{}:{CLIENT_PORT}", self.ip(i))
    }

    fn peer_url(&self, i: usize) -> String {
        format!("http://{}:{PEER_PORT}", self.ip(i))
    }

    fn start(&self, i: usize, mode: StartMode) -> Result<(), ClusterError> {
        let mut state = self.member(i);
        if state.child.is_some() {
            return Ok(());
        }
        let mode = state
            .membership
            .start_mode(mode)
            .map_err(|detail| ClusterError::Member {
                action: "start",
                member: i,
                detail: detail.into(),
            })?;
        let child = self.spawn(i, &state, &mode)?;
        state.membership = state.membership.started(&mode);
        tracing::debug!(member = i, pid = child.id(), ?mode, "member started");
        state.child = Some(child);
        state.paused = false;
        Ok(())
    }

    fn kill(&self, i: usize) -> Result<(), ClusterError> {
        let mut state = self.member(i);
        let Some(mut child) = state.child.take() else {
            return Ok(());
        };
        state.paused = false;
        let fail = |detail: String| ClusterError::Member {
            action: "kill",
            member: i,
            detail,
        };
        // SIGKILL also ends a stopped process.
        child.kill().map_err(|err| fail(err.to_string()))?;
        child.wait().map_err(|err| fail(err.to_string()))?;
        Ok(())
    }

    fn pause(&self, i: usize) -> Result<(), ClusterError> {
        let mut state = self.member(i);
        if let Some(child) = &state.child {
            sys::signal(child.id(), libc::SIGSTOP).map_err(|err| ClusterError::Member {
                action: "pause",
                member: i,
                detail: err.to_string(),
            })?;
            state.paused = true;
        }
        Ok(())
    }

    fn resume(&self, i: usize) -> Result<(), ClusterError> {
        let mut state = self.member(i);
        if let (Some(child), true) = (&state.child, state.paused) {
            sys::signal(child.id(), libc::SIGCONT).map_err(|err| ClusterError::Member {
                action: "resume",
                member: i,
                detail: err.to_string(),
            })?;
        }
        state.paused = false;
        Ok(())
    }

    fn is_running(&self, i: usize) -> bool {
        let mut state = self.member(i);
        match state.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                tracing::warn!(member = i, %status, "member exited on its own");
                state.child = None;
                false
            }
            Some(Err(_)) | None => false,
        }
    }

    fn partition(&self, grudge: &Grudge) -> Result<(), ClusterError> {
        let _net = self.net.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, drops) in grudge.iter().enumerate() {
            let ns = self.namespace(i);
            sys::run_in(&ns, "iptables", &["-w", "-F", "INPUT"])?;
            for &peer in drops {
                let source = self.ip(peer);
                sys::run_in(
                    &ns,
                    "iptables",
                    &["-w", "-A", "INPUT", "-s", &source, "-j", "DROP"],
                )?;
            }
        }
        Ok(())
    }

    fn heal_network(&self) -> Result<(), ClusterError> {
        let _net = self.net.lock().unwrap_or_else(PoisonError::into_inner);
        for i in 0..self.size() {
            sys::run_in(&self.namespace(i), "iptables", &["-w", "-F", "INPUT"])?;
        }
        Ok(())
    }

    fn power_loss(&self) -> Result<(), ClusterError> {
        if !self.options.loop_disks {
            return Err(ClusterError::Unsupported(
                "power loss needs loop-mounted data dirs; start the cluster with loop disks".into(),
            ));
        }
        for i in 0..self.size() {
            self.kill(i)?;
        }
        for i in 0..self.size() {
            if let Some(disk) = self.member(i).disk.as_mut() {
                disk.power_cut()?;
            }
        }
        Ok(())
    }

    fn flush_disks(&self) -> Result<(), ClusterError> {
        for i in 0..self.size() {
            if let Some(disk) = self.member(i).disk.as_ref() {
                let path = disk.path().to_string_lossy().into_owned();
                sys::run("sync", &["-f", &path])?;
            }
        }
        Ok(())
    }

    fn wipe(&self, i: usize) -> Result<(), ClusterError> {
        let mut state = self.member(i);
        if state.child.is_some() {
            return Err(ClusterError::Member {
                action: "wipe",
                member: i,
                detail: "it is still running; kill it first".into(),
            });
        }
        let dir = self.data_dir(i, &state);
        state.membership = Membership::Wiped;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ClusterError::Io { path: dir, source }),
        }
        // Make the wipe durable: a power loss right after an unsynced `rm -rf` brings the
        // old data dir back, and the member would restart with its removed identity.
        if let Some(disk) = state.disk.as_ref() {
            sys::run("sync", &["-f", &disk.path().to_string_lossy()])?;
        }
        Ok(())
    }

    fn confirm_joined(&self, i: usize) {
        let mut state = self.member(i);
        if let Membership::Joining(_) = state.membership {
            tracing::debug!(member = i, "join confirmed");
            state.membership = Membership::Settled;
        }
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.options.dir.join(format!("{}.log", self.name(i)))
    }
}

impl Drop for NetnsCluster {
    fn drop(&mut self) {
        for i in 0..self.size() {
            if let Err(err) = self.kill(i) {
                tracing::warn!(%err, "teardown: kill failed");
            }
            // Unmount (LoopDisk's drop) once the process is gone.
            self.member(i).disk = None;
        }
        for i in 0..self.namespaces_created {
            // Deleting a namespace deletes its end of the veth pair, and with it the host end.
            let _ = sys::run("ip", &["netns", "del", &self.namespace(i)]);
        }
        if self.forward_rule {
            let _ = sys::run("iptables", &forward_rule("-D", &self.bridge()));
        }
        let _ = sys::run("ip", &["link", "del", &self.bridge()]);
        tracing::info!(slot = self.slot, "cluster torn down");
    }
}

/// Removes namespaces, bridges, FORWARD rules and loop mounts left by runs that were killed
/// before they could clean up. Only touches names with this backend's prefix and mounts
/// under `runs_dir`. Returns what was removed.
pub fn cleanup_leftovers(runs_dir: &Path) -> Result<Vec<String>, ClusterError> {
    preflight()?;
    let mut removed = Vec::new();
    for ns in sys::run("ip", &["netns", "list"])?.lines() {
        let name = ns.split_whitespace().next().unwrap_or_default();
        if is_ours(name, 'm') {
            let _ = sys::run("ip", &["netns", "del", name]);
            removed.push(format!("netns {name}"));
        }
    }
    for line in sys::run("ip", &["-o", "link", "show", "type", "bridge"])?.lines() {
        let name = line.split(':').nth(1).unwrap_or_default().trim();
        let slot = name
            .strip_prefix(NAME_PREFIX)
            .and_then(|rest| rest.strip_suffix("br"));
        if slot.is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())) {
            let _ = sys::run("iptables", &forward_rule("-D", name));
            let _ = sys::run("ip", &["link", "del", name]);
            removed.push(format!("bridge {name}"));
        }
    }
    let runs = runs_dir
        .canonicalize()
        .unwrap_or_else(|_| runs_dir.to_owned());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    for mount in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
        if Path::new(mount).starts_with(&runs) && mount.ends_with(".disk") {
            let _ = sys::run("umount", &["-l", mount]);
            removed.push(format!("mount {mount}"));
        }
    }
    Ok(removed)
}

/// Whether `name` is `sj<digits><tag><digits>`.
fn is_ours(name: &str, tag: char) -> bool {
    let Some(rest) = name.strip_prefix(NAME_PREFIX) else {
        return false;
    };
    let Some((slot, member)) = rest.split_once(tag) else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(slot) && digits(member)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member whose join is not confirmed restarts by joining again, a wiped one cannot
    /// start from the initial cluster, and a confirmed one restarts like any other.
    #[test]
    fn restarts_follow_the_membership_state() {
        let join = StartMode::Join("m0=a,m1=b,m2=c".into());
        let wiped = Membership::Wiped;
        assert!(wiped.start_mode(StartMode::Initial).is_err());
        assert_eq!(wiped.start_mode(join.clone()), Ok(join.clone()));
        let joining = wiped.started(&join);
        assert_eq!(joining, Membership::Joining("m0=a,m1=b,m2=c".into()));
        assert_eq!(joining.start_mode(StartMode::Initial), Ok(join.clone()));
        assert_eq!(joining.started(&StartMode::Initial), joining);
        let settled = Membership::Settled;
        assert_eq!(
            settled.start_mode(StartMode::Initial),
            Ok(StartMode::Initial)
        );
    }

    /// Leftover detection only matches this backend's names.
    #[test]
    fn recognises_only_its_own_namespaces() {
        assert!(is_ours("sj123m0", 'm'));
        assert!(!is_ours("sj123x0", 'm'));
        assert!(!is_ours("sjm0", 'm'));
        assert!(!is_ours("cni-1234", 'm'));
    }
}
