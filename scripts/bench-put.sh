#!/usr/bin/env bash
# Put baseline: skiff-store vs real etcd 3.4, both 3 members on loopback, fsync on, data on
# the same disk, measured alternately in one run with the same tool (skiff-bench).
# Usage: scripts/bench-put.sh [total-per-run]   Output: a Markdown table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-20000}
cargo build --release -q -p skiff-store --bins
work=$(mktemp -d /var/tmp/skiff-bench.XXXX)
trap 'pkill -P $$ || true; sleep 0.5; rm -rf "$work"' EXIT

start_cluster() { # $1=binary $2=base-port
  local bin=$1 base=$2 ic=""
  for i in 0 1 2; do ic+="b$i=http://127.0.0.1:$((base+10+i)),"; done; ic=${ic%,}
  for i in 0 1 2; do
    ETCD_UNSUPPORTED_ARCH=amd64 $bin --name b$i --data-dir "$work/$base-$i" \
      --listen-client-urls http://127.0.0.1:$((base+i)) --advertise-client-urls http://127.0.0.1:$((base+i)) \
      --listen-peer-urls http://127.0.0.1:$((base+10+i)) --initial-advertise-peer-urls http://127.0.0.1:$((base+10+i)) \
      --initial-cluster "$ic" --initial-cluster-state new >"$work/$base-$i.log" 2>&1 &
  done
  for _ in $(seq 1 100); do
    ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:$base endpoint health >/dev/null 2>&1 && return 0; sleep 0.2
  done
  echo "cluster on $base did not start" >&2; exit 1
}

leader_ep() { # prints the leader's endpoint of the cluster at base port $1
  ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:$1,127.0.0.1:$(($1+1)),127.0.0.1:$(($1+2)) endpoint status -w json |
    python3 -c 'import json,sys; print(next(e["Endpoint"] for e in json.load(sys.stdin) if e["Status"]["leader"]==e["Status"]["header"]["member_id"]))'
}

start_cluster /usr/bin/etcd 41000
start_cluster target/release/skiff-store 42000
echo "| workload | etcd 3.4 ops/s | skiff ops/s | ratio | etcd p50/p99 ms | skiff p50/p99 ms |"
echo "|---|---|---|---|---|---|"
for spec in "1 1 $((total/10))" "10 100 $total"; do
  set -- $spec
  for who in etcd skiff; do
    base=41000; [ $who = skiff ] && base=42000
    ep=$(leader_ep $base)
    target/release/skiff-bench --endpoints "$ep" --conns $1 --clients $2 --json put --total $3 --key-size 8 --val-size 256 --key-space-size 100000 >"$work/$who.json"
  done
  e=$work/etcd.json s=$work/skiff.json
  python3 - "$e" "$s" "$2" <<'PY'
import json,sys
e=json.load(open(sys.argv[1])); s=json.load(open(sys.argv[2]))
print(f"| put, {sys.argv[3]} client(s), 8 B keys, 256 B values | {e['ops_per_sec']:.0f} | {s['ops_per_sec']:.0f} | {s['ops_per_sec']/e['ops_per_sec']:.2f}x | {e['latency_ms']['p50']:.2f} / {e['latency_ms']['p99']:.2f} | {s['latency_ms']['p50']:.2f} / {s['latency_ms']['p99']:.2f} |")
PY
done
