#!/usr/bin/env bash
# Interleaved, isolated A/B runs of test-bed servers: for each repeat and
# each server in turn, a fresh private redis-server on a free loopback port,
# the server alone against it, sessions pre-created through its own `/new`,
# then wrk (2 threads, 64 connections, as run.sh). Nothing else shares that
# Redis: no other server's keys, no other client's invalidations.
#
# Adjacent runs see the same machine, so the per-repeat ratio of a server to
# the first one named cancels most of this shared VM's drift (runs minutes
# apart differ by 10-40 %); the report gives the median of those ratios
# next to each server's median req/s, server and Redis CPU per request
# (from /proc), and Redis commands per request (INFO stats).
#
#   scripts/isolated.sh [-w "new write read"] [-r 5] [-d 4] NAME=COMMAND...
#   scripts/isolated.sh ours-actix=target/release/bench-server-actix \
#       actix-session=target/peers/release/actix-session-peer \
#       floor-per-worker="env FLOOR_CONNECTION=per-worker target/release/bench-floor"
#
# Needs wrk, curl, redis-server, redis-cli, python3. Prints a markdown table.
set -euo pipefail

workloads="new write read"
repeats=5
duration=4
sessions=1000
while getopts "w:r:d:" opt; do
    case "$opt" in
        w) workloads="$OPTARG" ;;
        r) repeats="$OPTARG" ;;
        d) duration="$OPTARG" ;;
        *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "isolated.sh: give NAME=COMMAND for each server" >&2; exit 2; }
for tool in wrk curl redis-server redis-cli python3; do
    command -v "$tool" >/dev/null || { echo "isolated.sh: needs $tool" >&2; exit 2; }
done

work="$(mktemp -d)"
redis_pid=""
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill -- "-$server_pid" 2>/dev/null || true
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

# User + system CPU ticks of a process and its threads.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Ticks of the whole process group (a server started through `env` or a
# shell keeps its pid: both exec).
group_ticks() {
    local total=0 pid
    for pid in $(pgrep -g "$1"); do
        total=$((total + $(ticks "$pid" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

cat >"$work/wrk.lua" <<'LUA'
local cookies = {}
local f = io.open(os.getenv("COOKIES"))
if f then for l in f:lines() do cookies[#cookies + 1] = l end f:close() end
local i = 0
request = function()
    i = i + 1
    if #cookies == 0 then return wrk.format("GET", nil) end
    return wrk.format("GET", nil, { Cookie = cookies[(i % #cookies) + 1] })
end
LUA

# One measurement: prints "req/s server_us redis_us cmds_per_req".
measure() {
    local command="$1" workload="$2" rport sport
    start_private_redis "$work"
    rport="$redis_port"
    sport="$(free_port)"
    PORT="$sport" REDIS_URL="redis://127.0.0.1:$rport/" setsid bash -c "exec $command" \
        >"$work/server.log" 2>&1 &
    server_pid=$!
    wait_for_server "$sport" 200
    : >"$work/cookies"
    if [ "$workload" != new ] && [ "$workload" != baseline ]; then
        for _ in $(seq "$sessions"); do
            curl -s -D - -o /dev/null "http://127.0.0.1:$sport/new" |
                sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p'
        done >"$work/cookies"
    fi
    redis-cli -p "$rport" config resetstat >/dev/null
    local s0 r0 s1 r1 out
    s0="$(group_ticks "$server_pid")"
    r0="$(ticks "$redis_pid")"
    out="$(COOKIES="$work/cookies" wrk -t2 -c64 -d"${duration}s" -s "$work/wrk.lua" \
        "http://127.0.0.1:$sport/$workload")"
    s1="$(group_ticks "$server_pid")"
    r1="$(ticks "$redis_pid")"
    local n cmds
    n="$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$out")"
    cmds="$(redis-cli -p "$rport" info stats | sed -n 's/^total_commands_processed:\([0-9]*\).*/\1/p')"
    kill -- "-$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=""
    python3 -c "
n, hz = $n, $(getconf CLK_TCK)
print(f'{n / $duration:.0f} {($s1 - $s0) / hz * 1e6 / n:.1f} {($r1 - $r0) / hz * 1e6 / n:.1f} {$cmds / n:.2f}')"
}

names=()
commands=()
for arg in "$@"; do
    names+=("${arg%%=*}")
    commands+=("${arg#*=}")
done

echo "Isolated interleaved runs, $(date -u +%FT%TZ), $(nproc) CPUs, $(redis-server --version | sed 's/ sha=.*//'); wrk -t2 -c64 -d${duration}s, $sessions sessions for read/write; $repeats repeats."
echo
for workload in $workloads; do
    : >"$work/results"
    for rep in $(seq "$repeats"); do
        for i in "${!names[@]}"; do
            # Not in a subshell: the exit trap must see the pids it starts.
            measure "${commands[$i]}" "$workload" >"$work/one"
            echo "${names[$i]} $rep $(cat "$work/one")" >>"$work/results"
        done
    done
    python3 - "$workload" "$work/results" "${names[@]}" <<'PY'
import sys, statistics as st
workload, path, names = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = {}
for line in open(path):
    name, rep, rps, srv, red, cmds = line.split()
    runs.setdefault(name, {})[int(rep)] = (float(rps), float(srv), float(red), float(cmds))
first = runs[names[0]]
print(f"| {workload} | median req/s | req/s per repeat | ratio to {names[0]} (median of repeats) | per repeat | server CPU µs/req | Redis CPU µs/req | Redis cmds/req |")
print("|---|---|---|---|---|---|---|---|")
for name in names:
    r = runs[name]
    reps = sorted(r)
    ratios = [r[k][0] / first[k][0] for k in reps if first[k][0] > 0]
    col = lambda j: st.median(r[k][j] for k in reps)
    print(f"| {name} | {col(0):,.0f} | {' '.join(f'{r[k][0]:.0f}' for k in reps)} | {st.median(ratios):.2f} | {' '.join(f'{x:.2f}' for x in ratios)} | {col(1):.1f} | {col(2):.1f} | {col(3):.2f} |")
print()
PY
done
