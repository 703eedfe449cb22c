//! Which RocksDB directory is live, and the crash-safe switch to a newly installed one.
//!
//! ```text
//! dir/
//!   CURRENT_DB        name of the live database directory ("db" if the file is absent)
//!   db | db.<n>       the live database
//!   db.<n+1>          a snapshot being installed (not live until CURRENT_DB names it)
//! ```
//!
//! A snapshot is loaded into a fresh `db.<n+1>` and flushed; then `CURRENT_DB` is replaced
//! atomically (write a temporary file, fsync, rename, fsync the directory). A crash before the
//! rename leaves the old database live and the new directory is deleted by the next open; a
//! crash after it makes the new one live and the old one is deleted. The live directory is
//! never renamed while open, so readers keep using the old database until they finish.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::StorageError;

/// The pointer file naming the live database directory.
pub const CURRENT_FILE: &str = "CURRENT_DB";
const CURRENT_TMP_FILE: &str = "CURRENT_DB.tmp";
/// The name of the first database directory.
pub const FIRST_DB: &str = "db";

/// The generation of a database directory name: `db` is 0, `db.<n>` is n.
pub fn generation(name: &str) -> Option<u64> {
    match name.strip_prefix(FIRST_DB)? {
        "" => Some(0),
        rest => rest
            .strip_prefix('.')
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok()),
    }
}

/// The directory name of generation `n`.
pub fn name_of(n: u64) -> String {
    if n == 0 {
        FIRST_DB.to_string()
    } else {
        format!("{FIRST_DB}.{n}")
    }
}

/// The live database directory name recorded in `dir`.
pub fn read_current(dir: &Path) -> Result<String, StorageError> {
    let path = dir.join(CURRENT_FILE);
    match fs::read_to_string(&path) {
        Ok(name) => {
            let name = name.trim().to_string();
            if generation(&name).is_none() {
                return Err(StorageError::Incompatible(format!(
                    "{} names {name:?}, not a database directory",
                    path.display()
                )));
            }
            Ok(name)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FIRST_DB.to_string()),
        Err(e) => Err(StorageError::io("read", path)(e)),
    }
}

/// Makes `name` the live database directory, atomically and durably.
pub fn write_current(dir: &Path, name: &str) -> Result<(), StorageError> {
    let tmp = dir.join(CURRENT_TMP_FILE);
    let mut f = fs::File::create(&tmp).map_err(StorageError::io("create", &tmp))?;
    f.write_all(name.as_bytes())
        .map_err(StorageError::io("write", &tmp))?;
    f.sync_all().map_err(StorageError::io("sync", &tmp))?;
    drop(f);
    let path = dir.join(CURRENT_FILE);
    fs::rename(&tmp, &path).map_err(StorageError::io("rename to", &path))?;
    sync_dir(dir)
}

/// Fsyncs a directory so that renames and creations in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io("sync directory", dir))
}

/// Deletes every database directory except `live`, and a leftover temporary pointer: what
/// remains of an interrupted install or of a replaced database.
pub fn remove_stale(dir: &Path, live: &str) -> Result<(), StorageError> {
    let entries = fs::read_dir(dir).map_err(StorageError::io("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(StorageError::io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if name == CURRENT_TMP_FILE {
            fs::remove_file(&path).map_err(StorageError::io("remove", &path))?;
        } else if generation(name).is_some() && name != live {
            tracing::info!(path = %path.display(), "removing stale database directory");
            fs::remove_dir_all(&path).map_err(StorageError::io("remove", &path))?;
        }
    }
    Ok(())
}

/// The directory for the generation after `live`, emptied if a previous attempt left it.
pub fn prepare_next(dir: &Path, live: &str) -> Result<PathBuf, StorageError> {
    let live_gen = generation(live).expect("live name validated at open");
    let path = dir.join(name_of(live_gen + 1));
    if path.exists() {
        fs::remove_dir_all(&path).map_err(StorageError::io("remove", &path))?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_names() {
        assert_eq!(generation("db"), Some(0));
        assert_eq!(generation("db.7"), Some(7));
        assert_eq!(name_of(7), "db.7");
        for bad in ["db.", "db.x", "dbx", "db.-1", "other", "db.1.2"] {
            assert_eq!(generation(bad), None, "{bad}");
        }
    }

    // Stale database directories go, the live one and unrelated files stay.
    #[test]
    fn remove_stale_keeps_live() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["db", "db.1", "db.2"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        fs::write(dir.path().join("notes"), "x").unwrap();
        write_current(dir.path(), "db.1").unwrap();
        assert_eq!(read_current(dir.path()).unwrap(), "db.1");
        remove_stale(dir.path(), "db.1").unwrap();
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["CURRENT_DB", "db.1", "notes"]);
    }
}
