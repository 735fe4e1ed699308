#!/usr/bin/env bash
# make bench (second part): `provision up` under the emulator's scaled latency profile (AWS's
# durations at 1/60, 50 ms per call; localstack/README.md), against the critical path of the
# same profile computed from the spec's graph (examples/critical_path.rs). provision runs with
# PROVISION_TIME_SCALE=1/60, so that it polls as it would on AWS. Prints Markdown tables.
# A benchmark, not a test: it asserts nothing. Usage: bench/latency.sh [RUNS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs="${1:-3}"
# shellcheck source=bench/scaled.sh
. bench/scaled.sh

# What a call really takes here: the profile's 50 ms plus moto's own work and the client's
# (mean of 40 sequential DescribeVpcs from boto3).
call_ms=$(localstack/.venv/bin/python -c '
import boto3, time
ec2 = boto3.client("ec2", endpoint_url="'"$AWS_ENDPOINT_URL"'", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
ec2.describe_vpcs()
t = time.monotonic()
for _ in range(40):
    ec2.describe_vpcs()
print(round((time.monotonic() - t) / 40 * 1000, 1))')

# Reads an up's JSON events on stdin; prints "calls;DescribeCluster polls;lateness s" where the
# lateness is how long after the cluster became ACTIVE `up` saw it (from its creating/created
# events, minus the profile's creation time and CreateCluster's own call).
stats() {
  python3 -c '
import json, sys
ev = [json.loads(l) for l in sys.stdin if l.strip()]
s = ev[-1]
c = s["api_calls"]
polls = c["by_operation"].get("EKS", {}).get("DescribeCluster", 0)
t = {e["action"]: e["elapsed_ms"] for e in ev if e.get("event") == "resource" and e.get("id") == "eks-cluster"}
late = "-"
if "creating" in t and "created" in t:
    late = "%.2f" % ((t["created"] - t["creating"]) / 1000 - 9.0 - 2 * 0.05)
print("%d;%d;%s" % (c["total"], polls, late))'
}

echo "Per call: profile 50 ms, measured ${call_ms} ms."
echo
echo "| spec | concurrency | run | up s | critical path s | ratio | path at ${call_ms} ms/call | ratio | up calls | DescribeCluster | seen ACTIVE late s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for spec in demo full eks; do
  wait_kind=status
  [ "$spec" = eks ] && wait_kind=running
  path=$(target/debug/examples/critical_path "config/$spec.toml" "$wait_kind")
  cp_s=$(python3 -c 'import json,sys; print("%.2f" % json.loads(sys.argv[1])["seconds"])' "$path")
  cp_m=$(PROVISION_EMULATOR_CALL_MS="$call_ms" target/debug/examples/critical_path "config/$spec.toml" "$wait_kind" |
    python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["seconds"])')
  for conc in 8 1; do
    for run in $(seq 1 "$runs"); do
      name="lat-$spec-c$conc-r$run"
      file="$work/$name.toml"
      sed -e "s/^name = .*/name = \"$name\"/" "config/$spec.toml" > "$file"
      t0=$(now)
      "$bin" --output json up -f "$file" --no-kubeconfig --concurrency "$conc" > "$work/up.json" 2>/dev/null
      t1=$(now)
      IFS=';' read -r calls polls late < <(stats < "$work/up.json")
      wall=$(python3 -c "print('%.2f' % ($t1 - $t0))")
      ratio=$(python3 -c "print('%.2f' % (($t1 - $t0) / $cp_s))")
      ratio_m=$(python3 -c "print('%.2f' % (($t1 - $t0) / $cp_m))")
      echo "| $spec | $conc | $run | $wall | $cp_s | $ratio | $cp_m | $ratio_m | $calls | $polls | $late |"
      "$bin" --output json down -f "$file" > /dev/null 2>&1
    done
  done
done
echo
echo "Critical paths (node: seconds it adds):"
for spec in demo full eks; do
  wait_kind=status
  [ "$spec" = eks ] && wait_kind=running
  target/debug/examples/critical_path "config/$spec.toml" "$wait_kind" | python3 -c '
import json, sys
p = json.load(sys.stdin)
print("- " + sys.argv[1] + ": %.2f s = %d fixed calls (lock with identity alongside, discovery, release) + %.2f s of graph: " % (p["seconds"], p["fixed_calls"], p["graph_seconds"]) + " -> ".join("%s %.2f" % (c["node"], c["seconds"]) for c in p["chain"]))' "$spec"
done
