#!/usr/bin/python3
"""A scikit-learn forest in modelreg beside joblib, side by side in one run (issue 12, "Numbers to
reach"): RandomForestClassifier(n_estimators=100) fitted by scikit-learn on the seed task (10,000
rows x 20 features, 5% positives), then

  save    Registry.save_model(rf)            vs joblib.dump(rf, compress=3)
  load    Registry.load_model(ref)           vs joblib.load
  size    the version's stored bytes         vs the joblib file
  predict Model.predict_proba, 1 row and 10,000 rows  vs rf.predict_proba

    PYTHONPATH=BUILD/python /usr/bin/python3 bench/sklearn_bench.py [--runs N] [--json FILE]

Every timing is the median of N runs (default 11; 20 x N for one-row predictions), the two sides
interleaved run by run. Each save goes to a fresh database / file (a second save of identical bytes
into one database is deduplicated and would skip the write). Needs Debian's python3-sklearn and
python3-joblib, and the modelreg package built (ninja -C BUILD python-package).
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def timed(f):
    start = time.perf_counter()
    result = f()
    return time.perf_counter() - start, result


def seed_task():
    """make_classification as bench/models_bench.cpp describes the seed task: 12,500 rows, 20
    features (6 informative, 2 redundant), 5% positives, 1% label noise, seed 42; stratified 80/20."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split
    x, y = make_classification(n_samples=12_500, n_features=20, n_informative=6, n_redundant=2,
                               weights=[0.95], flip_y=0.01, random_state=42)
    return train_test_split(x, y, test_size=0.2, stratify=y, random_state=42)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--json")
    args = parser.parse_args()
    try:
        import joblib
        import numpy as np
        import sklearn
        from sklearn.ensemble import RandomForestClassifier
    except ImportError as e:
        print(f"needs scikit-learn and joblib ({e}): apt-get install python3-sklearn python3-joblib", file=sys.stderr)
        return 3
    import modelreg

    x_train, x_test, y_train, _ = seed_task()
    rf = RandomForestClassifier(n_estimators=100, random_state=0).fit(x_train, y_train)
    nodes = sum(e.tree_.node_count for e in rf.estimators_)
    features = ["f%d" % i for i in range(x_train.shape[1])]
    one_row = x_test[:1]
    many = x_train  # 10,000 rows

    times = {k: [] for k in ("joblib_dump", "registry_save", "joblib_load", "registry_load",
                             "sklearn_one", "modelreg_one", "sklearn_many", "modelreg_many")}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            path = os.path.join(tmp, f"forest{run}.joblib")
            t, _ = timed(lambda: joblib.dump(rf, path, compress=3))
            times["joblib_dump"].append(t)
            joblib_bytes = os.path.getsize(path)
            with modelreg.Registry(os.path.join(tmp, f"registry{run}.db")) as registry:
                t, version = timed(lambda: registry.save_model(rf, "forest", features=features))
                times["registry_save"].append(t)
            stored_bytes, raw_bytes = version.stored_size, version.raw_size

        # Loads: warm, interleaved; one registry kept open as a server would.
        path = os.path.join(tmp, "forest0.joblib")
        with modelreg.Registry(os.path.join(tmp, "registry0.db")) as registry:
            for _ in range(args.runs):
                t, loaded_rf = timed(lambda: joblib.load(path))
                times["joblib_load"].append(t)
                t, (model, _) = timed(lambda: registry.load_model("forest@1"))
                times["registry_load"].append(t)

    expected = rf.predict_proba(many)
    got = model.predict_proba(many)
    difference = float(np.max(np.abs(got - expected)))
    for _ in range(20 * args.runs):
        times["sklearn_one"].append(timed(lambda: rf.predict_proba(one_row))[0])
        times["modelreg_one"].append(timed(lambda: model.predict_proba(one_row))[0])
    for _ in range(args.runs):
        times["sklearn_many"].append(timed(lambda: rf.predict_proba(many))[0])
        times["modelreg_many"].append(timed(lambda: model.predict_proba(many))[0])

    m = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "sklearn_version": sklearn.__version__, "runs": args.runs, "nodes": nodes,
        "joblib_bytes": joblib_bytes, "registry_stored_bytes": stored_bytes, "registry_raw_bytes": raw_bytes,
        "max_abs_difference_10000_rows": difference, **{k + "_s": v for k, v in m.items()},
    }
    ms = lambda s: f"{s * 1000:.3f} ms"  # noqa: E731
    print(f"RandomForestClassifier(n_estimators=100), scikit-learn {sklearn.__version__}: {nodes:,} nodes; "
          f"medians of {args.runs} runs ({20 * args.runs} for one row)")
    rows = [
        ("save", "joblib.dump(compress=3)", m["joblib_dump"], "Registry.save_model", m["registry_save"], 5),
        ("load", "joblib.load", m["joblib_load"], "Registry.load_model", m["registry_load"], 3),
        ("predict_proba, 1 row", "sklearn", m["sklearn_one"], "modelreg Model", m["modelreg_one"], 20),
        ("predict_proba, 10,000 rows", "sklearn", m["sklearn_many"], "modelreg Model", m["modelreg_many"], 1),
    ]
    print(f"{'':28} {'theirs':>14} {'modelreg':>14} {'speed-up':>9} {'target':>7}")
    for what, _, theirs, _, ours, target in rows:
        speed = theirs / ours
        print(f"{what:28} {ms(theirs):>14} {ms(ours):>14} {speed:8.1f}x {'>=' + str(target) + 'x':>7} "
              f"{'met' if speed >= target else 'MISSED'}")
    ratio = stored_bytes / joblib_bytes
    print(f"{'stored bytes':28} {joblib_bytes:>14,} {stored_bytes:>14,} {ratio:8.2f}  {'<=0.5':>7} "
          f"{'met' if ratio <= 0.5 else 'MISSED'}   (archive {raw_bytes:,} bytes raw)")
    print(f"max |modelreg - sklearn| over 10,000 rows: {difference:.3g}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
