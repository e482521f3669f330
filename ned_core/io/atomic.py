"""Atomic output files: write under a hidden temporary name beside the destination, then rename.

A reader (Nuke watching the output directory, the engine's journal, a farm's next chunk) never sees a
partial file, and a failed write leaves the previous file untouched. Must not import OpenImageIO,
PyAV, torch or zmq.
"""

from __future__ import annotations

import os
import uuid

from ned_core.errors import OutputError


def temp_path(path: str, suffix: str = ".tmp") -> str:
    """A hidden, unique name in ``path``'s directory that no frame pattern matches."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.{uuid.uuid4().hex[:12]}{suffix}")


def make_parent(path: str) -> None:
    """Create ``path``'s directory; OutputError naming the path when that is impossible."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the directory of {path}: {exc.strerror or exc}", path=path) from exc


def commit(temp: str, path: str) -> None:
    """Make ``temp`` durable (fsync) and move it over ``path`` in one step (``os.replace``).

    The sync comes first so that a crash after the rename cannot leave an empty "finished" frame.
    """
    with open(temp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, path)


def discard(temp: str) -> None:
    """Remove a temporary file if it is still there (after a failure)."""
    try:
        os.remove(temp)
    except FileNotFoundError:
        pass
