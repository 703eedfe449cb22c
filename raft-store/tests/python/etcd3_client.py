"""The Python `etcd3` package (PyPI, a real etcd client nobody here wrote) against skiff-store.

Usage: etcd3_client.py HOST:PORT [HOST:PORT ...]
Exits non-zero with a message on the first behaviour that differs from etcd's.
"""
import sys
import threading
import time

import etcd3


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok   {what}")


def main():
    endpoints = sys.argv[1:]
    host, port = endpoints[0].split(":")
    c = etcd3.client(host=host, port=int(port), timeout=10)
    other_host, other_port = endpoints[-1].split(":")
    c2 = etcd3.client(host=other_host, port=int(other_port), timeout=10)

    # Status and membership.
    st = c.status()
    check(st.version.startswith("3."), f"status reports an etcd version ({st.version})")
    check(st.leader is not None, "status names a leader")
    members = list(c.members)
    check(len(members) == len(endpoints), f"{len(members)} members listed")

    # Put/get/prefix/delete.
    c.put("/py/a", "1")
    c.put("/py/b", "2")
    value, meta = c.get("/py/a")
    check(value == b"1" and meta.version == 1, "get returns the value and version")
    check(c2.get("/py/b")[0] == b"2", "a write is visible through another member")
    keys = sorted(m.key for _, m in c.get_prefix("/py/"))
    check(keys == [b"/py/a", b"/py/b"], "get_prefix lists both keys")
    check(c.get("/py/missing") == (None, None), "a missing key is (None, None)")
    check(c.delete("/py/b") is True, "delete of an existing key reports True")
    check(c.delete("/py/b") is False, "delete of a missing key reports False")

    # Transactions and compare-and-swap.
    ok, _ = c.transaction(
        compare=[c.transactions.value("/py/a") == "1"],
        success=[c.transactions.put("/py/a", "2")],
        failure=[c.transactions.put("/py/a", "never")],
    )
    check(ok and c.get("/py/a")[0] == b"2", "txn takes the success branch")
    ok, responses = c.transaction(
        compare=[c.transactions.version("/py/a") == 99],
        success=[],
        failure=[c.transactions.get("/py/a")],
    )
    check(not ok and responses[0][0][0] == b"2", "txn takes the failure branch with a get")
    check(c.replace("/py/a", "2", "3") is True, "replace succeeds on the expected value")
    check(c.replace("/py/a", "2", "4") is False, "replace fails on a stale value")

    # Leases.
    lease = c.lease(30)
    c.put("/py/leased", "x", lease=lease)
    check(lease.remaining_ttl > 0 and lease.remaining_ttl <= 30, "lease TTL is reported")
    check(b"/py/leased" in [bytes(k) for k in lease.keys], "lease lists its key")
    lease.refresh()
    lease.revoke()
    check(c.get("/py/leased")[0] is None, "revoking the lease deletes its key")
    short = c.lease(2)
    c.put("/py/expiring", "x", lease=short)
    deadline = time.time() + 15
    while c.get("/py/expiring")[0] is not None and time.time() < deadline:
        time.sleep(0.2)
    check(c.get("/py/expiring")[0] is None, "a key on an expired lease is deleted")

    # Watch: a key, a prefix, once, and a callback.
    events, cancel = c.watch("/py/w")
    def writer():
        time.sleep(0.3)
        c2.put("/py/w", "v1")
        c2.put("/py/w", "v2")
        c2.delete("/py/w")
    threading.Thread(target=writer).start()
    got = []
    for ev in events:
        got.append((type(ev).__name__, ev.value))
        if len(got) == 3:
            cancel()
    check(got == [("PutEvent", b"v1"), ("PutEvent", b"v2"), ("DeleteEvent", b"")],
          f"watch sees put, put, delete in order ({got})")

    start = c.put("/py/p/1", "a").header.revision
    c.put("/py/p/2", "b")
    events, cancel = c.watch_prefix("/py/p/", start_revision=start)
    got = []
    for ev in events:
        got.append(ev.key)
        if len(got) == 2:
            cancel()
    check(got == [b"/py/p/1", b"/py/p/2"], "watch_prefix from a past revision replays history")

    threading.Timer(0.3, lambda: c2.put("/py/once", "z")).start()
    ev = c.watch_once("/py/once", timeout=10)
    check(ev.value == b"z", "watch_once returns the next event")

    seen = []
    done = threading.Event()
    def callback(resp):
        for e in resp.events:
            seen.append(e.value)
        done.set()
    wid = c.add_watch_callback("/py/cb", callback)
    time.sleep(0.3)
    c2.put("/py/cb", "called")
    done.wait(10)
    c.cancel_watch(wid)
    check(seen == [b"called"], "a watch callback fires")

    # A lock (leases + transactions underneath).
    with c.lock("py-lock", ttl=10) as lock:
        check(lock.is_acquired(), "lock acquired")
    check(not lock.is_acquired(), "lock released")

    # Compaction: a watch from below it fails with the compacted revision.
    first = c.put("/py/c", "1").header.revision
    rev = c.put("/py/c", "2").header.revision
    c.compact(rev)
    events, cancel = c.watch("/py/c", start_revision=first)
    try:
        next(iter(events))
        check(False, "a watch from a compacted revision is refused")
    except etcd3.exceptions.RevisionCompactedError as e:
        check(e.compacted_revision == rev, f"a watch from a compacted revision is refused at {rev}")
    finally:
        cancel()
    print("all etcd3 checks passed")


if __name__ == "__main__":
    main()
