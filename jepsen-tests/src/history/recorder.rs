//! A thread-safe recorder that builds a history while clients run against a cluster.
//!
//! The recorder owns the process-id lifecycle so the harness cannot break Jepsen's rules:
//!
//! ```text
//!   new_process() ──▶ Idle ──invoke()──▶ InFlight ──complete(Ok|Fail)──▶ Idle
//!                                           │
//!                                           └──complete(Info)──▶ Retired (forever)
//! ```
//!
//! A process whose operation ended in `Info` may still have that operation in flight inside the
//! cluster, so reusing its id would let two of its operations overlap; the harness asks for a
//! fresh id instead. Timestamps are read under the same lock that appends the event, so the
//! order of the recorded events is their real-time order and `time` never decreases.

use super::{HistoryError, Op, OpKind};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// A monotonic time source, behind a trait so tests can drive time by hand.
pub trait Clock: Send + Sync {
    /// Nanoseconds since the clock's start. Must never decrease.
    fn now_ns(&self) -> u64;
}

/// The real monotonic clock, counting from its creation.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    start: Instant,
}

impl MonotonicClock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        MonotonicClock {
            start: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        // A u64 of nanoseconds lasts 584 years, so saturating never triggers in practice.
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// How an operation completed; the completion kinds of [`OpKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// It took effect; the value is its result.
    Ok,
    /// It definitely did not take effect.
    Fail,
    /// Its outcome is unknown; the process is retired.
    Info,
}

impl From<Completion> for OpKind {
    fn from(completion: Completion) -> Self {
        match completion {
            Completion::Ok => OpKind::Ok,
            Completion::Fail => OpKind::Fail,
            Completion::Info => OpKind::Info,
        }
    }
}

/// Misuse of the recorder by the harness. Each is a harness bug; the event is not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecorderError {
    /// The id was never handed out by [`Recorder::new_process`].
    #[error("failed to record: process {0} was never handed out by this recorder")]
    UnknownProcess(u64),
    /// The process already has an operation in flight.
    #[error("failed to record invoke: process {0} already has an operation in flight")]
    Busy(u64),
    /// The process has no operation in flight to complete.
    #[error("failed to record completion: process {0} has no operation in flight")]
    Idle(u64),
    /// The process was retired by an `Info`; ask for a new process id.
    #[error(
        "failed to record: process {0} was retired after an info completion; use a new process"
    )]
    Retired(u64),
}

/// Lifecycle of one process id.
#[derive(Debug, Clone)]
enum ProcessState {
    Idle,
    /// Function and key of the operation in flight, repeated on its completion.
    InFlight {
        f: String,
        key: Option<String>,
    },
    Retired,
}

#[derive(Debug, Default)]
struct Inner {
    ops: Vec<Op>,
    processes: HashMap<u64, ProcessState>,
    next_process: u64,
    last_ns: u64,
}

/// Records a history from many threads. See the module docs for the process lifecycle.
#[derive(Debug)]
pub struct Recorder<C: Clock = MonotonicClock> {
    clock: C,
    inner: Mutex<Inner>,
}

impl Recorder<MonotonicClock> {
    /// A recorder on the real monotonic clock, starting now.
    pub fn new() -> Self {
        Self::with_clock(MonotonicClock::new())
    }
}

