#!/usr/bin/env bash
# Redis commands and round trips per request of a test-bed on each topology
# (issue 16, item 7). For each of standalone, TLS, Sentinel and Cluster it
# starts the harness's topology (`topology` bin) and the test-bed with the
# environment that selects it, sends N requests of each workload one after
# another on one keep-alive connection (curl), and reads from every data
# primary it talks to:
#   - commands: the calls in `INFO commandstats` (a script's own calls count
#     too: `EVALSHA` running `HMGET`, `HSTRLEN`, `HSET` is four);
#   - round trips: `total_reads_processed` in `INFO stats` (a read of a
#     client's socket that found a request: a pipeline sent in one write is
#     one read);
# each minus what the same nodes counted while idle for as long (replicas'
# acknowledgements, sentinels' pings). Counts, not timings: the machine's
# noise does not move them.
#
#   scripts/topology-costs.sh                 # bench-server, N=500
#   N=1000 SERVER=bench-server-actix scripts/topology-costs.sh
#   CLIENT_CACHE=off scripts/topology-costs.sh
#   TOPOLOGIES="sentinel cluster" SESSIONKIT_REPLICA_ACKS=1 scripts/topology-costs.sh
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-500}"
SERVER="${SERVER:-bench-server}"
cargo build --release --quiet -p testkit --bin topology -p "$SERVER" --bin "$SERVER"
bin="${CARGO_TARGET_DIR:-target}/release"

# Sum of a field over the nodes: `stat commands|reads PORT...`.
stat() {
  local what=$1 total=0 n p
  shift
  for p in "$@"; do
    if [ "$what" = commands ]; then
      n=$(redis-cli -p "$p" INFO commandstats | tr -d '\r' |
        sed -n 's/^cmdstat_[^:]*:calls=\([0-9]*\).*/\1/p' | paste -sd+ | bc)
    else
      n=$(redis-cli -p "$p" INFO stats | tr -d '\r' |
        sed -n 's/^total_reads_processed:\([0-9]*\)/\1/p')
    fi
    total=$((total + ${n:-0}))
  done
  echo "$total"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

printf '| topology | workload | commands / request | round trips / request |\n|---|---|---|---|\n'
for topology in ${TOPOLOGIES:-standalone tls sentinel cluster}; do
  coproc TOPO { "$bin/topology" "$topology"; }
  env=()
  ports=()
  while read -r line <&"${TOPO[0]}"; do
    case "$line" in
      READY) break ;;
      "# plain port for inspection: "* | "# primary: "*) ports+=("${line##*: }") ;;
      REDIS_URL=redis://*)
        env+=("$line")
        p="${line##*:}"
        ports+=("${p%/}")
        ;;
      REDIS_CLUSTER_URLS=*)
        env+=("$line")
        IFS=, read -ra urls <<<"${line#*=}"
        for url in "${urls[@]}"; do
          p="${url##*:}"
          ports+=("${p%/}")
        done
        ;;
      *=*) env+=("$line") ;;
    esac
  done
  # Primaries only: a replica's reads are the replication stream, its
  # commands the primary's applied again.
  primaries=()
  for p in "${ports[@]}"; do
    [ "$(redis-cli -p "$p" ROLE | head -1)" = master ] && primaries+=("$p")
  done
  ports=("${primaries[@]}")
  port=$(free_port)
  env "${env[@]}" PORT="$port" RUST_LOG=error "$bin/$SERVER" 2>/dev/null &
  server=$!
  base="http://127.0.0.1:$port"
  for _ in $(seq 100); do
    curl -sf "$base/baseline" >/dev/null && break
    sleep 0.1
  done
  jar=$(mktemp)
  curl -sf -c "$jar" "$base/new" >/dev/null
  for workload in new read write; do
    urls=()
    for _ in $(seq "$N"); do urls+=("$base/$workload"); done
    cookie=()
    [ "$workload" != new ] && cookie=(-b "$jar")
    c0=$(stat commands "${ports[@]}")
    r0=$(stat reads "${ports[@]}")
    start=$(date +%s.%N)
    curl -sf "${cookie[@]}" "${urls[@]}" >/dev/null
    took=$(echo "$(date +%s.%N) - $start" | bc)
    c1=$(stat commands "${ports[@]}")
    r1=$(stat reads "${ports[@]}")
    sleep "$took"
    c2=$(stat commands "${ports[@]}")
    r2=$(stat reads "${ports[@]}")
    # The idle interval's own stat calls count too: subtract them as well.
    cmds=$(echo "scale=2; (($c1 - $c0) - ($c2 - $c1)) / $N" | bc)
    trips=$(echo "scale=2; (($r1 - $r0) - ($r2 - $r1)) / $N" | bc)
    printf '| %s | %s | %s | %s |\n' "$topology" "$workload" "$cmds" "$trips"
  done
  rm -f "$jar"
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  exec {TOPO[1]}>&-
  wait "$TOPO_PID" 2>/dev/null || true
done
