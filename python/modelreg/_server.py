"""ModelServer: the library's hot-swapping model server inside a Python process."""

import os

from . import _modelreg
from ._input import as_rows
from ._registry import _signing_key


class ModelServer:
    """Serves the active version of one model (or the version ``alias`` points at: ``"champion"``,
    ``"latest"``) and follows promotions (hot swap).

    A watcher thread (C++) polls the registry every ``poll_ms``; a newly promoted version is
    loaded and validated off the request path and swapped in atomically, so ``predict`` never
    waits for a load. A version that fails to load never replaces the serving one
    (``get_status()["last_error"]`` says why).

    >>> with modelreg.ModelServer("models.db", "fraud") as server:   # doctest: +SKIP
    ...     server.predict(X)
    ...     server.get_status()["requests_served"]

    ``predict`` may be called from many threads at once; it releases the GIL.
    """

    def __init__(self, path, name, *, poll_ms=100, signing_key=None, alias="active"):
        self._handle = _modelreg.ServerHandle(os.fspath(path), name, int(poll_ms), _signing_key(signing_key),
                                              str(alias))
        self._name = name

    @property
    def name(self):
        return self._name

    def infer(self, X):
        """The whole answer: a dict with task, classes, rows, version (that answered), and
        ``probabilities`` + ``labels`` (class indexes) for a classifier or ``values``."""
        return self._handle.predict(as_rows(X, self._handle.features()))

    def predict(self, X):
        """As ``Model.predict``: the labels of a classifier, the values of a regression model."""
        answer = self.infer(X)
        if answer["task"] == "regression":
            return answer["values"]
        import numpy as np
        return np.asarray(answer["classes"])[answer["labels"]]

    def predict_proba(self, X):
        """As ``Model.predict_proba``: one column per class (binary: two)."""
        import numpy as np
        answer = self.infer(X)
        if answer["task"] == "regression":
            from ._errors import InvalidArgument
            raise InvalidArgument("predict_proba needs a classifier; %s is a regression model" % self._name)
        p = answer["probabilities"]
        if answer["task"] == "binary":
            return np.column_stack((1.0 - p[:, 0], p[:, 0]))
        return p

    def get_status(self):
        """requests_served, serving_version, desired_version, swaps, last_error, ready, ... ."""
        return self._handle.status()

    def poll_now(self):
        """Checks for a new active version now, on this thread; True when it swapped."""
        return self._handle.poll_now()

    def close(self):
        """Stops the watcher thread. Idempotent."""
        self._handle.close()

    @property
    def closed(self):
        return self._handle.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return "<modelreg.ModelServer %s%s>" % (self._name, " closed" if self.closed else "")
