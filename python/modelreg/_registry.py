"""Registry: the modelreg registry (one SQLite file) from Python."""

import hashlib
import importlib
import importlib.util
import math
import numbers
import os

from . import _modelreg
from ._errors import InvalidArgument
from ._input import as_rows
from ._model import Model
from ._version import Version, parse_time

# What save_model takes besides scikit-learn estimators (modelreg.sklearn lists those).
_SUPPORTED_HERE = ("a modelreg.Model (from Registry.load_model)",
                   "xgboost.Booster, xgboost.XGBClassifier, xgboost.XGBRegressor")

_XGBOOST_SOURCE_ROLE = "xgboost_model"  # as import_xgboost (modelreg/xgboost_import.hpp)


def _signing_key(key):
    """bytes: the key itself; a str or path: a key file (read as `modelreg --signing-key` does)."""
    if key is None:
        return None
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    if isinstance(key, (str, os.PathLike)):
        return _modelreg.read_signing_key(os.fspath(key))
    raise InvalidArgument("signing_key must be bytes (the key) or a path to a key file, not %s" % type(key).__name__)


def _text_map(values, what):
    if values is None:
        return {}
    if not hasattr(values, "items"):
        raise InvalidArgument("%s must be a dict, not %s" % (what, type(values).__name__))
    return {str(k): _text(v) for k, v in values.items()}


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    return str(value)


def _metrics(values):
    if values is None:
        return {}
    if not hasattr(values, "items"):
        raise InvalidArgument("metrics must be a dict of name -> number, not %s" % type(values).__name__)
    out = {}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InvalidArgument("metric %s must be a number, not %r" % (name, value))
        value = float(value)
        if not math.isfinite(value):
            raise InvalidArgument("metric %s must be finite, not %r" % (name, value))
        out[str(name)] = value
    return out


def _features(features):
    """Names, or (name, dtype) pairs → [(name, dtype)]."""
    if features is None:
        return None
    if isinstance(features, str):
        raise InvalidArgument("features must be a list of names, not one string")
    out = []
    for f in features:
        if isinstance(f, str):
            out.append((f, "float64"))
        elif isinstance(f, (tuple, list)) and len(f) == 2:
            out.append((str(f[0]), str(f[1])))
        else:
            raise InvalidArgument("each feature must be a name or a (name, dtype) pair, not %r" % (f,))
    return out


def _parents(parents):
    if parents is None:
        return []
    if isinstance(parents, str):
        parents = [parents]
    out = []
    for p in parents:
        if isinstance(p, Version):
            out.append((p.ref, "derived_from"))
        elif isinstance(p, str):
            out.append((p, "derived_from"))
        elif isinstance(p, (tuple, list)) and len(p) == 2:
            ref = p[0].ref if isinstance(p[0], Version) else str(p[0])
            out.append((ref, str(p[1])))
        else:
            raise InvalidArgument("each parent must be a ref, a Version or a (ref, relation) pair, not %r" % (p,))
    return out


def _datasets(datasets):
    if datasets is None:
        return []
    if isinstance(datasets, str):
        datasets = [datasets]
    out = []
    for d in datasets:
        if isinstance(d, str):
            out.append((d, None, "train"))
        elif hasattr(d, "get"):
            out.append((str(d["uri"]), d.get("sha256"), str(d.get("role", "train"))))
        elif isinstance(d, (tuple, list)) and 1 <= len(d) <= 3:
            row = list(d) + [None, "train"][len(d) - 1:]
            out.append((str(row[0]), row[1], str(row[2])))
        else:
            raise InvalidArgument("each dataset must be a uri, a dict {uri, sha256, role} or a tuple, not %r" % (d,))
    return out


def _level(compress):
    if isinstance(compress, bool):
        return 3 if compress else 0
    if not isinstance(compress, numbers.Integral):
        raise InvalidArgument("compress must be a zstd level 0..19 (0: stored raw), not %r" % (compress,))
    return int(compress)


def _ref(ref):
    if isinstance(ref, Version):
        return ref.ref
    if not isinstance(ref, str):
        raise InvalidArgument("a ref must be a string such as 'fraud', 'fraud@7' or 'fraud@v1.2.0', not %r" % (ref,))
    return ref


