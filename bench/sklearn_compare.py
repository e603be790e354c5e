#!/usr/bin/python3
"""scikit-learn's side of the model benchmark: RandomForestClassifier(n_estimators=100), single
threaded, on the rows models_bench wrote, plus joblib.dump(compress=3) / joblib.load.

    /usr/bin/python3 bench/sklearn_compare.py TRAIN.csv TEST.csv [--runs N] [--json FILE]

Uses Debian's python3-sklearn and python3-joblib (apt-get install python3-sklearn python3-joblib).
Timings are medians of N runs (default 5).
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def median_time(runs, f):
    times = []
    result = None
    for _ in range(runs):
        start = time.perf_counter()
        result = f()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def load(path):
    import numpy as np
    with open(path) as f:
        header = f.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return header, data[:, :-1], data[:, -1].astype(int)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("train")
    parser.add_argument("test")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    try:
        import joblib
        import sklearn
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    except ImportError as e:
        print(f"scikit-learn is not installed ({e}); apt-get install python3-sklearn python3-joblib", file=sys.stderr)
        return 3

    _, x_train, y_train = load(args.train)
    _, x_test, y_test = load(args.test)
    fit_s, model = median_time(args.runs, lambda: RandomForestClassifier(n_estimators=100, n_jobs=1, random_state=0).fit(x_train, y_train))
    predicted = model.predict(x_test)
    proba = model.predict_proba(x_test)[:, 1]
    nodes = sum(e.tree_.node_count for e in model.estimators_)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "forest.joblib")
        dump_s, _ = median_time(args.runs, lambda: joblib.dump(model, path, compress=3))
        size = os.path.getsize(path)
        load_s, _ = median_time(args.runs, lambda: joblib.load(path))
    result = {
        "sklearn_version": sklearn.__version__, "joblib_version": joblib.__version__,
        "fit_s": fit_s, "f1": f1_score(y_test, predicted), "accuracy": accuracy_score(y_test, predicted),
        "auc": roc_auc_score(y_test, proba), "nodes": nodes, "joblib_bytes": size, "dump_s": dump_s, "load_s": load_s,
    }
    print(f"scikit-learn {sklearn.__version__} / joblib {joblib.__version__}: RandomForestClassifier(n_estimators=100, n_jobs=1)")
    print(f"  fit                        {fit_s * 1e3:9.1f} ms")
    print(f"  F1 / accuracy / AUC        {result['f1']:.3f} / {result['accuracy']:.4f} / {result['auc']:.4f}")
    print(f"  nodes                      {nodes:9d}")
    print(f"  joblib.dump(compress=3)    {dump_s * 1e3:9.1f} ms, {size} bytes, {size / nodes:.2f} bytes/node")
    print(f"  joblib.load                {load_s * 1e3:9.1f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
