"""scikit-learn estimators in, as native models: never a pickle.

``convert(estimator)`` reads a fitted estimator's arrays (``coef_``, ``tree_``, ``estimators_``,
...) and builds a native model of the C++ library that predicts what the estimator predicts, in
scikit-learn 1.2's own arithmetic (``modelreg/sklearn.hpp`` says how). ``Registry.save_model``
calls it for every object that is not already a native model:

>>> from sklearn.ensemble import RandomForestClassifier              # doctest: +SKIP
>>> rf = RandomForestClassifier(n_estimators=100).fit(X, y)           # doctest: +SKIP
>>> registry.save_model(rf, "fraud")                                  # doctest: +SKIP
>>> model = modelreg.sklearn.convert(rf)["model"]                     # doctest: +SKIP

Supported: LogisticRegression, LinearRegression, Ridge, DecisionTreeClassifier/Regressor,
RandomForestClassifier/Regressor, ExtraTreesClassifier/Regressor,
GradientBoostingClassifier/Regressor, HistGradientBoostingClassifier/Regressor, and a Pipeline of
StandardScaler or MinMaxScaler steps followed by one of them. Anything else — an unfitted
estimator, another class, multi-output targets, categorical splits — is InvalidArgument saying
what is supported; nothing is ever pickled.

Only public fitted attributes are read, except HistGradientBoosting's ``_predictors`` and
``_baseline_prediction``, which are the fitted model itself.
"""

import numbers

import numpy as np

from . import _modelreg
from ._errors import InvalidArgument

__all__ = ["convert", "supported"]

_SCALERS = ("StandardScaler", "MinMaxScaler")


def supported():
    """What ``convert`` takes, as text."""
    return _modelreg.sklearn_supported()


def _refuse(what):
    raise InvalidArgument("%s; modelreg converts %s" % (what, supported()))


def _class_name(obj):
    """scikit-learn's class name of ``obj``, or None when it is not one of scikit-learn's own."""
    cls = type(obj)
    if not cls.__module__.startswith("sklearn."):
        return None
    return cls.__name__


def _check_fitted(estimator):
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise InvalidArgument("the %s is not fitted: call fit() before saving it" % type(estimator).__name__) from None


def _text(value):
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    return repr(value)


def _params(estimator, prefix=""):
    out = {}
    for key, value in estimator.get_params(deep=False).items():
        out[prefix + key] = _text(value)
    return out


def _labels(classes):
    """classes_ as a list of ints or of strs."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "iub":
        return [int(c) for c in classes]
    if classes.dtype.kind == "f":
        if np.all(np.isfinite(classes)) and np.all(classes == np.round(classes)):
            return [int(c) for c in classes]
        _refuse("class labels %s are not whole numbers or strings" % list(classes))
    if all(isinstance(c, str) for c in classes.tolist()):
        return [str(c) for c in classes.tolist()]
    _refuse("class labels of type %s are not whole numbers or strings" % classes.dtype)


def _single_output(estimator):
    if getattr(estimator, "n_outputs_", 1) != 1:
        _refuse("the %s predicts %d outputs; one is supported" % (type(estimator).__name__, estimator.n_outputs_))


# ---- the estimator families

def _linear(est, name, spec):
    coef = np.asarray(est.coef_, dtype=np.float64)
    intercept = np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64))
    if name == "LogisticRegression":
        classes = _labels(est.classes_)
        ovr = est.multi_class in ("ovr", "warn") or (
            est.multi_class == "auto" and (len(classes) <= 2 or est.solver == "liblinear"))
        if len(classes) == 2:
            spec["link"] = "expit" if ovr else "softmax_binary"
        else:
            spec["link"] = "ovr" if ovr else "softmax"
        spec["classes"] = classes
    else:
        if coef.ndim == 2 and coef.shape[0] != 1:
            _refuse("the %s predicts %d targets; one is supported" % (name, coef.shape[0]))
        spec["link"] = "identity"
        spec["classes"] = None
    spec["coef"] = coef.reshape(-1)
    spec["intercept"] = intercept


def _normalized(value):
    """A classifier tree's tree_.value[:, 0, :] as predict_proba normalizes it."""
    proba = np.array(value[:, 0, :], dtype=np.float64)
    normalizer = proba.sum(axis=1)[:, np.newaxis]
    normalizer[normalizer == 0.0] = 1.0
    proba /= normalizer
    return proba


