//! openraft's `RaftStateMachine` on top of the MVCC store (`skiff-mvcc`).
//!
//! Exactly-once apply: the entries openraft hands over in one `apply` call are applied in one
//! MVCC write group, normally committed as ONE RocksDB batch. Every command records how far
//! its entry got (`raft/partial` = (log id, commands done)) and an entry's last command also
//! records `raft/applied`; the group writes the newest value of each marker with every batch
//! it commits (it commits early before a Compact, for instance), so every committed batch
//! carries the marker of exactly the commands it holds. After a crash, openraft re-applies
//! from the last fully applied entry and the commands already done are skipped, so no
//! command is ever applied twice even though RocksDB's own WAL is off (the Raft WAL is the
//! durable log; see docs/architecture.md "Recovery"). Responses and watch events are
//! released only after the group is committed.

// openraft's `StorageError` is what its traits return; boxing it here would only add a copy.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use std::collections::BTreeSet;

use etcd_client::proto::PbTxnOpRequest as PbRequest;
use etcd_client::proto::{PbEvent, PbResponseHeader, PbTxnRequest};
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, StorageError, StoredMembership,
};
use prost::Message;
use serde::{Deserialize, Serialize};
use skiff_mvcc::{Applied, Mvcc, WriteGroup, WriteOp, WriteResponse};
use tokio::sync::Mutex;

use super::{decode, encode, ApiError, Command, CommandResult, Entry, LogId, MemberNode};
use super::{RaftRequest, RaftResponse, TypeConfig};

const META_APPLIED: &[u8] = b"raft/applied";
const META_PARTIAL: &[u8] = b"raft/partial";
const META_MEMBERSHIP: &[u8] = b"raft/membership";
const META_MEMBER_PREFIX: &str = "member/";
const META_REMOVED: &[u8] = b"members/removed";
const META_ALARMS: &[u8] = b"alarms";
/// etcd's `AlarmType_NOSPACE`.
pub const ALARM_NOSPACE: i32 = 1;

/// Who hears about applied changes (the lessor, the watch hub). Called on the apply path,
/// so implementations must be quick and must not block.
pub trait ApplyObserver: Send + Sync + 'static {
    /// A lease was granted with this TTL (seconds).
    fn lease_granted(&self, id: i64, ttl: i64);
    /// A lease was revoked (by a client or on expiry).
    fn lease_revoked(&self, id: i64);
    /// Events of one revision, in order; put events carry no `prev_kv` (watchers that want
    /// it fill it with `Mvcc::fill_prev_kvs`), delete events do.
    fn events(&self, revision: i64, events: Vec<PbEvent>);
    /// The whole state was replaced by a snapshot from the leader.
    fn snapshot_installed(&self);
    /// Member `id` was removed from the cluster (`MemberRemove` applied).
    fn member_removed(&self, id: u64);
}

/// Attributes a member publishes after it starts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberAttrs {
    /// The member's `--name`.
    pub name: String,
    /// Advertised client URLs.
    pub client_urls: Vec<String>,
}

/// Commands in one `apply` call from which the leader moves the work off the Raft thread.
/// Below it, the hand-off to another thread and back would cost the leader more than the
/// apply itself (a single put applies in tens of microseconds), and the leader's client is
/// waiting for that apply. A follower moves every apply off: nobody waits for it, and its
/// Raft thread is then free for the next AppendEntries, which at one client arrives while
/// the previous entry is being applied.
const OFFLOAD_APPLY_COMMANDS: usize = 64;

/// Request bytes above which the entries of one `apply` call are applied as several write
/// groups. openraft hands a member that replays its log at start (or catches up) everything
/// committed at once; as one group, the replay held every decided change, the whole RocksDB
/// batch and every event in memory together (after a `kill -9` with 171,000 puts to replay,
/// the member's peak RSS was 1.26 GiB, 1.10 GiB in 8 MiB groups). Under normal load an
/// `apply` call is far below this.
const MAX_GROUP_REQUEST_BYTES: usize = 8 << 20;

