"""Model: a native model with scikit-learn's conventions (``predict``, ``predict_proba``,
``n_features_in_``, ``feature_names_in_``, ``classes_``)."""

import numpy as np

from ._errors import InvalidArgument
from ._input import as_rows, default_feature_names


class Model:
    """A trained model of the C++ library, as ``Registry.load_model`` returns it.

    Code written for a scikit-learn estimator keeps working:

    >>> model, version = registry.load_model("fraud")   # doctest: +SKIP
    >>> model.predict_proba(X_test)[:, 1]               # doctest: +SKIP
    >>> model.classes_                                  # doctest: +SKIP
    array([0, 1])

    ``X`` is a 2-D NumPy array (float64 or float32, any layout), a list of rows, or a pandas
    DataFrame (columns matched to ``feature_names_in_`` by name, in any order). ``NaN`` is a
    missing value: models that route missing values (XGBoost) accept it, the others refuse it with
    InvalidArgument naming the row and column. Prediction of a batch releases the GIL.

    Immutable, and safe to use from many threads at once.
    """

    __slots__ = ("_native", "_version")

    def __init__(self, native, version=None):
        self._native = native
        self._version = version

    @property
    def version(self):
        """The Version this model was loaded from (None for a model not loaded from a registry)."""
        return self._version

    @property
    def type_name(self):
        """The native type (``random_forest``, ``xgboost_gbtree``, ...)."""
        return self._native.type_name

    @property
    def task(self):
        """``"binary"``, ``"multiclass"`` or ``"regression"``."""
        return self._native.task

    @property
    def n_features_in_(self):
        return self._native.n_features

    @property
    def feature_names_in_(self):
        """The input columns, in order (an object array, as scikit-learn's)."""
        names = list(self._native.feature_names) or default_feature_names(self._native.n_features)
        return np.asarray(names, dtype=object)

    @property
    def classes_(self):
        """The class labels in output order; AttributeError for a regression model."""
        classes = self._native.classes
        if classes is None:
            raise AttributeError("a regression model has no classes_")
        return np.asarray(classes)

    @property
    def handles_missing(self):
        """Whether NaN inputs are routed (True) or refused (False)."""
        return self._native.handles_missing

    @property
    def hyperparameters(self):
        return dict(self._native.hyperparameters)

    def _outputs(self, x):
        return self._native.predict(as_rows(x, list(self._native.feature_names)))

    def predict(self, X):
        """Classifiers: the predicted label of each row (from ``classes_``); regression: the value."""
        outputs, indexes = self._outputs(X)
        if indexes is None:
            return outputs[:, 0].copy()
        return self.classes_[indexes]

    def predict_proba(self, X):
        """Class probabilities, one column per class of ``classes_`` (binary: two columns)."""
        if self._native.task == "regression":
            raise InvalidArgument("predict_proba needs a classifier; this model's task is regression (use predict)")
        outputs, _ = self._outputs(X)
        if self._native.task == "binary":
            positive = outputs[:, 0]
            return np.column_stack((1.0 - positive, positive))
        return outputs

    def __repr__(self):
        text = "<Model %s %s n_features=%d" % (self.type_name, self.task, self.n_features_in_)
        if self._native.classes is not None:
            text += " classes=%s" % list(self._native.classes)
        if self._version is not None:
            text += " from %s" % self._version.ref
        return text + ">"