def _tree(tree_, classifier):
    values = _normalized(tree_.value) if classifier else np.asarray(tree_.value[:, 0, 0], dtype=np.float64)
    return {
        "left": tree_.children_left, "right": tree_.children_right, "feature": tree_.feature,
        "threshold": tree_.threshold, "values": values,
    }


def _trees(est, name, spec):
    classifier = name.endswith("Classifier")
    _single_output(est)
    trees = [est] if name.startswith("DecisionTree") else list(est.estimators_)
    for t in trees:
        if getattr(t, "n_outputs_", 1) != 1 or t.tree_.n_outputs != 1:
            _refuse("a tree of the %s predicts several outputs; one is supported" % name)
    spec["trees"] = [_tree(t.tree_, classifier) for t in trees]
    spec["classes"] = _labels(est.classes_) if classifier else None
    spec["link"] = "identity"


def _gradient_boosting(est, name, spec):
    from sklearn.dummy import DummyClassifier, DummyRegressor
    classifier = name.endswith("Classifier")
    estimators = est.estimators_
    k = estimators.shape[1]
    n_features = est.n_features_in_
    zero_row = np.zeros((1, n_features))
    eps = np.finfo(np.float32).eps
    init = est.init_
    if classifier:
        classes = _labels(est.classes_)
        spec["classes"] = classes
        if est.loss == "exponential":
            spec["link"] = "expit_twice"
        elif est.loss in ("log_loss", "deviance"):
            spec["link"] = "expit" if len(classes) == 2 else "softmax"
        else:
            _refuse("GradientBoostingClassifier(loss=%r) is not supported" % est.loss)
        if isinstance(init, str) and init == "zero":
            raw = np.zeros(k)
        elif type(init) is DummyClassifier and init.strategy != "stratified":
            # The constant raw prediction, as the loss's get_init_raw_predictions computes it.
            probas = init.predict_proba(zero_row)
            if len(classes) == 2:
                p = np.clip(probas[:, 1], eps, 1 - eps)
                raw = np.log(p / (1 - p))
                if est.loss == "exponential":
                    raw = 0.5 * raw
            else:
                raw = np.log(np.clip(probas, eps, 1 - eps)).astype(np.float64)
            raw = np.asarray(raw, dtype=np.float64).reshape(-1)
        else:
            _refuse("GradientBoostingClassifier's init %r is not supported (only the default prior, a "
                    "DummyClassifier, or 'zero')" % (init,))
    else:
        spec["classes"] = None
        spec["link"] = "identity"
        if isinstance(init, str) and init == "zero":
            raw = np.zeros(1)
        elif type(init) is DummyRegressor:
            raw = np.asarray(init.predict(zero_row), dtype=np.float64).reshape(-1)
        else:
            _refuse("GradientBoostingRegressor's init %r is not supported (only the default, a DummyRegressor, "
                    "or 'zero')" % (init,))
    spec["init"] = raw
    spec["learning_rate"] = float(est.learning_rate)
    spec["trees"] = [_tree(estimators[i, j].tree_, False) for i in range(estimators.shape[0]) for j in range(k)]


def _hist_gradient_boosting(est, name, spec):
    classifier = name.endswith("Classifier")
    if est.is_categorical_ is not None and np.any(est.is_categorical_):
        _refuse("the %s has categorical features; only numerical splits are supported" % name)
    if classifier:
        classes = _labels(est.classes_)
        spec["classes"] = classes
        spec["link"] = "expit" if len(classes) == 2 else "softmax"
    else:
        spec["classes"] = None
        if est.loss in ("squared_error", "absolute_error", "quantile"):
            spec["link"] = "identity"
        elif est.loss == "poisson":
            spec["link"] = "exp"
        else:
            _refuse("HistGradientBoostingRegressor(loss=%r) is not supported" % (est.loss,))
    trees = []
    for iteration in est._predictors:
        for predictor in iteration:
            nodes = predictor.nodes
            if np.any(nodes["is_categorical"]):
                _refuse("the %s has categorical splits; only numerical splits are supported" % name)
            leaf = nodes["is_leaf"].astype(bool)
            trees.append({
                "left": np.where(leaf, -1, nodes["left"].astype(np.int64)),
                "right": np.where(leaf, -1, nodes["right"].astype(np.int64)),
                "feature": nodes["feature_idx"], "threshold": nodes["num_threshold"],
                "missing_go_to_left": nodes["missing_go_to_left"], "values": nodes["value"],
            })
    spec["trees"] = trees
    spec["init"] = np.asarray(est._baseline_prediction, dtype=np.float64).reshape(-1)


