"""What a plate path names: frame-range text, padding tokens (``####``, ``@@@``, ``%04d``), disk scans,
and whether a path is a movie.

Owns the naming rules only; it opens no image (that is ``plate.py``). Must not import OpenImageIO, PyAV,
torch or zmq.

Padding tokens, as Nuke and OpenImageIO read them:

- a run of N ``#`` is N digits, except a lone ``#``, which is 4 (``plate.#.exr`` == ``plate.####.exr``);
- a run of N ``@`` is N digits;
- ``%0Nd`` is N digits and ``%d`` is unpadded (printf).

Padding is a minimum width: frame 12345 of ``####`` is ``12345``, and frame -1 is ``-001`` (printf). Only
the last token of the file name numbers the frame; directories are never patterns.
"""

from __future__ import annotations

import os
import re

from ned_core.errors import FrameRangeError

MOVIE_EXTENSIONS = frozenset((".mp4", ".mov", ".mpg", ".mpeg", ".m4v", ".mkv", ".avi", ".webm", ".mxf",
                              ".m2v", ".ts", ".mts", ".m2ts", ".wmv", ".flv", ".ogv", ".dv", ".3gp"))
"""Extensions read as movies (through PyAV); anything else is an image file or sequence."""

_TOKEN = re.compile(r"#+|@+|%(0?\d*)d")
_RANGE = re.compile(r"^\s*(-?\d+)\s*(?:(?:-|:|\s)\s*(-?\d+))?\s*$")


def parse_frame_range(text: str) -> tuple[int, int]:
    """Parse ``"1001-1075"``, ``"1001:1075"``, ``"1001 1075"`` or a single frame ``"1001"``.

    Negative frames are allowed (``"-5--1"``, ``"-5-10"``).

    Raises
    ------
    FrameRangeError
        When the text is not a range or the first frame is after the last.
    """
    match = _RANGE.match(text)
    if match is None:
        raise FrameRangeError(f"frame range {text!r} is not FIRST-LAST or FRAME (e.g. 1001-1075)",
                              field="frames")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) is not None else first
    if last < first:
        raise FrameRangeError(f"frame range {text!r} ends before it starts", field="frames")
    return first, last


def _last_token(path: str) -> re.Match[str] | None:
    """The frame-number token of ``path``'s file name (the last one), or None."""
    name_start = len(path) - len(os.path.basename(path))
    matches = [m for m in _TOKEN.finditer(path) if m.start() >= name_start]
    return matches[-1] if matches else None


def _padding(token: re.Match[str]) -> int:
    text = token.group(0)
    if text[0] == "#":
        return 4 if len(text) == 1 else len(text)
    if text[0] == "@":
        return len(text)
    width = token.group(1)
    return int(width) if width else 0


def is_movie(path: str) -> bool:
    """True when ``path`` has a movie extension (.mp4, .mov, .mpg, .mkv...)."""
    return os.path.splitext(path)[1].lower() in MOVIE_EXTENSIONS


def is_sequence_pattern(path: str) -> bool:
    """True when the file name holds a frame-number token (``#``, ``@`` runs, ``%0Nd`` or ``%d``)."""
    return _last_token(path) is not None


def frame_path(pattern: str, frame: int) -> str:
    """The file name of ``frame`` in ``pattern``; a path without a token is returned unchanged."""
    token = _last_token(pattern)
    if token is None:
        return pattern
    number = f"{frame:0{_padding(token)}d}"
    return pattern[:token.start()] + number + pattern[token.end():]


def scan_frames(pattern: str) -> list[int]:
    """Frames of ``pattern`` present on disk, ascending (negative frames included).

    A file counts only when ``frame_path(pattern, n)`` spells its name exactly, so ``%04d`` does not
    pick up ``plate.01001.exr`` and ``%d`` does not pick up zero-padded names. An absent directory
    has no frames.
    """
    token = _last_token(pattern)
    if token is None:
        raise ValueError(f"{pattern!r} has no frame-number token")
    directory, name = os.path.split(pattern)
    offset = len(pattern) - len(name)
    start, end = token.start() - offset, token.end() - offset
    regex = re.compile(re.escape(name[:start]) + r"(-?\d+)" + re.escape(name[end:]) + r"\Z")
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return []
    frames: set[int] = set()
    for entry in entries:
        match = regex.match(entry)
        if match is None:
            continue
        frame = int(match.group(1))
        if os.path.basename(frame_path(pattern, frame)) == entry:
            frames.add(frame)
    return sorted(frames)
