//! Loopback ports for test servers, distinct across the test processes running at once.
//!
//! A port is picked at random below Linux's ephemeral range (32768-60999): ports the OS hands
//! out for port 0 or for outgoing connections can be taken by another process between the
//! check and the server's bind; ports below it are only taken by servers that chose them.
//! nextest runs tests as parallel processes, though, and two of them could pick the same
//! free port before either server bound it (a member then failed to bind and another test's
//! server answered on its port). So each port is also reserved with a file in
//! `$TMPDIR/skiff-test-ports/`, created exclusively; a reservation older than
//! [`RESERVATION_TTL`] (longer than any test, whose members keep their ports across
//! restarts) is stale and may be taken over.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

/// How long a reservation holds.
const RESERVATION_TTL: Duration = Duration::from_secs(15 * 60);

/// A free loopback port no other test process holds.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let dir = std::env::temp_dir().join("skiff-test-ports");
    let _ = std::fs::create_dir_all(&dir);
    let seed = (std::process::id() as u64)
        .wrapping_mul(2654435761)
        .wrapping_add(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64,
        );
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) as u64;
        let port = 10000 + ((seed.wrapping_add(n.wrapping_mul(7919))) % 22000) as u16;
        if reserve(&dir, port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Reserves `port` for this process; false if another process holds it.
fn reserve(dir: &Path, port: u16) -> bool {
    let path = dir.join(port.to_string());
    let create = || OpenOptions::new().write(true).create_new(true).open(&path);
    match create() {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let age = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok());
            if age.is_some_and(|age| age > RESERVATION_TTL) {
                let _ = std::fs::remove_file(&path);
                // Of several processes taking over a stale reservation, one creates it.
                return create().is_ok();
            }
            false
        }
        // No reservations possible (e.g. a read-only temp dir): the bind check alone.
        Err(_) => true,
    }
}