_FAMILIES = {
    "LogisticRegression": _linear, "LinearRegression": _linear, "Ridge": _linear,
    "DecisionTreeClassifier": _trees, "DecisionTreeRegressor": _trees,
    "RandomForestClassifier": _trees, "RandomForestRegressor": _trees,
    "ExtraTreesClassifier": _trees, "ExtraTreesRegressor": _trees,
    "GradientBoostingClassifier": _gradient_boosting, "GradientBoostingRegressor": _gradient_boosting,
    "HistGradientBoostingClassifier": _hist_gradient_boosting,
    "HistGradientBoostingRegressor": _hist_gradient_boosting,
}


def _scaler(step, name):
    _check_fitted(step)
    n = step.n_features_in_
    if name == "StandardScaler":
        offset = step.mean_ if step.with_mean and step.mean_ is not None else np.zeros(n)
        scale = step.scale_ if step.with_std and step.scale_ is not None else np.ones(n)
        return {"kind": "standard", "offset": offset, "scale": scale}
    return {"kind": "min_max", "offset": step.min_, "scale": step.scale_,
            "clip": tuple(float(v) for v in step.feature_range) if step.clip else None}


def convert(estimator, feature_names=None):
    """A fitted scikit-learn estimator (or Pipeline of scalers and one) as a native model.

    Returns a dict: ``model`` (the native model, as ``Registry.save_model`` stores it),
    ``type_name`` (``"sklearn.<class>"``), ``params`` (``get_params()`` as text; a Pipeline's step
    parameters prefixed ``<step>__``, and ``pipeline`` naming the steps) and ``features`` (the
    given ``feature_names``, else the estimator's ``feature_names_in_``, else None).
    Raises InvalidArgument for anything unsupported or unfitted; ValidationFailed when the fitted
    arrays are inconsistent.
    """
    top = estimator
    scalers, params, steps = [], {}, []
    name = _class_name(estimator)
    if name == "Pipeline":
        if not estimator.steps:
            _refuse("the Pipeline has no steps")
        *head, (last_name, last) = estimator.steps
        for step_name, step in head:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                continue
            kind = _class_name(step)
            if kind not in _SCALERS:
                _refuse("the Pipeline step %r is a %s, not a StandardScaler or MinMaxScaler"
                        % (step_name, type(step).__name__))
            scalers.append(_scaler(step, kind))
            params.update(_params(step, step_name + "__"))
            steps.append(kind)
        estimator = last
        name = _class_name(estimator)
        if name is None or name not in _FAMILIES:
            _refuse("the Pipeline ends in %s" % type(estimator).__name__)
        params.update(_params(estimator, last_name + "__"))
        params["pipeline"] = " -> ".join(steps + [name])
    elif name is None or name not in _FAMILIES:
        _refuse("cannot convert %s.%s" % (type(estimator).__module__, type(estimator).__name__))
    else:
        params.update(_params(estimator))
    _check_fitted(estimator)

    n_features = int(estimator.n_features_in_)
    for s in scalers:
        if len(s["offset"]) != n_features:
            _refuse("a scaler of the Pipeline has %d features but its estimator %d" % (len(s["offset"]), n_features))
    names = feature_names
    if names is None:
        found = getattr(top, "feature_names_in_", None)
        if found is None:
            found = getattr(estimator, "feature_names_in_", None)
        names = [str(n) for n in found] if found is not None else None
    if names is not None:
        names = list(names)
        if len(names) != n_features:
            raise InvalidArgument("%d feature names for a model of %d features" % (len(names), n_features))

    spec = {"estimator": name, "n_features": n_features, "scalers": scalers, "params": params,
            "feature_names": names}
    _FAMILIES[name](estimator, name, spec)
    native = _modelreg.sklearn_model(spec)
    return {"model": native, "type_name": native.type_name, "params": params, "features": names}

