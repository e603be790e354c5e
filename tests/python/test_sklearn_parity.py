"""Every supported scikit-learn estimator, saved into a registry and loaded back, predicts what the
estimator predicts: predict_proba / predict within 1e-9 absolute and identical labels, on held-out
rows of scikit-learn's bundled data sets (no download)."""

import warnings

import numpy as np
import pytest

import modelreg
import modelreg.sklearn

sklearn = pytest.importorskip("sklearn")

from sklearn import datasets  # noqa: E402
from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor, GradientBoostingClassifier,  # noqa: E402
                              GradientBoostingRegressor, HistGradientBoostingClassifier,
                              HistGradientBoostingRegressor, RandomForestClassifier, RandomForestRegressor)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, StandardScaler  # noqa: E402
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402  (a dependency of scikit-learn)

TOLERANCE = 1e-9


def _split(x, y):
    return train_test_split(x, y, test_size=0.3, random_state=0)


def _load(name):
    x, y = getattr(datasets, "load_" + name)(return_X_y=True)
    return x, y


def _named(name, labels):
    """The data set with string class labels."""
    x, y = _load(name)
    return x, np.asarray(labels)[y]


DATA = {
    "breast_cancer": lambda: _load("breast_cancer"),                       # binary
    "breast_cancer_named": lambda: _named("breast_cancer", ["malignant", "benign"]),
    "iris": lambda: _load("iris"),                                         # 3 classes
    "wine_named": lambda: _named("wine", ["barolo", "grignolino", "barbera"]),
    "digits": lambda: _load("digits"),                                     # 10 classes, 64 features
    "diabetes": lambda: _load("diabetes"),                                 # regression
}

BINARY = ["breast_cancer", "breast_cancer_named"]
MULTICLASS = ["iris", "wine_named", "digits"]
CLASSIFICATION = BINARY + MULTICLASS
REGRESSION = ["diabetes"]

CLASSIFIERS = {
    "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    "logistic_ovr": lambda: make_pipeline(StandardScaler(), LogisticRegression(multi_class="ovr", max_iter=2000)),
    "logistic_multinomial": lambda: make_pipeline(StandardScaler(),
                                                  LogisticRegression(multi_class="multinomial", max_iter=2000)),
    "logistic_unscaled": lambda: LogisticRegression(max_iter=200),
    "decision_tree": lambda: DecisionTreeClassifier(random_state=0),
    "decision_tree_shallow": lambda: DecisionTreeClassifier(max_depth=3, random_state=0),
    "random_forest": lambda: RandomForestClassifier(n_estimators=30, random_state=0),
    "extra_trees": lambda: ExtraTreesClassifier(n_estimators=30, random_state=0),
    "gradient_boosting": lambda: GradientBoostingClassifier(n_estimators=20, random_state=0),
    "gradient_boosting_zero_init": lambda: GradientBoostingClassifier(n_estimators=10, init="zero", random_state=0),
    "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
    "min_max_forest": lambda: make_pipeline(MinMaxScaler(clip=True), RandomForestClassifier(n_estimators=10,
                                                                                            random_state=0)),
    "standard_hist": lambda: make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=10,
                                                                                            random_state=0)),
}
BINARY_ONLY = {
    "gradient_boosting_exponential": lambda: GradientBoostingClassifier(n_estimators=20, loss="exponential",
                                                                        random_state=0),
}
REGRESSORS = {
    "linear": lambda: LinearRegression(),
    "ridge": lambda: Ridge(alpha=0.5),
    "scaled_ridge": lambda: make_pipeline(StandardScaler(), Ridge()),
    "decision_tree": lambda: DecisionTreeRegressor(random_state=0),
    "random_forest": lambda: RandomForestRegressor(n_estimators=30, random_state=0),
    "extra_trees": lambda: ExtraTreesRegressor(n_estimators=30, random_state=0),
    "gradient_boosting": lambda: GradientBoostingRegressor(n_estimators=30, random_state=0),
    "gradient_boosting_huber": lambda: GradientBoostingRegressor(n_estimators=20, loss="huber", random_state=0),
    "gradient_boosting_absolute": lambda: GradientBoostingRegressor(n_estimators=20, loss="absolute_error",
                                                                    random_state=0),
    "hist_gradient_boosting": lambda: HistGradientBoostingRegressor(max_iter=30, random_state=0),
    "hist_gradient_boosting_poisson": lambda: HistGradientBoostingRegressor(max_iter=30, loss="poisson",
                                                                            random_state=0),
    "min_max_hist": lambda: make_pipeline(MinMaxScaler(), HistGradientBoostingRegressor(max_iter=10,
                                                                                       random_state=0)),
}


def _fit(make, x, y):
    estimator = make()
    # One OpenMP thread: HistGradientBoosting's threads spin against the other builds on a shared machine.
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")  # lbfgs on unscaled data: ConvergenceWarning, still a fitted model
        estimator.fit(x, y)
    return estimator


def _round_trip(tmp_path, estimator):
    """Saved into a registry and loaded back with validation."""
    with modelreg.Registry(tmp_path / "registry.db") as registry:
        version = registry.save_model(estimator, "m")
        model, loaded = registry.load_model(version.ref)
    return model, loaded


