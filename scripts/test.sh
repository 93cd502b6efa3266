#!/usr/bin/env bash
# Runs every check the project has: formatting, lints, docs, and all tests
# (unit, conformance against real Redis topologies: standalone, TLS,
# Sentinel, Cluster; doctests), then the chaos runs (outages, failovers and
# resharding under load). Installs redis-server and redis-cli (Debian
# packages) when they are missing. The tests start their own Redis servers on
# free loopback ports; nothing here touches a Redis someone else runs.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-cli >/dev/null 2>&1 \
   || { ! command -v redis-server >/dev/null 2>&1 && [ -z "${SESSIONKIT_REDIS_SERVER:-}" ]; }; then
  echo "==> redis-server or redis-cli not found; installing them (apt-get install redis-server redis-tools)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
fi

if [ -z "${SESSIONKIT_PYTHON:-}" ] && ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  echo "==> python3 cannot make a virtualenv with pip (no ensurepip) for the Flask tests; installing it (apt-get install python3-venv)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "==> cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet
echo "==> cargo doc as docs.rs builds it (--cfg docsrs: feature-gated items labelled)"
RUSTC_BOOTSTRAP=1 RUSTDOCFLAGS="--cfg docsrs -D warnings" cargo doc -p sessionkit --no-deps --all-features --quiet
echo "==> cargo test"
cargo test --workspace --all-features
echo "==> chaos check (Redis killed and restarted twice under load), axum"
./scripts/chaos.sh
echo "==> chaos check, actix-web (the connection on a worker thread)"
CHAOS_SERVER="${CARGO_TARGET_DIR:-target}/release/bench-server-actix" ./scripts/chaos.sh
for topology in sentinel cluster; do
  echo "==> chaos check, $topology: the primary killed 3 times under load, writes acknowledged by a replica (none may be lost)"
  ./scripts/chaos.sh --topology "$topology" --replica-acks 1
  echo "==> chaos check, $topology: the same without replica acknowledgements (what is lost is reported)"
  ./scripts/chaos.sh --topology "$topology"
done
echo "==> chaos check, cluster: 3 x 1000 hash slots moved under load (redis-cli --cluster reshard)"
./scripts/chaos.sh --topology cluster --fault reshard
