"""The exceptions of modelreg: one per error code of the C++ library (modelreg::Errc).

Every failure of the registry raises a subclass of :class:`Error`, whose ``code`` is the library's
stable code name (``"not_found"``, ...). Where a builtin fits, the class derives from it too, so
``except KeyError`` catches a missing version and ``except ValueError`` a bad argument.
"""


class Error(Exception):
    """A modelreg failure. ``code`` is the library's code name, ``str(e)`` its message."""

    code = "error"

    def __init__(self, message="", code=None):
        super().__init__(message)
        self.message = str(message)
        if code is not None:
            self.code = code

    def __str__(self):
        # KeyError would quote the message; show it as written.
        return self.message

    def __reduce__(self):
        return (type(self), (self.message,))


class NotFound(Error, KeyError):
    """The model, version, label or file does not exist."""

    code = "not_found"


class AlreadyExists(Error):
    """A label or name that must be unique is taken."""

    code = "already_exists"


class InvalidArgument(Error, ValueError):
    """Something malformed was passed: a bad name, ref, metric value, input width..."""

    code = "invalid_argument"


class Corruption(Error):
    """Stored bytes fail their checksum, or the file is not a modelreg database."""

    code = "corruption"


class ValidationFailed(Error):
    """A loaded model fails a validation check (type, feature count, probe...)."""

    code = "validation_failed"


class Conflict(Error):
    """The request contradicts the current state (promote an archived version...)."""

    code = "conflict"


class Busy(Error):
    """The database stayed locked by another writer past the busy timeout."""

    code = "busy"


class IoError(Error, OSError):
    """The operating system refused a read or write (disk full, permissions...)."""

    code = "io_error"

    def __init__(self, message="", code=None):
        Error.__init__(self, message, code)

    def __str__(self):
        return self.message


class Incompatible(Error):
    """The database or archive was written by a newer or different build."""

    code = "incompatible"


_BY_CODE = {cls.code: cls for cls in (NotFound, AlreadyExists, InvalidArgument, Corruption,
                                      ValidationFailed, Conflict, Busy, IoError, Incompatible)}


def class_for_code(code):
    """The exception class of a library code name (the C++ side raises through this)."""
    return _BY_CODE.get(code, Error)
