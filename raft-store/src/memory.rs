//! Process-wide memory settings for the binaries (`skiff-store`, `skiff-bench`).
//!
//! Transparent huge pages are turned off for the process. mimalloc's arenas are eligible
//! for them on systems whose THP mode is `madvise` or `always`, and then the first touch of
//! any 64 KiB mimalloc page in a fresh 2 MiB region faults in and zeroes the whole 2 MiB,
//! again after every purge gives memory back. On a follower during a 100,000-put run on a
//! fresh cluster, 31% of its CPU samples were the kernel zeroing such pages
//! (`folio_zero_user` under `do_huge_pmd_anonymous_page`, from `mi_page_free_list_extend`);
//! with 4 KiB pages a put cost the three members 47 instead of 55 µs of CPU (see
//! docs/benchmarks.md, "Transparent huge pages off").

/// Turns transparent huge pages off for this process (`PR_SET_THP_DISABLE`), as mimalloc's
/// `MIMALLOC_ALLOW_THP=0` does; it applies to later page faults in every mapping. A kernel
/// without the flag leaves THP as it was; the error is returned for the caller to log.
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    // SAFETY: prctl with PR_SET_THP_DISABLE takes integer arguments only and touches no
    // memory of this process.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    // The flag is set and reads back (a fresh test process; nothing else depends on it).
    #[test]
    fn huge_pages_are_turned_off() {
        super::disable_transparent_huge_pages().unwrap();
        // SAFETY: as above; PR_GET_THP_DISABLE returns the flag.
        let flag = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(flag, 1);
    }
}
