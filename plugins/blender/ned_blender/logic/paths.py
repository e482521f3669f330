"""Where a strip's edited frames go: a new versioned folder per run, never over an earlier result.

``<output folder>/<strip name>/v001/<strip name>_ned.####.exr``, the version one above the highest
already there, so every Process keeps the previous takes (as a Write node's versioned path would).

No bpy; standard library only.
"""

from __future__ import annotations

import os
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_VERSION = re.compile(r"^v(\d{3,})$")


def safe_name(name: str) -> str:
    """``name`` with anything but letters, digits, ``_ . -`` made ``_`` (never empty)."""
    cleaned = _UNSAFE.sub("_", name).strip("._")
    return cleaned or "strip"


def next_version(folder: str) -> int:
    """One above the highest ``vNNN`` folder inside ``folder`` (1 when there is none)."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return 1
    versions = [int(m.group(1)) for m in map(_VERSION.match, names) if m]
    return max(versions, default=0) + 1


def output_pattern(base: str, strip_name: str, version: int | None = None) -> str:
    """The EXR pattern of a new take of ``strip_name`` under the absolute folder ``base``."""
    name = safe_name(strip_name)
    shot = os.path.join(base, name)
    take = next_version(shot) if version is None else int(version)
    return os.path.join(shot, f"v{take:03d}", f"{name}_ned.####.exr")


def frame_file(pattern: str, frame: int) -> str:
    """The file of ``frame`` in a ``####`` (or ``%04d``) pattern."""
    match = re.search(r"#+", pattern)
    if match:
        return pattern[:match.start()] + f"{int(frame):0{len(match.group())}d}" + pattern[match.end():]
    printf = re.search(r"%0?(\d*)d", pattern)
    if printf:
        width = int(printf.group(1) or 0)
        return pattern[:printf.start()] + f"{int(frame):0{width}d}" + pattern[printf.end():]
    raise ValueError(f"{pattern} has no frame number placeholder")


def frame_number(filename: str) -> int:
    """The frame number in a file name (the last run of digits before the extension)."""
    match = re.search(r"(-?\d+)(?=\.[^.]*$)", filename)
    if match is None:
        raise ValueError(f"{filename} has no frame number")
    return int(match.group(1))
