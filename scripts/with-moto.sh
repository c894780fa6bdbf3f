#!/usr/bin/env bash
# Runs a command with a private moto server on 127.0.0.1:$MOTO_PORT, stopped (by PID)
# however the command ends. Usage: scripts/with-moto.sh <command> [args...]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
port=${MOTO_PORT:-5001}
log_dir="$here/.local"
mkdir -p "$log_dir"

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "port $port is in use; choose another with MOTO_PORT=<port>" >&2
  exit 1
fi

"$here/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log_dir/moto-$port.log" 2>&1 &
moto_pid=$!
stop_moto() {
  kill "$moto_pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    kill -0 "$moto_pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$moto_pid" 2>/dev/null || true
}
trap stop_moto EXIT INT TERM

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "moto failed to start; see $log_dir/moto-$port.log" >&2
    exit 1
  fi
  sleep 0.1
done

export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_REGION=eu-central-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
"$@"
