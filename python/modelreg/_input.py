"""Turning what a user passes as ``X`` into the C-contiguous float64 rows the library reads.

Accepted, as scikit-learn accepts them: a NumPy array (any float or integer dtype, any memory
layout; float32 is widened exactly), a list of rows, or a pandas DataFrame (columns matched to the
model's features by name, in any order). ``NaN`` or ``None`` is a missing value.
"""

import numpy as np

from ._errors import InvalidArgument


def _is_dataframe(x):
    # Without importing pandas: it need not be installed.
    return type(x).__module__.split(".")[0] == "pandas" and hasattr(x, "columns") and hasattr(x, "to_numpy")


def default_feature_names(n):
    return ["f%d" % i for i in range(n)]


def _dataframe_rows(frame, feature_names):
    columns = [str(c) for c in frame.columns]
    if feature_names:
        missing = [name for name in feature_names if name not in columns]
        if not missing:
            extra = [c for c in columns if c not in set(feature_names)]
            if extra:
                raise InvalidArgument(
                    "X has columns the model does not use: %s (its features: %s)"
                    % (", ".join(extra), ", ".join(feature_names)))
            frame = frame[[frame.columns[columns.index(name)] for name in feature_names]]
        elif list(feature_names) != default_feature_names(len(feature_names)):
            raise InvalidArgument(
                "X lacks the model's feature%s %s (columns given: %s)"
                % ("s" if len(missing) > 1 else "", ", ".join(missing), ", ".join(columns) or "none"))
        # A model without feature names (f0, f1, ...) reads the columns in order.
    try:
        values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as e:
        raise InvalidArgument("X holds a column that is not numeric: %s" % e) from None
    return np.ascontiguousarray(values)


def as_rows(x, feature_names=None):
    """``x`` as a 2-D C-contiguous float64 array; ``feature_names`` match a DataFrame's columns."""
    if _is_dataframe(x):
        return _dataframe_rows(x, list(feature_names or []))
    if isinstance(x, np.ndarray):
        array = x
    else:
        try:
            array = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InvalidArgument("X must be numbers: a 2-D array, a list of rows or a DataFrame (%s)" % e) from None
    if array.dtype.kind not in "fiub":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise InvalidArgument("X must be numbers, not %s (%s)" % (array.dtype, e)) from None
    if array.ndim != 2:
        raise InvalidArgument(
            "X must be 2-dimensional (rows x features), not %d-dimensional; "
            "reshape a single row with X.reshape(1, -1)" % array.ndim)
    return np.ascontiguousarray(array, dtype=np.float64)
