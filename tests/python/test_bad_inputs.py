"""Bad inputs are refused with the right exception and leave the registry exactly as it was
(every table dumped before and after)."""

import math

import numpy as np
import pytest

import modelreg
from conftest import dump, need


@pytest.fixture
def seeded(registry, db_path, forest):
    registry.save_model(forest, "fraud", metrics={"f1": 0.8}, label="v1")
    registry.promote("fraud@1")
    return registry


def refused(registry, db_path, exception, call):
    before = dump(db_path)
    with pytest.raises(exception) as e:
        call()
    assert dump(db_path) == before
    return e.value


def test_unsupported_objects_are_refused_listing_what_is_supported(seeded, db_path):
    for thing in [object(), "a string", {"weights": [1, 2]}, b"pickle bytes", None]:
        e = refused(seeded, db_path, modelreg.InvalidArgument, lambda: seeded.save_model(thing, "fraud"))
        assert "supported" in str(e) and "xgboost" in str(e).lower() and "modelreg.Model" in str(e)


def test_an_unfitted_xgboost_estimator_is_refused(seeded, db_path):
    xgboost = need("xgboost")
    e = refused(seeded, db_path, modelreg.InvalidArgument,
                lambda: seeded.save_model(xgboost.XGBClassifier(), "fraud"))
    assert "not fitted" in str(e)


def test_an_unfitted_scikit_learn_estimator_is_refused(seeded, db_path):
    need("sklearn")
    need("modelreg.sklearn")
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.neighbors import KNeighborsClassifier
    refused(seeded, db_path, modelreg.InvalidArgument, lambda: seeded.save_model(RandomForestClassifier(), "fraud"))
    x = np.random.default_rng(0).normal(size=(50, 8))
    knn = KNeighborsClassifier().fit(x, (x[:, 0] > 0).astype(int))
    e = refused(seeded, db_path, modelreg.InvalidArgument, lambda: seeded.save_model(knn, "fraud"))
    assert "KNeighborsClassifier" in str(e)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "0.9", None, True])
def test_a_metric_that_is_not_a_finite_number_is_refused(seeded, db_path, forest, value):
    e = refused(seeded, db_path, modelreg.InvalidArgument,
                lambda: seeded.save_model(forest, "fraud", metrics={"f1": 0.9, "auc": value}))
    assert "auc" in str(e)


def test_probe_rows_or_features_of_the_wrong_width_are_refused(seeded, db_path, forest):
    refused(seeded, db_path, modelreg.InvalidArgument,
            lambda: seeded.save_model(forest, "fraud", probe=np.zeros((4, 5))))
    refused(seeded, db_path, modelreg.InvalidArgument,
            lambda: seeded.save_model(forest, "fraud", features=["a", "b"]))
    refused(seeded, db_path, modelreg.InvalidArgument,
            lambda: seeded.save_model(forest, "fraud", features=["a"] * 8))


def test_bad_refs_names_and_labels_are_refused(seeded, db_path, forest):
    refused(seeded, db_path, modelreg.NotFound, lambda: seeded.save_model(forest, "fraud", parents=["fraud@9"]))
    refused(seeded, db_path, modelreg.InvalidArgument, lambda: seeded.save_model(forest, "fraud", parents=["no such!"]))
    refused(seeded, db_path, modelreg.InvalidArgument, lambda: seeded.save_model(forest, "bad name"))
    refused(seeded, db_path, modelreg.AlreadyExists, lambda: seeded.save_model(forest, "fraud", label="v1"))
    refused(seeded, db_path, modelreg.InvalidArgument, lambda: seeded.save_model(forest, "fraud", label="bad label"))
    refused(seeded, db_path, modelreg.NotFound, lambda: seeded.promote("fraud@7"))
    refused(seeded, db_path, modelreg.NotFound, lambda: seeded.promote("nope"))
    refused(seeded, db_path, ValueError, lambda: seeded.promote("fraud@"))
    refused(seeded, db_path, modelreg.NotFound, lambda: seeded.archive("fraud@v9"))
    refused(seeded, db_path, modelreg.Conflict, lambda: seeded.rollback("fraud"))


def test_bad_options_are_refused(seeded, db_path, forest):
    refused(seeded, db_path, modelreg.InvalidArgument, lambda: seeded.save_model(forest, "fraud", compress=99))
    refused(seeded, db_path, modelreg.InvalidArgument, lambda: seeded.save_model(forest, "fraud", compress="high"))
    refused(seeded, db_path, modelreg.InvalidArgument,
            lambda: seeded.save_model(forest, "fraud", datasets=[{"uri": "s3://x", "sha256": "xyz"}]))
    refused(seeded, db_path, modelreg.InvalidArgument, lambda: seeded.versions("fraud", where="f1 >> 3"))
    refused(seeded, db_path, modelreg.InvalidArgument, lambda: seeded.versions("fraud", status="gone"))
    refused(seeded, db_path, modelreg.InvalidArgument,
            lambda: seeded.promote("fraud@1", require_better="f1", direction="sideways"))
    refused(seeded, db_path, modelreg.InvalidArgument, lambda: seeded.register_bytes("text", "blob"))
