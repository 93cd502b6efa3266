#!/usr/bin/env bash
# CPU instructions per request of a test-bed server, counted by callgrind:
# unlike wall-clock time, the count does not move when the machine is busy.
#
# For each workload the server runs twice under `valgrind --tool=callgrind`
# (against a private redis-server on a free loopback port), once serving
# WARM requests and once WARM + N; the difference divided by N is the cost
# of one request, start-up and shut-down excluded. Requests are sequential,
# over one keep-alive connection (curl), each with the same session cookie.
#
#   scripts/instructions.sh                          # bench-server, N=2000
#   N=500 scripts/instructions.sh target/release/bench-server-actix
#   WORKLOADS="new write" scripts/instructions.sh
#
# Prints one line per workload: workload, instructions per request.
set -euo pipefail
cd "$(dirname "$0")/.."

server="${1:-${CARGO_TARGET_DIR:-target}/release/bench-server}"
n="${N:-2000}"
warm="${WARM:-200}"
workloads="${WORKLOADS:-baseline new read write}"
for tool in valgrind redis-server curl; do
    command -v "$tool" >/dev/null || { echo "instructions.sh: needs $tool" >&2; exit 2; }
done
[ -x "$server" ] || { echo "instructions.sh: no server at $server (cargo build --release -p bench-server)" >&2; exit 2; }

work="$(mktemp -d)"
redis_pid=""
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
    [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
start_private_redis "$work"

# Runs the server under callgrind, sends `count` requests to `path`, prints
# the total instruction count.
count_instructions() {
    local path="$1" count="$2" port out cookie=""
    port="$(free_port)"
    out="$work/callgrind.$path.$count"
    PORT="$port" REDIS_URL="redis://127.0.0.1:$redis_port/" \
        valgrind --tool=callgrind --callgrind-out-file="$out" "$server" \
        >"$work/server.log" 2>&1 &
    server_pid=$!
    wait_for_server "$port" 600
    if [ "$path" = read ] || [ "$path" = write ]; then
        cookie="$(curl -fs -D - -o /dev/null "http://127.0.0.1:$port/new" |
            sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p' | head -1)"
    fi
    for _ in $(seq "$count"); do
        printf 'url = "http://127.0.0.1:%s/%s"\noutput = "/dev/null"\n' "$port" "$path"
    done >"$work/urls"
    curl -fs ${cookie:+-H "Cookie: $cookie"} -K "$work/urls"
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=""
    sed -n 's/^summary: \([0-9]*\).*/\1/p' "$out"
}

for w in $workloads; do
    a="$(count_instructions "$w" "$warm")"
    b="$(count_instructions "$w" "$((warm + n))")"
    printf '%-10s %8d instructions/request\n' "$w" "$(((b - a) / n))"
done
