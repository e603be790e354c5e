#!/usr/bin/python3
"""Trains small XGBoost models for xgboost_test.cpp and writes, into OUTDIR:

  manifest.json           one entry per case: objective, rows, features, outputs per row, task
  CASE.json, CASE.ubj     the model, saved by Booster.save_model in both formats
  CASE.x.f64              held-out rows (float64, row-major; NaN = missing; some rows all NaN)
  CASE.expected.f64       what the native model must output: XGBoost's Booster.predict, as
                          probabilities (P(class 1) for binary, k per row for multiclass) or values
  CASE.labels.f64         classifiers: XGBoost's predicted class index of each row
  dart.json, gblinear.json, categorical.json, categorical.ubj   models the importer must refuse

Usage: /usr/bin/python3 make_models.py OUTDIR   (needs python3-xgboost and python3-numpy)
"""
import json
import os
import sys

import numpy as np
import xgboost as xgb

N_TRAIN, N_TEST, N_FEATURES = 600, 200, 8


def data(rng, n):
    x = rng.normal(size=(n, N_FEATURES))
    x[rng.random(x.shape) < 0.15] = np.nan  # missing values everywhere ...
    x[:3] = np.nan                            # ... and rows with nothing at all
    return x


def signal(x):
    z = np.nan_to_num(x)
    return z[:, 0] + 0.5 * z[:, 1] - z[:, 2] + 0.3 * z[:, 3] * z[:, 4]


def targets(kind, x, rng):
    s = signal(x) + 0.2 * rng.normal(size=len(x))
    if kind == "binary":
        return (s > 0).astype(float)
    if kind == "multi2":
        return (s > 0.3).astype(float)
    if kind == "multi":
        return np.digitize(s, np.quantile(s, [0.25, 0.5, 0.75])).astype(float)
    if kind == "unit":
        return 1 / (1 + np.exp(-s))
    if kind == "positive":
        return np.exp(0.5 * s)
    if kind == "counts":
        return rng.poisson(np.exp(0.4 * s)).astype(float)
    return 3 * s + 10  # values


# name: (params, target kind)
CASES = {
    "binary_logistic": ({"objective": "binary:logistic"}, "binary"),
    "binary_logistic_forest": ({"objective": "binary:logistic", "num_parallel_tree": 3, "subsample": 0.8,
                                "colsample_bynode": 0.8}, "binary"),
    "binary_logitraw": ({"objective": "binary:logitraw"}, "binary"),
    "multi_softprob": ({"objective": "multi:softprob", "num_class": 4}, "multi"),
    "multi_softmax": ({"objective": "multi:softmax", "num_class": 4}, "multi"),
    "multi_softprob_2": ({"objective": "multi:softprob", "num_class": 2}, "multi2"),
    "reg_squarederror": ({"objective": "reg:squarederror"}, "values"),
    "reg_logistic": ({"objective": "reg:logistic"}, "unit"),
    "reg_absoluteerror": ({"objective": "reg:absoluteerror"}, "values"),
    "reg_squaredlogerror": ({"objective": "reg:squaredlogerror"}, "positive"),
    "reg_pseudohubererror": ({"objective": "reg:pseudohubererror"}, "values"),
    "count_poisson": ({"objective": "count:poisson"}, "counts"),
    "reg_gamma": ({"objective": "reg:gamma"}, "positive"),
    "reg_tweedie": ({"objective": "reg:tweedie"}, "positive"),
}


def sigmoid32(m):
    m = m.astype(np.float32)
    return (np.float32(1) / (np.float32(1) + np.exp(-m))).astype(np.float64)


def softmax32(m):
    m = m.astype(np.float32)
    e = np.exp(m - m.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)).astype(np.float64)


def main(out):
    os.makedirs(out, exist_ok=True)
    manifest = []
    for index, (name, (params, kind)) in enumerate(CASES.items()):
        rng = np.random.default_rng(1000 + index)
        x_train, x_test = data(rng, N_TRAIN), data(rng, N_TEST)
        y_train = targets(kind, x_train, rng)
        names = [f"f{i}" for i in range(N_FEATURES)] if index % 2 == 0 else None  # with and without names
        train = xgb.DMatrix(x_train, label=y_train, missing=np.nan, feature_names=names)
        test = xgb.DMatrix(x_test, missing=np.nan, feature_names=names)
        booster = xgb.train({"max_depth": 4, "eta": 0.3, "seed": 7, "nthread": 1, **params}, train, num_boost_round=12)
        booster.save_model(os.path.join(out, name + ".json"))
        booster.save_model(os.path.join(out, name + ".ubj"))
        pred = booster.predict(test).astype(np.float64)
        margin = booster.predict(test, output_margin=True)
        objective = params["objective"]
        labels = None
        if objective == "binary:logistic":
            task, expected, labels = "binary", pred, (pred > 0.5)
        elif objective == "binary:logitraw":  # Booster.predict gives the margin
            task, expected, labels = "binary", sigmoid32(pred), (pred > 0)
        elif params.get("num_class") == 2:    # softmax over two classes: binary, P(class 1)
            task, expected = "binary", pred.reshape(-1, 2)[:, 1]
            labels = pred.reshape(-1, 2).argmax(axis=1)
        elif objective == "multi:softprob":
            task, expected = "multiclass", pred.reshape(-1, params["num_class"])
            labels = expected.argmax(axis=1)
        elif objective == "multi:softmax":    # Booster.predict gives the label
            task, expected, labels = "multiclass", softmax32(margin.reshape(-1, params["num_class"])), pred
        else:
            task, expected = "regression", pred
        expected = np.ascontiguousarray(expected, dtype=np.float64)
        x_test.astype(np.float64).tofile(os.path.join(out, name + ".x.f64"))
        expected.tofile(os.path.join(out, name + ".expected.f64"))
        if labels is not None:
            np.asarray(labels, dtype=np.float64).tofile(os.path.join(out, name + ".labels.f64"))
        manifest.append({"name": name, "objective": objective, "task": task, "rows": N_TEST,
                         "features": N_FEATURES, "outputs": int(expected.size // N_TEST),
                         "feature_names": names or []})

    rng = np.random.default_rng(1)
    x = data(rng, 200)
    y = targets("binary", x, rng)
    dm = xgb.DMatrix(x, label=y, missing=np.nan)
    xgb.train({"booster": "dart", "objective": "binary:logistic", "rate_drop": 0.1}, dm, 3).save_model(
        os.path.join(out, "dart.json"))
    xgb.train({"booster": "gblinear", "objective": "binary:logistic"}, dm, 3).save_model(
        os.path.join(out, "gblinear.json"))
    xc = rng.normal(size=(200, 2))
    xc[:, 0] = np.floor(rng.random(200) * 4)
    dc = xgb.DMatrix(xc, label=(xc[:, 0] >= 2).astype(float), feature_types=["c", "q"], enable_categorical=True)
    categorical = xgb.train({"tree_method": "hist", "max_cat_to_onehot": 1, "objective": "binary:logistic"}, dc, 3)
    categorical.save_model(os.path.join(out, "categorical.json"))  # split conditions NaN: not JSON
    categorical.save_model(os.path.join(out, "categorical.ubj"))

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"xgboost_version": xgb.__version__, "cases": manifest}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
