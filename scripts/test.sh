#!/usr/bin/env bash
# Runs every test of the workspace (unit tests, real multi-process clusters, real etcdctl
# and etcd 3.4 for comparison, the linearizability checker's golden histories).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo nextest run --workspace --no-fail-fast "$@"
