"""Frame ranges and file paths of the node: the default versioned output folder beside the script, where
inputs are rendered for the engine, and frame-number expansion of ``####`` / ``%04d`` patterns.

Imports only the standard library and ``ned_protocol.errors``; never ``nuke``.
"""

from __future__ import annotations

import os
import re

from ned_protocol.errors import InvalidOptionError

MOVIE_EXTENSIONS = frozenset((".mov", ".mp4", ".m4v", ".mxf", ".avi", ".mkv", ".mpg", ".mpeg", ".webm"))
_HASHES = re.compile(r"#+")
_PRINTF = re.compile(r"%(0?\d*)d")
_VERSION = re.compile(r"^v(\d{3,})$")


def is_movie(path: str) -> bool:
    """True for a movie container (one file, many frames), False for an image sequence or still."""
    return os.path.splitext(path)[1].lower() in MOVIE_EXTENSIONS


def has_frame_number(pattern: str) -> bool:
    """True when ``pattern`` holds a frame-number placeholder (``####`` or ``%04d``)."""
    return bool(_HASHES.search(pattern) or _PRINTF.search(pattern))


def frame_path(pattern: str, frame: int) -> str:
    """``pattern`` with its frame placeholder replaced by ``frame`` (``####`` pads to 4, ``%04d`` likewise)."""
    if _HASHES.search(pattern):
        return _HASHES.sub(lambda m: f"{frame:0{len(m.group(0))}d}", pattern, count=1)
    match = _PRINTF.search(pattern)
    if match:
        width = match.group(1)
        return pattern[:match.start()] + (f"{frame:0{int(width)}d}" if width else str(frame)) + pattern[match.end():]
    return pattern


def frame_range(use_input: bool, input_range: tuple[int, int], first: int, last: int) -> tuple[int, int]:
    """The range to process: the input's, or ``first..last`` when the artist set one.

    Raises
    ------
    InvalidOptionError
        (field ``first``) a custom range with first after last.
    """
    start, end = (input_range if use_input else (int(first), int(last)))
    if start > end:
        raise InvalidOptionError(f"frame range {start}-{end}: first is after last", field="first")
    return int(start), int(end)


def next_version(folder: str) -> int:
    """One more than the highest ``v###`` sub-folder of ``folder`` (1 when there is none)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return 1
    versions = [int(m.group(1)) for m in map(_VERSION.match, names) if m]
    return max(versions, default=0) + 1


def default_output(script: str, node: str, version: int | None = None) -> str:
    """The default output pattern: ``<script dir>/ned/<script>/<node>/v###/<script>_<node>.####.exr``.

    ``version`` defaults to the next free one, so each Process of an unset output keeps the older takes.

    Raises
    ------
    InvalidOptionError
        (field ``output``) the script was never saved, so there is no folder to put frames beside it.
    """
    if not script or script in ("Root", "untitled"):
        raise InvalidOptionError("save the script first, or set the output knob: the default output is a "
                                 "folder beside the script", field="output")
    folder, name = os.path.split(os.path.abspath(script))
    stem = os.path.splitext(name)[0]
    base = os.path.join(folder, "ned", stem, node)
    number = next_version(base) if version is None else version
    return os.path.join(base, f"v{number:03d}", f"{stem}_{node}.####.exr")


def check_output(pattern: str) -> str:
    """An absolute output pattern, checked: an ``.exr`` sequence with a frame placeholder.

    Raises
    ------
    InvalidOptionError
        (field ``output``) anything else.
    """
    if not pattern.lower().endswith(".exr") or not has_frame_number(pattern):
        raise InvalidOptionError(f"output {pattern!r} must be an EXR sequence pattern such as "
                                 f"/shots/sh010/ned/sh010.####.exr", field="output")
    return os.path.abspath(os.path.expanduser(pattern))


def render_pattern(output: str, what: str) -> str:
    """Where an input that is not a Read (``what``: source or mask) is rendered for the engine: an EXR
    sequence in a folder beside the output, so it lies inside the same engine root."""
    folder = os.path.dirname(os.path.abspath(output))
    return os.path.join(folder, f"_ned_{what}", f"{what}.####.exr")


__all__ = ["check_output", "default_output", "frame_path", "frame_range", "has_frame_number", "is_movie",
           "next_version", "render_pattern"]
