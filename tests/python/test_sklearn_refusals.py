"""What modelreg.sklearn refuses: unfitted and unsupported estimators, categorical
HistGradientBoosting, multi-output targets, pipelines with other steps — each an InvalidArgument
that says what is supported, with the registry unchanged — and fitted arrays that are not a valid
model (children out of range, cycles, unreachable nodes, features out of range, NaN), which the
library refuses with ValidationFailed."""

import sqlite3

import numpy as np
import pytest

import modelreg
import modelreg.sklearn
from modelreg import _modelreg

pytest.importorskip("sklearn")

from sklearn.datasets import load_iris  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.ensemble import (GradientBoostingRegressor, HistGradientBoostingClassifier,  # noqa: E402
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


@pytest.fixture
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture
def registry_path(tmp_path, iris):
    """A registry holding one version already."""
    path = tmp_path / "registry.db"
    x, y = iris
    with modelreg.Registry(path) as registry:
        registry.save_model(RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y), "kept")
    return path


def _dump(path):
    with sqlite3.connect(path) as connection:
        return list(connection.iterdump())


def _refused(path, estimator, *words):
    before = _dump(path)
    with modelreg.Registry(path) as registry:
        with pytest.raises(modelreg.InvalidArgument) as caught:
            registry.save_model(estimator, "m")
    assert _dump(path) == before
    message = str(caught.value)
    for word in words:
        assert word in message
    return message


def test_an_unfitted_estimator_is_refused(registry_path):
    _refused(registry_path, RandomForestClassifier(), "not fitted", "fit()")


def test_an_unfitted_pipeline_is_refused(registry_path):
    _refused(registry_path, make_pipeline(StandardScaler(), LinearRegression()), "not fitted")


def test_an_unsupported_estimator_is_refused_listing_what_is_supported(registry_path, iris):
    x, y = iris
    message = _refused(registry_path, KNeighborsClassifier().fit(x, y), "KNeighborsClassifier")
    for supported in ("LogisticRegression", "RandomForestClassifier", "HistGradientBoostingRegressor", "Pipeline"):
        assert supported in message


def test_an_object_that_is_no_estimator_is_refused(registry_path):
    _refused(registry_path, {"weights": [1, 2]}, "dict")


def test_categorical_hist_gradient_boosting_is_refused(registry_path, iris):
    x, y = iris
    x = np.column_stack([x, np.arange(len(x)) % 4])
    estimator = HistGradientBoostingClassifier(max_iter=5, categorical_features=[4]).fit(x, y)
    _refused(registry_path, estimator, "categorical")


def test_a_multi_output_forest_is_refused(registry_path, iris):
    x, y = iris
    estimator = RandomForestRegressor(n_estimators=3).fit(x, np.column_stack([y, y * 2.0]))
    _refused(registry_path, estimator, "2 outputs")


def test_a_pipeline_with_another_step_is_refused(registry_path, iris):
    x, y = iris
    estimator = make_pipeline(PCA(2), RandomForestClassifier(n_estimators=3)).fit(x, y)
    _refused(registry_path, estimator, "PCA", "StandardScaler or MinMaxScaler")


def test_gradient_boosting_with_a_fitted_init_estimator_is_refused(registry_path, iris):
    x, y = iris
    estimator = GradientBoostingRegressor(n_estimators=3, init=LinearRegression()).fit(x, y)
    _refused(registry_path, estimator, "init")


def test_feature_names_of_the_wrong_length_are_refused(iris):
    x, y = iris
    estimator = RandomForestClassifier(n_estimators=2).fit(x, y)
    with pytest.raises(modelreg.InvalidArgument, match="3 feature names for a model of 4 features"):
        modelreg.sklearn.convert(estimator, feature_names=["a", "b", "c"])


# ---- the library's checks of the arrays themselves

