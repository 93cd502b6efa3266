#!/usr/bin/env bash
# The README's benchmark, reproduced: builds sessionkit's two test-bed
# servers and the two peers, runs ../shared/bench/run.sh on all four (same
# Redis, interleaved runs), and writes docs/bench/<date>.{json,md,svg}
# (the chart is drawn from the JSON by tools/bench-chart).
#
#   scripts/bench.sh                 # default settings: about 9 minutes
#   scripts/bench.sh -d 5s -r 1      # extra arguments go to run.sh
#   FLOOR=1 scripts/bench.sh         # also examples/bench-floor: one bare
#                                    # Redis command per request, no session
#                                    # logic (what no library can beat by much)
#
# Needs wrk, curl, redis-server and redis-cli (apt-get install wrk curl
# redis-server), python3. Nothing else should run on the machine meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."

bench=../shared/bench
out="docs/bench/$(date -u +%F)"
target="${CARGO_TARGET_DIR:-target}"

cargo build --release -p bench-server -p bench-server-actix -p bench-floor -p bench-chart
CARGO_TARGET_DIR="$target/peers" \
    cargo build --release --manifest-path "$bench/peers/Cargo.toml"

"$bench/run.sh" -o "$out.json" "$@" \
    ours="$target/release/bench-server" \
    ours-actix="$target/release/bench-server-actix" \
    tower-sessions="$target/peers/release/tower-sessions-peer" \
    actix-session="$target/peers/release/actix-session-peer" \
    ${FLOOR:+floor="$target/release/bench-floor"}
"$target/release/bench-chart" "$out.json" -o "$out.svg"
echo "wrote $out.json, $out.md, $out.svg"
