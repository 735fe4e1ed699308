#!/usr/bin/env bash
# Stops the emulator started by start.sh (by its PID file); no error if it is not running.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pid_file="$here/run/moto.pid"

if [[ ! -f "$pid_file" ]]; then
    exit 0
fi
pid="$(cat "$pid_file")"

if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "emulator stopped (pid $pid)"
fi
rm -f "$pid_file"
