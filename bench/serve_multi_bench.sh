#!/usr/bin/env bash
# The multi-model serving benchmark of issue 13: `modelreg serve` as a real process on 127.0.0.1,
# with several models, the split and 1,000 models under --all.
#
#   bench/serve_multi_bench.sh [BUILD_DIR] [FLEET]        (defaults: build, 1000)
#
# Needs a built tree with the benchmarks (meson setup BUILD_DIR --buildtype=release -Dtests=false;
# ninja -C BUILD_DIR) and python3 (for the table). Everything it writes goes to
# BUILD_DIR/serve-multi-bench/ (databases, server logs, JSON of each step, results.json).
# Every server runs at the default poll interval (100 ms) with change notifications as built.
#
#   1. swap latency: 100 promotions alternating fraud@1 / fraud@2 (logistic regressions) through
#      Registry::promote after a random 0-100 ms pause; commit -> first /infer response from the
#      new version over HTTP (`serve_bench swaps`), then the same through the library with change
#      notifications on and off in alternating blocks of 10 (`serve_bench swaps-inproc`, 100 each),
#      and again with the promotions at synchronous=NORMAL (a diagnostic: no fsync at commit).
#   2. split: `serve fraud --split fraud=challenger:10`, 10,000 requests with distinct ids, every
#      10th id repeated (as the id and as X-Request-Key), 2,000 without a key (`serve_bench split`).
#   3. isolation: `serve steady forest`; steady latency with nothing loading vs while the 300-tree
#      forest swaps 20 times vs while the driver loads the forest itself and promotes a model the
#      server does not serve (the same CPU work and commits: the baseline), in 4 alternating rounds
#      (`serve_bench isolation`); then the same with --no-change-notifications. The promotions run
#      at nice 19 (`--promote-nice`: promote verifies the forest's stored bytes, the promoting
#      job's CPU, which would otherwise compete with the client threads); every sample and driver
#      event goes to isolation-trace.json.
#   4. FLEET models: registered through the library (`serve_bench fleet`); a server on one of them
#      (baseline), then `serve --all`: start-up to all READY, RSS, /metrics and /status times, 200
#      promotions of random models under load from 3 client threads (`serve_bench fleet-swaps`);
#      then, as a diagnostic, the cost of one poll over all FLEET models (`serve_bench poll-cost`).
# Server and clients share the machine's cores (nproc is printed with the table).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
fleet=${2:-1000}
forest_rows=${FOREST_ROWS:-50000}  # the forests' training rows (a smaller value only for a quick try)
bin="$build/registry-cli/modelreg"
drv="$build/bench/serve_bench"
out="$build/serve-multi-bench"

