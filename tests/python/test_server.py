"""ModelServer: the library's hot swap inside a Python process. The test drives the watcher with
poll_now() (which waits for a poll in progress) instead of sleeping until a swap happens."""

import threading

import numpy as np
import pytest

import modelreg


def test_a_server_answers_with_the_active_version_and_swaps_on_promotion(db_path, forest, logistic, data):
    x, _ = data
    with modelreg.Registry(db_path) as r:
        r.save_model(forest, "fraud", metrics={"f1": 0.7})
        r.save_model(logistic, "fraud", metrics={"f1": 0.8})
        r.promote("fraud@1")
        with modelreg.ModelServer(db_path, "fraud", poll_ms=10) as server:
            server.poll_now()
            assert server.get_status()["serving_version"] == 1
            np.testing.assert_array_equal(server.predict(x[:100]), forest.predict(x[:100]))
            np.testing.assert_array_equal(server.predict_proba(x[:100]), forest.predict_proba(x[:100]))

            answers = [[], []]  # the version that answered each request, per client thread
            failures, stop = [], threading.Event()

            def client(mine):
                while not stop.is_set():
                    try:
                        mine.append(server.infer(x[:10])["version"])
                    except Exception as e:  # any failure is a dropped request
                        failures.append(e)

            clients = [threading.Thread(target=client, args=(mine,)) for mine in answers]
            for c in clients:
                c.start()
            promoter = threading.Thread(target=lambda: r.promote("fraud@2", require_better="f1"))
            promoter.start()
            promoter.join()
            server.poll_now()
            marks = [len(mine) for mine in answers]
            while min(len(mine) - mark for mine, mark in zip(answers, marks)) < 20:
                pass
            stop.set()
            for c in clients:
                c.join()

            status = server.get_status()
            assert failures == []
            assert status["serving_version"] == 2 and status["desired_version"] == 2
            assert status["swaps"] == 2  # the first load, then the promotion
            assert status["last_error"] is None
            assert status["requests_served"] == sum(len(mine) for mine in answers) + 2
            for mine, mark in zip(answers, marks):
                assert set(mine) <= {1, 2}
                # After the swap, a client's request already in flight may finish on the old
                # version; every later one is answered by the new.
                assert set(mine[mark + 1:]) == {2}
            np.testing.assert_array_equal(server.predict_proba(x[:100]), logistic.predict_proba(x[:100]))


def test_a_version_that_fails_to_load_never_replaces_the_serving_one(db_path, forest):
    with modelreg.Registry(db_path) as r:
        r.save_model(forest, "fraud")
        r.register_bytes(b"not a model", "fraud", format="onnx")
        r.promote("fraud@1")
        with modelreg.ModelServer(db_path, "fraud", poll_ms=10) as server:
            server.poll_now()
            r.promote("fraud@2")
            server.poll_now()
            status = server.get_status()
            assert status["serving_version"] == 1 and status["desired_version"] == 2
            assert "fraud@2" in status["last_error"]
            assert server.predict(np.zeros((1, 8))).shape == (1,)


def test_a_server_with_nothing_active_refuses_with_conflict_and_closes(db_path, forest):
    with modelreg.Registry(db_path) as r:
        r.save_model(forest, "fraud")
    server = modelreg.ModelServer(db_path, "fraud", poll_ms=10)
    server.poll_now()
    with pytest.raises(modelreg.Conflict):
        server.predict(np.zeros((1, 8)))
    assert server.get_status()["ready"] is False
    server.close()
    server.close()
    with pytest.raises(modelreg.Conflict):
        server.get_status()


def test_a_server_of_a_missing_database_is_refused(tmp_path):
    with pytest.raises(modelreg.Error):
        modelreg.ModelServer(tmp_path / "none.db", "fraud")


def test_a_server_follows_the_alias_it_is_given(db_path, forest, logistic):
    with modelreg.Registry(db_path) as r:
        r.save_model(forest, "fraud")
        r.save_model(logistic, "fraud")
        r.promote("fraud@1")
        r.set_alias("fraud@2", "champion")
        with modelreg.ModelServer(db_path, "fraud", poll_ms=10, alias="champion") as server:
            server.poll_now()
            assert server.get_status()["serving_version"] == 2
            r.set_alias("fraud@1", "champion")
            r.promote("fraud@2")  # active moves too; the server follows champion only
            server.poll_now()
            assert server.get_status()["serving_version"] == 1
    with pytest.raises(modelreg.InvalidArgument):
        modelreg.ModelServer(db_path, "fraud", alias="7")
