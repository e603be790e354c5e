"""The lesson's behaviours through the registry: serialization integrity, compression, version
management, lineage, SQL, bundles and signing."""

import datetime
import sqlite3

import numpy as np
import pytest

import modelreg
from conftest import fraud_data, need


def test_a_saved_model_loads_back_validated_and_predicts_identically(registry, forest, data):
    x, _ = data
    v = registry.save_model(forest, "fraud", metrics={"f1": 0.8}, label="v1")
    model, loaded = registry.load_model("fraud@v1")
    assert loaded == v
    assert model.version == v
    assert model.type_name == "random_forest"
    np.testing.assert_array_equal(model.predict_proba(x), forest.predict_proba(x))
    np.testing.assert_array_equal(model.predict(x), forest.predict(x))
    assert list(model.feature_names_in_) == list(forest.feature_names_in_)


def test_the_stored_bytes_are_checksummed_and_a_flipped_byte_is_corruption(registry, db_path, forest):
    v = registry.save_model(forest, "fraud", compress=0)
    # Through the incremental blob API, which the schema's immutability triggers do not see: a
    # disk's bit flip, not a write the registry would allow.
    with sqlite3.connect(db_path) as c:
        (rowid,) = c.execute("SELECT c.rowid FROM blob_chunks c JOIN versions v ON v.blob_id = c.blob_id "
                             "WHERE v.number = 1 ORDER BY c.seq LIMIT 1").fetchone()
        with c.blobopen("blob_chunks", "data", rowid) as chunk:
            middle = len(chunk) // 2
            chunk.seek(middle)
            byte = chunk.read(1)[0]
            chunk.seek(middle)
            chunk.write(bytes([byte ^ 0x80]))
    with pytest.raises(modelreg.Corruption) as e:
        registry.load_model(v.ref)
    assert e.value.code == "corruption"
    assert "fraud@1" in str(e.value)
    assert not registry.check()["ok"]


def test_compression_level_3_stores_fewer_bytes_than_raw(tmp_path, forest):
    # Two registries: within one, identical bytes are stored once (the first level wins).
    with modelreg.Registry(tmp_path / "raw.db") as r:
        raw = r.save_model(forest, "fraud", compress=0)
    with modelreg.Registry(tmp_path / "packed.db") as r:
        packed = r.save_model(forest, "fraud", compress=3)
    assert raw.raw_size == packed.raw_size
    assert raw.stored_size >= raw.raw_size
    assert packed.stored_size < packed.raw_size / 1.5
    assert packed.blob["level"] == 3 and packed.blob["codec"] == "zstd"
    assert packed.compression_ratio > 1.5


def test_versions_are_numbered_and_queried_by_metric_tag_and_status(registry, forest, logistic):
    a = registry.save_model(logistic, "fraud", metrics={"f1": 0.6, "log_loss": 0.3}, tags={"team": "risk"})
    b = registry.save_model(forest, "fraud", metrics={"f1": 0.8, "log_loss": 0.2}, label="v2")
    c = registry.save_model(forest, "fraud", metrics={"f1": 0.7}, tags={"team": "ops"})
    assert [a.number, b.number, c.number] == [1, 2, 3]
    assert [v.number for v in registry.versions("fraud")] == [1, 2, 3]
    assert [v.number for v in registry.versions("fraud", where="f1 >= 0.7")] == [2, 3]
    assert [v.number for v in registry.versions("fraud", order_by="f1")] == [2, 3, 1]
    assert [v.number for v in registry.versions("fraud", order_by="f1", descending=False, limit=1)] == [1]
    assert [v.number for v in registry.versions("fraud", tag="team=risk")] == [1]
    assert [v.number for v in registry.versions("fraud", newest_first=True)] == [3, 2, 1]
    assert [v.number for v in registry.versions("fraud", newest_first=True, limit=1)] == [3]
    with pytest.raises(modelreg.InvalidArgument, match="newest_first"):
        registry.versions("fraud", newest_first=True, order_by="f1")
    assert [v.number for v in registry.versions("fraud", tag="team")] == [1, 3]
    registry.archive("fraud@3")
    assert [v.number for v in registry.versions("fraud", status="archived")] == [3]
    assert registry.models()[0]["model"] == "fraud"
    assert registry.models()[0]["versions"] == 3


