#!/usr/bin/env bash
# Installs the system packages skiff needs to build and test (Debian 12), once.
#   librocksdb-dev   RocksDB 7.8 linked by the `rocksdb` crate (no 30-minute C++ build)
#   libclang-dev     bindgen for librocksdb-sys
#   protobuf-compiler  prost/tonic code generation
#   etcd-server etcd-client  real etcd 3.4 and etcdctl: the peers tests compare against
#   iproute2 iptables e2fsprogs  skiff-jepsen: network namespaces, partitions, loop-mounted
#                                ext4 data dirs for the power-loss fault (runs as root)
set -euo pipefail
need=()
for p in librocksdb-dev libclang-dev clang protobuf-compiler etcd-server etcd-client \
         iproute2 iptables e2fsprogs; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  # Debian starts an etcd service on install; tests start their own clusters.
  $SUDO systemctl disable --now etcd >/dev/null 2>&1 || $SUDO pkill -x etcd || true
fi
command -v cargo-nextest >/dev/null 2>&1 || cargo install cargo-nextest --locked
# The Python etcd3 and kubernetes clients (real clients the tests drive), in their own
# virtualenv. etcd3 0.12 needs protobuf 3.x.
PYENV="${HOME}/.cache/skiff-py"
if ! "$PYENV/bin/python" -c "import etcd3, kubernetes" >/dev/null 2>&1; then
  echo "setup: installing the Python etcd3 and kubernetes clients into $PYENV"
  python3 -m venv "$PYENV"
  "$PYENV/bin/pip" install -q "etcd3==0.12.0" "protobuf>=3.20,<4" "kubernetes==32.0.1"
fi
