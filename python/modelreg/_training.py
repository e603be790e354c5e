"""The library's built-in trainers and metrics from Python: ``modelreg.train`` and ``modelreg.evaluate``."""

import numpy as np

from . import _modelreg
from ._errors import InvalidArgument
from ._input import as_rows
from ._model import Model


def _target(y, task, classes=None):
    """(task, classes, class indexes, values) of a target, as the C++ side takes them."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise InvalidArgument("y must be 1-dimensional, one target per row")
    if task is None:
        if y.dtype.kind == "f" and not np.all(np.mod(y[np.isfinite(y)], 1) == 0):
            task = "regression"
        else:
            task = "binary" if len(np.unique(y)) <= 2 else "multiclass"
    empty_index = np.zeros(0, dtype=np.int64)
    if task == "regression":
        return task, None, empty_index, np.asarray(y, dtype=np.float64)
    if classes is None:
        labels, indexes = np.unique(y, return_inverse=True)
    else:
        labels = np.asarray(classes)
        lookup = {label: i for i, label in enumerate(labels.tolist())}
        try:
            indexes = np.asarray([lookup[v] for v in y.tolist()], dtype=np.int64)
        except KeyError as e:
            raise InvalidArgument("y holds %r, which is not one of the model's classes %s"
                                  % (e.args[0], labels.tolist())) from None
    if labels.dtype.kind in "iub" or (labels.dtype.kind == "f" and np.all(np.mod(labels, 1) == 0)):
        class_list = [int(v) for v in labels.tolist()]
    else:
        class_list = [str(v) for v in labels.tolist()]
    return task, class_list, np.asarray(indexes, dtype=np.int64), np.zeros(0)


def train(type, X, y, *, params=None, feature_names=None, task=None):
    """Trains one of the library's built-in model types and returns a :class:`Model`.

    ``type``: ``logistic_regression``, ``decision_tree``, ``random_forest``,
    ``gradient_boosted_trees`` or ``linear_regression``; ``params`` their hyperparameters (see
    ``modelreg train --help``). The task follows ``y`` (two labels: binary, more: multiclass,
    fractions: regression) unless ``task`` says. Training releases the GIL.

    >>> model = modelreg.train("random_forest", X, y, params={"n_estimators": 50})  # doctest: +SKIP
    """
    if hasattr(X, "columns") and feature_names is None:
        feature_names = [str(c) for c in X.columns]
    rows = as_rows(X)
    task, classes, indexes, values = _target(y, task)
    text_params = {str(k): ("true" if v is True else "false" if v is False else str(v))
                   for k, v in (params or {}).items()}
    native = _modelreg.train(str(type), rows, task, classes, indexes, values, text_params,
                             [str(n) for n in feature_names] if feature_names is not None else [])
    return Model(native)


def evaluate(model, X, y):
    """The metrics of the model's task on labelled rows (binary: accuracy, precision, recall, f1,
    roc_auc, log_loss; multiclass: accuracy, f1_macro, log_loss, ...; regression: rmse, mae, r2)."""
    if not isinstance(model, Model):
        raise InvalidArgument("evaluate needs a modelreg.Model, not %s" % type(model).__name__)
    native = model._native
    rows = as_rows(X, list(native.feature_names))
    classes = native.classes
    task, class_list, indexes, values = _target(y, native.task, classes)
    return _modelreg.evaluate(native, rows, task, class_list, indexes, values)


def known_direction(metric):
    """``"higher_is_better"``, ``"lower_is_better"`` or None (unknown: say it when promoting)."""
    return _modelreg.known_direction(str(metric))