for f in "$bin" "$drv"; do
  [[ -x $f ]] || { echo "missing $f: build first (meson setup $build --buildtype=release -Dtests=false && ninja -C $build)" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out"

server_pid=""
cleanup() {
  [[ -n $server_pid ]] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
}
trap cleanup EXIT

# start_server NAME ARGS...: sets server_pid and port; logs in $out/NAME.{out,log}.
start_server() {
  local name=$1
  shift
  "$bin" "$@" --port 0 >"$out/$name.out" 2>"$out/$name.log" &
  server_pid=$!
  for _ in $(seq 600); do
    grep -q "listening on" "$out/$name.out" 2>/dev/null && break
    sleep 0.05
  done
  port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out/$name.out" | head -1)
  [[ -n $port ]] || { echo "the server did not start:" >&2; cat "$out/$name.log" >&2; exit 1; }
  echo "   server pid $server_pid on port $port: $(head -1 "$out/$name.out")"
}
stop_server() {
  kill -TERM "$server_pid"
  local rc=0
  wait "$server_pid" || rc=$?
  server_pid=""
  [[ $rc -eq 0 ]] || { echo "the server exited with $rc" >&2; exit 1; }
}
wait_ready() {  # until /v2/health/ready answers 200
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null && return 0
    sleep 0.05
  done
  echo "the server did not get ready" >&2
  exit 1
}

echo "== data and models ($(date -u +%H:%M:%S) UTC, commit $(git rev-parse --short HEAD))"
git status --short lib registry-cli >"$out/uncommitted.txt" || true
"$drv" data --out "$out" --rows 10000
"$drv" data --out "$out/big" --rows "$forest_rows"
for db in lr iso; do
  name=fraud
  [[ $db == iso ]] && name=steady
  "$bin" --db "$out/$db.db" train "$name" --csv "$out/train.csv" --target is_fraud --type logistic_regression \
    --param C=1.0 --seed 1 >/dev/null
  "$bin" --db "$out/$db.db" train "$name" --csv "$out/train.csv" --target is_fraud --type logistic_regression \
    --param C=0.1 --seed 2 >/dev/null
  "$bin" --db "$out/$db.db" promote "$name@1" >/dev/null
done
"$bin" --db "$out/lr.db" alias set fraud@2 challenger >/dev/null
for seed in 1 2; do
  "$bin" --db "$out/iso.db" train forest --csv "$out/big/train.csv" --target is_fraud --type random_forest \
    --param n_estimators=300 --seed "$seed" >/dev/null
  # A model the isolation server does not serve: its promotions give the baseline phase the same
  # commits (fsync, change notifications, the server's polls) as the phase where the server loads.
  "$bin" --db "$out/iso.db" train bystander --csv "$out/train.csv" --target is_fraud --type logistic_regression \
    --seed "$seed" >/dev/null
done
"$bin" --db "$out/iso.db" promote forest@1 >/dev/null
"$bin" --db "$out/iso.db" list forest
"$drv" fleet --db "$out/fleet.db" --models "$fleet"

echo "== 1. swap latency (fraud, default poll 100 ms)"
start_server swaps --db "$out/lr.db" serve fraud
wait_ready
"$drv" swaps --db "$out/lr.db" --model fraud --port "$port" --swaps 100 --poll-ms 100 \
  --body "$out/infer1.json" --json "$out/swaps.json"
stop_server
"$drv" swaps-inproc --db "$out/lr.db" --model fraud --swaps 100 --block 10 --poll-ms 100 --json "$out/swaps-inproc.json"
# Diagnostic: the same with promotions at synchronous=NORMAL (no fsync between the -wal write that
# wakes the server and the wal-index update that makes the commit visible).
"$drv" swaps-inproc --db "$out/lr.db" --model fraud --swaps 100 --block 10 --poll-ms 100 --promote-sync normal \
  --json "$out/swaps-inproc-normal.json"

echo "== 2. split fraud=challenger:10"
"$bin" --db "$out/lr.db" promote fraud@1 >/dev/null 2>&1 || true  # active back on 1 (challenger: 2)
start_server split --db "$out/lr.db" serve fraud --split fraud=challenger:10
wait_ready
"$drv" split --port "$port" --model fraud --requests 10000 --repeat 2 --challenger-version 2 \
  --body "$out/infer1.json" --json "$out/split.json"
stop_server

echo "== 3. isolation: steady while a 300-tree forest swaps 20 times"
start_server iso --db "$out/iso.db" serve steady forest
wait_ready
"$drv" isolation --db "$out/iso.db" --port "$port" --steady steady --forest forest --swaps 20 --rounds 4 \
  --quiet-s 5 --clients 2 --gap-us 1000 --body "$out/infer1.json" --bystander bystander --promote-nice 19 \
  --json "$out/isolation.json" --trace "$out/isolation-trace.json"
stop_server
# The same with polling only (no change notifications): what the notified polls cost the steady model.
start_server iso-polling --db "$out/iso.db" serve steady forest --no-change-notifications
wait_ready
"$drv" isolation --db "$out/iso.db" --port "$port" --steady steady --forest forest --swaps 20 --rounds 4 \
  --quiet-s 5 --clients 2 --gap-us 1000 --body "$out/infer1.json" --bystander bystander --promote-nice 19 \
  --json "$out/isolation-polling.json"
stop_server

echo "== 4. $fleet models"
t0=$(date +%s%N)
start_server one --db "$out/fleet.db" serve m0000
"$drv" fleet-ready --port "$port" --pid "$server_pid" --expect 1 --t0-ns "$t0" --json "$out/fleet-one.json"
"$drv" http-time --port "$port" --path /metrics --runs 50 --json "$out/metrics-one.json"
"$drv" http-time --port "$port" --path /status --runs 50 --json "$out/status-one.json"
stop_server
t0=$(date +%s%N)
start_server all --db "$out/fleet.db" serve --all
"$drv" fleet-ready --port "$port" --pid "$server_pid" --expect "$fleet" --t0-ns "$t0" --json "$out/fleet-all.json"
"$drv" http-time --port "$port" --path /metrics --runs 50 --json "$out/metrics-all.json"
"$drv" http-time --port "$port" --path /status --runs 50 --json "$out/status-all.json"
"$drv" fleet-swaps --db "$out/fleet.db" --port "$port" --models "$fleet" --swaps 200 --clients 3 --gap-us 500 \
  --bound-ms 1000 --body "$out/infer1.json" --json "$out/fleet-swaps.json"
awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status" >"$out/rss-after-swaps-kb.txt"
stop_server
# Diagnostic: what one poll costs at this many models (in this process, no server running).
"$drv" poll-cost --db "$out/fleet.db" --models "$fleet" --runs 30 --json "$out/poll-cost.json"

echo
/usr/bin/python3 - "$out" "$fleet" <<'PY'
import json, os, sys
out, fleet = sys.argv[1], int(sys.argv[2])
J = lambda name: json.load(open(os.path.join(out, name)))
sw, ip, sp, iso = J("swaps.json"), J("swaps-inproc.json"), J("split.json"), J("isolation.json")
isp = J("isolation-polling.json")
one, allm, fs = J("fleet-one.json"), J("fleet-all.json"), J("fleet-swaps.json")
m1, ma, s1, sa = J("metrics-one.json"), J("metrics-all.json"), J("status-one.json"), J("status-all.json")
pc, ipn = J("poll-cost.json"), J("swaps-inproc-normal.json")
rss_after_swaps = int(open(os.path.join(out, "rss-after-swaps-kb.txt")).read()) / 1024
ok = lambda b: "met" if b else "NOT met"
on, off = ip["notify_on"], ip["notify_off"]
L, ld, ex = sw["latency_ms"], sw["load_ms"], sw["excess_over_load_ms"]
lat = lambda d: f"p50 {d['p50']:.1f}, p99 {d['p99']:.1f}, max {d['max']:.1f} ms"
per_model_kb = (allm["rss_settled_mb"] - one["rss_settled_mb"]) * 1024 / (fleet - 1)
share = sp["challenger_share"]
rows = [
    ("1. swap latency over HTTP, commit -> first response of the new version (100 swaps, poll 100 ms, "
     f"notifications {'on' if sw['change_notifications'] else 'OFF'}, {sw['change_wakeups']} wakeups)",
     lat(L), f"p99 <= load + 10 ms: latency - load p99 {ex['p99']:.2f} ms (max {ex['max']:.2f}); "
     f"{sw['swaps_over_load_plus_10']} of {sw['swaps']} swaps over", ok(ex["p99"] <= 10)),
    ("   its load time (/status last_load_seconds)", f"p50 {ld['p50']:.2f}, p99 {ld['p99']:.2f}, max {ld['max']:.2f} ms", "", ""),
    ("   through the library, notifications on (100 swaps, blocks of 10 alternating with off)",
     lat(on["latency_ms"]), f"latency - load p99 {on['excess_over_load_ms']['p99']:.2f} ms; "
     f"{on['swaps_over_load_plus_10']} over; load p50 {on['load_ms']['p50']:.2f} ms", ok(on["excess_over_load_ms"]["p99"] <= 10)),
    ("   through the library, notifications off (polling only; baseline)",
     lat(off["latency_ms"]), f"on / off: p50 {on['latency_ms']['p50'] / off['latency_ms']['p50']:.3f}x, "
     f"p99 {on['latency_ms']['p99'] / off['latency_ms']['p99']:.3f}x", ""),
    ("   diagnostic: through the library, notifications on, promotions at synchronous=NORMAL (no fsync)",
     lat(ipn["notify_on"]["latency_ms"]), f"latency - load p99 {ipn['notify_on']['excess_over_load_ms']['p99']:.2f} ms; "
     f"{ipn['notify_on']['swaps_over_load_plus_10']} over (off: {lat(ipn['notify_off']['latency_ms'])})", ""),
    ("2. split fraud=challenger:10, 10,000 distinct ids",
     f"challenger {100 * share:.2f}% ({sp['by_version']})", "10% +- 1.5%", ok(abs(share - 0.10) <= 0.015)),
    ("   stickiness: every 10th id sent twice more (id; X-Request-Key)",
     f"{sp['ids_moved']} of {sp['ids_repeated']} moved; {sp['header_keys_moved']} of {sp['header_keys_repeated']} moved",
     "0 moved", ok(sp["ids_moved"] == 0 and sp["header_keys_moved"] == 0)),
    ("   without a key (random)", f"challenger {100 * sp['keyless_challenger_share']:.2f}% of {sp['keyless_requests']}; "
     f"failures {sp['failures']}", "", ""),
    ("3. isolation: steady p99, nothing loading vs 300-tree forest swapping 20 times",
     f"{iso['quiet']['p99']:.2f} vs {iso['loading']['p99']:.2f} ms ({iso['quiet_n']} / {iso['loading_n']} requests)",
     f"<= 1.5x: {iso['p99_ratio']:.2f}x", ok(iso["p99_ratio"] <= 1.5)),
    ("   per round (p99 loading / quiet)", ", ".join(f"{r['p99_ratio']:.2f}x" for r in iso["per_round"]), "", ""),
    ("   the same with --no-change-notifications (polling only)",
     f"{isp['quiet']['p99']:.2f} vs {isp['loading']['p99']:.2f} ms: {isp['p99_ratio']:.2f}x; forest swap p50 "
     f"{isp['forest_swap_ms']['p50']:.1f} ms", f"<= 1.5x", ok(isp["p99_ratio"] <= 1.5)),
    ("   baseline: the same 20 forest loads and as many commits (a bystander model) outside the server",
     f"steady p99 {iso['outside']['p99']:.2f} ms ({iso['outside_n']} requests): {iso['outside_p99_ratio']:.2f}x quiet; "
     f"server loading / outside {iso['loading_vs_outside_p99_ratio']:.2f}x; per round "
     + ", ".join(f"{r['outside_p99_ratio']:.2f}x" for r in iso["per_round"]), "", ""),
    ("   requests started inside a load window (promote .. swap seen)",
     f"p99 {iso['in_load_window']['p99']:.2f} ms ({iso['in_load_window_n']} requests): {iso['in_load_window_p99_ratio']:.2f}x quiet",
     "", ""),
    ("   forest swaps", f"latency {lat(iso['forest_swap_ms'])}; load p50 {iso['forest_load_ms']['p50']:.1f} ms, "
     f"max {iso['forest_load_ms']['max']:.1f} ms (outside: p50 {iso['outside_load_ms']['p50']:.1f} ms); "
     f"client failures {iso['client_failures']}", "", ""),
    (f"4. {fleet} models under --all: start-up to all READY", f"{allm['startup_s']:.2f} s (1 model: {one['startup_s']:.2f} s)", "reported", ""),
    ("   RSS per model ((RSS all - RSS one) / (N - 1), 2 s after ready)",
     f"{per_model_kb:.1f} KiB ({allm['rss_settled_mb']:.1f} vs {one['rss_settled_mb']:.1f} MiB)", "reported", ""),
    ("   GET /metrics (median of 50)", f"{ma['ms']['p50']:.2f} ms, p99 {ma['ms']['p99']:.2f} ms, {ma['bytes']:,} B "
     f"(1 model: {m1['ms']['p50']:.2f} ms, {m1['bytes']:,} B)", "reported", ""),
    ("   GET /status (median of 50)", f"{sa['ms']['p50']:.2f} ms, {sa['bytes']:,} B (1 model: {s1['ms']['p50']:.2f} ms)", "reported", ""),
    (f"   200 promotions of random models under load ({fs['models_promoted']} models)", lat(fs["latency_ms"]),
     f"every swap observed within {fs['bound_ms']:.0f} ms: {fs['swaps_over_bound']} over; server swap counts off: "
     f"{fs['server_swap_count_mismatches']}", ok(fs["swaps_over_bound"] == 0 and fs["server_swap_count_mismatches"] == 0)),
    ("   client requests during the promotions (3 threads, random models)",
     f"{fs['client_requests']:,} requests, {fs['client_failures']} failed; p50 {fs['client_ms']['p50']:.2f}, "
     f"p99 {fs['client_ms']['p99']:.2f} ms", "zero failed", ok(fs["client_failures"] == 0 and fs["probe_failures"] == 0)),
    ("   load time of the promoted models (last swap of each)",
     f"p50 {fs['load_ms_last_swap_of_each']['p50']:.2f}, max {fs['load_ms_last_swap_of_each']['max']:.2f} ms; "
     f"RSS after {rss_after_swaps:.1f} MiB", "", ""),
    ("   diagnostic: one poll of a repository over all the models (in the driver)",
     f"nothing changed {pc['poll_nothing_changed_ms']['p50']:.2f} ms; after a promotion {pc['poll_after_promotion_ms']['p50']:.1f} ms "
     f"(p50, load excluded {pc['poll_after_promotion_minus_load_ms']['p50']:.1f} ms); of which Registry::aliases() "
     f"{pc['registry_aliases_ms']['p50']:.1f} ms, list_models() {pc['registry_list_models_ms']['p50']:.2f} ms", "", ""),
]
print(f"== multi-model serving benchmark (nproc {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}; "
      f"server and clients on the same cores)")
print("| measure | result | target | |")
print("|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
json.dump({"swaps": sw, "swaps_inproc": ip, "split": sp, "isolation": iso, "fleet_one": one, "fleet_all": allm,
           "fleet_swaps": fs, "metrics_one": m1, "metrics_all": ma, "status_one": s1, "status_all": sa,
           "poll_cost": pc, "swaps_inproc_normal": ipn, "rss_after_swaps_mb": rss_after_swaps}, open(os.path.join(out, "results.json"), "w"), indent=2)
PY
