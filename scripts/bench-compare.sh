#!/usr/bin/env bash
# Side-by-side benchmark: skiff-store vs real etcd 3.4 (Debian's etcd-server) on this machine.
#
# Starts a 3-member etcd cluster and a 3-member skiff-store cluster on loopback, both with
# their default durability (fsync of every log append on) and their data dirs on the same
# disk, runs the same skiff-bench workloads against each, alternating which store goes first,
# and writes one Markdown table with the ratio skiff/etcd per workload, the goals of the
# benchmark issue and whether each is met, plus the members' RSS after loading 1M keys and
# their peak RSS (VmHWM from /proc), and the CPU time the members spent per operation.
#
# Usage: scripts/bench-compare.sh [--quick] [--out FILE] [--only NAME,NAME...] [--keep]
#   --quick   smaller totals (about 2 minutes instead of about 10)
#   --out     where the Markdown table goes (default target/bench-compare.md); it is also
#             printed, and the raw JSON of every run is kept next to it (FILE.d/)
#   --only    run only these workloads (names as in the table's first column); the
#             1M-key load runs only when `load` is listed (or --only is absent)
#   --keep    keep the clusters' data dirs (printed at the end)
# Environment: BENCH_DIR (default /var/tmp) holds both clusters' data dirs; SKIFF_STORE_BIN
# (default target/release/skiff-store) runs another skiff-store build, to compare builds
# through their ratios to the same etcd.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0 out=target/bench-compare.md only="" keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --out) out=$2; shift ;;
    --only) only=$2; shift ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench-compare: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -x /usr/bin/etcd ] || { echo "bench-compare: /usr/bin/etcd missing: apt-get install etcd-server etcd-client" >&2; exit 1; }

cargo build --release -q -p skiff-store --bins
bench=target/release/skiff-bench
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/skiff-compare.XXXX")
raw="$out.d"; rm -rf "$raw"; mkdir -p "$raw" "$(dirname "$out")"
declare -A pids=()

any_alive() {
  local p
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done
  return 1
}

cleanup() {
  local p _
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # etcd's leader tries to hand over leadership when stopped and can hang once its peers are
  # gone: give every member 5 s, then SIGKILL what is left.
  for _ in $(seq 1 25); do any_alive || break; sleep 0.2; done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ $keep = 1 ]; then echo "data kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Ports sit below Linux's ephemeral range (32768-60999 by default), so no test's free_port()
# or outgoing connection can hold one of them when the clusters start.
ETCD_BASE=21000 SKIFF_BASE=22000

# start_cluster FLAVOR BINARY BASE_PORT: members on BASE+0..2 (clients), BASE+10..12 (peers).
start_cluster() {
  local flavor=$1 bin=$2 base=$3 ic="" i
  for i in 0 1 2; do ic+="$flavor$i=http://127.0.0.1:$((base + 10 + i)),"; done
  for i in 0 1 2; do
    ETCD_UNSUPPORTED_ARCH=amd64 "$bin" --name "$flavor$i" --data-dir "$work/$flavor$i" \
      --listen-client-urls "http://127.0.0.1:$((base + i))" --advertise-client-urls "http://127.0.0.1:$((base + i))" \
      --listen-peer-urls "http://127.0.0.1:$((base + 10 + i))" --initial-advertise-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
      --initial-cluster "${ic%,}" --initial-cluster-state new --initial-cluster-token "$flavor-bench" \
      >"$work/$flavor$i.log" 2>&1 &
    pids[$flavor$i]=$!
  done
  for _ in $(seq 1 150); do
    ETCDCTL_API=3 etcdctl --endpoints="$(endpoints "$base")" endpoint health >/dev/null 2>&1 && return 0
    for i in 0 1 2; do
      kill -0 "${pids[$flavor$i]}" 2>/dev/null || {
        echo "bench-compare: $flavor$i exited: $(grep -m1 -i error "$work/$flavor$i.log")" >&2
        keep=1; exit 1
      }
    done
    sleep 0.2
  done
  echo "bench-compare: the $flavor cluster did not become healthy; logs in $work" >&2
  keep=1; exit 1
}

endpoints() { echo "127.0.0.1:$1,127.0.0.1:$(($1 + 1)),127.0.0.1:$(($1 + 2))"; }

# rss_kib FLAVOR FIELD: the largest FIELD (VmRSS or VmHWM, KiB) over the flavor's members.
rss_kib() {
  local max=0 i v
  for i in 0 1 2; do
    v=$(awk -v f="$2:" '$1 == f { print $2 }' "/proc/${pids[$1$i]}/status")
    [ "$v" -gt "$max" ] && max=$v
  done
  echo "$max"
}

