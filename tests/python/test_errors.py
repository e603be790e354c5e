"""Every library error code is a modelreg.Error subclass with .code, and the builtin it resembles."""

import pickle
import sqlite3

import pytest

import modelreg


@pytest.mark.parametrize("cls, code, builtin", [
    (modelreg.NotFound, "not_found", KeyError),
    (modelreg.AlreadyExists, "already_exists", None),
    (modelreg.InvalidArgument, "invalid_argument", ValueError),
    (modelreg.Corruption, "corruption", None),
    (modelreg.ValidationFailed, "validation_failed", None),
    (modelreg.Conflict, "conflict", None),
    (modelreg.Busy, "busy", None),
    (modelreg.IoError, "io_error", OSError),
    (modelreg.Incompatible, "incompatible", None),
])
def test_each_code_has_its_class(cls, code, builtin):
    e = cls("fraud@7: something")
    assert isinstance(e, modelreg.Error) and e.code == code
    assert str(e) == "fraud@7: something"
    if builtin is not None:
        assert isinstance(e, builtin)
    again = pickle.loads(pickle.dumps(e))
    assert type(again) is cls and str(again) == str(e)


def test_not_found_is_a_key_error_with_a_helpful_message(registry, forest):
    with pytest.raises(KeyError) as e:
        registry.get("fraud")
    assert e.value.code == "not_found" and "fraud" in str(e.value)
    registry.save_model(forest, "fraud")
    with pytest.raises(modelreg.NotFound) as e:
        registry.get("fraud@9")
    assert "9" in str(e.value)
    assert registry.find("fraud@9") is None


def test_a_taken_label_is_already_exists(registry, forest):
    registry.save_model(forest, "fraud", label="v1")
    with pytest.raises(modelreg.AlreadyExists) as e:
        registry.save_model(forest, "fraud", label="v1")
    assert e.value.code == "already_exists"


def test_a_bad_ref_or_name_is_invalid_argument(registry, forest):
    for ref in ["", "fraud@", "@3", "bad name", "fraud@-1"]:
        with pytest.raises(ValueError):
            registry.get(ref)
    with pytest.raises(modelreg.InvalidArgument):
        registry.save_model(forest, "no spaces allowed")
    with pytest.raises(modelreg.InvalidArgument):
        registry.get(7)


def test_promoting_an_archived_version_is_conflict(registry, forest):
    registry.save_model(forest, "fraud")
    registry.archive("fraud@1")
    with pytest.raises(modelreg.Conflict):
        registry.promote("fraud@1")


def test_a_newer_schema_is_incompatible_for_writes(db_path, forest):
    with modelreg.Registry(db_path) as r:
        r.save_model(forest, "fraud")
    with sqlite3.connect(db_path) as c:
        c.execute("PRAGMA user_version = 999")
    with modelreg.Registry(db_path) as r:
        assert r.get("fraud@1").number == 1
        with pytest.raises(modelreg.Incompatible) as e:
            r.save_model(forest, "fraud")
        assert "999" in str(e.value)


def test_a_file_that_is_not_a_registry_is_corruption(tmp_path):
    path = tmp_path / "not.db"
    path.write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(modelreg.Corruption):
        modelreg.Registry(path)


def test_an_unreadable_directory_is_io_error(tmp_path):
    with pytest.raises(modelreg.Error) as e:
        modelreg.Registry(tmp_path / "missing-dir" / "r.db")
    assert e.value.code in ("io_error", "not_found")
