//! The library side of the `skiff-jepsen` subcommands; `main.rs` only parses flags, does the
//! file I/O and maps results to exit codes.
//!
//! * [`check`]: load a history in one of the supported formats and check it.
//!
//! Fault-injection runs (`run`) will live beside it.

pub mod check;