def _direction(direction):
    if direction is None:
        return None
    names = {"higher": "higher_is_better", "higher_is_better": "higher_is_better",
             "lower": "lower_is_better", "lower_is_better": "lower_is_better"}
    if direction not in names:
        raise InvalidArgument("direction must be 'higher' or 'lower' (is better), not %r" % (direction,))
    return names[direction]


def _is_xgboost(obj):
    return type(obj).__module__.split(".")[0] == "xgboost"


def _xgboost_native(obj):
    """An XGBoost Booster or scikit-learn-style estimator → (NativeModel, params, datasets)."""
    booster = obj
    extra_params = {}
    if hasattr(obj, "get_booster"):
        try:
            booster = obj.get_booster()
        except Exception as e:  # xgboost raises NotFittedError (a ValueError/AttributeError)
            raise InvalidArgument("%s is not fitted: fit it before saving (%s)" % (type(obj).__name__, e)) from None
        for key, value in obj.get_params().items():
            if value is not None and isinstance(value, (str, numbers.Number)):
                extra_params[key] = _text(value)
    if not hasattr(booster, "save_raw"):
        raise InvalidArgument("%s is not an XGBoost Booster or estimator" % type(obj).__name__)
    raw = bytes(booster.save_raw(raw_format="json"))
    native, info = _modelreg.read_xgboost(raw)
    params = dict(extra_params)
    params["xgboost_version"] = "%d.%d.%d" % tuple(info["version"])
    params["xgboost_format"] = info["format"]
    source = "python:%s.%s" % (type(obj).__module__, type(obj).__name__)
    datasets = [(source, hashlib.sha256(raw).hexdigest(), _XGBOOST_SOURCE_ROLE)]
    return native, params, datasets


def _converted(result):
    """What modelreg.sklearn.convert returns → (NativeModel, type_name, params, features)."""
    if isinstance(result, _modelreg.NativeModel):
        return result, None, {}, None
    if isinstance(result, Model):
        return result._native, None, {}, None
    if isinstance(result, dict):
        get = result.get
    elif isinstance(result, tuple) and not hasattr(result, "_fields"):
        native, type_name, params, features = (list(result) + [None, None, None])[:4]
        return _native_of(native), type_name, params or {}, features
    else:
        def get(key, default=None):
            return getattr(result, key, default)
    native = get("model", None)
    if native is None:
        native = get("native", None)
    return _native_of(native), get("type_name", None), get("params", None) or {}, get("features", None)


def _native_of(obj):
    if isinstance(obj, Model):
        return obj._native
    if isinstance(obj, _modelreg.NativeModel):
        return obj
    raise TypeError("modelreg.sklearn.convert returned %r, not a native model" % (obj,))


def _refuse(obj, sklearn_supported):
    raise InvalidArgument(
        "cannot save %s.%s: supported are %s, and fitted scikit-learn estimators: %s"
        % (type(obj).__module__, type(obj).__name__, "; ".join(_SUPPORTED_HERE), sklearn_supported))


def _sklearn_native(obj, features):
    # Imported on first use: scikit-learn is needed only to save its estimators.
    if importlib.util.find_spec(__package__ + ".sklearn") is None:
        _refuse(obj, "none in this build (modelreg.sklearn is missing)")
    converters = importlib.import_module(__package__ + ".sklearn")
    if not hasattr(obj, "get_params"):  # not an estimator at all
        _refuse(obj, converters.supported())
    names = [name for name, _ in features] if features else None
    try:
        return _converted(converters.convert(obj, feature_names=names))
    except InvalidArgument as e:
        if str(e).startswith("cannot convert"):  # an estimator of a class it does not convert
            raise InvalidArgument("%s; also supported: %s" % (e, "; ".join(_SUPPORTED_HERE))) from None
        raise


