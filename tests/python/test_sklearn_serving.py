"""A converted scikit-learn model gives the same numbers everywhere: the Python Model, `modelreg
predict` (the CLI, on a CSV) and the library's ModelServer — and they are scikit-learn's."""

import csv
import os
import pathlib
import subprocess

import numpy as np
import pytest

import modelreg

pytest.importorskip("sklearn")

from sklearn import datasets  # noqa: E402
from sklearn.ensemble import (GradientBoostingRegressor, HistGradientBoostingClassifier,  # noqa: E402
                              RandomForestClassifier)
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def _cli():
    """The `modelreg` binary: $MODELREG_CLI, else the one built beside this package."""
    explicit = os.environ.get("MODELREG_CLI")
    if explicit:
        return explicit
    built = pathlib.Path(modelreg.__file__).resolve().parents[2] / "registry-cli" / "modelreg"
    if not built.exists():
        pytest.skip("the modelreg command is not built (set MODELREG_CLI)")
    return str(built)


def _case(name):
    if name == "binary_forest":
        x, y = datasets.load_breast_cancer(return_X_y=True)
        return x, y, RandomForestClassifier(n_estimators=25, random_state=0)
    if name == "multiclass_hist_missing":
        x, y = datasets.load_wine(return_X_y=True)
        y = np.asarray(["barolo", "grignolino", "barbera"])[y]
        x = x.copy()
        x[np.random.default_rng(0).random(x.shape) < 0.1] = np.nan
        return x, y, HistGradientBoostingClassifier(max_iter=20, random_state=0)
    if name == "multiclass_logistic":
        x, y = datasets.load_digits(return_X_y=True)
        return x, y, make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    x, y = datasets.load_diabetes(return_X_y=True)
    return x, y, GradientBoostingRegressor(n_estimators=40, random_state=0)


CASES = ["binary_forest", "multiclass_hist_missing", "multiclass_logistic", "regression_boosting"]


def _write_csv(path, names, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for row in rows:
            writer.writerow(["" if np.isnan(v) else repr(float(v)) for v in row])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each case fitted on half its rows and saved (and made active) in one registry."""
    path = tmp_path_factory.mktemp("serving") / "registry.db"
    out = {}
    from threadpoolctl import threadpool_limits
    with modelreg.Registry(path) as registry, threadpool_limits(limits=1):
        for name in CASES:
            x, y, estimator = _case(name)
            half = len(x) // 2
            estimator.fit(x[:half], y[:half])
            names = ["c%d" % i for i in range(x.shape[1])]
            version = registry.save_model(estimator, name.replace("_", "-"), features=names)
            registry.promote(version.ref)
            model, _ = registry.load_model(version.ref)
            out[name] = (version, model, estimator, x[half:], names)
    return path, out


@pytest.mark.parametrize("name", CASES)
def test_modelreg_predict_gives_the_numbers_of_the_python_model(saved, tmp_path, name):
    path, cases = saved
    version, model, estimator, x, names = cases[name]
    rows = tmp_path / "rows.csv"
    _write_csv(rows, names, x)
    done = subprocess.run([_cli(), "--db", str(path), "predict", version.ref, "--csv", str(rows)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    lines = list(csv.reader(done.stdout.splitlines()))
    header, body = lines[0], lines[1:]
    assert len(body) == len(x)
    if model.task == "regression":
        assert header == ["prediction"]
        values = np.array([float(r[0]) for r in body])
        assert np.array_equal(values, model.predict(x))
        assert np.max(np.abs(values - estimator.predict(x))) <= 1e-9
        return
    labels = [r[-1] for r in body]
    assert labels == [str(c) for c in model.predict(x)]
    assert labels == [str(c) for c in estimator.predict(x)]
    numbers = np.array([[float(v) for v in r[:-1]] for r in body])
    if model.task == "binary":
        assert header == ["probability", "label"]
        assert np.array_equal(numbers[:, 0], model.predict_proba(x)[:, 1])
    else:
        assert header == ["probability_%s" % c for c in model.classes_] + ["label"]
        assert np.array_equal(numbers, model.predict_proba(x))
    assert np.max(np.abs(model.predict_proba(x) - estimator.predict_proba(x))) <= 1e-9


@pytest.mark.parametrize("name", CASES)
def test_the_model_server_gives_the_numbers_of_the_python_model(saved, name):
    path, cases = saved
    version, model, estimator, x, _ = cases[name]
    with modelreg.ModelServer(path, version.name, poll_ms=10) as server:
        server.poll_now()
        if model.task == "regression":
            assert np.array_equal(server.predict(x), model.predict(x))
        else:
            assert np.array_equal(server.predict_proba(x), model.predict_proba(x))
            assert list(server.predict(x)) == list(estimator.predict(x))
        assert server.get_status()["serving_version"] == version.number
