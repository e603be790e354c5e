#!/usr/bin/env bash
# The isolation target of issue 13, repeated: one run of `serve_bench isolation` moves from 1.2x to
# 3x between runs on a shared 2-core machine, so this runs it RUNS times with change notifications
# and RUNS times with polling only, alternating, and prints every ratio and the medians.
#
#   bench/isolation_bench.sh [BUILD_DIR] [RUNS]        (defaults: build, 5)
#
# Needs a release tree with the benchmarks (meson setup BUILD_DIR --buildtype=release -Dtests=false;
# ninja -C BUILD_DIR registry-cli/modelreg bench/serve_bench). Writes BUILD_DIR/isolation-bench/:
# the database, each run's JSON and trace (every sample and driver event, for
# bench/isolation_sched.py), and results.json. Each run: `modelreg serve steady forest` (steady: a
# logistic regression; forest: 300-tree random forests on 50,000 rows), 4 rounds of 5 s quiet, 5
# forest swaps, 5 loads of the forest in the driver after a promotion of a bystander model (the
# same CPU work and commits outside the server); promotions at nice 19 (see serve_bench.cpp).
# About 40 s a run.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
runs=${2:-5}
bin="$build/registry-cli/modelreg"
drv="$build/bench/serve_bench"
out="$build/isolation-bench"
for f in "$bin" "$drv"; do
  [[ -x $f ]] || { echo "missing $f: build first" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out"
server_pid=""
trap '[[ -n $server_pid ]] && kill -TERM "$server_pid" 2>/dev/null; true' EXIT

"$drv" data --out "$out" --rows 10000 >/dev/null
"$drv" data --out "$out/big" --rows 50000 >/dev/null
for seed in 1 2; do
  "$bin" --db "$out/iso.db" train steady --csv "$out/train.csv" --target is_fraud --type logistic_regression \
    --seed "$seed" >/dev/null
  "$bin" --db "$out/iso.db" train forest --csv "$out/big/train.csv" --target is_fraud --type random_forest \
    --param n_estimators=300 --seed "$seed" >/dev/null
  "$bin" --db "$out/iso.db" train bystander --csv "$out/train.csv" --target is_fraud --type logistic_regression \
    --seed "$seed" >/dev/null
done
"$bin" --db "$out/iso.db" promote steady@1 >/dev/null
"$bin" --db "$out/iso.db" promote forest@1 >/dev/null

run() {  # run LABEL [serve options...]
  local label=$1
  shift
  "$bin" --db "$out/iso.db" serve steady forest "$@" --port 0 >"$out/$label.out" 2>"$out/$label.log" &
  server_pid=$!
  local port=""
  for _ in $(seq 600); do
    port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out/$label.out" | head -1)
    [[ -n $port ]] && curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null && break
    sleep 0.05
  done
  "$drv" isolation --db "$out/iso.db" --port "$port" --steady steady --forest forest --swaps 20 --rounds 4 \
    --quiet-s 5 --clients 2 --gap-us 1000 --body "$out/infer1.json" --bystander bystander --promote-nice 19 \
    --json "$out/$label.json" --trace "$out/$label.trace.json" | sed "s/^/   $label: /"
  kill -TERM "$server_pid"
  wait "$server_pid"
  server_pid=""
}

echo "== isolation x $runs, notifications on / polling only ($(date -u +%H:%M:%S) UTC, commit $(git rev-parse --short HEAD), nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg))"
for i in $(seq "$runs"); do
  run "on-$i"
  run "polling-$i" --no-change-notifications
done

python3 - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
res = {}
for mode in ("on", "polling"):
    rows = [json.load(open(f"{out}/{mode}-{i}.json")) for i in range(1, runs + 1)]
    res[mode] = {
        "p99_ratio": [r["p99_ratio"] for r in rows],
        "outside_p99_ratio": [r["outside_p99_ratio"] for r in rows],
        "loading_vs_outside": [r["loading_vs_outside_p99_ratio"] for r in rows],
        "quiet_p99_ms": [r["quiet"]["p99"] for r in rows],
        "loading_p99_ms": [r["loading"]["p99"] for r in rows],
        "forest_swap_p50_ms": [r["forest_swap_ms"]["p50"] for r in rows],
        "client_failures": sum(r["client_failures"] for r in rows),
    }
json.dump(res, open(f"{out}/results.json", "w"), indent=1)
fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)
print(f"\n| mode | steady p99 loading / quiet, each run | median | runs <= 1.5x | same loads outside the server / quiet (median) | server / outside (median) | forest swap p50 (median) | failed requests |")
print("|---|---|---|---|---|---|---|---|")
for mode, r in res.items():
    print(f"| {mode} | {fmt(r['p99_ratio'])} | {statistics.median(r['p99_ratio']):.2f}x | "
          f"{sum(x <= 1.5 for x in r['p99_ratio'])} of {runs} | {statistics.median(r['outside_p99_ratio']):.2f}x | "
          f"{statistics.median(r['loading_vs_outside']):.2f}x | {statistics.median(r['forest_swap_p50_ms']):.1f} ms | {r['client_failures']} |")
PY
