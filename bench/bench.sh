#!/usr/bin/env bash
# make bench: wall time and API calls of `provision up` / `down` on the local emulator, for a
# range of worker counts and for --concurrency 8 vs 1. Prints a Markdown table on stdout.
# A benchmark, not a test: it asserts nothing. Usage: bench/bench.sh [RUNS] [WORKERS...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs="${1:-3}"
shift || true
workers=("$@")
if [ "${#workers[@]}" -eq 0 ]; then
  workers=(2 100 500)
fi

trap 'localstack/stop.sh >/dev/null' EXIT
localstack/start.sh >/dev/null
# shellcheck source=/dev/null
. localstack/env.sh
cargo build -q
bin=target/debug/provision
work=$(mktemp -d)

# Reads a JSON summary on stdin and prints "total calls;calls by operation".
calls() {
  python3 -c '
import json, sys
s = [json.loads(l) for l in sys.stdin if l.strip()][-1]
c = s["api_calls"]
ops = ", ".join(f"{op} {n}" for svc in sorted(c["by_operation"]) for op, n in sorted(c["by_operation"][svc].items()))
print(str(c["total"]) + ";" + ops)'
}

now() { date +%s.%N; }
ms() { python3 -c "print(round(($2 - $1) * 1000))"; }

echo "| workers | concurrency | run | up ms | up calls | re-up ms | re-up calls | down ms | down calls |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
details=""
# moto keeps terminated instances and scans them on every DescribeInstances, so every run starts
# on a reset emulator, warmed by an untimed `plan` of its spec (moto loads its image and
# instance-type catalogues on first use after a reset: about 1.5 s).
reset() {
  curl -s -X POST "$AWS_ENDPOINT_URL/moto-api/reset" >/dev/null
  "$bin" --output json plan -f "$1" >/dev/null 2>&1 || true
}
declare -A upms
for w in "${workers[@]}"; do
  for conc in 8 1; do
    if [ "$conc" = 1 ] && [ "$w" != "${workers[0]}" ]; then
      continue
    fi
    for run in $(seq 1 "$runs"); do
      name="bench-w${w}-c${conc}-r${run}"
      spec="$work/$name.toml"
      sed -e "s/^name = .*/name = \"$name\"/" -e "s/^workers = .*/workers = $w/" config/demo.toml > "$spec"
      reset "$spec"
      t0=$(now)
      "$bin" --output json up -f "$spec" --no-kubeconfig --concurrency "$conc" > "$work/up.json" 2>/dev/null
      t1=$(now)
      "$bin" --output json up -f "$spec" --no-kubeconfig > "$work/reup.json" 2>/dev/null
      t2=$(now)
      "$bin" --output json down -f "$spec" > "$work/down.json" 2>/dev/null
      t3=$(now)
      up=$(calls < "$work/up.json")
      reup=$(calls < "$work/reup.json")
      down=$(calls < "$work/down.json")
      echo "| $w | $conc | $run | $(ms "$t0" "$t1") | ${up%%;*} | $(ms "$t1" "$t2") | ${reup%%;*} | $(ms "$t2" "$t3") | ${down%%;*} |"
      if [ "$conc" = 8 ]; then
        upms[$w]="${upms[$w]:-} $(ms "$t0" "$t1")"
      fi
      if [ "$run" = 1 ] && [ "$conc" = 8 ]; then
        details+=$'\n'"- $w workers, up: ${up#*;}"$'\n'"- $w workers, re-up: ${reup#*;}"$'\n'"- $w workers, down: ${down#*;}"
      fi
    done
  done
done

first="${workers[0]}"
last="${workers[${#workers[@]}-1]}"
if [ "$first" != "$last" ]; then
  echo
  python3 -c '
import statistics, sys
a = [float(x) for x in sys.argv[3].split()]
b = [float(x) for x in sys.argv[4].split()]
print("up wall time, %s workers / %s workers (medians): %.0f ms / %.0f ms = %.1f" % (sys.argv[2], sys.argv[1], statistics.median(b), statistics.median(a), statistics.median(b) / statistics.median(a)))
' "$first" "$last" "${upms[$first]}" "${upms[$last]}"
fi

# EKS (config/eks.toml), with and without private subnets behind a NAT gateway. The emulator's
# EKS is ACTIVE at once, so these are the engine's own costs, not EKS's 10 minutes.
echo
echo "| EKS | run | up ms | up calls | re-up ms | re-up calls | down ms | down calls |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for variant in public private; do
  for run in $(seq 1 "$runs"); do
    name="bench-eks-${variant}-r${run}"
    spec="$work/$name.toml"
    sed -e "s/^name = .*/name = \"$name\"/" config/eks.toml > "$spec"
    if [ "$variant" = private ]; then
      sed -i -e 's/^# private_subnets = true.*/private_subnets = true/' "$spec"
    fi
    reset "$spec"
    t0=$(now)
    "$bin" --output json up -f "$spec" --no-kubeconfig > "$work/up.json" 2>/dev/null
    t1=$(now)
    "$bin" --output json up -f "$spec" --no-kubeconfig > "$work/reup.json" 2>/dev/null
    t2=$(now)
    "$bin" --output json down -f "$spec" > "$work/down.json" 2>/dev/null
    t3=$(now)
    up=$(calls < "$work/up.json")
    reup=$(calls < "$work/reup.json")
    down=$(calls < "$work/down.json")
    echo "| $variant subnets | $run | $(ms "$t0" "$t1") | ${up%%;*} | $(ms "$t1" "$t2") | ${reup%%;*} | $(ms "$t2" "$t3") | ${down%%;*} |"
    if [ "$run" = 1 ]; then
      details+=$'\n'"- EKS $variant, up: ${up#*;}"$'\n'"- EKS $variant, re-up: ${reup#*;}"$'\n'"- EKS $variant, down: ${down#*;}"
    fi
  done
done
echo
echo "Calls by operation (first run of each size):"
echo "$details"
rm -rf "$work"
