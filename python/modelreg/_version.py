"""Version: everything the registry knows about one version, as read-only attributes."""

import datetime
import types


def parse_time(text):
    """The library's UTC timestamps (``2026-11-29T06:07:15.123Z``) as aware datetimes."""
    if not text:
        return None
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    value = datetime.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return str(n)


class Version:
    """One version of a model, as ``modelreg show --json`` prints it.

    Every attribute is read-only; mappings are read-only views and lists are tuples.

    >>> v = registry.get("fraud@active")          # doctest: +SKIP
    >>> v.ref, v.metrics["f1"], v.created_at.tzinfo  # doctest: +SKIP
    ('fraud@3', 0.91, datetime.timezone.utc)
    """

    __slots__ = ("_d",)

    def __init__(self, data):
        object.__setattr__(self, "_d", data)

    def __setattr__(self, name, value):
        raise AttributeError("Version is read-only")

    # ---- identity
    @property
    def name(self):
        """The model's name (``fraud``)."""
        return self._d["model"]

    model = name

    @property
    def number(self):
        """The version number within the model (1, 2, ...)."""
        return self._d["version"]

    @property
    def ref(self):
        """``NAME@NUMBER``: a reference to exactly this version."""
        return self._d["ref"]

    @property
    def label(self):
        return self._d["label"]

    # ---- content
    @property
    def format(self):
        return self._d["format"]

    @property
    def type_name(self):
        return self._d["type_name"]

    @property
    def task(self):
        """``"binary"``, ``"multiclass"``, ``"regression"``; None for opaque artifacts."""
        return self._d["task"]

    @property
    def classes(self):
        c = self._d["classes"]
        return tuple(c) if c is not None else None

    @property
    def metrics(self):
        return types.MappingProxyType(dict(self._d["metrics"]))

    @property
    def params(self):
        return types.MappingProxyType(dict(self._d["params"]))

    @property
    def features(self):
        """The feature names, in input order."""
        return tuple(f["name"] for f in self._d["features"])

    @property
    def feature_dtypes(self):
        """Feature name → dtype (free text, ``float64`` by default), in input order."""
        return types.MappingProxyType({f["name"]: f["dtype"] for f in self._d["features"]})

    @property
    def tags(self):
        return types.MappingProxyType(dict(self._d["tags"]))

    @property
    def notes(self):
        return self._d["notes"]

    @property
    def created_at(self):
        """When it was registered: an aware UTC datetime."""
        return parse_time(self._d["created_at"])

    @property
    def created_by(self):
        return self._d["created_by"]

    @property
    def status(self):
        """``"ready"`` or ``"archived"``."""
        return self._d["status"]

    @property
    def active(self):
        return self._d["active"]

    # ---- stored bytes
    @property
    def sha256(self):
        return self._d["blob"]["sha256"]

    @property
    def raw_size(self):
        """Bytes of the serialized model."""
        return self._d["blob"]["raw_size"]

    @property
    def stored_size(self):
        """Bytes stored (compressed)."""
        return self._d["blob"]["stored_size"]

    @property
    def compression_ratio(self):
        return self._d["blob"]["ratio"]

    @property
    def blob(self):
        """sha256, raw_size, stored_size, ratio, codec, level, chunk_count."""
        return types.MappingProxyType(dict(self._d["blob"]))

    # ---- provenance
    @property
    def parents(self):
        """Direct parents: ``(ref, relation)`` pairs."""
        return tuple((p["ref"], p["relation"]) for p in self._d["parents"])

    @property
    def datasets(self):
        """``{uri, sha256, role}`` of each data set."""
        return tuple(types.MappingProxyType(dict(d)) for d in self._d["datasets"])

    @property
    def signature(self):
        s = self._d["signature"]
        return types.MappingProxyType(dict(s)) if s is not None else None

    def as_dict(self):
        """A copy of the version in the shape of ``modelreg show --json``."""
        import copy
        return copy.deepcopy(self._d)

    def __eq__(self, other):
        return isinstance(other, Version) and self._d == other._d

    def __hash__(self):
        return hash((self._d["ref"], self._d["blob"]["sha256"]))

    def __repr__(self):
        parts = [self.ref]
        if self.label:
            parts.append("label=%r" % self.label)
        parts.append(self.type_name or self.format)
        if self.task:
            parts.append(self.task)
        if self.active:
            parts.append("active")
        if self.status != "ready":
            parts.append(self.status)
        shown = list(self._d["metrics"].items())[:4]
        parts.extend("%s=%.4g" % (k, v) for k, v in shown)
        parts.append("%s stored (%.1fx)" % (_size(self.stored_size), self.compression_ratio))
        return "<Version %s>" % " ".join(parts)