/// The replicated state machine of one member. Clones share everything (a clone applies
/// a large batch on a blocking thread, see `apply`).
#[derive(Clone)]
pub struct StateMachine {
    mvcc: Arc<Mvcc>,
    observer: Arc<dyn ApplyObserver>,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
    /// Whether a NOSPACE alarm is raised: cached from the alarm set (read at start and after
    /// a snapshot install, updated by every applied `Alarm`) so a put does not read it.
    /// Shared with the request handlers ([`StateMachine::nospace_flag`]).
    nospace: Arc<AtomicBool>,
    /// Observes each `apply` call's time and command count (metrics), if set.
    timers: Option<(prometheus::Histogram, prometheus::Histogram)>,
    /// This member's id, if known: entries another leader proposed are applied off the Raft
    /// thread whatever their size (see `apply`).
    member_id: Option<u64>,
}

#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, MemberNode>,
    data: Vec<u8>,
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError<u64> {
    StorageError::from_io_error(
        ErrorSubject::StateMachine,
        verb,
        std::io::Error::other(e.to_string()),
    )
}

/// Reads the published attributes of a member from the state machine.
pub fn member_attrs(mvcc: &Mvcc, id: u64) -> Option<MemberAttrs> {
    let bytes = mvcc
        .get_meta(format!("{META_MEMBER_PREFIX}{id:016x}").as_bytes())
        .ok()??;
    decode(&bytes).ok()
}

/// The ids removed from the cluster so far; a removed id is never accepted again.
pub fn removed_members(mvcc: &Mvcc) -> BTreeSet<u64> {
    mvcc.get_meta(META_REMOVED)
        .expect("the removed-member set is readable")
        .map(|b| decode(&b).expect("the removed-member set decodes"))
        .unwrap_or_default()
}

