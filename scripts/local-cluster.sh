#!/usr/bin/env bash
# Starts a Headwise cluster on this machine: redis-server plus N silo processes on loopback, each with its own
# ports, and stops them all (silos first, Redis last) on Ctrl-C.
#
#   scripts/local-cluster.sh [--localhost] [--no-build] [N]      (N defaults to 3)
#
# Ports of silo k (k = 0 .. N-1):
#   Orleans silo 11111+k   Orleans gateway 30000+k   gRPC 5070+100k   web (/healthz) 5080+100k
# so silo 0 has the embedded default's ports and `headwise forward ...` finds it without --server.
#
# Cluster mode (default): Redis membership and Redis grain storage, Redis on 127.0.0.1:$REDIS_PORT (default
# 6390) in a temporary directory with persistence off; nothing is written into the repository.
# --localhost: no Redis; Orleans localhost clustering (the others join silo 0) and in-memory storage.
# --no-build: run what `dotnet build src/Silo -c Release` built last time.
# Only silo 0 loads the demo model `demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

mode=redis
build=1
count=3
while [ $# -gt 0 ]; do
  case "$1" in
    --localhost) mode=localhost ;;
    --no-build) build=0 ;;
    -h|--help) usage ;;
    -*) echo "unknown option: $1" >&2; usage ;;
    *)
      [[ "$1" =~ ^[1-9][0-9]*$ ]] || { echo "N must be a positive number, not '$1'" >&2; exit 2; }
      count=$1 ;;
  esac
  shift
done
if [ "$count" -gt 9 ]; then
  echo "at most 9 silos: silo k's gRPC port 5070+100k would reach the next silo's range" >&2
  exit 2
fi

redis_port=${REDIS_PORT:-6390}
configuration=Release
silo_dll=src/Silo/bin/$configuration/net10.0/Headwise.Silo.dll

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

healthy() { # healthy PORT: /healthz answers 200
  if command -v curl >/dev/null; then
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$1/healthz" 2>/dev/null
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 &&
      timeout 2 head -n 1 <&3 | grep -q ' 200 ') 2>/dev/null
  fi
}

silo_port() { echo $((11111 + $1)); }
gateway_port() { echo $((30000 + $1)); }
grpc_port() { echo $((5070 + 100 * $1)); }
web_port() { echo $((5080 + 100 * $1)); }

# ---- check before starting anything ----
if [ "$mode" = redis ] && ! command -v redis-server >/dev/null; then
  echo "redis-server is not installed. Install it with:  sudo apt-get install redis-server" >&2
  echo "(or run without Redis: $0 --localhost $count)" >&2
  exit 1
fi
busy=()
for ((k = 0; k < count; k++)); do
  for p in "$(silo_port $k)" "$(gateway_port $k)" "$(grpc_port $k)" "$(web_port $k)"; do
    port_in_use "$p" && busy+=("$p")
  done
