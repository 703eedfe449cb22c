//! A member's data directory on its own loop-mounted ext4 file system, so a power cut can be
//! simulated: `EXT4_IOC_SHUTDOWN` with `NOLOGFLUSH` makes the file system drop every dirty
//! page and uncommitted journal transaction, exactly what a machine losing power loses, while
//! everything that was fsynced is on the (loop) device. Remounting replays the journal.
//! This is the approach of xfstests' `godown`; it needs root and a kernel with ext4 and loop.

use super::{sys, ClusterError};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Size of each member's sparse disk image, in bytes. Generous for a test run; the image only
/// occupies what is written.
pub const DISK_IMAGE_BYTES: u64 = 1 << 30;

/// `_IOR('X', 125, __u32)`: EXT4_IOC_SHUTDOWN (same number as XFS_IOC_GOINGDOWN).
const EXT4_IOC_SHUTDOWN: libc::c_ulong = 0x8004_587D;
/// Shut down without flushing the journal or dirty data.
const EXT4_GOING_FLAGS_NOLOGFLUSH: u32 = 0x2;

/// A loop-mounted ext4 image, unmounted and deleted on drop.
#[derive(Debug)]
pub struct LoopDisk {
    image: PathBuf,
    mount: PathBuf,
    mounted: bool,
}

impl LoopDisk {
    /// Creates `image`, formats it and mounts it on `mount` (created if missing).
    pub fn create(image: &Path, mount: &Path) -> Result<LoopDisk, ClusterError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ClusterError::Io { path, source }
        };
        let file = std::fs::File::create(image).map_err(io(image))?;
        file.set_len(DISK_IMAGE_BYTES).map_err(io(image))?;
        drop(file);
        std::fs::create_dir_all(mount).map_err(io(mount))?;
        let image_str = path_str(image)?;
        // lazy_itable_init keeps mkfs and the first mount fast on a sparse image.
        sys::run(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-E",
                "lazy_itable_init=1,lazy_journal_init=1",
                image_str,
            ],
        )?;
        let mut disk = LoopDisk {
            image: image.to_owned(),
            mount: mount.to_owned(),
            mounted: false,
        };
        disk.mount()?;
        Ok(disk)
    }

    fn mount(&mut self) -> Result<(), ClusterError> {
        sys::run(
            "mount",
            &["-o", "loop", path_str(&self.image)?, path_str(&self.mount)?],
        )?;
        self.mounted = true;
        Ok(())
    }

    /// Drops everything not fsynced, then remounts (the journal replays what was committed).
    /// Every process using the file system must already be dead.
    pub fn power_cut(&mut self) -> Result<(), ClusterError> {
        let dir = std::fs::File::open(&self.mount).map_err(|source| ClusterError::Io {
            path: self.mount.clone(),
            source,
        })?;
        let flags = EXT4_GOING_FLAGS_NOLOGFLUSH;
        // SAFETY: the ioctl reads one u32 through the pointer, which is valid for the call.
        let rc = unsafe { libc::ioctl(dir.as_raw_fd(), EXT4_IOC_SHUTDOWN as _, &flags) };
        if rc != 0 {
            return Err(ClusterError::Command {
                command: format!("ioctl(EXT4_IOC_SHUTDOWN) on {}", self.mount.display()),
                detail: std::io::Error::last_os_error().to_string(),
            });
        }
        drop(dir);
        sys::run("umount", &[path_str(&self.mount)?])?;
        self.mounted = false;
        self.mount()?;
        // If some process's private mount namespace still holds the old mount (a process
        // started with `ip netns exec` while it was mounted), the kernel hands back the same
        // shut-down file system, and every member would fail with EIO.
        if let Err(source) = std::fs::read_dir(&self.mount) {
            return Err(ClusterError::Command {
                command: format!("remount {} after the power cut", self.mount.display()),
                detail: format!(
                    "the file system is still shut down ({source}): another mount namespace \
                     (a process started with `ip netns exec`, e.g. by another run) still holds \
                     the old mount"
                ),
            });
        }
        Ok(())
    }

    /// The mounted directory.
    pub fn path(&self) -> &Path {
        &self.mount
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(err) = sys::run("umount", &[&self.mount.to_string_lossy()]) {
                tracing::warn!(%err, "unmount failed; detaching lazily");
                let _ = sys::run("umount", &["-l", &self.mount.to_string_lossy()]);
            }
        }
        let _ = std::fs::remove_file(&self.image);
    }
}

fn path_str(path: &Path) -> Result<&str, ClusterError> {
    path.to_str().ok_or_else(|| ClusterError::Io {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "path is not UTF-8"),
    })
}