def test_compare_reports_values_direction_and_improvement(registry, forest, logistic):
    registry.save_model(logistic, "fraud", metrics={"f1": 0.6, "log_loss": 0.3})
    registry.save_model(forest, "fraud", metrics={"f1": 0.8, "log_loss": 0.2})
    f1 = registry.compare("fraud@1", "fraud@2", metric="f1")
    assert f1["a"] == 0.6 and f1["b"] == 0.8
    assert f1["direction"] == "higher_is_better"
    assert f1["improvement"] == pytest.approx(0.2)
    every = registry.compare("fraud@1", "fraud@2")
    assert every["log_loss"]["direction"] == "lower_is_better"
    assert every["log_loss"]["improvement"] == pytest.approx(0.1)


def test_promote_guards_with_the_metric_direction_and_rollback_walks_back(registry, forest, logistic):
    registry.save_model(forest, "fraud", metrics={"f1": 0.8, "latency_ms": 5.0})
    registry.save_model(logistic, "fraud", metrics={"f1": 0.6, "latency_ms": 2.0})
    assert registry.promote("fraud@1", reason="first")["to_version"] == 1
    with pytest.raises(modelreg.Conflict):
        registry.promote("fraud@2", require_better="f1")
    with pytest.raises(modelreg.InvalidArgument):
        registry.promote("fraud@2", require_better="latency_ms")  # direction unknown
    t = registry.promote("fraud@2", require_better="latency_ms", direction="lower")
    assert (t["from_version"], t["to_version"]) == (1, 2)
    assert registry.get("fraud").number == 2 and registry.get("fraud@2").active
    assert registry.rollback("fraud")["to_version"] == 1
    kinds = [e["kind"] for e in registry.history("fraud")]
    assert kinds == ["register", "register", "promote", "promote", "rollback"]
    assert registry.history("fraud")[2]["reason"] == "first"


def test_archive_unarchive_delete_and_gc(registry, forest, logistic):
    registry.save_model(forest, "fraud")
    registry.save_model(logistic, "fraud")
    registry.promote("fraud@1")
    with pytest.raises(modelreg.Conflict):
        registry.archive("fraud@1")
    registry.archive("fraud@2", reason="worse")
    assert registry.get("fraud@2").status == "archived"
    registry.unarchive("fraud@2")
    registry.archive("fraud@2")
    registry.delete_version("fraud@2")
    assert registry.find("fraud@2") is None
    report = registry.gc()
    assert report["blobs_removed"] == 1 and report["bytes_freed"] > 0


def test_tags_lineage_and_datasets(registry, forest, logistic):
    parent = registry.save_model(logistic, "fraud", datasets=[{"uri": "s3://b/train.csv", "role": "train"}])
    child = registry.save_model(forest, "fraud", parents=[(parent, "retrained_from")], notes="deeper")
    assert child.parents == (("fraud@1", "retrained_from"),)
    assert parent.datasets[0]["uri"] == "s3://b/train.csv"
    assert registry.ancestors(child)[0]["parent"] == "fraud@1"
    assert registry.descendants("fraud@1")[0]["child"] == "fraud@2"
    registry.set_tags(child, {"stage": "canary", "owner": "ana"})
    registry.set_tags(child, remove=["owner"])
    assert dict(registry.get(child).tags) == {"stage": "canary"}
    with pytest.raises(modelreg.NotFound):
        registry.set_tags(child, remove=["owner"])


