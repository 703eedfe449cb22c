#!/usr/bin/env python3
"""Builds the Markdown table of scripts/bench-compare.sh from the raw skiff-bench JSON.

Usage: bench-table.py RAW_DIR LOADED_KEYS HEADER
RAW_DIR holds NAME.etcd.json / NAME.skiff.json per workload (one skiff-bench --json report
each; or NAME.rK.etcd.json / NAME.rK.skiff.json for rounds K = 1, 2, ... of a workload run
several times, of which the round with the median throughput ratio is shown), NAME.{etcd,skiff}.cpu ("TICKS CLK_TCK": the three members' user+system CPU during
the run), rss.{etcd,skiff} (VmRSS after the key load, KiB) and hwm.{etcd,skiff} (VmHWM, KiB).
Ratios are skiff/etcd: above 1 is better for throughput, below 1 is better for latency and
memory. The goals are those of the benchmark issue.
"""
import json
import os
import sys

raw, loaded_keys, header = sys.argv[1], int(sys.argv[2]), sys.argv[3]

# name -> (description, goal kind, goal value). Kinds: "ops" = ops ratio >= value and,
# for put-1000, p99 ratio <= 1; "p50"/"p99" = latency ratio <= value; None = no goal.
WORKLOADS = [
    ("put-1", "put, 1 client / 1 conn, to leader", "p50", 1.0),
    ("put-1000", "put, 1,000 clients / 100 conns, to leader", "ops+p99", 2.0),
    ("range-l-1000", "range linearizable, 1,000 clients / 100 conns", "ops", 1.5),
    ("range-s-1000", "range serializable, 1,000 clients / 100 conns", "ops", 1.5),
    ("txn-put-100", "txn-put (4 puts/txn), 100 clients / 10 conns", None, None),
    ("lease-keepalive-100", "lease-keepalive, 100 clients / 10 conns", None, None),
    ("watch-latency-1000", "watch-latency, 1,000 watchers / 10 streams, 100 puts/s", "p99", 1.0),
    ("load", f"load {loaded_keys:,} keys (txn-put, 100 puts/txn)", None, None),
]


