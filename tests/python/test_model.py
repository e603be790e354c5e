"""Model follows scikit-learn's conventions and takes X in every form a scikit-learn user has."""

import numpy as np
import pytest

import modelreg
from conftest import fraud_data, need


def test_predict_proba_has_one_column_per_class_and_predict_gives_labels(forest, data):
    x, _ = data
    proba = forest.predict_proba(x)
    assert proba.shape == (len(x), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(forest.predict(x), forest.classes_[(proba[:, 1] > 0.5).astype(int)])
    assert forest.n_features_in_ == 8
    assert list(forest.feature_names_in_) == ["v%d" % i for i in range(1, 9)]
    assert forest.task == "binary"


def test_float32_fortran_order_strided_and_list_inputs_give_the_same_answer(forest, data):
    x, _ = data
    x = x[:50]
    expected = forest.predict_proba(x)
    np.testing.assert_array_equal(forest.predict_proba(np.asfortranarray(x)), expected)
    wide = np.zeros((50, 16))
    wide[:, ::2] = x
    np.testing.assert_array_equal(forest.predict_proba(wide[:, ::2]), expected)
    np.testing.assert_array_equal(forest.predict_proba(x.tolist()), expected)
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(forest.predict_proba(x32), forest.predict_proba(x32.astype(np.float64)))


def test_string_classes_multiclass_and_regression():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 4))
    names = np.array(["low", "mid", "high"])[np.digitize(x[:, 0], [-0.5, 0.5])]
    m = modelreg.train("decision_tree", x, names, params={"max_depth": 4})
    assert m.task == "multiclass"
    assert list(m.classes_) == ["high", "low", "mid"]
    proba = m.predict_proba(x)
    assert proba.shape == (600, 3)
    assert set(m.predict(x)) <= {"high", "low", "mid"}
    assert (m.predict(x) == names).mean() > 0.95
    r = modelreg.train("linear_regression", x, 3.0 * x[:, 1] + 0.25, task="regression", params={"alpha": 1e-9})
    assert r.task == "regression"
    np.testing.assert_allclose(r.predict(x[:5]), 3.0 * x[:5, 1] + 0.25, atol=1e-6)
    with pytest.raises(AttributeError):
        r.classes_
    with pytest.raises(modelreg.InvalidArgument):
        r.predict_proba(x)


def test_a_row_of_the_wrong_width_or_a_1d_array_is_invalid_argument(forest):
    with pytest.raises(modelreg.InvalidArgument) as e:
        forest.predict(np.zeros((3, 5)))
    assert "5" in str(e.value) and "8" in str(e.value)
    with pytest.raises(ValueError):
        forest.predict(np.zeros(8))
    with pytest.raises(modelreg.InvalidArgument):
        forest.predict([["a"] * 8])


def test_nan_is_a_missing_value_refused_by_built_in_models_naming_row_and_column(forest):
    x = np.zeros((3, 8))
    x[2, 5] = np.nan
    with pytest.raises(modelreg.InvalidArgument) as e:
        forest.predict(x)
    assert "2" in str(e.value) and "5" in str(e.value)
    with pytest.raises(modelreg.InvalidArgument):
        forest.predict([[None] * 8])


def test_a_dataframe_is_matched_by_column_name_in_any_order(forest, data):
    pd = need("pandas")
    x, _ = data
    frame = pd.DataFrame(x[:20], columns=list(forest.feature_names_in_))
    shuffled = frame[list(reversed(frame.columns))]
    np.testing.assert_array_equal(forest.predict_proba(shuffled), forest.predict_proba(x[:20]))
    with pytest.raises(modelreg.InvalidArgument) as e:
        forest.predict(frame.drop(columns=["v3"]))
    assert "v3" in str(e.value)
    with pytest.raises(modelreg.InvalidArgument) as e:
        forest.predict(frame.assign(extra=1.0))
    assert "extra" in str(e.value)


def test_a_model_without_feature_names_reads_a_dataframe_by_position():
    pd = need("pandas")
    x, y = fraud_data(rows=400, features=4)
    m = modelreg.train("logistic_regression", x, y)
    assert list(m.feature_names_in_) == ["f0", "f1", "f2", "f3"]
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    np.testing.assert_array_equal(m.predict_proba(frame), m.predict_proba(x))


def test_xgboost_models_route_missing_values_as_xgboost_does(registry):
    xgboost = need("xgboost")
    x, y = fraud_data(rows=800, features=5)
    x[::7, 2] = np.nan
    clf = xgboost.XGBClassifier(n_estimators=15, max_depth=3).fit(x, y)
    v = registry.save_model(clf, "xgb", probe=x[:16])
    assert v.type_name == "xgboost_gbtree"
    assert v.params["xgboost_format"] == "json" and v.params["n_estimators"] == "15"
    assert v.datasets[0]["role"] == "xgboost_model"
    model, _ = registry.load_model(v.ref)
    assert model.handles_missing
    np.testing.assert_allclose(model.predict_proba(x), clf.predict_proba(x), atol=1e-6)
    np.testing.assert_array_equal(model.predict(x), clf.predict(x))
    booster_version = registry.save_model(clf.get_booster(), "xgb")
    assert booster_version.number == 2
    reg = xgboost.XGBRegressor(n_estimators=10).fit(np.nan_to_num(x), x[:, 0] * 0 + y * 2.0)
    r, _ = registry.load_model(registry.save_model(reg, "xgb-reg").ref)
    np.testing.assert_allclose(r.predict(np.nan_to_num(x)), reg.predict(np.nan_to_num(x)), atol=1e-5)
