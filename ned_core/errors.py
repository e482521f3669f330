"""Every error the pipeline raises, each with a stable code that the CLI and the engine report.

Codes are part of the public contract (the engine sends them over the wire): never rename one.
"""

from __future__ import annotations


class NedError(Exception):
    """Base of every NED error: a stable ``code``, a one-line message and what is at fault."""

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
        """The message as a CLI prints it: ``code: message``, with the file/frame/field at fault."""
        where = []
        if self.path is not None:
            where.append(f"file {self.path}")
        if self.frame is not None:
            where.append(f"frame {self.frame}")
        if self.field is not None:
            where.append(f"option {self.field}")
        suffix = f" ({', '.join(where)})" if where and not any(w in self.message for w in where) else ""
        return f"{self.code}: {self.message}{suffix}"


class InputNotFoundError(NedError):
    """A file, sequence pattern or frame that does not exist."""

    code = "input_not_found"


class FrameRangeError(NedError):
    """A requested frame range that is malformed or outside the plate."""

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
    """A model file a backend needs is not where it should be (the message says how to get it)."""

    code = "missing_model"


class CorruptModelError(NedError):
    """A model file exists but cannot be loaded into our networks (unreadable, wrong or mis-shaped keys)."""

    code = "corrupt_model"


class MissingDependencyError(NedError):
    """A Python package a backend needs is not installed (the message names the install step)."""

    code = "missing_dependency"


class NoFaceError(NedError):
    """No face was found in any frame of the shot."""

    code = "no_face"


class OutputError(NedError):
    """An output file could not be written."""

    code = "output_error"
    retryable = True


class CancelledError(NedError):
    """The job was cancelled through its cancellation token."""

    code = "cancelled"


ALL_ERRORS: tuple[type[NedError], ...] = (
    NedError, InputNotFoundError, FrameRangeError, CorruptImageError, InvalidOptionError,
    UnknownBackendError, MissingModelError, CorruptModelError, MissingDependencyError, NoFaceError, OutputError,
    CancelledError,
)