done
if [ "$mode" = redis ] && port_in_use "$redis_port"; then busy+=("$redis_port (Redis; set REDIS_PORT=...)"); fi
if [ ${#busy[@]} -gt 0 ]; then
  echo "these ports are already in use: ${busy[*]}" >&2
  exit 1
fi

if [ "$build" = 1 ]; then
  echo "building the silo (dotnet build src/Silo -c $configuration) ..."
  dotnet build src/Silo -c "$configuration" -nologo -v quiet | tail -n 3
fi
[ -f "$silo_dll" ] || { echo "$silo_dll is missing: build it with 'dotnet build src/Silo -c $configuration'" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/headwise-cluster.XXXXXX")
redis_pid=
silo_pids=()

# ---- stop: silos first (they leave the cluster through Redis), Redis last ----
stopping=0
stop_all() {
  [ "$stopping" = 1 ] && return
  stopping=1
  trap '' INT TERM
  echo
  if [ ${#silo_pids[@]} -gt 0 ]; then
    echo "stopping ${#silo_pids[@]} silo(s) ..."
    for pid in "${silo_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${silo_pids[@]}"; do
      for _ in $(seq 1 400); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then
        echo "silo process $pid did not stop in 40 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done
  fi
  if [ -n "$redis_pid" ]; then
    echo "stopping redis-server ..."
    kill -TERM "$redis_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$redis_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$redis_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  echo "stopped."
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

# Children run in their own sessions (setsid) so the terminal's Ctrl-C reaches only this script, which then
# stops them in order; otherwise Redis could die before the silos and leave them hanging in membership reads.

# ---- Redis ----
if [ "$mode" = redis ]; then
  setsid redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save '' --appendonly no \
    --logfile "$work/redis.log" &
  redis_pid=$!
  for _ in $(seq 1 100); do port_in_use "$redis_port" && break; sleep 0.1; done
  port_in_use "$redis_port" || { echo "redis-server did not start:" >&2; cat "$work/redis.log" >&2; exit 1; }
  echo "redis-server   127.0.0.1:$redis_port (pid $redis_pid, no persistence)"
fi

# ---- silos ----
start_silo() { # start_silo K
  local k=$1
  local -a env=(
    "Headwise__SiloPort=$(silo_port $k)"
    "Headwise__GatewayPort=$(gateway_port $k)"
    "Headwise__GrpcPort=$(grpc_port $k)"
    "Headwise__WebPort=$(web_port $k)"
    "Headwise__ListenAddress=127.0.0.1"
    "Headwise__AdvertisedAddress=127.0.0.1"
    "Headwise__DemoModel=$([ "$k" = 0 ] && echo true || echo false)"
  )
  if [ "$mode" = redis ]; then
    env+=("Headwise__Clustering=Redis" "Headwise__Storage=Redis" "Headwise__Redis=127.0.0.1:$redis_port"
      "Headwise__ClusterId=local" "Headwise__ServiceId=headwise")
  else
    env+=("Headwise__Clustering=Localhost" "Headwise__Storage=Memory")
    [ "$k" = 0 ] || env+=("Headwise__PrimarySiloPort=$(silo_port 0)")
  fi
  env "${env[@]}" setsid dotnet "$silo_dll" >"$work/silo-$k.log" 2>&1 &
  silo_pids+=($!)
}

wait_healthy() { # wait_healthy K: up to 120 s
  local k=$1 pid=${silo_pids[$1]}
  for _ in $(seq 1 600); do
    healthy "$(web_port $k)" && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "silo $k exited while starting; its log:" >&2
      tail -n 40 "$work/silo-$k.log" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "silo $k was not healthy after 120 s; its log:" >&2
  tail -n 40 "$work/silo-$k.log" >&2
  return 1
}

echo "starting $count silo(s) ($([ "$mode" = redis ] && echo "Redis clustering and storage" || echo "localhost clustering, in-memory storage")) ..."
# Silo 0 first: it creates the demo model (and, on localhost clustering, is the one the others join).
start_silo 0
wait_healthy 0
for ((k = 1; k < count; k++)); do start_silo "$k"; done
for ((k = 1; k < count; k++)); do wait_healthy "$k"; done

echo
printf '%-6s %-8s %-8s %-24s %-30s %s\n' silo pid orleans gateway gRPC web
for ((k = 0; k < count; k++)); do
  printf '%-6s %-8s %-8s %-24s %-30s %s\n' "$k" "${silo_pids[$k]}" "$(silo_port $k)" "127.0.0.1:$(gateway_port $k)" \
    "http://127.0.0.1:$(grpc_port $k)" "http://127.0.0.1:$(web_port $k)/healthz"
done
echo
echo "logs: $work/silo-K.log (deleted on exit)"
echo "try:  dotnet run --project src/Cli -- forward --model demo --tokens 128 --causal --server http://127.0.0.1:$(grpc_port $((count - 1)))"
echo "Ctrl-C stops the silos$([ "$mode" = redis ] && echo ", then Redis")."

# ---- wait, reporting any silo that stops on its own ----
declare -A reported=()
while true; do
  for ((k = 0; k < count; k++)); do
    if [ -z "${reported[$k]:-}" ] && ! kill -0 "${silo_pids[$k]}" 2>/dev/null; then
      reported[$k]=1
      echo "silo $k (pid ${silo_pids[$k]}) stopped on its own; last lines of its log:" >&2
      tail -n 20 "$work/silo-$k.log" >&2
    fi
  done
  if [ -n "$redis_pid" ] && [ -z "${reported[redis]:-}" ] && ! kill -0 "$redis_pid" 2>/dev/null; then
    reported[redis]=1
    echo "redis-server stopped on its own; the silos cannot keep their membership without it." >&2
  fi
  sleep 1 &
  wait $! || true
done
