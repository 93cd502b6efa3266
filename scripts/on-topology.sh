#!/usr/bin/env bash
# Runs a command with one of the test harness's Redis topologies up (the
# `topology` bin: free loopback ports, torn down at the end) and the
# test-bed environment that selects it exported (CONTRACT.md), e.g. an
# interleaved A/B of the client cache on Cluster:
#
#   scripts/on-topology.sh cluster scripts/isolated.sh -w read \
#       cached=target/release/bench-server \
#       uncached="env CLIENT_CACHE=off target/release/bench-server"
#
# (isolated.sh still starts a private redis-server per run; a test-bed
# given REDIS_CLUSTER_URLS or REDIS_SENTINEL_URLS does not use it, so its
# Redis columns stay empty.)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "on-topology.sh: give a topology and a command" >&2; exit 2; }
topology="$1"
shift
cargo build --release --quiet -p testkit --bin topology
coproc TOPO { exec "${CARGO_TARGET_DIR:-target}/release/topology" "$topology"; }
trap 'kill "$TOPO_PID" 2>/dev/null || true' EXIT
while read -r line <&"${TOPO[0]}"; do
    case "$line" in
        READY) break ;;
        '#'*) ;;
        *=*) export "${line?}"; echo "on-topology.sh: $line" >&2 ;;
    esac
done
"$@"
