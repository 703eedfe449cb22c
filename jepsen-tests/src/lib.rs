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
//! * [`cmd`]: the library side of the `skiff-jepsen` binary's subcommands.
//!
//! ```text
//!  file ─▶ parse / history::read_jsonl ─▶ Vec<Op> ─▶ history::pair ─▶ model::decode_history
//!                                                                          │
//!           Report { Verdict, per-partition results } ◀── checker::check ◀─┘
//! ```

#![warn(missing_docs)]

pub mod checker;
pub mod cmd;
pub mod history;
pub mod model;
pub mod parse;
