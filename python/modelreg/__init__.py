"""modelreg: an embedded, SQLite-backed registry for machine-learning models.

>>> import modelreg
>>> with modelreg.Registry("models.db") as registry:                 # doctest: +SKIP
...     v = registry.save_model(clf, "fraud", metrics={"f1": 0.91}, label="v1")
...     registry.promote(v.ref)
...     model, version = registry.load_model("fraud")
...     model.predict_proba(X)

See README.md, "Python API".
"""

from . import _modelreg  # noqa: F401  (the compiled part; errors translate through _errors)
from ._errors import (AlreadyExists, Busy, Conflict, Corruption, Error, Incompatible, InvalidArgument, IoError,
                      NotFound, ValidationFailed)
from ._model import Model
from ._registry import Registry
from ._server import ModelServer
from ._training import evaluate, known_direction, train
from ._version import Version


def read_signing_key(path):
    """The key in a key file (mode 0600, at least 16 bytes), as bytes."""
    import os
    return _modelreg.read_signing_key(os.fspath(path))


def create_signing_key(path):
    """Writes a new random key file (mode 0600; never over an existing file); returns the key."""
    import os
    return _modelreg.create_signing_key(os.fspath(path))


__all__ = [
    "Registry", "Version", "Model", "ModelServer",
    "Error", "NotFound", "AlreadyExists", "InvalidArgument", "Corruption", "ValidationFailed", "Conflict",
    "Busy", "IoError", "Incompatible",
    "train", "evaluate", "known_direction", "read_signing_key", "create_signing_key",
]