class Registry:
    """A modelreg registry: one SQLite file of models and their numbered, immutable versions.

    >>> with modelreg.Registry("models.db") as registry:            # doctest: +SKIP
    ...     v = registry.save_model(clf, "fraud", metrics={"f1": 0.91}, label="v1")
    ...     registry.promote(v.ref, require_better="f1")
    ...     model, version = registry.load_model("fraud")

    ``read_only=True`` opens without writing (a read-only directory works too); ``signing_key``
    (bytes, or the path of a key file) signs every version written and refuses to load or promote
    one that does not verify. Every call that reads or writes the database releases the GIL, and a
    Registry may be shared by threads (the library serializes calls on its connection). Every
    failure is a :class:`modelreg.Error`.
    """

    def __init__(self, path, *, read_only=False, signing_key=None):
        self._read_only = bool(read_only)
        self._handle = _modelreg.RegistryHandle(os.fspath(path), self._read_only, _signing_key(signing_key))

    # ---- lifetime
    def close(self):
        """Closes the database (calls in progress in other threads finish first). Idempotent."""
        self._handle.close()

    @property
    def closed(self):
        return self._handle.closed

    @property
    def read_only(self):
        return self._read_only

    @property
    def path(self):
        return self._handle.path

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        if self.closed:
            return "<modelreg.Registry closed>"
        return "<modelreg.Registry %s%s>" % (self.path, " read-only" if self._read_only else "")

    # ---- registering versions
    def _spec(self, name, *, metrics, params, features, label, notes, tags, parents, datasets, compress,
              format=None, type_name=None, created_by=None):
        if not isinstance(name, str):
            raise InvalidArgument("the model name must be a string, not %r" % (name,))
        spec = {
            "model": name,
            "metrics": _metrics(metrics),
            "params": _text_map(params, "params"),
            "tags": _text_map(tags, "tags"),
            "notes": str(notes or ""),
            "label": label,
            "parents": _parents(parents),
            "datasets": _datasets(datasets),
            "level": _level(compress),
            "created_by": created_by,
        }
        if features is not None:
            spec["features"] = _features(features)
        if format is not None:
            spec["format"] = format
        if type_name is not None:
            spec["type_name"] = type_name
        return spec

    def save_model(self, model, name, *, metrics=None, params=None, features=None, label=None, notes="",
                   tags=None, parents=None, datasets=None, compress=3, probe=None, created_by=None):
        """Saves a model as a new version of ``name`` and returns its :class:`Version`.

        ``model``: a :class:`Model` (from ``load_model``), an XGBoost ``Booster`` /
        ``XGBClassifier`` / ``XGBRegressor``, or a fitted scikit-learn estimator that
        ``modelreg.sklearn`` converts into a native model (never a pickle). Anything else is
        InvalidArgument listing what is supported.

        ``features`` (names, or ``(name, dtype)`` pairs) default to the model's own
        (``feature_names_in_``); hyperparameters come from the model, ``params`` added on top.
        ``compress`` is the zstd level (0 stores raw). ``probe``: up to 16 rows whose outputs are
        stored and checked again on every load (default: 16 fixed pseudo-random rows).
        Metrics must be finite numbers. Nothing is written when anything is refused.
        """
        converted_params, extra_datasets, type_name = {}, [], None
        wanted = _features(features)
        if isinstance(model, Model):
            native = model._native
        elif isinstance(model, _modelreg.NativeModel):
            native = model
        elif _is_xgboost(model):
            native, converted_params, extra_datasets = _xgboost_native(model)
        else:
            native, type_name, converted_params, suggested = _sklearn_native(model, wanted)
            if wanted is None and suggested:
                wanted = _features(list(suggested))
        if wanted is None and native.feature_names:
            wanted = _features(list(native.feature_names))
        merged = {**{str(k): _text(v) for k, v in dict(converted_params).items()}, **_text_map(params, "params")}
        spec = self._spec(name, metrics=metrics, params=merged, features=wanted, label=label, notes=notes,
                          tags=tags, parents=parents, datasets=_datasets(datasets) + extra_datasets,
                          compress=compress, type_name=type_name, created_by=created_by)
        rows = None
        if probe is not None:
            rows = as_rows(probe, [n for n, _ in wanted] if wanted else list(native.feature_names))
        return Version(self._handle.save_model(native, spec, rows))

    def load_model(self, ref, *, validate=True):
        """Loads a saved model: ``(Model, Version)``. The checksum is always verified; with
        ``validate`` (default) also the archive, type, feature count and the stored probe rows
        predicted again — a failure is ValidationFailed naming the check and both values."""
        native, version = self._handle.load_model(_ref(ref), bool(validate))
        version = Version(version)
        return Model(native, version), version

    def register_bytes(self, data, name, *, format="bytes", type_name="", metrics=None, params=None,
                       features=None, label=None, notes="", tags=None, parents=None, datasets=None, compress=3,
                       created_by=None):
        """Registers opaque bytes (an ONNX file, anything) as a new version of ``name``."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidArgument("data must be bytes, not %s" % type(data).__name__)
        spec = self._spec(name, metrics=metrics, params=params, features=features, label=label, notes=notes,
                          tags=tags, parents=parents, datasets=datasets, compress=compress, format=format,
                          type_name=type_name, created_by=created_by)
        return Version(self._handle.register_bytes(spec, bytes(data)))

    def register_file(self, path, name, *, format="bytes", type_name="", metrics=None, params=None,
                      features=None, label=None, notes="", tags=None, parents=None, datasets=None, compress=3,
                      created_by=None):
        """Registers the bytes of a file (streamed, bounded memory) as a new version of ``name``."""
        spec = self._spec(name, metrics=metrics, params=params, features=features, label=label, notes=notes,
                          tags=tags, parents=parents, datasets=datasets, compress=compress, format=format,
                          type_name=type_name, created_by=created_by)
        return Version(self._handle.register_file(spec, os.fspath(path)))

    def load_bytes(self, ref):
        """The stored bytes of a version, checksum verified."""
        return self._handle.load_bytes(_ref(ref))

    def get_file(self, ref, path, *, overwrite=False):
        """Writes a version's bytes to ``path`` (verified, then moved into place); returns ``path``."""
        self._handle.get_file(_ref(ref), os.fspath(path), bool(overwrite))
        return path

    # ---- reading
    def get(self, ref):
        """The Version ``ref`` names; NotFound (a KeyError) when absent."""
        return Version(self._handle.get(_ref(ref)))

    def find(self, ref):
        """The Version ``ref`` names, or None."""
        found = self._handle.find(_ref(ref))
        return Version(found) if found is not None else None

    def __contains__(self, ref):
        return self.find(ref) is not None

    def models(self):
        """One dict per model: model, versions, active_version, latest_version, created_at."""
        out = self._handle.models()
        for m in out:
            m["created_at"] = parse_time(m["created_at"])
        return out

    def versions(self, name, *, where=None, tag=None, status=None, order_by=None, descending=True,
                 newest_first=False, limit=None):
        """Versions of ``name``: ascending by number (``newest_first``: highest number first, so
        ``limit=10`` gives the last ten), or by ``order_by`` (a metric; best first with
        ``descending``; not with ``newest_first``). ``where``: conditions such as ``"f1 >= 0.8"`` (all must hold); ``tag``:
        ``"key"``, ``"key=value"`` or a ``(key, value)`` pair; ``status``: ``"ready"`` or
        ``"archived"``."""
        if where is None:
            where = []
        elif isinstance(where, str):
            where = [where]
        if tag is not None:
            if isinstance(tag, str):
                key, sep, value = tag.partition("=")
                tag = (key, value if sep else None)
            else:
                tag = (str(tag[0]), None if tag[1] is None else str(tag[1]))
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 0):
            raise InvalidArgument("limit must be a non-negative integer, not %r" % (limit,))
        rows = self._handle.versions(name, [str(w) for w in where], tag, status, order_by, bool(descending),
                                     bool(newest_first), limit)
        return [Version(v) for v in rows]

    def compare(self, a, b, metric=None):
        """Two versions' metrics: for one ``metric``, a dict (metric, a, b, direction,
        difference = b - a, improvement = how much better b is); without, such a dict per metric."""
        rows = self._handle.compare(_ref(a), _ref(b), metric or "")
        if metric:
            return rows[0]
        return {row["metric"]: row for row in rows}

    def ancestors(self, ref, *, max_depth=0):
        """Lineage edges above ``ref`` (child, parent, relation, depth), breadth first."""
        return self._handle.ancestors(_ref(ref), int(max_depth))

    def descendants(self, ref, *, max_depth=0):
        """Lineage edges below ``ref``, breadth first."""
        return self._handle.descendants(_ref(ref), int(max_depth))

    def history(self, name):
        """The audit log of a model, oldest first (kind, version, from/to, actor, reason, at)."""
        events = self._handle.history(name)
        for e in events:
            e["at"] = parse_time(e["at"])
        return events

    def query(self, sql):
        """Read-only SQL on the registry (see the README's views): a list of dicts, one per row."""
        columns, rows = self._handle.query(str(sql))
        return [dict(zip(columns, row)) for row in rows]

    # ---- lifecycle
    def promote(self, ref, *, reason="", require_better=None, direction=None, actor=None):
        """Makes ``ref`` its model's active version: a dict (model, from_version, to_version).

        ``require_better``: a metric the candidate must match or beat against the current active
        version (Conflict otherwise); its direction is known for f1, accuracy, rmse, log_loss...,
        and ``direction`` (``"higher"`` or ``"lower"``) says it for any other metric."""
        return self._handle.promote(_ref(ref), str(reason), actor, require_better, _direction(direction))

    def rollback(self, name, *, to=None, alias="active", reason="", actor=None):
        """Points ``alias`` (default ``active``) back at the version it pointed at before the current
        one (or at ``to``); repeated calls walk further back through that alias's history."""
        return self._handle.rollback(name, None if to is None else _ref(to), str(reason), actor, str(alias))

    def set_alias(self, ref, alias, *, reason="", require_better=None, direction=None, actor=None):
        """Points ``alias`` of ``ref``'s model at ``ref`` (``fraud@champion``): a dict (model,
        from_version, to_version, alias), recorded in the audit log. The guard works as promote's; ``active``
        is what promote moves, ``latest`` is reserved, an alias may not be named like a label."""
        return self._handle.set_alias(_ref(ref), str(alias), str(reason), actor, require_better,
                                      _direction(direction))

    def remove_alias(self, name, alias, *, reason="", actor=None):
        """Removes ``alias`` of model ``name`` (recorded); returns the version it pointed at."""
        return self._handle.remove_alias(name, str(alias), str(reason), actor)

    def aliases(self, name=None):
        """The aliases of model ``name`` (or of every model): dicts with model, alias, version,
        set_at (aware UTC datetime), set_by; ``active`` first, then by name."""
        out = self._handle.aliases(name)
        for a in out:
            a["set_at"] = parse_time(a["set_at"])
        return out

    def archive(self, ref, *, reason="", actor=None):
        self._handle.archive(_ref(ref), str(reason), actor)

    def unarchive(self, ref, *, reason="", actor=None):
        self._handle.unarchive(_ref(ref), str(reason), actor)

    def delete_version(self, ref, *, reason="", actor=None):
        """Deletes an archived version (its blob stays until ``gc``)."""
        self._handle.delete_version(_ref(ref), str(reason), actor)

    def set_tags(self, ref, tags=None, *, remove=(), reason="", actor=None):
        """Sets ``tags`` and removes the keys in ``remove``, in one transaction."""
        if isinstance(remove, str):
            remove = [remove]
        self._handle.set_tags(_ref(ref), _text_map(tags, "tags"), [str(k) for k in remove], str(reason), actor)

    def sign(self, ref, *, reason="", actor=None):
        """Signs an unsigned version with this registry's signing_key; returns the Version."""
        return Version(self._handle.sign(_ref(ref), str(reason), actor))

    def gc(self, *, dry_run=False, delete_archived=False, include_rollback_history=False, reason="", actor=None):
        """Removes blobs no version uses (and, with delete_archived, archived versions first)."""
        return self._handle.gc(bool(dry_run), bool(delete_archived), bool(include_rollback_history), str(reason),
                               actor)

    def check(self, ref=None):
        """Integrity check: a dict with ok, database_problems, bad_versions, versions_checked."""
        return self._handle.check(None if ref is None else _ref(ref))

    def export_bundle(self, refs, path):
        """Writes versions into a new single-file bundle: a dict (versions, stored_bytes)."""
        if isinstance(refs, (str, Version)):
            refs = [refs]
        return self._handle.export_bundle([_ref(r) for r in refs], os.fspath(path))

    def import_bundle(self, path):
        """Imports a bundle in one transaction: a dict (imported, already_present)."""
        return self._handle.import_bundle(os.fspath(path))
