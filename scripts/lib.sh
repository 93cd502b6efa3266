# Helpers shared by the measuring scripts (sourced, not run).

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Starts a private redis-server (no persistence) on a free loopback port,
# its files in DIR; sets redis_port and redis_pid, and waits until it answers.
start_private_redis() {
    local dir="$1"
    redis_port="$(free_port)"
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$dir" >"$dir/redis.log" 2>&1 &
    redis_pid=$!
    for _ in $(seq 100); do
        redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "redis-server did not answer; see $dir/redis.log" >&2
    return 1
}

# Waits until http://127.0.0.1:PORT/baseline answers (at most TRIES × 0.1 s).
wait_for_server() {
    local port="$1" tries="$2"
    for _ in $(seq "$tries"); do
        curl -fs "http://127.0.0.1:$port/baseline" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "no server answered on port $port" >&2
    return 1
}
