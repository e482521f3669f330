"""Every error the protocol can carry, each with a stable wire ``code`` and a ``retryable`` flag.

The pipeline's codes (``input_not_found`` ... ``internal``) mirror ``ned_core.errors`` code for code, so
the engine can send any pipeline error as it is and a host plugin gets the same class back through
``from_code``. The protocol's own codes (``invalid_message`` ... ``disconnected``) are subclasses of
``ProtocolError``. Codes are part of the wire contract: never rename one, only add.

Imports nothing but the standard library (this module is the leaf of ``ned_protocol``).
"""

from __future__ import annotations

import builtins
from typing import Any

MAX_TEXT = 2048
"""Longest error message on the wire (characters); longer ones are cut by ``wire_fields``."""
MAX_PATH = 4096
"""Longest path on the wire (characters)."""
MAX_NAME = 128
"""Longest field name in an error (characters)."""


class NedError(Exception):
    """Base of every NED error: a stable ``code``, a one-line message and the path/frame/field at fault."""

    code = "internal"
    retryable = False

    def __init__(self, message: str, *, path: str | None = None, frame: int | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.frame = frame
        self.field = field

    def one_line(self) -> str:
        """``code: message``, with the file/frame/field at fault when the message does not say it."""
        where = []
        if self.path is not None:
            where.append(f"file {self.path}")
        if self.frame is not None:
            where.append(f"frame {self.frame}")
        if self.field is not None:
            where.append(f"field {self.field}")
        shown = [w for w in where if w.split(" ", 1)[1] not in self.message]
        return f"{self.code}: {self.message}" + (f" ({', '.join(shown)})" if shown else "")


# -- the pipeline's errors (same codes as ned_core.errors) ---------------------------------------------
class InputNotFoundError(NedError):
    """A file, sequence pattern or frame that does not exist."""

    code = "input_not_found"


class FrameRangeError(NedError):
    """A frame range that is malformed or outside the plate."""

    code = "frame_range"


class CorruptImageError(NedError):
    """An image file that cannot be decoded (truncated, corrupt, unsupported)."""

    code = "corrupt_image"


class InvalidOptionError(NedError):
    """An option value that is not allowed: unknown emotion, bad keyframe, bad colourspace..."""

    code = "invalid_option"


class UnknownBackendError(NedError):
    """A stage backend name that is not registered."""

    code = "unknown_backend"


class MissingModelError(NedError):
    """A model file a backend needs is not where it should be."""

    code = "missing_model"


class CorruptModelError(NedError):
    """A model file exists but cannot be loaded (unreadable, wrong or mis-shaped weights)."""

    code = "corrupt_model"


class MissingDependencyError(NedError):
    """A Python package a backend needs is not installed."""

    code = "missing_dependency"


class NoFaceError(NedError):
    """No face was found in any frame of the shot."""

    code = "no_face"


class OutputError(NedError):
    """An output file could not be written."""

    code = "output_error"
    retryable = True


class CancelledError(NedError):
    """The job was cancelled."""

    code = "cancelled"


# -- the protocol's errors -----------------------------------------------------------------------------
class ProtocolError(NedError):
    """Base of the errors of the conversation itself (as opposed to the pipeline's)."""

    code = "invalid_message"


class InvalidMessageError(ProtocolError):
    """A message outside the schema: bad framing, msgpack, type, field, value or size."""

    code = "invalid_message"


class UnsupportedVersionError(ProtocolError):
    """The peer speaks another major protocol version."""

    code = "unsupported_version"


class UnknownJobError(ProtocolError):
    """No job with that id (or the engine no longer keeps it)."""

    code = "unknown_job"


class ForbiddenPathError(ProtocolError):
    """A path outside the engine's allowed roots."""

    code = "forbidden_path"


class LimitExceededError(ProtocolError):
    """A request within the schema but beyond this engine's limits (queue length, frames, credits)."""

    code = "limit_exceeded"


class UnauthorizedError(ProtocolError):
    """The client may not do this (``shutdown`` from a non-administrator) or may not connect at all (its
    CurveZMQ key was refused)."""

    code = "unauthorized"


class BusyError(ProtocolError):
    """The engine cannot take the request now; try again later."""

    code = "busy"
    retryable = True


class RequestTimeoutError(ProtocolError, builtins.TimeoutError):
    """No reply within the timeout (also an ``OSError``-family ``TimeoutError``)."""

    code = "timeout"
    retryable = True


class DisconnectedError(ProtocolError, builtins.ConnectionError):
    """The connection to the engine was lost or the client was closed."""

    code = "disconnected"
    retryable = True


ALL_ERRORS: tuple[type[NedError], ...] = (
    NedError, InputNotFoundError, FrameRangeError, CorruptImageError, InvalidOptionError,
    UnknownBackendError, MissingModelError, CorruptModelError, MissingDependencyError, NoFaceError,
    OutputError, CancelledError,
    InvalidMessageError, UnsupportedVersionError, UnknownJobError, ForbiddenPathError, LimitExceededError,
    UnauthorizedError, BusyError, RequestTimeoutError, DisconnectedError,
)
"""One class per wire code (``ProtocolError`` is an abstract base and has no code of its own)."""

CLASSES: dict[str, type[NedError]] = {cls.code: cls for cls in ALL_ERRORS}
"""Wire code → error class."""

CODES: tuple[str, ...] = tuple(CLASSES)
"""Every wire code, pipeline codes first."""


def from_code(code: str, message: str, *, retryable: bool | None = None, path: str | None = None,
              frame: int | None = None, field: str | None = None) -> NedError:
    """The error a wire ``code`` stands for, as an instance ready to raise.

    An unknown code (from a newer engine) gives a plain ``NedError`` carrying that code, so nothing is
    lost. ``retryable`` overrides the class default when the sender said otherwise.
    """
    cls = CLASSES.get(code, NedError)
    error = cls(message, path=path, frame=frame, field=field)
    if cls is NedError and code != NedError.code:
        error.code = code
    if retryable is not None and retryable != cls.retryable:
        error.retryable = retryable
    return error


def wire_fields(error: BaseException) -> dict[str, Any]:
    """The ``code``/``message``/``retryable``/``path``/``frame``/``field`` of any error, for the wire.

    Works on any object with NED's error attributes (``ned_core.errors`` too, without importing it);
    anything else is ``internal`` with its text as the message. Values are cut to the wire's limits.
    """
    code = getattr(error, "code", None)
    if not isinstance(code, str) or code not in CLASSES:
        code = "internal"
    message = getattr(error, "message", None)
    if not isinstance(message, str):
        message = str(error) or repr(error)
    fields: dict[str, Any] = {"code": code, "message": _cut(message, MAX_TEXT),
                              "retryable": bool(getattr(error, "retryable", CLASSES[code].retryable))}
    path, frame, field = (getattr(error, name, None) for name in ("path", "frame", "field"))
    if path is not None:
        fields["path"] = _cut(str(path), MAX_PATH)
    if isinstance(frame, int) and not isinstance(frame, bool) and abs(frame) < 2**31:
        fields["frame"] = frame
    if field is not None:
        fields["field"] = _cut(str(field), MAX_NAME)
    return fields


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


__all__ = [cls.__name__ for cls in ALL_ERRORS] + ["ProtocolError", "ALL_ERRORS", "CLASSES", "CODES",
                                                   "from_code", "wire_fields"]