def test_version_attributes_are_read_only_and_created_at_is_aware_utc(registry, forest):
    v = registry.save_model(forest, "fraud", metrics={"f1": 0.75}, params={"trained_on": "2024-05-01"},
                            label="v1.0.0", notes="first")
    assert v.name == "fraud" and v.number == 1 and v.ref == "fraud@1" and v.label == "v1.0.0"
    assert v.format == "modelreg-model" and v.type_name == "random_forest" and v.task == "binary"
    assert v.classes == (0, 1)
    assert v.params["trained_on"] == "2024-05-01" and v.params["n_estimators"] == "20"
    assert v.features[:2] == ("v1", "v2") and v.feature_dtypes["v1"] == "float64"
    assert v.created_at.tzinfo == datetime.timezone.utc
    assert abs(datetime.datetime.now(datetime.timezone.utc) - v.created_at) < datetime.timedelta(minutes=5)
    assert v.status == "ready" and v.active is False and v.notes == "first"
    with pytest.raises(AttributeError):
        v.label = "other"
    with pytest.raises(TypeError):
        v.metrics["f1"] = 1.0
    text = repr(v)
    assert "fraud@1" in text and "random_forest" in text and "f1=0.75" in text
    assert v.as_dict()["blob"]["sha256"] == v.sha256


def test_opaque_bytes_and_files_round_trip(registry, tmp_path):
    v = registry.register_bytes(b"\x00onnx" * 1000, "detector", format="onnx", metrics={"auc": 0.9})
    assert registry.load_bytes(v.ref) == b"\x00onnx" * 1000
    source = tmp_path / "weights.bin"
    source.write_bytes(b"w" * 5000)
    w = registry.register_file(source, "detector", format="bytes")
    out = registry.get_file(w.ref, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == b"w" * 5000 and out == tmp_path / "out.bin"
    with pytest.raises(modelreg.AlreadyExists):
        registry.get_file(w.ref, tmp_path / "out.bin")
    with pytest.raises(modelreg.ValidationFailed):
        registry.load_model(v.ref)


def test_query_returns_rows_as_dicts(registry, forest):
    registry.save_model(forest, "fraud", metrics={"f1": 0.8})
    rows = registry.query("SELECT m.name AS model, v.number AS version FROM versions v JOIN models m ON m.id = v.model_id")
    assert rows == [{"model": "fraud", "version": 1}]
    with pytest.raises(modelreg.InvalidArgument):
        registry.query("DELETE FROM versions")


def test_a_bundle_carries_versions_to_another_registry(registry, forest, data, tmp_path):
    x, _ = data
    registry.save_model(forest, "fraud", metrics={"f1": 0.8}, label="v1")
    report = registry.export_bundle(["fraud@1"], tmp_path / "fraud.bundle")
    assert report["versions"] == ["fraud@1"]
    with modelreg.Registry(tmp_path / "other.db") as other:
        assert other.import_bundle(tmp_path / "fraud.bundle")["imported"] == ["fraud@1"]
        model, v = other.load_model("fraud@v1")
        np.testing.assert_array_equal(model.predict_proba(x), forest.predict_proba(x))


def test_a_signing_registry_signs_and_refuses_unsigned_versions(tmp_path, forest):
    key_file = tmp_path / "key"
    key = modelreg.create_signing_key(key_file)
    assert modelreg.read_signing_key(key_file) == key
    with modelreg.Registry(tmp_path / "r.db") as plain:
        plain.save_model(forest, "fraud")
    with modelreg.Registry(tmp_path / "r.db", signing_key=key_file) as signed:
        with pytest.raises(modelreg.ValidationFailed):
            signed.load_model("fraud@1")
        assert signed.sign("fraud@1").signature["algorithm"] == "hmac-sha256"
        signed.load_model("fraud@1")
        assert signed.save_model(forest, "fraud").signature is not None
    with modelreg.Registry(tmp_path / "r.db", signing_key=b"another key of enough bytes") as wrong:
        with pytest.raises(modelreg.ValidationFailed):
            wrong.load_model("fraud@2")


def test_read_only_registry_refuses_writes(db_path, forest):
    with modelreg.Registry(db_path) as r:
        r.save_model(forest, "fraud")
    with modelreg.Registry(db_path, read_only=True) as r:
        assert r.read_only and r.get("fraud@1").number == 1
        with pytest.raises(modelreg.Conflict):
            r.save_model(forest, "fraud")


def test_a_closed_registry_refuses_calls(db_path):
    r = modelreg.Registry(db_path)
    r.close()
    r.close()
    assert r.closed
    with pytest.raises(modelreg.Conflict):
        r.models()


def test_a_loaded_model_saves_again_with_its_features(registry, forest, data):
    x, _ = data
    registry.save_model(forest, "fraud")
    model, _ = registry.load_model("fraud@1")
    copy = registry.save_model(model, "fraud-copy", parents=["fraud@1"])
    assert copy.features == model.version.features and copy.sha256 == model.version.sha256
    again, _ = registry.load_model(copy.ref)
    np.testing.assert_array_equal(again.predict_proba(x), forest.predict_proba(x))


def test_a_scikit_learn_estimator_saves_as_a_native_version_with_its_names_and_params(registry):
    pd = need("pandas")
    need("sklearn")
    need("modelreg.sklearn")
    from sklearn.ensemble import RandomForestClassifier
    x, y = fraud_data(rows=600, features=5)
    frame = pd.DataFrame(x, columns=["amount", "hour", "age", "merchant", "distance"])
    rf = RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0).fit(frame, y)
    v = registry.save_model(rf, "fraud", metrics={"f1": 0.5})
    assert v.type_name == "sklearn.RandomForestClassifier" and v.format == "modelreg-model"
    assert v.features == ("amount", "hour", "age", "merchant", "distance")
    assert v.params["n_estimators"] == "10" and v.params["max_depth"] == "5"
    model, _ = registry.load_model(v.ref)
    shuffled = frame[["distance", "amount", "hour", "merchant", "age"]]
    np.testing.assert_allclose(model.predict_proba(shuffled), rf.predict_proba(frame), atol=1e-12)
    renamed = registry.save_model(rf, "fraud", features=["a", "b", "c", "d", "e"])
    assert renamed.features == ("a", "b", "c", "d", "e")


