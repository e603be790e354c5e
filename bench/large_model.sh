#!/usr/bin/env bash
# Large models: Registry save/load of a ~2.4M-node random forest (500 trees fully grown on
# 100,000 x 20 rows) against the limit (`zstd -3 -T2` + the sqlite3 shell's readfile/writefile on
# the same archive bytes) and the peer (scikit-learn's RandomForestClassifier of the same shape,
# joblib.dump(compress=3) / joblib.load), in the same run; prints one table (docs/benchmarks.md,
# "Large models").
#
#   bench/large_model.sh [BUILD_DIR] [RUNS]      (defaults: build-bench2, 7)
#
# Needs BUILD_DIR built (meson setup BUILD_DIR --buildtype=release -Dtests=false; ninja -C BUILD_DIR),
# Debian's zstd, sqlite3, python3-sklearn and python3-joblib. Work files go to
# /tmp/modelreg-bench/large (MODELREG_BENCH_DIR overrides); both trained models are cached in its
# cache/ directory, so a rerun (e.g. after a change to the load path) does not retrain: delete
# cache/ to retrain. Every step runs in a process of its own (peak memory per step).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-bench2}
runs=${2:-7}
work=${MODELREG_BENCH_DIR:-/tmp/modelreg-bench}/large
exec /usr/bin/python3 bench/large_model.py drive --build "$build" --runs "$runs" --work "$work" \
  --json "$work/results.json"
