#!/usr/bin/python3
"""XGBoost model import benchmark: native prediction beside XGBoost's own, in one run.

Usage: /usr/bin/python3 bench/xgboost_bench.py BUILD_DIR [--runs N]

Trains binary:logistic, 100 trees of depth 6 on 20,000 rows x 20 features (10% of the values
missing), saves it as JSON and UBJSON, and on 10,000 held-out rows x 20 features (also with
missing values) measures, medians of N runs (default 15):
  - XGBoost 1.7's predictor at nthread 1 and 2: Booster.predict on a DMatrix built before the
    clock starts (a fresh one each run: predictions are cached per DMatrix), and
    Booster.inplace_predict on the NumPy array (the faster of the two is "XGBoost");
  - BUILD_DIR/bench/xgboost_bench: parse + convert, batch prediction on 1 and 2 threads (the same
    rows), and import_xgboost (read + parse + convert + save into a fresh registry);
  - the size stored in the registry against the JSON file compressed by `zstd -3`.
Checks that both predict the same (largest difference of the probabilities).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import xgboost as xgb


def median_ms(runs, f, setup=lambda: None):
    times = []
    for _ in range(runs):
        arg = setup()
        start = time.perf_counter()
        f(arg)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    build = sys.argv[1]
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 15
    rng = np.random.default_rng(42)
    n_train, n_test, n_features = 20_000, 10_000, 20
    x = rng.normal(size=(n_train + n_test, n_features))
    logit = x[:, :6] @ rng.normal(size=6) + 0.5 * x[:, 6] * x[:, 7]
    y = (logit + rng.logistic(size=len(x)) > 0).astype(float)
    x[rng.random(x.shape) < 0.1] = np.nan
    x_train, y_train, x_test = x[:n_train], y[:n_train], np.ascontiguousarray(x[n_train:])
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "nthread": 2, "seed": 1},
                        xgb.DMatrix(x_train, label=y_train, missing=np.nan), num_boost_round=100)

    with tempfile.TemporaryDirectory() as tmp:
        paths = {ext: os.path.join(tmp, "model." + ext) for ext in ("json", "ubj")}
        for path in paths.values():
            booster.save_model(path)
        rows = os.path.join(tmp, "rows.f64")
        x_test.astype(np.float64).tofile(rows)

        xgb_ms = {}
        test = xgb.DMatrix(x_test, missing=np.nan)
        for threads in (1, 2):
            booster.set_param({"nthread": threads})
            booster.predict(test)
            # A fresh DMatrix for each run, made before the clock starts: Booster.predict caches
            # its predictions per DMatrix, and a cached answer measures nothing.
            dm = median_ms(runs, lambda d: booster.predict(d),
                           setup=lambda: xgb.DMatrix(x_test, missing=np.nan, nthread=threads))
            inplace = median_ms(runs, lambda _: booster.inplace_predict(x_test, missing=np.nan))
            xgb_ms[threads] = {"predict_dmatrix": dm, "inplace_predict": inplace}
        expected = booster.predict(test).astype(np.float64)

        native = {}
        for ext, path in paths.items():
            out = subprocess.run([os.path.join(build, "bench", "xgboost_bench"), path, rows, str(n_features),
                                  "--runs", str(runs), "--dir", tmp], check=True, capture_output=True, text=True)
            native[ext] = json.loads(out.stdout)
        zstd_size = len(subprocess.run(["zstd", "-3", "-c", paths["json"]], check=True, capture_output=True).stdout)
        sizes = {ext: os.path.getsize(path) for ext, path in paths.items()}

    n = native["json"]
    print(f"XGBoost {xgb.__version__}: binary:logistic, {n['trees']} trees of depth 6 ({n['nodes']} nodes), "
          f"{n_test:,} rows x {n_features} features, 10% missing; medians of {runs} runs")
    print(f"{'batch prediction':<34}{'1 thread':>12}{'2 threads':>12}")
    for name, key in (("XGBoost Booster.predict(DMatrix)", "predict_dmatrix"),
                      ("XGBoost inplace_predict(ndarray)", "inplace_predict")):
        print(f"{name:<34}{xgb_ms[1][key]:>9.2f} ms{xgb_ms[2][key]:>9.2f} ms")
    print(f"{'modelreg XGBoostModel':<34}{n['predict_1_thread_ms']:>9.2f} ms{n['predict_2_threads_ms']:>9.2f} ms")
    for threads, key in ((1, "predict_1_thread_ms"), (2, "predict_2_threads_ms")):
        best = min(xgb_ms[threads].values())
        print(f"  {threads} thread{'s' if threads > 1 else ''}: modelreg / fastest XGBoost = {n[key] / best:.2f}")
    for ext in ("json", "ubj"):
        print(f"import from {ext:<4} ({sizes[ext]:>9,} bytes): parse+convert {native[ext]['parse_convert_ms']:.2f} ms, "
              f"import_xgboost (read+parse+convert+save) {native[ext]['import_ms']:.2f} ms")
    print(f"stored in the registry: {n['stored_bytes']:,} bytes ({n['raw_bytes']:,} raw); "
          f"JSON file with zstd -3: {zstd_size:,} bytes")
    # The native outputs summed, against XGBoost's: the same predictions.
    print(f"sum of probabilities: modelreg {n['output_sum']:.6f}, XGBoost {expected.sum():.6f}")


if __name__ == "__main__":
    main()
