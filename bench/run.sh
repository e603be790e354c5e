#!/usr/bin/env bash
# Runs the model benchmark and scikit-learn's on the same rows and prints the ratios, including
# Registry::save_model / load_model end to end against joblib.dump(compress=3) / joblib.load.
#
#   bench/run.sh [BUILD_DIR] [RUNS]      (defaults: build, 5)
#
# Needs a built tree (./run.sh build, or meson + ninja into BUILD_DIR). The scikit-learn half needs
# Debian's python3-sklearn and python3-joblib; without them only modelreg's numbers are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
runs=${2:-5}
out="$build/bench-data"
mkdir -p "$out"

echo "== modelreg (bench/models_bench.cpp)"
"$build/bench/models_bench" --out "$out" --runs "$runs" --json "$out/modelreg.json"
echo
echo "== scikit-learn (bench/sklearn_compare.py)"
if ! /usr/bin/python3 bench/sklearn_compare.py "$out/train.csv" "$out/test.csv" --runs "$runs" --json "$out/sklearn.json"; then
  echo "(no comparison: scikit-learn is not available)"
  exit 0
fi
echo
echo "== ratios (same rows, same machine, this run)"
/usr/bin/python3 - "$out/modelreg.json" "$out/sklearn.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
s = json.load(open(sys.argv[2]))
zstd_per_node = m["zstd_bytes"] / m["nodes"]
print(f"  forest training speed-up vs sklearn (1 thread):   {s['fit_s'] / m['train_s']:.1f}x all cores, "
      f"{s['fit_s'] / m['train_1thread_s']:.1f}x one thread   (target >= 3x)")
print(f"  F1 difference (modelreg - sklearn):                {m['f1'] - s['f1']:+.3f}   (target within 0.03)")
print(f"  stored bytes per node, zstd -3:                    {zstd_per_node:.2f} vs joblib {s['joblib_bytes'] / s['nodes']:.2f}   (target <= 8)")
print(f"  zstd -3 archive vs raw archive:                    {100 * (1 - m['zstd_bytes'] / m['raw_bytes']):.1f}% smaller   (target >= 60%)")
print(f"  in memory, serialize + compress vs joblib.dump:    {s['dump_s'] / (m['serialize_s'] + m['compress_s']):.1f}x faster   (no database)")
print(f"  in memory, decompress + deserialize vs joblib.load: {s['load_s'] / (m['decompress_s'] + m['deserialize_s']):.1f}x faster   (no database)")
# The target: Registry::save_model / load_model end to end against joblib.dump(compress=3) / joblib.load.
print(f"  registry save_model, synchronous=FULL vs joblib.dump(compress=3):   "
      f"{s['dump_s'] / m['registry_save_full_s']:.1f}x faster   (target >= 5x)")
print(f"  registry save_model, synchronous=NORMAL vs joblib.dump(compress=3): "
      f"{s['dump_s'] / m['registry_save_normal_s']:.1f}x faster   (target >= 5x)")
print(f"  (diagnostic) save_model, FULL, 512 KiB chunks vs joblib.dump:      "
      f"{s['dump_s'] / m['registry_save_full_512k_chunks_s']:.1f}x faster")
print(f"  registry load_model (validated) vs joblib.load:                     "
      f"{s['load_s'] / m['registry_load_s']:.1f}x faster   (target >= 5x; first load after opening: "
      f"{s['load_s'] / m['registry_load_first_s']:.1f}x)")
PY