def assert_classifier_parity(model, estimator, x):
    assert list(model.classes_) == list(estimator.classes_)
    expected = estimator.predict_proba(x)
    got = model.predict_proba(x)
    assert got.shape == expected.shape
    difference = float(np.max(np.abs(got - expected)))
    assert difference <= TOLERANCE, difference
    labels = model.predict(x)
    assert np.array_equal(labels, estimator.predict(x)), "labels differ"
    return difference


def assert_regressor_parity(model, estimator, x):
    expected = estimator.predict(x)
    got = model.predict(x)
    assert got.shape == expected.shape
    difference = float(np.max(np.abs(got - expected)))
    assert difference <= TOLERANCE, difference
    return difference


CLASSIFIER_CASES = [(e, d) for e in CLASSIFIERS for d in CLASSIFICATION] + \
                   [(e, d) for e in BINARY_ONLY for d in BINARY]


@pytest.mark.parametrize("estimator_name,data_name", CLASSIFIER_CASES)
def test_a_converted_classifier_predicts_as_scikit_learn(tmp_path, estimator_name, data_name):
    make = CLASSIFIERS.get(estimator_name) or BINARY_ONLY[estimator_name]
    x_train, x_test, y_train, _ = _split(*DATA[data_name]())
    estimator = _fit(make, x_train, y_train)
    model, version = _round_trip(tmp_path, estimator)
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    assert version.type_name == "sklearn." + type(final).__name__
    assert model.task == ("binary" if data_name in BINARY else "multiclass")
    assert_classifier_parity(model, estimator, x_test)


@pytest.mark.parametrize("estimator_name", list(REGRESSORS))
def test_a_converted_regressor_predicts_as_scikit_learn(tmp_path, estimator_name):
    x_train, x_test, y_train, _ = _split(*DATA["diabetes"]())
    estimator = _fit(REGRESSORS[estimator_name], x_train, y_train)
    model, version = _round_trip(tmp_path, estimator)
    assert model.task == "regression"
    assert_regressor_parity(model, estimator, x_test)


def _with_missing(x, fraction, seed):
    x = np.array(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    x[rng.random(x.shape) < fraction] = np.nan
    return x


@pytest.mark.parametrize("data_name", ["breast_cancer", "wine_named", "diabetes"])
def test_hist_gradient_boosting_routes_missing_values_as_scikit_learn(tmp_path, data_name):
    x, y = DATA[data_name]()
    x_train, x_test, y_train, _ = _split(_with_missing(x, 0.15, 1), y)
    regression = data_name == "diabetes"
    make = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
    estimator = _fit(lambda: make(max_iter=30, random_state=0), x_train, y_train)
    model, _ = _round_trip(tmp_path, estimator)
    assert model.handles_missing
    assert np.isnan(x_test).any()
    # Rows with every value missing, and a column missing in every row, too.
    x_test = np.vstack([x_test, np.full((1, x.shape[1]), np.nan)])
    x_test[:5, 0] = np.nan
    if regression:
        assert_regressor_parity(model, estimator, x_test)
    else:
        assert_classifier_parity(model, estimator, x_test)


def test_feature_names_and_params_come_from_the_estimator(tmp_path):
    x, y = DATA["iris"]()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    estimator = _fit(lambda: RandomForestClassifier(n_estimators=5, max_depth=4, random_state=3),
                     _frame_or_array(x, names), y)
    model, version = _round_trip(tmp_path, estimator)
    if hasattr(estimator, "feature_names_in_"):
        assert list(version.features) == names
        assert list(model.feature_names_in_) == names
    assert version.params["n_estimators"] == "5"
    assert version.params["max_depth"] == "4"
    assert version.type_name == "sklearn.RandomForestClassifier"


def _frame_or_array(x, names):
    try:
        import pandas as pd
    except ImportError:
        return x
    return pd.DataFrame(x, columns=names)


def test_a_pipeline_records_its_steps_and_their_parameters(tmp_path):
    x_train, x_test, y_train, _ = _split(*DATA["wine_named"]())
    estimator = _fit(lambda: make_pipeline(StandardScaler(with_mean=False), MinMaxScaler(feature_range=(-1, 2)),
                                           LogisticRegression(C=0.5, max_iter=2000)), x_train, y_train)
    model, version = _round_trip(tmp_path, estimator)
    assert version.type_name == "sklearn.LogisticRegression"
    assert version.params["pipeline"] == "StandardScaler -> MinMaxScaler -> LogisticRegression"
    assert version.params["logisticregression__C"] == "0.5"
    assert version.params["standardscaler__with_mean"] == "False"
    assert_classifier_parity(model, estimator, x_test)


def test_the_converted_model_before_saving_predicts_the_same(tmp_path):
    x_train, x_test, y_train, _ = _split(*DATA["digits"]())
    estimator = _fit(lambda: ExtraTreesClassifier(n_estimators=10, random_state=0), x_train, y_train)
    converted = modelreg.sklearn.convert(estimator)
    assert converted["type_name"] == "sklearn.ExtraTreesClassifier"
    assert converted["params"]["n_estimators"] == "10"
    direct = modelreg.Model(converted["model"])
    assert_classifier_parity(direct, estimator, x_test)
    loaded, _ = _round_trip(tmp_path, estimator)
    assert np.array_equal(loaded.predict_proba(x_test), direct.predict_proba(x_test))