def _tree_spec(**tree):
    """A regression tree: node 0 splits feature 0 at 0.5 into leaves 1 and 2."""
    base = {"left": [1, -1, -1], "right": [2, -1, -1], "feature": [0, -2, -2], "threshold": [0.5, -2.0, -2.0],
            "values": [0.0, 1.0, 2.0]}
    base.update(tree)
    return {"estimator": "DecisionTreeRegressor", "n_features": 2, "classes": None, "link": "identity",
            "trees": [base]}


def test_a_valid_tree_predicts_by_its_threshold():
    model = modelreg.Model(_modelreg.sklearn_model(_tree_spec()))
    assert list(model.predict([[0.5, 9.0], [0.5000001, 9.0]])) == [1.0, 2.0]


@pytest.mark.parametrize("tree,problem", [
    ({"left": [3, -1, -1]}, "children 3 and 2"),
    ({"left": [0, -1, -1]}, "reached twice"),
    ({"left": [1, -1, -1, -1], "right": [2, -1, -1, -1], "feature": [0, 0, 0, 0], "threshold": [0.5] * 4,
      "values": [0.0] * 4}, "not reachable"),
    ({"feature": [2, -2, -2]}, "tests feature 2, but the model has 2 features"),
    ({"threshold": [float("nan"), -2.0, -2.0]}, "threshold nan"),
    ({"threshold": [float("inf"), -2.0, -2.0]}, "threshold inf"),
    ({"values": [0.0, float("inf"), 2.0]}, "leaf 1 holds inf"),
    ({"right": [2, -1]}, "3 left, 2 right"),
    ({"left": [1, 2, -1], "right": [2, -1, -1]}, "children 2 and -1"),
])
def test_invalid_tree_arrays_are_refused(tree, problem):
    with pytest.raises(modelreg.ValidationFailed, match=problem):
        _modelreg.sklearn_model(_tree_spec(**tree))


def test_classifier_leaves_must_be_probabilities():
    spec = _tree_spec(values=[0.5, 0.5, 1.0, 0.0, 0.7, 0.7])
    spec.update(estimator="DecisionTreeClassifier", classes=[0, 1])
    with pytest.raises(modelreg.ValidationFailed, match="sum to 1.4"):
        _modelreg.sklearn_model(spec)


@pytest.mark.parametrize("change,problem", [
    ({"n_features": 0}, "0 features"),
    ({"classes": [0, 1]}, "2 class labels for a regressor"),
    ({"link": "expit"}, "link expit for a regression model"),
    ({"trees": []}, "no trees"),
    ({"coef": [1.0, 2.0]}, "no coefficients"),
])
def test_inconsistent_specs_are_refused(change, problem):
    spec = _tree_spec()
    spec.update(change)
    with pytest.raises(modelreg.ValidationFailed, match=problem):
        _modelreg.sklearn_model(spec)


def test_a_linear_model_needs_one_coefficient_per_feature():
    spec = {"estimator": "LogisticRegression", "n_features": 3, "classes": ["a", "b", "c"], "link": "softmax",
            "coef": np.ones((3, 2)), "intercept": np.zeros(3)}
    with pytest.raises(modelreg.ValidationFailed, match="6 coefficients for 3 outputs of 3 features"):
        _modelreg.sklearn_model(spec)


def test_a_scaler_that_divides_by_zero_is_refused():
    spec = _tree_spec(scalers=None)
    del spec["trees"][0]["scalers"]
    spec["scalers"] = [{"kind": "standard", "offset": [0.0, 0.0], "scale": [1.0, 0.0]}]
    with pytest.raises(modelreg.ValidationFailed, match="divides by 0"):
        _modelreg.sklearn_model(spec)


def test_an_unknown_estimator_name_lists_the_supported_ones():
    spec = _tree_spec()
    spec["estimator"] = "SVC"
    with pytest.raises(modelreg.InvalidArgument, match="SVC: supported are LogisticRegression"):
        _modelreg.sklearn_model(spec)


def test_tree_models_refuse_values_beyond_float32_as_scikit_learn_does():
    model = modelreg.Model(_modelreg.sklearn_model(_tree_spec()))
    with pytest.raises(modelreg.InvalidArgument, match="float32"):
        model.predict([[1e39, 0.0]])
