#!/usr/bin/env bash
# Starts the moto emulator (emulator.py) in the background; no-op if it already runs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${PROVISION_EMULATOR_PORT:-5000}"
run_dir="$here/run"
pid_file="$run_dir/moto.pid"
log_file="$run_dir/moto.log"
endpoint="http://127.0.0.1:$port"

# A real STS call. Moto routes a request by the service in its Authorization credential scope;
# without that header this POST would be answered by S3 (ListBuckets), not STS.
ready() {
    curl -sf -X POST "$endpoint/" \
        -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0' \
        -d 'Action=GetCallerIdentity&Version=2011-06-15' 2>/dev/null | grep -q '<Account>'
}

"$here/install.sh"
mkdir -p "$run_dir"

if [[ -f "$pid_file" ]]; then
    pid="$(cat "$pid_file")"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && ready; then
        echo "emulator already running (pid $pid) at $endpoint"
        exit 0
    fi
    rm -f "$pid_file"
fi

setsid nohup "$here/.venv/bin/python" "$here/emulator.py" --host 127.0.0.1 --port "$port" \
    >"$log_file" 2>&1 </dev/null &
echo $! >"$pid_file"

# Up to two minutes: it starts in about 5 s, more on a loaded machine.
for _ in $(seq 1 240); do
    if ready; then
        echo "emulator running (pid $(cat "$pid_file")) at $endpoint"
        exit 0
    fi
    if ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
        break
    fi
    sleep 0.5
done

echo "start.sh: emulator did not become ready at $endpoint; log follows" >&2
cat "$log_file" >&2
"$here/stop.sh" >/dev/null 2>&1 || true
exit 1