def load(name, who):
    path = os.path.join(raw, f"{name}.{who}.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def error_of(name, who):
    try:
        with open(os.path.join(raw, f"{name}.{who}.err")) as f:
            lines = [l.strip() for l in f if l.strip()]
        return lines[-1] if lines else "no output"
    except OSError:
        return "not run"


def verdict(kind, goal, ops_r, p50_r, p99_r):
    if kind is None:
        return "(no goal)"
    checks = []
    if kind.startswith("ops"):
        checks.append((ops_r >= goal, f"ops {ops_r:.2f}x vs ≥{goal}x"))
    if kind == "p50":
        checks.append((p50_r <= goal, f"p50 {p50_r:.2f}x vs ≤{goal}x"))
    if kind.endswith("p99"):
        checks.append((p99_r <= 1.0, f"p99 {p99_r:.2f}x vs ≤1x"))
    missed = [text for ok, text in checks if not ok]
    return "met" if not missed else "**missed**: " + "; ".join(missed)


def fmt_lat(r):
    l = r["latency_ms"]
    return f"{l['p50']:.2f} / {l['p99']:.2f}"


def cpu_us_per_op(name, who, report):
    """Member CPU (all three members) per operation, in microseconds; None if unknown."""
    try:
        with open(os.path.join(raw, f"{name}.{who}.cpu")) as f:
            ticks, hz = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return None
    ops = report["watch"]["puts"] if report.get("watch") else report["requests"]
    return ticks * 1e6 / hz / ops if ops else None


def fmt_cpu(name, e, s):
    ce, cs = cpu_us_per_op(name, "etcd", e), cpu_us_per_op(name, "skiff", s)
    if ce is None or cs is None:
        return ""
    return f"{ce:,.0f} / {cs:,.0f}"


def median_round(name):
    """For a workload run in rounds (NAME.rK.*): the stem of the round whose throughput
    ratio is the median, and every round's ratio in run order. (name, []) otherwise."""
    rounds = []
    k = 1
    while os.path.exists(os.path.join(raw, f"{name}.r{k}.etcd.err")):
        stem = f"{name}.r{k}"
        e, s = load(stem, "etcd"), load(stem, "skiff")
        if e and s and e["ops_per_sec"]:
            rounds.append((s["ops_per_sec"] / e["ops_per_sec"], stem))
        k += 1
    if not rounds:
        return name, []
    ranked = sorted(rounds)
    return ranked[(len(ranked) - 1) // 2][1], [r for r, _ in rounds]


def row(name, desc, kind, goal):
    name, rounds = median_round(name)
    if rounds:
        listed = ", ".join(f"{r:.2f}x" for r in rounds)
        desc += f" (median of {len(rounds)} alternating rounds: {listed})"
    e, s = load(name, "etcd"), load(name, "skiff")
    if e is None and s is None and not os.path.exists(os.path.join(raw, f"{name}.etcd.err")):
        return None
    if e is None or s is None:
        # Show the side that ran, and why the other did not.
        who, ran = ("etcd", s) if e is None else ("skiff", e)
        cells = ["", "", "", "", ""]
        if ran is not None:
            cells = [f"{ran['ops_per_sec']:,.0f}", fmt_lat(ran)]
            cells = [cells[0], "n/a", "n/a", cells[1], "n/a"] if e is not None else \
                ["n/a", cells[0], "n/a", "n/a", cells[1]]
        return f"| {desc} | {' | '.join(cells)} | n/a | | | **failed** on {who}: {error_of(name, who)} |"
    ops_r = s["ops_per_sec"] / e["ops_per_sec"] if e["ops_per_sec"] else float("nan")
    ratio = lambda k: s["latency_ms"][k] / e["latency_ms"][k] if e["latency_ms"][k] else float("nan")
    p50_r, p99_r = ratio("p50"), ratio("p99")
    errs = f"{e['errors']} / {s['errors']}"
    return (
        f"| {desc} | {e['ops_per_sec']:,.0f} | {s['ops_per_sec']:,.0f} | **{ops_r:.2f}x** | "
        f"{fmt_lat(e)} | {fmt_lat(s)} | {p50_r:.2f}x / {p99_r:.2f}x | {errs} | {fmt_cpu(name, e, s)} | "
        f"{verdict(kind, goal, ops_r, p50_r, p99_r)} |"
    )


def mib(path):
    try:
        with open(path) as f:
            return int(f.read().strip()) / 1024
    except (OSError, ValueError):
        return None


def memory_rows():
    out = []
    for what, stem, goal in [
        (f"member RSS after {loaded_keys:,} keys (largest of 3, MiB)", "rss", True),
        ("member peak RSS over the whole run (VmHWM, largest of 3, MiB)", "hwm", False),
    ]:
        e, s = mib(os.path.join(raw, f"{stem}.etcd")), mib(os.path.join(raw, f"{stem}.skiff"))
        if e is None or s is None:
            continue
        r = s / e
        v = ("met" if r <= 1 else f"**missed**: {r:.2f}x vs ≤1x") if goal else "(no goal)"
        out.append(f"| {what} | {e:,.0f} | {s:,.0f} | **{r:.2f}x** | | | | | | {v} |")
    return out


print(f"Run: {header}. Ratios are skiff/etcd (throughput: higher is better; latency and memory: lower is better). "
      "Member CPU is the user+system time of all three members during the run, per operation (per put for watch-latency, per Txn for txn-put).")
print()
print("| workload | etcd ops/s | skiff ops/s | ops ratio | etcd p50 / p99 ms | skiff p50 / p99 ms | p50 / p99 ratio | errors etcd / skiff | member CPU µs/op etcd / skiff | goal |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name, desc, kind, goal in WORKLOADS:
    line = row(name, desc, kind, goal)
    if line:
        print(line)
for line in memory_rows():
    print(line)
