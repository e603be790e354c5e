#!/usr/bin/env python3
"""Data sets and scikit-learn's scores for tests/sklearn_parity_test.cpp.

For each data set: split it (stratified for classification) with a fixed seed, write train.csv and
test.csv (full precision), fit the scikit-learn estimators the C++ test compares with — the same
hyperparameters — and write their test scores to scores.tsv as `dataset model metric value`.
Nothing here is tuned to a data set: every data set gets the same estimators and settings.
Usage: sklearn_parity.py OUT_DIR
"""
import os
import sys

import numpy as np
from sklearn import datasets
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor, RandomForestClassifier,
                              RandomForestRegressor)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

SEED = 0


def classification_sets():
    x, y = datasets.make_classification(n_samples=1500, n_features=12, n_informative=6, n_redundant=2, n_classes=4,
                                        n_clusters_per_class=1, random_state=11)
    yield "blobs4", x, y
    x, y = datasets.make_classification(n_samples=1200, n_features=15, n_informative=8, n_classes=5,
                                        n_clusters_per_class=2, flip_y=0.02, random_state=3)
    yield "blobs5", x, y
    yield ("iris",) + datasets.load_iris(return_X_y=True)
    yield ("wine",) + datasets.load_wine(return_X_y=True)
    yield ("digits",) + datasets.load_digits(return_X_y=True)


def regression_sets():
    x, y = datasets.make_regression(n_samples=1000, n_features=10, n_informative=6, noise=10.0, random_state=5)
    yield "linear", x, y
    x, y = datasets.make_friedman1(n_samples=1000, n_features=8, noise=0.5, random_state=7)
    yield "friedman1", x, y
    yield ("diabetes",) + datasets.load_diabetes(return_X_y=True)


def classifiers():
    # Our logistic regression standardizes the features itself (scikit-learn: a scaler in front).
    yield "logistic_regression", make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    yield "decision_tree", DecisionTreeClassifier(max_depth=8, random_state=SEED)
    yield "random_forest", RandomForestClassifier(n_estimators=100, max_features="sqrt", random_state=SEED)
    yield "gradient_boosted_trees", GradientBoostingClassifier(n_estimators=50, learning_rate=0.1, max_depth=3,
                                                                random_state=SEED)


def regressors():
    yield "linear_regression", Ridge(alpha=1.0)
    yield "decision_tree", DecisionTreeRegressor(max_depth=6, min_samples_leaf=5, random_state=SEED)
    yield "random_forest", RandomForestRegressor(n_estimators=100, max_features=1.0, random_state=SEED)
    yield "gradient_boosted_trees", GradientBoostingRegressor(n_estimators=100, learning_rate=0.1, max_depth=3,
                                                               random_state=SEED)


def write_csv(path, x, y):
    with open(path, "w") as out:
        out.write(",".join(f"f{j}" for j in range(x.shape[1])) + ",target\n")
        for row, t in zip(x, y):
            out.write(",".join(repr(float(v)) for v in row) + "," + (str(int(t)) if isinstance(t, (np.integer, int))
                                                                     else repr(float(t))) + "\n")


def main():
    out_dir = sys.argv[1]
    lines = []
    for name, x, y in classification_sets():
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, stratify=y, random_state=SEED)
        os.makedirs(os.path.join(out_dir, name), exist_ok=True)
        write_csv(os.path.join(out_dir, name, "train.csv"), x_tr, y_tr)
        write_csv(os.path.join(out_dir, name, "test.csv"), x_te, y_te)
        for model, est in classifiers():
            pred = est.fit(x_tr, y_tr).predict(x_te)
            lines.append(f"{name}\tmulticlass\t{model}\taccuracy\t{accuracy_score(y_te, pred)!r}")
            lines.append(f"{name}\tmulticlass\t{model}\tf1_macro\t{f1_score(y_te, pred, average='macro')!r}")
    for name, x, y in regression_sets():
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=SEED)
        os.makedirs(os.path.join(out_dir, name), exist_ok=True)
        write_csv(os.path.join(out_dir, name, "train.csv"), x_tr, y_tr.astype(float))
        write_csv(os.path.join(out_dir, name, "test.csv"), x_te, y_te.astype(float))
        for model, est in regressors():
            pred = est.fit(x_tr, y_tr).predict(x_te)
            lines.append(f"{name}\tregression\t{model}\tr2\t{r2_score(y_te, pred)!r}")
    with open(os.path.join(out_dir, "scores.tsv"), "w") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