def test_aliases_move_guarded_roll_back_per_alias_and_show_in_the_history(registry, forest, logistic):
    registry.save_model(forest, "fraud", metrics={"f1": 0.8})
    registry.save_model(logistic, "fraud", metrics={"f1": 0.6})
    registry.promote("fraud@1")
    t = registry.set_alias("fraud@1", "champion", reason="best so far")
    assert t == {"model": "fraud", "from_version": None, "to_version": 1, "alias": "champion"}
    with pytest.raises(modelreg.Conflict):
        registry.set_alias("fraud@2", "champion", require_better="f1")
    registry.set_alias("fraud@2", "champion", reason="try it")
    assert registry.get("fraud@champion").number == 2
    listed = registry.aliases("fraud")
    assert [(a["alias"], a["version"]) for a in listed] == [("active", 1), ("champion", 2)]
    assert listed[1]["set_at"].tzinfo is not None
    assert [a["model"] for a in registry.aliases()] == ["fraud", "fraud"]
    # Rolled back per alias: active is untouched.
    assert registry.rollback("fraud", alias="champion")["to_version"] == 1
    assert registry.get("fraud").number == 1
    assert registry.remove_alias("fraud", "champion", reason="done") == 1
    with pytest.raises(modelreg.NotFound):
        registry.get("fraud@champion")
    with pytest.raises(modelreg.InvalidArgument):
        registry.set_alias("fraud@1", "latest")
    with pytest.raises(modelreg.InvalidArgument):
        registry.set_alias("fraud@1", "bad name")
    kinds = [(e["kind"], e.get("alias")) for e in registry.history("fraud")][-4:]
    assert [k for k, _ in kinds] == ["alias_set", "alias_set", "rollback", "alias_remove"]
