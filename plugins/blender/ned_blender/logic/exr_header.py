"""A tiny pure-Python OpenEXR header reader: the attributes of an EXR's (first part's) header.

The add-on cannot use OpenImageIO inside Blender's Python, yet it must set a loaded sequence's colourspace
from the file's ``oiio:ColorSpace`` attribute, never from a guess. The header is a list of
``name\\0 type\\0 size:int32 value`` records ending with an empty name (OpenEXR file layout, section
"Header"); only the types this add-on reads are decoded, the rest are kept as raw bytes.

Standard library only; no bpy.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

MAGIC = 20000630
"""The four bytes every OpenEXR file starts with (little-endian int)."""

_MAX_HEADER = 1 << 20  # a sane bound: real headers are a few KiB; a corrupt size must not allocate GiBs
_MAX_NAME = 255


class ExrHeaderError(ValueError):
    """The file is not an OpenEXR file, or its header is truncated or malformed."""


def _read_cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.find(b"\0", pos, pos + _MAX_NAME + 1)
    if end < 0:
        raise ExrHeaderError("header name is not terminated (truncated or not an EXR)")
    return data[pos:end].decode("latin-1"), end + 1


def _decode(kind: str, raw: bytes) -> Any:
    if kind == "string":
        return raw.decode("utf-8", "replace")
    if kind == "int" and len(raw) == 4:
        return struct.unpack("<i", raw)[0]
    if kind == "float" and len(raw) == 4:
        return struct.unpack("<f", raw)[0]
    if kind == "double" and len(raw) == 8:
        return struct.unpack("<d", raw)[0]
    if kind == "box2i" and len(raw) == 16:
        return struct.unpack("<4i", raw)
    if kind == "v2f" and len(raw) == 8:
        return struct.unpack("<2f", raw)
    if kind == "compression" and len(raw) == 1:
        names = ("none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab")
        return names[raw[0]] if raw[0] < len(names) else raw[0]
    if kind == "chlist":
        channels, pos = [], 0
        while pos < len(raw) and raw[pos] != 0:
            name, pos = _read_cstring(raw, pos)
            pixel_type = struct.unpack_from("<i", raw, pos)[0]
            channels.append((name, ("uint", "half", "float")[pixel_type] if 0 <= pixel_type < 3 else pixel_type))
            pos += 16  # pixel type, pLinear + 3 reserved bytes, xSampling, ySampling
        return channels
    return raw


def read_header(source: str | BinaryIO) -> dict[str, Any]:
    """The attributes of an EXR's header, by name (of the first part of a multi-part file).

    ``string``, ``int``, ``float``, ``double``, ``box2i``, ``v2f``, ``compression`` and ``chlist``
    values are decoded (a chlist as ``[(name, "half"|"float"|"uint"), ...]``); other types stay bytes.

    Raises
    ------
    ExrHeaderError
        Not an OpenEXR file, or a truncated or malformed header.
    OSError
        The file cannot be read.
    """
    if isinstance(source, str):
        with open(source, "rb") as handle:
            return read_header(handle)
    data = source.read(_MAX_HEADER)
    if len(data) < 8 or struct.unpack_from("<i", data, 0)[0] != MAGIC:
        raise ExrHeaderError("not an OpenEXR file (bad magic number)")
    flags = struct.unpack_from("<I", data, 4)[0]
    if flags & 0xFF != 2:
        raise ExrHeaderError(f"unsupported OpenEXR version {flags & 0xFF}")
    pos, attributes = 8, {}  # type: int, dict[str, Any]
    while True:
        if pos >= len(data):
            raise ExrHeaderError("the header is truncated")
        name, pos = _read_cstring(data, pos)
        if not name:
            return attributes
        kind, pos = _read_cstring(data, pos)
        if pos + 4 > len(data):
            raise ExrHeaderError(f"the header is truncated in attribute {name!r}")
        size = struct.unpack_from("<i", data, pos)[0]
        pos += 4
        if size < 0 or pos + size > len(data):
            raise ExrHeaderError(f"attribute {name!r} has a bad size {size}")
        attributes[name] = _decode(kind, data[pos:pos + size])
        pos += size


COLORSPACE_ATTRIBUTES = ("oiio:ColorSpace", "colorInteropID", "ned:colorspace")
"""Where a header names its colourspace, most specific first: OpenImageIO's own attribute, OpenEXR 3.4's
``colorInteropID`` (what OpenImageIO reads back as ``oiio:ColorSpace`` when the file has only that,
e.g. ``srgb_rec709_scene``), and NED's full OCIO config name."""


def colorspace_of(path: str) -> str | None:
    """The colourspace an EXR's header names (None when it names none): see ``COLORSPACE_ATTRIBUTES``."""
    return colorspace_in(read_header(path))


def colorspace_in(header: dict[str, Any]) -> str | None:
    """The colourspace a header (``read_header``'s dict) names, or None."""
    for name in COLORSPACE_ATTRIBUTES:
        value = header.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None
