#!/usr/bin/env bash
# The chaos check: drives the test-bed server with concurrent load while its
# Redis suffers faults — by default a redis-server killed and restarted
# twice; `--topology sentinel` / `--topology cluster` kill the primary until
# a replica takes over (3 times), `--topology cluster --fault reshard` moves
# hash slots — then reads every session back. Prints the figures (requests,
# 503s, latency, recovery time, acknowledged writes lost, RSS before/after)
# and fails unless the server survives, every request is answered within
# 2 s (503 only during a fault), recovery takes < 2 s, RSS comes back, and
# with `--replica-acks N` no acknowledged write is lost. Uses its own Redis
# on free loopback ports (installs nothing).
#
#   scripts/chaos.sh                      # 40 s against bench-server
#   scripts/chaos.sh --duration 30s       # extra arguments go to `chaos`
#   scripts/chaos.sh --topology sentinel --replica-acks 1
#   CHAOS_SERVER=path/to/server scripts/chaos.sh
#   CHAOS_SERVER=target/release/bench-server-actix scripts/chaos.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet -p bench-server -p bench-server-actix -p testkit \
    --bin bench-server --bin bench-server-actix --bin chaos
target="${CARGO_TARGET_DIR:-target}/release"
exec "$target/chaos" --server "${CHAOS_SERVER:-$target/bench-server}" "$@"
