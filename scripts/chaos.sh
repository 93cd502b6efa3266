#!/usr/bin/env bash
# The chaos check (issue 4, point 8): drives the test-bed server with
# concurrent load while killing and restarting its redis-server twice, prints
# the figures (requests, 503s, latency, recovery time, RSS before/after) and
# fails unless the server survives, every request is answered within 2 s
# (503 only during an outage), recovery takes < 2 s and RSS comes back.
# Uses its own redis-server on a free loopback port (installs nothing).
#
#   scripts/chaos.sh                      # 40 s against bench-server
#   scripts/chaos.sh --duration 30s       # extra arguments go to `chaos`
#   CHAOS_SERVER=path/to/server scripts/chaos.sh
#   CHAOS_SERVER=target/release/bench-server-actix scripts/chaos.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet -p bench-server -p bench-server-actix -p testkit \
    --bin bench-server --bin bench-server-actix --bin chaos
target="${CARGO_TARGET_DIR:-target}/release"
exec "$target/chaos" --server "${CHAOS_SERVER:-$target/bench-server}" "$@"