# cpu_ticks FLAVOR: user+system CPU of the flavor's three members so far, in clock ticks.
cpu_ticks() {
  local sum=0 i
  for i in 0 1 2; do
    # Fields 14 and 15 of /proc/PID/stat; the command name has no spaces for these binaries.
    sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/${pids[$1$i]}/stat")))
  done
  echo "$sum"
}

wanted() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }

# run_pair INDEX NAME ARGS...: runs the workload on both stores, etcd first on even indexes.
run_pair() {
  local idx=$1 name=$2; shift 2
  wanted "${name%.r[0-9]*}" || return 0
  local order="etcd skiff"; [ $((idx % 2)) = 1 ] && order="skiff etcd"
  for who in $order; do
    local base=$ETCD_BASE; [ "$who" = skiff ] && base=$SKIFF_BASE
    echo "== $name on $who: skiff-bench --endpoints $(endpoints $base) $*" >&2
    local before; before=$(cpu_ticks "$who")
    if ! "$bench" --endpoints "$(endpoints $base)" --json "$@" >"$raw/$name.$who.json" 2>"$raw/$name.$who.err"; then
      echo "   failed: $(tail -1 "$raw/$name.$who.err")" >&2
    fi
    echo "$(($(cpu_ticks "$who") - before)) $(getconf CLK_TCK)" >"$raw/$name.$who.cpu"
    sleep 1 # let compaction/flush from the previous run settle a little
  done
}

if [ $quick = 1 ]; then
  put1=500 put1k=20000 rng=30000 txn=5000 lka=10000 wput=200 load_keys=100000
else
  put1=3000 put1k=100000 rng=100000 txn=20000 lka=50000 wput=500 load_keys=1000000
fi
kv=(--key-size 8 --val-size 256 --key-space-size 100000)

start_cluster etcd /usr/bin/etcd $ETCD_BASE
start_cluster skiff "${SKIFF_STORE_BIN:-target/release/skiff-store}" $SKIFF_BASE
for base in $ETCD_BASE $SKIFF_BASE; do
  ETCDCTL_API=3 etcdctl --endpoints="127.0.0.1:$base" put bench-range-key "$(head -c 256 /dev/zero | tr '\0' v)" >/dev/null
done

# run_rounds INDEX NAME ROUNDS ARGS...: the pair ROUNDS times, the first store alternating;
# the table shows the round with the median throughput ratio and lists every round's. For
# the rows whose goals are tight: one run per store was at the mercy of a few noisy seconds.
run_rounds() {
  local idx=$1 name=$2 rounds=$3 k; shift 3
  for k in $(seq 1 "$rounds"); do run_pair $((idx + k - 1)) "$name.r$k" "$@"; done
}

run_rounds 0 put-1 3 --target-leader --conns 1 --clients 1 put --total $put1 "${kv[@]}"
run_rounds 1 put-1000 3 --target-leader --conns 100 --clients 1000 put --total $put1k "${kv[@]}"
run_pair 2 range-l-1000 --conns 100 --clients 1000 range bench-range-key --consistency l --total $rng
run_pair 3 range-s-1000 --conns 100 --clients 1000 range bench-range-key --consistency s --total $rng
run_pair 4 txn-put-100 --target-leader --conns 10 --clients 100 txn-put --txn-ops 4 --total $txn "${kv[@]}"
run_pair 5 lease-keepalive-100 --target-leader --conns 10 --clients 100 lease-keepalive --total $lka
run_pair 6 watch-latency-1000 --conns 10 --clients 4 watch-latency --watchers 1000 --streams 10 \
  --put-total $wput --put-rate 100 --val-size 256

if wanted load; then
  # Every key of a 1M (quick: 100k) key space written once, 100 puts per Txn.
  run_pair 7 load --target-leader --conns 10 --clients 100 txn-put --txn-ops 100 --sequential-keys \
    --key-size 8 --val-size 256 --key-space-size $load_keys --total $((load_keys / 100))
  sleep 2
  for who in etcd skiff; do rss_kib "$who" VmRSS >"$raw/rss.$who"; done
fi
for who in etcd skiff; do rss_kib "$who" VmHWM >"$raw/hwm.$who"; done

python3 scripts/bench-table.py "$raw" "$load_keys" \
  "$(date -u +%F) $(nproc) cores, $(uname -r), mode $([ $quick = 1 ] && echo quick || echo full)" |
  tee "$out"
echo "table written to $out (raw JSON in $raw)" >&2
