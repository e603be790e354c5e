"""Fixtures of the Python package's tests (run by `meson test python`, or by hand:
PYTHONPATH=BUILD/python /usr/bin/python3 -m pytest tests/python)."""

import importlib
import os
import sqlite3

import numpy as np
import pytest

import modelreg


def need(module):
    """The module, else skip — or fail where MODELREG_REQUIRE_PYTHON_DEPS says every optional
    package must be there (run.sh installs them)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if os.environ.get("MODELREG_REQUIRE_PYTHON_DEPS"):
            pytest.fail("%s is required here (MODELREG_REQUIRE_PYTHON_DEPS): %s" % (module, e))
        pytest.skip("%s is not installed" % module)


def fraud_data(rows=2000, features=8, seed=0):
    """A binary table with 5-10% positives, without needing scikit-learn."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    score = x[:, 0] * 1.5 - x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + rng.normal(scale=0.5, size=rows)
    y = (score > np.quantile(score, 0.92)).astype(np.int64)
    return x, y


def dump(path):
    """Every table's rows (the schema included), to compare a registry before and after."""
    with sqlite3.connect(path) as connection:
        return list(connection.iterdump())


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "registry.db"


@pytest.fixture
def registry(db_path):
    with modelreg.Registry(db_path) as r:
        yield r


@pytest.fixture(scope="session")
def data():
    return fraud_data()


@pytest.fixture(scope="session")
def forest(data):
    x, y = data
    return modelreg.train("random_forest", x, y, params={"n_estimators": 20, "seed": 7},
                          feature_names=["v%d" % (i + 1) for i in range(x.shape[1])])


@pytest.fixture(scope="session")
def logistic(data):
    x, y = data
    return modelreg.train("logistic_regression", x, y,
                          feature_names=["v%d" % (i + 1) for i in range(x.shape[1])])