/// The active alarms as `(member id, alarm type)`, in order.
pub fn alarms(mvcc: &Mvcc) -> Vec<(u64, i32)> {
    mvcc.get_meta(META_ALARMS)
        .expect("the alarm set is readable")
        .map(|b| decode::<BTreeSet<(u64, i32)>>(&b).expect("the alarm set decodes"))
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn has_nospace(mvcc: &Mvcc) -> bool {
    alarms(mvcc).iter().any(|a| a.1 == ALARM_NOSPACE)
}

/// Whether a command adds data, so a raised NOSPACE alarm refuses it (etcd's capped
/// applier: puts, transactions with a put anywhere, lease grants).
fn adds_data(cmd: &Command) -> bool {
    fn txn_has_put(t: &PbTxnRequest) -> bool {
        t.success
            .iter()
            .chain(&t.failure)
            .any(|op| match &op.request {
                Some(PbRequest::RequestPut(_)) => true,
                Some(PbRequest::RequestTxn(inner)) => txn_has_put(inner),
                _ => false,
            })
    }
    match cmd {
        Command::Put(_) | Command::LeaseGrant { .. } => true,
        Command::Txn(b) => PbTxnRequest::decode(b.as_slice()).is_ok_and(|t| txn_has_put(&t)),
        _ => false,
    }
}

impl StateMachine {
    /// Wraps the MVCC store; `observer` hears about applied changes.
    pub fn new(mvcc: Arc<Mvcc>, observer: Arc<dyn ApplyObserver>) -> Self {
        let nospace = Arc::new(AtomicBool::new(has_nospace(&mvcc)));
        StateMachine {
            mvcc,
            observer,
            current: Arc::new(Mutex::new(None)),
            nospace,
            timers: None,
            member_id: None,
        }
    }

    /// Tells the state machine its member id (see `apply`).
    pub fn with_member_id(mut self, id: u64) -> Self {
        self.member_id = Some(id);
        self
    }

    /// Whether a NOSPACE alarm is raised in the applied state, kept current by this state
    /// machine: the handlers' quota check reads it instead of the alarm set.
    pub fn nospace_flag(&self) -> Arc<AtomicBool> {
        self.nospace.clone()
    }

    /// Observes every `apply` call's duration (seconds) and number of commands.
    pub fn with_apply_timers(
        mut self,
        seconds: prometheus::Histogram,
        commands: prometheus::Histogram,
    ) -> Self {
        self.timers = Some((seconds, commands));
        self
    }

    fn last_applied(&self) -> Option<LogId> {
        let bytes = self
            .mvcc
            .get_meta(META_APPLIED)
            .expect("the state machine's applied marker is readable")?;
        decode::<Option<LogId>>(&bytes).expect("the applied marker decodes")
    }

    fn membership(&self) -> StoredMembership<u64, MemberNode> {
        match self
            .mvcc
            .get_meta(META_MEMBERSHIP)
            .expect("the stored membership is readable")
        {
            Some(b) => decode(&b).expect("the stored membership decodes"),
            None => StoredMembership::default(),
        }
    }

    fn apply_batch(
        &self,
        group: &mut WriteGroup<'_>,
        log_id: LogId,
        req: RaftRequest,
    ) -> Result<Vec<Step>, StorageError<u64>> {
        let partial = group
            .get_meta(META_PARTIAL)
            .map_err(|e| sm_err(ErrorVerb::Read, e))?;
        let done = match partial.and_then(|b| decode::<(LogId, u32)>(&b).ok()) {
            Some((id, n)) if id == log_id => n as usize,
            _ => 0,
        };
        let total = req.cmds.len();
        let applied = encode(&Some(log_id));
        let mut steps = Vec::with_capacity(total);
        for (i, cmd) in req.cmds.into_iter().enumerate() {
            if i < done {
                steps.push(Step::Done(CommandResult::Err(ApiError::new(
                    tonic::Code::Aborted,
                    "already applied",
                ))));
                continue;
            }
            // Every command records how far its entry got; the group persists the last
            // value with whatever batch it commits, so a crash never loses or repeats one.
            let partial = encode(&(log_id, (i + 1) as u32));
            let mut meta: Vec<(&[u8], &[u8])> = vec![(META_PARTIAL, &partial)];
            if i + 1 == total {
                meta.push((META_APPLIED, &applied));
            }
            steps.push(self.apply_command(group, cmd, &meta)?);
        }
        if total == 0 {
            apply_meta_only(group, &[(META_APPLIED, &applied)])?;
        }
        Ok(steps)
    }

    fn apply_command(
        &self,
        group: &mut WriteGroup<'_>,
        cmd: Command,
        meta: &[(&[u8], &[u8])],
    ) -> Result<Step, StorageError<u64>> {
        let bad = |what: &str, e: prost::DecodeError| {
            Step::Done(CommandResult::Err(ApiError::new(
                tonic::Code::Internal,
                format!("undecodable {what} in the log: {e}"),
            )))
        };
        if adds_data(&cmd) && self.nospace.load(Ordering::Acquire) {
            apply_meta_only(group, meta)?;
            return Ok(Step::Done(CommandResult::Err(ApiError::new(
                tonic::Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ))));
        }
        let applied = match &cmd {
            Command::Put(b) => match Message::decode(b.as_slice()) {
                Ok(r) => group.apply(WriteOp::Put(&r), meta),
                Err(e) => return reject(group, meta, bad("put", e)),
            },
            Command::DeleteRange(b) => match Message::decode(b.as_slice()) {
                Ok(r) => group.apply(WriteOp::DeleteRange(&r), meta),
                Err(e) => return reject(group, meta, bad("delete", e)),
            },
            Command::Txn(b) => match Message::decode(b.as_slice()) {
                Ok(r) => group.apply(WriteOp::Txn(&r), meta),
                Err(e) => return reject(group, meta, bad("txn", e)),
            },
            Command::Compact(b) => match Message::decode(b.as_slice()) {
                Ok(r) => group.apply(WriteOp::Compact(&r), meta),
                Err(e) => return reject(group, meta, bad("compact", e)),
            },
            Command::LeaseGrant { id, ttl } => {
                group.apply(WriteOp::LeaseGrant { id: *id, ttl: *ttl }, meta)
            }
            Command::LeaseRevoke { id } => group.apply(WriteOp::LeaseRevoke { id: *id }, meta),
            Command::PublishMember {
                id,
                name,
                client_urls,
            } => {
                let key = format!("{META_MEMBER_PREFIX}{id:016x}");
                let attrs = encode(&MemberAttrs {
                    name: name.clone(),
                    client_urls: client_urls.clone(),
                });
                let mut all = meta.to_vec();
                all.push((key.as_bytes(), &attrs));
                group.apply(WriteOp::MetaOnly, &all)
            }
            Command::RemoveMember { id } => {
                let mut removed: BTreeSet<u64> = read_meta(group, META_REMOVED)?;
                removed.insert(*id);
                let removed = encode(&removed);
                // An empty value reads as "never published" (it does not decode).
                let key = format!("{META_MEMBER_PREFIX}{id:016x}");
                let mut all = meta.to_vec();
                all.push((META_REMOVED, &removed));
                all.push((key.as_bytes(), &[]));
                group.apply(WriteOp::MetaOnly, &all)
            }
            Command::Alarm {
                activate,
                member_id,
                alarm,
            } => {
                let mut set: BTreeSet<(u64, i32)> = read_meta(group, META_ALARMS)?;
                if *activate {
                    set.insert((*member_id, *alarm));
                } else {
                    set.remove(&(*member_id, *alarm));
                }
                self.nospace
                    .store(set.iter().any(|a| a.1 == ALARM_NOSPACE), Ordering::Release);
                let set = encode(&set);
                let mut all = meta.to_vec();
                all.push((META_ALARMS, &set));
                group.apply(WriteOp::MetaOnly, &all)
            }
        }
        .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        Ok(Step::Applied(cmd, applied))
    }

    /// Tells the observer what changed and encodes the response (after the group that
    /// applied the command was committed, so readers already see the change). `answered`
    /// is false for commands another member proposed: no client of this member waits for
    /// them, so their response is not encoded (the body is left empty).
    fn finish(&self, step: Step, answered: bool) -> CommandResult {
        let (cmd, applied) = match step {
            Step::Done(result) => return result,
            Step::Applied(cmd, applied) => (cmd, applied),
        };
        let Applied {
            result,
            events,
            revision,
        } = applied;
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                return CommandResult::Err(ApiError {
                    code: e.grpc_code() as i32,
                    message: e.etcd_message().into(),
                })
            }
        };
        match cmd {
            Command::LeaseGrant { id, ttl } => self.observer.lease_granted(id, ttl),
            Command::LeaseRevoke { id } => self.observer.lease_revoked(id),
            Command::RemoveMember { id } => self.observer.member_removed(id),
            _ => {}
        }
        if !events.is_empty() {
            self.observer.events(revision, events);
        }
        CommandResult::Ok {
            revision,
            body: if answered {
                encode_response(resp)
            } else {
                Vec::new()
            },
        }
    }

    /// Applies `entries` as one write group: one RocksDB batch (and one key index update)
    /// for everything openraft hands over at once, instead of one per command.
    fn apply_entries(&self, entries: Vec<Entry>) -> Result<Vec<RaftResponse>, StorageError<u64>> {
        let start = std::time::Instant::now();
        let mvcc = self.mvcc.clone();
        let mut group = mvcc.write_group();
        let mut steps: Vec<(Vec<Step>, bool)> = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            let answered = !super::proposed_elsewhere(&log_id, self.member_id);
            let applied = encode(&Some(log_id));
            match entry.payload {
                EntryPayload::Blank => {
                    apply_meta_only(&mut group, &[(META_APPLIED, &applied)])?;
                    steps.push((Vec::new(), answered));
                }
                EntryPayload::Membership(m) => {
                    let stored = encode(&StoredMembership::new(Some(log_id), m));
                    apply_meta_only(
                        &mut group,
                        &[(META_APPLIED, &applied), (META_MEMBERSHIP, &stored)],
                    )?;
                    steps.push((Vec::new(), answered));
                }
                EntryPayload::Normal(req) => {
                    steps.push((self.apply_batch(&mut group, log_id, req)?, answered))
                }
            }
        }
        group.commit().map_err(|e| sm_err(ErrorVerb::Write, e))?;
        if let Some((seconds, commands)) = &self.timers {
            seconds.observe(start.elapsed().as_secs_f64());
            commands.observe(steps.iter().map(|(s, _)| s.len()).sum::<usize>() as f64);
        }
        Ok(steps
            .into_iter()
            .map(|(entry, answered)| RaftResponse {
                results: entry
                    .into_iter()
                    .map(|step| self.finish(step, answered))
                    .collect(),
            })
            .collect())
    }
}

