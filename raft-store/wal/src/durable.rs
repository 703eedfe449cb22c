//! Crash-safe creation of directories and small files, for every on-disk name a member
//! relies on: the data dir and `member/` (identity), the WAL directory and its hard-state
//! file, the state machine's directory.
//!
//! On Linux a new, renamed or removed name is only persisted once the directory that holds it
//! is fsynced; fsyncing the file itself is not enough. A member whose `member/` directory
//! entry is lost in a power cut restarts with an empty data dir and forgets who it is, so every
//! creation here fsyncs the parent of each name it adds.
//!
//! These return plain [`std::io::Error`]s; each caller wraps them in its own typed error.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Suffix of the temporary file [`write_file`] writes before the rename.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Fsyncs directory `dir`, making creations, renames and deletions of names in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing ancestors, like [`fs::create_dir_all`], and fsyncs the parent
/// of every directory it created, so the whole path survives a power cut once this returns.
/// A directory that already exists is left alone (its own creation was made durable by the
/// call that created it).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    for created in missing_ancestors(dir) {
        match fs::create_dir(&created) {
            Ok(()) => {}
            // Another process (or thread) created it between the check and here.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && created.is_dir() => {}
            Err(e) => return Err(e),
        }
        sync_dir(parent_of(&created))?;
    }
    Ok(())
}

/// Replaces `path` with `bytes` atomically and durably: writes `<path>.tmp`, fsyncs it, renames
/// it over `path` and fsyncs the parent directory. After a crash `path` holds either the old or
/// the new content, never a mix; a leftover `.tmp` is overwritten by the next call. The parent
/// directory must exist (see [`create_dir_all`]).
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(TEMP_SUFFIX);
    let temp = PathBuf::from(temp);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, path)?;
    sync_dir(parent_of(path))
}

/// The directory holding `path` (`.` for a bare relative name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// `dir` and those of its ancestors that do not exist yet, outermost first.
fn missing_ancestors(dir: &Path) -> Vec<PathBuf> {
    let mut missing: Vec<PathBuf> = dir
        .ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .take_while(|p| !p.exists())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every missing level of a nested path is created, outermost first, and existing ones
    /// are left alone.
    #[test]
    fn creates_each_missing_level() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("a").join("b").join("c");
        assert_eq!(
            missing_ancestors(&deep),
            vec![
                tmp.path().join("a"),
                tmp.path().join("a/b"),
                tmp.path().join("a/b/c")
            ]
        );
        create_dir_all(&deep).unwrap();
        assert!(deep.is_dir());
        assert!(missing_ancestors(&deep).is_empty());
        create_dir_all(&deep).unwrap();
    }

    /// A path that exists as a file is an error, not silently accepted.
    #[test]
    fn refuses_a_file_in_the_way() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        fs::write(&file, b"x").unwrap();
        assert!(create_dir_all(&file.join("sub")).is_err());
    }

    /// `write_file` replaces the content and leaves no temporary file behind.
    #[test]
    fn write_file_replaces_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("identity.json");
        write_file(&path, b"one").unwrap();
        write_file(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("identity.json")]);
    }
}
