"""A tiny pure-Python OpenEXR header reader: the attributes of a file's parts, and its colourspace.

Host plugins (Nuke, Blender) load NED's output frames and must set their colourspace from the file,
never from a guess, but cannot count on OpenImageIO in the host's Python. An EXR header is small and
simple: the magic number 20000630, a 4-byte version/flags field, then attributes
``name\\0 type\\0 int32 size, value`` until an empty name; a multi-part file (flag bit 12, how NED
writes its matte and STMap layers beside RGBA) has one such header per part and an empty one after the
last. This module decodes the attribute types NED and hosts care about (strings, numbers, boxes,
vectors, the channel list) and keeps the rest as bytes.

Imports only the standard library (it installs into Nuke's and Blender's Python, 3.9 or newer).
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

from ned_protocol.errors import CorruptImageError, InputNotFoundError

MAGIC = 20000630
"""The first four bytes of every OpenEXR file (little-endian int32)."""
MAX_HEADER_BYTES = 16 << 20
"""A header larger than this is taken as corrupt (real ones are a few kilobytes)."""
COLORSPACE_ATTRIBUTES = ("ned:colorspace", "colorInteropID", "oiio:ColorSpace")
"""Where a colourspace is named, most specific first: NED's own attribute, the EXR colour interop ID,
and OpenImageIO's name."""
_PIXEL_TYPES = ("uint", "half", "float")
_MULTIPART = 0x1000


class _Reader:
    """Bounded reads from the header's bytes; any overrun is a corrupt file."""

    def __init__(self, stream: BinaryIO, path: str) -> None:
        self.stream = stream
        self.path = path
        self.used = 0

    def take(self, n: int) -> bytes:
        self.used += n
        if n < 0 or self.used > MAX_HEADER_BYTES:
            raise self.corrupt(f"a header larger than {MAX_HEADER_BYTES} bytes")
        data = self.stream.read(n)
        if len(data) != n:
            raise self.corrupt("the file ends inside its header")
        return data

    def name(self) -> str:
        out = bytearray()
        while True:
            byte = self.take(1)
            if byte == b"\0":
                return out.decode("utf-8", "replace")
            out += byte
            if len(out) > 255:
                raise self.corrupt("an attribute name longer than 255 bytes")

    def corrupt(self, what: str) -> CorruptImageError:
        return CorruptImageError(f"{self.path} is not a readable OpenEXR file: {what}", path=self.path)


def _channels(data: bytes) -> list[dict[str, Any]]:
    out = []
    at = 0
    while at < len(data) and data[at] != 0:
        end = data.index(b"\0", at)
        name = data[at:end].decode("utf-8", "replace")
        pixel_type, _linear, xs, ys = struct.unpack_from("<iB3xii", data, end + 1)
        out.append({"name": name, "type": _PIXEL_TYPES[pixel_type] if 0 <= pixel_type < 3 else pixel_type,
                    "sampling": (xs, ys)})
        at = end + 1 + 16
    return out


def _value(type_name: str, data: bytes) -> Any:
    """The decoded value of one attribute (bytes for a type this reader does not decode)."""
    simple = {"int": "<i", "float": "<f", "double": "<d", "box2i": "<4i", "box2f": "<4f", "v2i": "<2i",
              "v2f": "<2f", "v3i": "<3i", "v3f": "<3f", "m33f": "<9f", "m44f": "<16f", "rational": "<iI",
              "compression": "<B", "lineOrder": "<B", "envmap": "<B", "timecode": "<2I"}
    if type_name == "string":
        return data.decode("utf-8", "replace")
    if type_name == "chlist":
        return _channels(data)
    fmt = simple.get(type_name)
    if fmt is None:
        return data
    values = struct.unpack(fmt, data)  # a size that does not fit the type raises struct.error
    return values[0] if len(values) == 1 else tuple(values)


def read_header(path: str) -> dict[str, Any]:
    """The attributes of an EXR file's header (its first part), by name: see ``read_headers``."""
    return read_headers(path)[0]


def read_headers(path: str) -> list[dict[str, Any]]:
    """The attributes of each part's header of an EXR file, by name (one dict for a single-part file).

    ``dataWindow``/``displayWindow`` are ``(xmin, ymin, xmax, ymax)``; ``channels`` is a list of
    ``{"name", "type", "sampling"}``; strings are ``str``; undecoded types stay ``bytes``.

    Raises
    ------
    InputNotFoundError
        The file does not exist or cannot be opened.
    CorruptImageError
        It is not an OpenEXR file, or its header is truncated or malformed.
    """
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise InputNotFoundError(f"missing EXR file {path}", path=path) from None
    except OSError as error:
        raise InputNotFoundError(f"cannot open {path}: {error.strerror or error}", path=path) from None
    with stream:
        reader = _Reader(stream, path)
        magic, flags = struct.unpack("<iI", reader.take(8))
        if magic != MAGIC:
            raise reader.corrupt("no OpenEXR magic number")
        multipart = bool(flags & _MULTIPART)
        headers = [_attributes(reader)]
        while multipart:
            header = _attributes(reader)
            if not header:  # the empty header after the last part
                break
            headers.append(header)
        return headers


def _attributes(reader: _Reader) -> dict[str, Any]:
    """One header's attributes, up to and including its terminating empty name."""
    header: dict[str, Any] = {}
    while True:
        name = reader.name()
        if not name:
            return header
        type_name = reader.name()
        (size,) = struct.unpack("<i", reader.take(4))
        if size < 0:
            raise reader.corrupt(f"attribute {name!r} has a negative size")
        try:
            header[name] = _value(type_name, reader.take(size))
        except (struct.error, ValueError):
            raise reader.corrupt(f"attribute {name!r} of type {type_name!r} is malformed") from None


def colorspace(header: dict[str, Any]) -> str | None:
    """The colourspace a header names (``ned:colorspace``, else ``colorInteropID``, else
    ``oiio:ColorSpace``), or None when it names none."""
    for name in COLORSPACE_ATTRIBUTES:
        value = header.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def channel_names(header: dict[str, Any] | list[dict[str, Any]]) -> list[str]:
    """The channel names of a header, or of every part of ``read_headers``'s list, in file order."""
    headers = header if isinstance(header, list) else [header]
    return [c["name"] for h in headers for c in h.get("channels", [])]


__all__ = ["COLORSPACE_ATTRIBUTES", "MAGIC", "channel_names", "colorspace", "read_header", "read_headers"]
