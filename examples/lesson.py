#!/usr/bin/env python3
"""The model-persistence lesson in Python, on modelreg (./run.sh demo runs it after the C++ demo).

scikit-learn's LogisticRegression and RandomForestClassifier trained on synthetic fraud data are
saved as native model versions (converted, never pickled) with compression and metadata, loaded
back with validation, compared by F1, the best promoted; then a ModelServer answers requests in one
thread while a retrained version is promoted in another, and swaps to it without dropping one.

    PYTHONPATH=build/python /usr/bin/python3 examples/lesson.py [DIR]   (default: ./demo-python)
"""

import datetime
import os
import sys
import threading
import time

import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split

import modelreg


def kib(n):
    return "%.1f KiB" % (n / 1024.0)


def fraud_data():
    # As the C++ demo's make_classification: 10,000 transactions, 20 anonymized features
    # (6 informative, 2 redundant), 5% fraud, 1% label noise.
    x, y = make_classification(n_samples=10_000, n_features=20, n_informative=6, n_redundant=2,
                               n_clusters_per_class=2, weights=[0.95], flip_y=0.01, random_state=42)
    features = ["v%d" % (i + 1) for i in range(x.shape[1])]
    return train_test_split(x, y, test_size=0.2, stratify=y, random_state=42) + [features]


def evaluate(estimator, x, y):
    proba = estimator.predict_proba(x)[:, 1]
    predicted = estimator.predict(x)
    return {"accuracy": accuracy_score(y, predicted), "precision": precision_score(y, predicted, zero_division=0),
            "recall": recall_score(y, predicted), "f1": f1_score(y, predicted), "roc_auc": roc_auc_score(y, proba)}


def train_and_save(registry, estimator, label, data, notes, parents=None):
    x_train, x_test, y_train, y_test, features = data
    started = time.perf_counter()
    estimator.fit(x_train, y_train)
    train_seconds = time.perf_counter() - started
    metrics = evaluate(estimator, x_test, y_test)
    started = time.perf_counter()
    version = registry.save_model(
        estimator, "fraud_detector", label=label, metrics=metrics, features=features, compress=3,
        params={"training_date": datetime.date.today().isoformat(), "train_rows": len(x_train)},
        datasets=[{"uri": "synthetic:make_classification(random_state=42)", "role": "train"}],
        notes=notes, parents=parents, probe=x_test[:16])
    save_ms = (time.perf_counter() - started) * 1000
    print("  %-26s f1 %.4f  auc %.4f  (trained in %.2f s)" % (type(estimator).__name__, metrics["f1"],
                                                             metrics["roc_auc"], train_seconds))
    print("  saved %s (%s) in %.0f ms: %s serialized -> %s stored at zstd level 3, %.1fx smaller"
          % (version.ref, version.label, save_ms, kib(version.raw_size), kib(version.stored_size),
             version.compression_ratio))
    return version


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "demo-python"
    os.makedirs(directory, exist_ok=True)
    db = os.path.join(directory, "lesson.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)

    print("== modelreg from Python: the model-persistence lesson ==\n")
    data = fraud_data()
    x_test, y_test = data[1], data[3]
    print("10,000 synthetic transactions, 20 features, %.1f%% fraud in the test split\n" % (100 * y_test.mean()))

    with modelreg.Registry(db) as registry:
        print("1. Train, then save with compression and metadata")
        logistic = LogisticRegression(max_iter=1000)
        forest = RandomForestClassifier(n_estimators=100, random_state=42, n_jobs=2)
        v1 = train_and_save(registry, logistic, "v1.0.0", data, "baseline")
        v2 = train_and_save(registry, forest, "v2.0.0", data, "random forest", parents=[(v1, "compared_with")])
        print("  %r\n" % v2)

        print("2. Load with validation (checksum, format, type, feature count, probe rows)")
        model, version = registry.load_model("fraud_detector@v2.0.0")
        difference = np.abs(model.predict_proba(x_test) - forest.predict_proba(x_test)).max()
        print("  %s: validation passed; %s, %d features (%s..%s), classes %s"
              % (version.ref, version.type_name, model.n_features_in_, model.feature_names_in_[0],
                 model.feature_names_in_[-1], list(model.classes_)))
        print("  predict_proba on %d test rows equals scikit-learn's (largest difference %.1e)\n"
              % (len(x_test), difference))

        print("3. Compare versions by F1 and promote the best")
        for v in registry.versions("fraud_detector", order_by="f1"):
            print("  %-18s %-32s f1 %.4f  created %s" % (v.ref + " (" + v.label + ")", v.type_name, v.metrics["f1"],
                                                        v.created_at.strftime("%Y-%m-%d %H:%M:%S %Z")))
        comparison = registry.compare(v1, v2, metric="f1")
        best = v2 if comparison["improvement"] >= 0 else v1
        print("  %s vs %s: f1 %+.4f" % (v2.ref, v1.ref, comparison["improvement"]))
        registry.promote(best.ref, reason="best F1", require_better="f1")
        print("  promoted %s; active: %s\n" % (best.ref, registry.get("fraud_detector").ref))

        print("4. Hot swap: a server answers while a retrained version is promoted")
        retrained = RandomForestClassifier(n_estimators=150, min_samples_leaf=2, random_state=7, n_jobs=2)
        v3 = train_and_save(registry, retrained, "v3.0.0", data, "retrained", parents=[(best, "retrained_from")])
        answered, errors, stop = [], [], threading.Event()
        with modelreg.ModelServer(db, "fraud_detector", poll_ms=50) as server:
            def client():
                while not stop.is_set():
                    try:
                        answered.append(server.infer(x_test[:32])["version"])
                    except modelreg.Error as e:
                        errors.append(e)

            def promoter():
                registry.promote(v3.ref, reason="retrained on fresh data")

            server.poll_now()  # serving the active version before the first request
            serving = threading.Thread(target=client)
            serving.start()
            time.sleep(0.3)
            promoting = threading.Thread(target=promoter)
            promoting.start()
            promoting.join()
            deadline = time.monotonic() + 10
            while server.get_status()["serving_version"] != v3.number and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)
            stop.set()
            serving.join()
            status = server.get_status()

        print("  %d requests served (%d by %s, %d by %s), %d failed"
              % (status["requests_served"], answered.count(best.number), best.ref, answered.count(v3.number), v3.ref,
                 len(errors)))
        print("  status: serving_version %s, swaps %d (the first load and the promotion), last_error %s"
              % (status["serving_version"], status["swaps"], status["last_error"]))
        print("\nhistory:")
        for event in registry.history("fraud_detector"):
            target = event["to_version"] or event["version"]
            print("  %s  %-8s fraud_detector@%s  %s" % (event["at"].strftime("%H:%M:%S"), event["kind"], target,
                                                        event["reason"]))
    if errors or status["serving_version"] != v3.number:
        print("the hot swap did not complete", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
