#!/usr/bin/env bash
# Runs every check the project has: formatting, lints, docs, and all tests
# (unit, conformance against a real redis-server, doctests).
# Installs redis-server (Debian package) when it is missing. The tests start
# their own redis-server on free loopback ports; nothing here touches a Redis
# someone else runs.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1 && [ -z "${SESSIONKIT_REDIS_SERVER:-}" ]; then
  echo "==> redis-server not found; installing it (apt-get install redis-server)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "==> cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet
echo "==> cargo test"
cargo test --workspace --all-features
echo "==> chaos check (Redis killed and restarted twice under load), axum"
./scripts/chaos.sh
echo "==> chaos check, actix-web (the connection on a worker thread)"
CHAOS_SERVER="${CARGO_TARGET_DIR:-target}/release/bench-server-actix" ./scripts/chaos.sh
