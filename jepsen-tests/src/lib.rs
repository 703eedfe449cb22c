//! Jepsen-style testing for Skiff: record histories of client operations against a cluster
//! and check them for linearizability.
//!
//! Module map:
//!
//! * [`history`]: the crate's history model ([`history::Op`]: invoke/ok/fail/info events), its
//!   JSON-lines file format, the pairing rule, and a thread-safe [`history::Recorder`].
//! * [`parse`]: parsers for porcupine's golden formats (`kv/*.txt`, `jepsen/etcd_NNN.log`)
//!   into the same history model.
//! * [`model`]: sequential specifications ([`model::Model`]): a cas register, a per-key string
//!   KV, and an etcd-style versioned register; plus decoding of history values into them.
//! * [`checker`]: the Wing–Gong–Lowe search per partition, run concurrently with early cancel
//!   and step/time budgets, producing a [`checker::Verdict`] and a counterexample.
//! * [`checks`]: the other checkers (watch guarantees, list-append strict serializability).
//! * [`cluster`]: start and control a real multi-process cluster (one network namespace per
//!   member; kill, pause, partition, power loss).
//! * [`nemesis`]: seeded fault schedules (pure) and the executor that applies them.
//! * [`client`]: etcd client helpers: timeouts, error classification (fail vs info), leader.
//! * [`workload`]: client workloads that record histories during a run.
//! * [`report`]: the run report: verdicts, fault timeline, latency SVG, HTML page.
//! * [`cmd`]: the library side of the `skiff-jepsen` binary's subcommands (`check`, `run`).
//!
//! ```text
//!  file ─▶ parse / history::read_jsonl ─▶ Vec<Op> ─▶ history::pair ─▶ model::decode_history
//!                                                                          │
//!           Report { Verdict, per-partition results } ◀── checker::check ◀─┘
//!
//!  run: cluster ◀── nemesis::Executor (schedule)      workload ──▶ history::Recorder
//!                                          └── timeline ──▶ report ◀── checkers ◀──┘
//! ```

#![warn(missing_docs)]

pub mod checker;
pub mod checks;
pub mod client;
pub mod cluster;
pub mod cmd;
pub mod history;
pub mod model;
pub mod nemesis;
pub mod parse;
pub mod report;
pub mod workload;
