#!/usr/bin/env bash
# Starts (or stops) a local 3-member skiff-store cluster and a skiff-apiserver on loopback:
#   store clients: http://127.0.0.1:2379, :22379, :32379   peers: :2380, :22380, :32380
#   Kubernetes API: http://127.0.0.1:6443 (kubectl --server http://127.0.0.1:6443)
# The store members compact history older than 5 minutes themselves, as kube-apiserver has
# etcd do (its --etcd-compaction-interval). Data and logs live in ./tmp/dev-cluster.
# Usage: scripts/dev-cluster.sh start|stop|status
set -euo pipefail
cd "$(dirname "$0")/.."
dir=tmp/dev-cluster
names=(s1 s2 s3); client=(2379 22379 32379); peer=(2380 22380 32380)
initial="s1=http://127.0.0.1:2380,s2=http://127.0.0.1:22380,s3=http://127.0.0.1:32380"
case "${1:-start}" in
  start)
    cargo build --release -p skiff-store -p skiff-apiserver
    mkdir -p "$dir"
    for i in 0 1 2; do
      n=${names[$i]}
      [ -f "$dir/$n.pid" ] && kill -0 "$(cat "$dir/$n.pid")" 2>/dev/null && { echo "$n already running"; continue; }
      nohup target/release/skiff-store --name "$n" --data-dir "$dir/$n" \
        --listen-client-urls "http://127.0.0.1:${client[$i]}" --advertise-client-urls "http://127.0.0.1:${client[$i]}" \
        --listen-peer-urls "http://127.0.0.1:${peer[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${peer[$i]}" \
        --initial-cluster "$initial" --initial-cluster-state new \
        --auto-compaction-mode periodic --auto-compaction-retention 5m >"$dir/$n.log" 2>&1 &
      echo $! >"$dir/$n.pid"
    done
    eps=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379
    for _ in $(seq 1 50); do
      ETCDCTL_API=3 etcdctl --endpoints=$eps endpoint health >/dev/null 2>&1 && break; sleep 0.2
    done
    ETCDCTL_API=3 etcdctl --endpoints=$eps endpoint status -w table
    if ! { [ -f "$dir/api.pid" ] && kill -0 "$(cat "$dir/api.pid")" 2>/dev/null; }; then
      nohup target/release/skiff-apiserver --etcd-servers "http://127.0.0.1:2379,http://127.0.0.1:22379,http://127.0.0.1:32379" \
        --bind-address 127.0.0.1 --port 6443 >"$dir/api.log" 2>&1 &
      echo $! >"$dir/api.pid"
    fi
    for _ in $(seq 1 50); do
      curl -sf http://127.0.0.1:6443/readyz >/dev/null 2>&1 && break; sleep 0.2
    done
    echo "skiff-store cluster up. Try: ETCDCTL_API=3 etcdctl --endpoints=$eps put hello world"
    echo "skiff-apiserver up.     Try: kubectl --server http://127.0.0.1:6443 get ns"
    ;;
  stop)
    for n in api "${names[@]}"; do [ -f "$dir/$n.pid" ] && kill "$(cat "$dir/$n.pid")" 2>/dev/null || true; rm -f "$dir/$n.pid"; done
    echo "stopped (data kept in $dir; remove it for a fresh cluster)"
    ;;
  status)
    ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 endpoint status -w table
    curl -s http://127.0.0.1:6443/readyz && echo " (skiff-apiserver on :6443)" || echo "skiff-apiserver is not running"
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
