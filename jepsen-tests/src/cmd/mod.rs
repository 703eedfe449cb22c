//! The library side of the `skiff-jepsen` subcommands; `main.rs` only parses flags, does the
//! file I/O and maps results to exit codes.
//!
//! * [`check`]: load a history in one of the supported formats and check it.
//! * [`run`]: start a cluster, run a workload under a nemesis, check, write the report.

pub mod check;
pub mod run;