/// The request bytes of an entry's commands (what its write group will decide and hold).
fn entry_request_bytes(entry: &Entry) -> usize {
    match &entry.payload {
        EntryPayload::Normal(req) => req
            .cmds
            .iter()
            .map(|cmd| match cmd {
                Command::Put(b)
                | Command::DeleteRange(b)
                | Command::Txn(b)
                | Command::Compact(b) => b.len(),
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}

fn request_bytes(entries: &[Entry]) -> usize {
    entries.iter().map(entry_request_bytes).sum()
}

/// Splits `entries` (in order) into runs of at most `max` request bytes each; an entry larger
/// than `max` is a run of its own (entries are never split).
fn split_by_request_bytes(entries: Vec<Entry>, max: usize) -> Vec<Vec<Entry>> {
    let mut runs: Vec<Vec<Entry>> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let size = entry_request_bytes(&entry);
        match runs.last_mut() {
            Some(run) if bytes + size <= max => run.push(entry),
            _ => {
                runs.push(vec![entry]);
                bytes = 0;
            }
        }
        bytes += size;
    }
    runs
}

/// A command of a write group: decided (its result is reported once the group commits) or
/// answered without touching the store.
enum Step {
    Applied(Command, Applied),
    Done(CommandResult),
}

fn apply_meta_only(
    group: &mut WriteGroup<'_>,
    meta: &[(&[u8], &[u8])],
) -> Result<(), StorageError<u64>> {
    group
        .apply(WriteOp::MetaOnly, meta)
        .map_err(|e| sm_err(ErrorVerb::Write, e))?;
    Ok(())
}

fn reject(
    group: &mut WriteGroup<'_>,
    meta: &[(&[u8], &[u8])],
    step: Step,
) -> Result<Step, StorageError<u64>> {
    apply_meta_only(group, meta)?;
    Ok(step)
}

/// A bincode meta value as the group's earlier commands left it (default if absent).
fn read_meta<T: serde::de::DeserializeOwned + Default>(
    group: &WriteGroup<'_>,
    key: &[u8],
) -> Result<T, StorageError<u64>> {
    let raw = group
        .get_meta(key)
        .map_err(|e| sm_err(ErrorVerb::Read, e))?;
    Ok(raw
        .map(|b| decode(&b).expect("a state machine meta value decodes"))
        .unwrap_or_default())
}

/// Encodes an applied command's response without its header: the member that answers the
/// client fills the header (its own member id and term), so the body is sent as is after
/// it (see [`CommandResult::Ok`]).
fn encode_response(resp: WriteResponse) -> Vec<u8> {
    fn headerless<M: Message>(
        mut msg: M,
        header: impl FnOnce(&mut M) -> &mut Option<PbResponseHeader>,
    ) -> Vec<u8> {
        *header(&mut msg) = None;
        msg.encode_to_vec()
    }
    match resp {
        WriteResponse::Put(r) => headerless(r, |r| &mut r.header),
        WriteResponse::DeleteRange(r) => headerless(r, |r| &mut r.header),
        WriteResponse::Txn(r) => headerless(r, |r| &mut r.header),
        WriteResponse::Compact(r) => headerless(r, |r| &mut r.header),
        WriteResponse::LeaseGrant { .. } | WriteResponse::LeaseRevoke | WriteResponse::Meta => {
            Vec::new()
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<u64, MemberNode>), StorageError<u64>> {
        Ok((self.last_applied(), self.membership()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<RaftResponse>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if request_bytes(&entries) > MAX_GROUP_REQUEST_BYTES {
            let mut responses = Vec::with_capacity(entries.len());
            for group in split_by_request_bytes(entries, MAX_GROUP_REQUEST_BYTES) {
                let sm = self.clone();
                let applied = tokio::task::spawn_blocking(move || sm.apply_entries(group))
                    .await
                    .map_err(|e| sm_err(ErrorVerb::Write, e))??;
                responses.extend(applied);
            }
            return Ok(responses);
        }
        let commands: usize = entries
            .iter()
            .map(|e| match &e.payload {
                EntryPayload::Normal(req) => req.cmds.len(),
                _ => 1,
            })
            .sum();
        // Entries another member proposed: this member is (or was) a follower for them.
        let follower = entries
            .last()
            .is_some_and(|e| super::proposed_elsewhere(&e.log_id, self.member_id));
        if commands < OFFLOAD_APPLY_COMMANDS && !follower {
            return self.apply_entries(entries);
        }
        // Raft's runtime is one thread (see `server::RaftRuntime`): a batch of thousands
        // of puts takes milliseconds of RocksDB work, which would hold up heartbeats and
        // replication, so it runs on a blocking thread while the Raft thread goes on. The
        // state-machine worker awaits it, so applies stay in log order.
        let sm = self.clone();
        tokio::task::spawn_blocking(move || sm.apply_entries(entries))
            .await
            .map_err(|e| sm_err(ErrorVerb::Write, e))?
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // The copy is taken here, on the apply task, so the data and the applied marker
        // are from the same point: apply cannot run while this method runs. It runs on a
        // blocking thread: copying a large store takes seconds, and the Raft thread must go
        // on sending heartbeats meanwhile.
        let (mvcc, applied, membership) =
            (self.mvcc.clone(), self.last_applied(), self.membership());
        let built = tokio::task::spawn_blocking(move || build_snapshot(&mvcc, applied, membership))
            .await
            .unwrap_or_else(|e| Err(sm_err(ErrorVerb::Read, e)));
        SnapshotBuilder {
            built: Some(built),
            current: self.current.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, MemberNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let mvcc = self.mvcc.clone();
        let bytes = data.clone();
        tokio::task::spawn_blocking(move || mvcc.install_snapshot(&mut bytes.as_slice()))
            .await
            .map_err(|e| sm_err(ErrorVerb::Write, e))?
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        tracing::info!(last_log_id = ?meta.last_log_id, bytes = data.len(), "installed snapshot from leader");
        *self.current.lock().await = Some(StoredSnapshot {
            meta: meta.clone(),
            data,
        });
        self.nospace
            .store(has_nospace(&self.mvcc), Ordering::Release);
        self.observer.snapshot_installed();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let mut cur = self.current.lock().await;
        if cur.is_none() && self.last_applied().is_some() {
            *cur = Some(build_snapshot(
                &self.mvcc,
                self.last_applied(),
                self.membership(),
            )?);
        }
        Ok(cur.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}

fn build_snapshot(
    mvcc: &Mvcc,
    last_applied: Option<LogId>,
    membership: StoredMembership<u64, MemberNode>,
) -> Result<StoredSnapshot, StorageError<u64>> {
    // Flushing first makes RocksDB's on-disk state at least as new as the snapshot, so
    // the Raft log up to the snapshot may be purged safely (RocksDB's WAL is off).
    mvcc.flush().map_err(|e| sm_err(ErrorVerb::Write, e))?;
    let mut data = Vec::new();
    mvcc.write_snapshot(&mut data)
        .map_err(|e| sm_err(ErrorVerb::Read, e))?;
    let snapshot_id = match last_applied {
        Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, data.len()),
        None => format!("empty-{}", data.len()),
    };
    let meta = SnapshotMeta {
        last_log_id: last_applied,
        last_membership: membership,
        snapshot_id,
    };
    Ok(StoredSnapshot { meta, data })
}

/// Hands openraft the snapshot copied in `get_snapshot_builder`.
pub struct SnapshotBuilder {
    built: Option<Result<StoredSnapshot, StorageError<u64>>>,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let built = self
            .built
            .take()
            .expect("a snapshot builder is used once")?;
        tracing::info!(last_log_id = ?built.meta.last_log_id, bytes = built.data.len(), "built snapshot");
        let snap = Snapshot {
            meta: built.meta.clone(),
            snapshot: Box::new(Cursor::new(built.data.clone())),
        };
        *self.current.lock().await = Some(built);
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId};

    fn entry(index: u64, puts: &[usize]) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(RaftRequest {
                cmds: puts.iter().map(|&n| Command::Put(vec![7; n])).collect(),
            }),
        }
    }

    fn indexes(runs: &[Vec<Entry>]) -> Vec<Vec<u64>> {
        runs.iter()
            .map(|run| run.iter().map(|e| e.log_id.index).collect())
            .collect()
    }

    // Entries are grouped in order up to the byte budget; an entry over it goes alone, and
    // entries without requests (blank, membership) weigh nothing.
    #[test]
    fn large_applies_are_split_into_groups_in_order() {
        let entries = vec![
            entry(1, &[40, 40]),
            entry(2, &[30]),
            entry(3, &[50]),
            Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), 4),
                payload: EntryPayload::Blank,
            },
            entry(5, &[250]),
            entry(6, &[10]),
        ];
        assert_eq!(request_bytes(&entries), 420);
        let runs = split_by_request_bytes(entries, 110);
        assert_eq!(
            indexes(&runs),
            vec![vec![1, 2], vec![3, 4], vec![5], vec![6]]
        );
    }
}
