#!/usr/bin/env bash
# make bench (third part): an EKS upgrade from 1.33 to 1.35 (config/eks.toml, made at 1.33 first)
# under the emulator's scaled latency profile, against its yardstick: per minor the control
# plane's update, the add-ons', the slowest node group's, each with its call and the
# DescribeUpdate that sees it done (examples/critical_path.rs --upgrade). provision polls as on
# AWS (PROVISION_TIME_SCALE=1/60). Prints a Markdown table. A benchmark: it asserts nothing.
# Usage: bench/upgrade.sh [RUNS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs="${1:-3}"
# shellcheck source=bench/scaled.sh
. bench/scaled.sh

echo "| run | upgrade s | yardstick s | ratio | calls | UpdateClusterVersion | UpdateAddon | UpdateNodegroupVersion | DescribeUpdate | DescribeAddonVersions | ListInsights |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for run in $(seq 1 "$runs"); do
  file="$work/upgrade-$run.toml"
  sed -e "s/^name = .*/name = \"lat-upgrade-r$run\"/" -e 's/^version = .*/version = "1.33"/' config/eks.toml > "$file"
  "$bin" --output json up -f "$file" --no-kubeconfig > /dev/null 2>&1
  sed -i -e 's/^version = .*/version = "1.35"/' "$file"
  path=$(target/debug/examples/critical_path --upgrade 1.33 "$file" | python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["seconds"])')
  t0=$(now)
  "$bin" --output json up -f "$file" --no-kubeconfig > "$work/up.json" 2>/dev/null
  t1=$(now)
  python3 - "$t0" "$t1" "$path" "$run" "$work/up.json" <<'PY'
import json, sys
t0, t1, path, run = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
ev = [json.loads(l) for l in open(sys.argv[5]) if l.strip()]
s = ev[-1]
c = s["api_calls"]
eks = c["by_operation"].get("EKS", {})
n = lambda op: eks.get(op, 0)
print("| %s | %.2f | %.2f | %.2f | %d | %d | %d | %d | %d | %d | %d |" % (
    run, t1 - t0, path, (t1 - t0) / path, c["total"], n("UpdateClusterVersion"), n("UpdateAddon"),
    n("UpdateNodegroupVersion"), n("DescribeUpdate"), n("DescribeAddonVersions"), n("ListInsights")))
PY
  "$bin" --output json down -f "$file" > /dev/null 2>&1
done
