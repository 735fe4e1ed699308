# shellcheck shell=bash
# Sourced by bench/latency.sh and bench/upgrade.sh (from the checkout's root): builds provision
# and the examples, starts an emulator of its own with the scaled latency profile on a free port
# (stopped on exit, with the work directory $work), and points the SDK and provision at it, with
# provision polling at the same scale.
cargo build -q
cargo build -q --examples
# shellcheck disable=SC2034 # used by the scripts that source this one
bin=target/debug/provision
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

export PROVISION_EMULATOR_PROFILE=scaled
localstack/install.sh >/dev/null
localstack/.venv/bin/python localstack/emulator.py --host 127.0.0.1 --port "$port" >"$work/emulator.log" 2>&1 &
emulator=$!
trap 'kill $emulator 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 60); do
  if curl -s -o /dev/null "http://127.0.0.1:$port/moto-api/"; then break; fi
  sleep 0.5
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true PROVISION_TIME_SCALE=0.0166667

now() { date +%s.%N; }