impl Default for Recorder<MonotonicClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock> Recorder<C> {
    /// A recorder reading time from `clock`.
    pub fn with_clock(clock: C) -> Self {
        Recorder {
            clock,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Hands out a process id that has never been used.
    pub fn new_process(&self) -> u64 {
        let mut inner = self.lock();
        let process = inner.next_process;
        inner.next_process += 1;
        inner.processes.insert(process, ProcessState::Idle);
        process
    }

    /// Records that `process` invoked `f` on `key` with argument `value`.
    pub fn invoke(
        &self,
        process: u64,
        f: &str,
        key: Option<&str>,
        value: serde_json::Value,
    ) -> Result<(), RecorderError> {
        let mut inner = self.lock();
        match inner.processes.get(&process) {
            None => return Err(RecorderError::UnknownProcess(process)),
            Some(ProcessState::InFlight { .. }) => return Err(RecorderError::Busy(process)),
            Some(ProcessState::Retired) => return Err(RecorderError::Retired(process)),
            Some(ProcessState::Idle) => {}
        }
        let state = ProcessState::InFlight {
            f: f.to_owned(),
            key: key.map(str::to_owned),
        };
        inner.processes.insert(process, state);
        let op = Op::new(process, OpKind::Invoke, f, key, value);
        self.push(&mut inner, op);
        Ok(())
    }

    /// Records how the operation in flight on `process` completed; `value` is its result.
    ///
    /// After [`Completion::Info`] the process is retired: the harness must call
    /// [`Recorder::new_process`] for the client's next operation.
    pub fn complete(
        &self,
        process: u64,
        completion: Completion,
        value: serde_json::Value,
    ) -> Result<(), RecorderError> {
        let mut inner = self.lock();
        let (f, key) = match inner.processes.get(&process) {
            None => return Err(RecorderError::UnknownProcess(process)),
            Some(ProcessState::Idle) => return Err(RecorderError::Idle(process)),
            Some(ProcessState::Retired) => return Err(RecorderError::Retired(process)),
            Some(ProcessState::InFlight { f, key }) => (f.clone(), key.clone()),
        };
        let next = match completion {
            Completion::Info => ProcessState::Retired,
            Completion::Ok | Completion::Fail => ProcessState::Idle,
        };
        inner.processes.insert(process, next);
        let op = Op::new(process, completion.into(), &f, key.as_deref(), value);
        self.push(&mut inner, op);
        Ok(())
    }

    /// A copy of the history recorded so far, in real-time order.
    pub fn history(&self) -> Vec<Op> {
        self.lock().ops.clone()
    }

    /// Writes the history recorded so far as JSON lines (see [`super::write_jsonl`]).
    pub fn write_jsonl(&self, writer: impl Write) -> Result<(), HistoryError> {
        super::write_jsonl(&self.history(), writer)
    }

    /// Writes the history recorded so far to a new file at `path` (replacing any old one).
    pub fn write_jsonl_file(&self, path: &Path) -> Result<(), HistoryError> {
        let file = std::fs::File::create(path)?;
        self.write_jsonl(std::io::BufWriter::new(file))
    }

    fn push(&self, inner: &mut Inner, mut op: Op) {
        // Clamp so that a misbehaving clock cannot make the file's times decrease.
        let now = self.clock.now_ns().max(inner.last_ns);
        inner.last_ns = now;
        op.time_ns = Some(now);
        inner.ops.push(op);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section validates before it mutates, so the data behind a poisoned
        // lock is still consistent; keep recording rather than losing the history.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::pair;
    use serde_json::json;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock that advances by 10 ns on every reading.
    #[derive(Default)]
    struct StepClock(AtomicU64);

    impl Clock for StepClock {
        fn now_ns(&self) -> u64 {
            self.0.fetch_add(10, Ordering::Relaxed)
        }
    }

    /// The recorder stamps events with increasing times and completions repeat f and key.
    #[test]
    fn records_invoke_and_completion_with_times() {
        let recorder = Recorder::with_clock(StepClock::default());
        let p = recorder.new_process();
        recorder
            .invoke(p, "write", Some("k"), json!(3))
            .expect("idle process");
        recorder
            .complete(p, Completion::Ok, json!(3))
            .expect("in flight");
        let ops = recorder.history();
        assert_eq!(ops.len(), 2);
        assert_eq!((ops[0].time_ns, ops[1].time_ns), (Some(0), Some(10)));
        assert_eq!((ops[1].kind, ops[1].f.as_str()), (OpKind::Ok, "write"));
        assert_eq!(ops[1].key.as_deref(), Some("k"));
        assert_eq!(pair(&ops).expect("recorder output is well-formed").len(), 1);
    }

    /// After an Info the process is retired and a fresh id must be used.
    #[test]
    fn info_retires_the_process() {
        let recorder = Recorder::new();
        let p = recorder.new_process();
        recorder
            .invoke(p, "cas", None, json!([1, 2]))
            .expect("idle process");
        recorder
            .complete(p, Completion::Info, json!(null))
            .expect("in flight");
        let err = recorder.invoke(p, "read", None, json!(null));
        assert_eq!(err, Err(RecorderError::Retired(p)));
        let q = recorder.new_process();
        assert_ne!(p, q);
        recorder
            .invoke(q, "read", None, json!(null))
            .expect("fresh process");
    }

    /// Misuse is reported, not recorded.
    #[test]
    fn misuse_is_rejected() {
        let recorder = Recorder::new();
        assert_eq!(
            recorder.invoke(7, "read", None, json!(null)),
            Err(RecorderError::UnknownProcess(7))
        );
        let p = recorder.new_process();
        assert_eq!(
            recorder.complete(p, Completion::Ok, json!(null)),
            Err(RecorderError::Idle(p))
        );
        recorder
            .invoke(p, "read", None, json!(null))
            .expect("idle process");
        assert_eq!(
            recorder.invoke(p, "read", None, json!(null)),
            Err(RecorderError::Busy(p))
        );
        assert_eq!(recorder.history().len(), 1);
    }

    /// The recorded file reads back as the same history.
    #[test]
    fn writes_a_jsonl_file() {
        let recorder = Recorder::new();
        let p = recorder.new_process();
        recorder
            .invoke(p, "get", Some("k"), json!(null))
            .expect("idle process");
        recorder
            .complete(p, Completion::Ok, json!("v"))
            .expect("in flight");
        let path =
            std::env::temp_dir().join(format!("skiff-recorder-{}.jsonl", std::process::id()));
        recorder
            .write_jsonl_file(&path)
            .expect("temp dir is writable");
        let text = std::fs::read_to_string(&path).expect("just written");
        std::fs::remove_file(&path).expect("just written");
        let read = crate::history::read_jsonl(text.as_bytes()).expect("valid JSON lines");
        assert_eq!(read, recorder.history());
    }

    /// Many threads recording at once still produce a well-formed, time-ordered history.
    #[test]
    fn concurrent_recording_is_well_formed() {
        let recorder = Recorder::new();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    let p = recorder.new_process();
                    for i in 0..50 {
                        recorder.invoke(p, "write", None, json!(i)).expect("idle");
                        recorder
                            .complete(p, Completion::Ok, json!(i))
                            .expect("in flight");
                    }
                });
            }
        });
        let ops = recorder.history();
        assert_eq!(pair(&ops).expect("well-formed").len(), 200);
    }
}
