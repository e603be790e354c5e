"""Long calls release the GIL: a counting Python thread keeps running while they work. Were the
GIL held for the whole call, the counter would stand still until it returned."""

import sys
import threading
import time

import numpy as np
import pytest

import modelreg


class Counter:
    def __init__(self):
        self.count = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run)

    def _run(self):
        while not self._stop:
            self.count += 1

    def __enter__(self):
        self._thread.start()
        while self.count == 0:
            time.sleep(0.001)
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()


def progress_during(call):
    """How far the counter got while `call` ran, how long it ran, and how far it gets alone in
    one switch interval (the most it can get while another thread holds the GIL)."""
    with Counter() as counter:
        start = counter.count
        time.sleep(0.05)  # sleeping releases the GIL: the counter runs alone
        per_interval = (counter.count - start) / 0.05 * sys.getswitchinterval()
        before = counter.count
        started = time.perf_counter()
        call()
        seconds = time.perf_counter() - started
        return counter.count - before, seconds, per_interval


def assert_other_threads_ran(call):
    progress, seconds, per_interval = progress_during(call)
    assert seconds > 0.1, "the call was too short to tell (%.3f s)" % seconds
    # Were the GIL held throughout, the counter could run only in the switch intervals around the
    # call (one or two); released, it runs for much of the call, even on busy cores.
    assert progress > 8 * per_interval, "the counter advanced %d in %.2f s (%d in a switch interval)" % (
        progress, seconds, per_interval)


@pytest.fixture(scope="module")
def big_forest():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20_000, 10))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0.5).astype(int)
    return modelreg.train("random_forest", x, y, params={"n_estimators": 60, "seed": 3})


def test_saving_large_bytes_releases_the_gil(registry):
    content = np.random.default_rng(0).integers(0, 16, size=32 << 20, dtype=np.uint8).tobytes()
    assert_other_threads_ran(lambda: registry.register_bytes(content, "big", compress=9))


def test_saving_and_loading_a_model_releases_the_gil(registry, big_forest):
    assert_other_threads_ran(lambda: [registry.save_model(big_forest, "forest", compress=19) for _ in range(1)])
    assert_other_threads_ran(lambda: [registry.load_model("forest@1") for _ in range(20)])


def test_predicting_a_batch_releases_the_gil(big_forest):
    x = np.random.default_rng(2).normal(size=(150_000, 10))
    assert_other_threads_ran(lambda: big_forest.predict_proba(x))


def test_training_releases_the_gil():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(30_000, 10))
    y = (x[:, 0] + rng.normal(size=30_000) > 0).astype(int)
    assert_other_threads_ran(lambda: modelreg.train("random_forest", x, y, params={"n_estimators": 40}))
