"""Writing NED's output frames as OpenEXR, atomically, and reading EXR channels back by name.

An output frame keeps everything a compositor relies on from its source: data window, display window,
pixel aspect and metadata (``like``), and it says its colourspace (``colorInteropID`` where the OCIO
colourspace has one, and ``ned:colorspace`` always). Pixels given in another colourspace
(``convert_from``, the plate's) are converted at write time, RGB only, and the header also names the
colourspace they came from (``ned:source_colorspace``). RGBA is half float unless asked otherwise;
AOV layers (mattes, STMaps) are always 32-bit float and never converted, as they are data.

A frame with layers is a multi-part OpenEXR 2 file, laid out as Nuke's Write node writes one part per
layer: part ``rgba`` holds R, G, B, A, then one 32-bit float part per layer named after it (``ned``:
``ned.matte``; ``stmap``: ``stmap.u``, ``stmap.v``), every part with the same windows. Nuke's Read,
OpenImageIO (as subimages) and ``read_exr_channels`` see the same channel names as in a single part;
a reader that only looks at the first part sees the RGBA. One format per part is what makes the write
cheap: a mixed half/float part costs OpenImageIO a channel-by-channel conversion (a third of a 1080p
frame's write).

Output bytes depend only on the inputs (no time stamp), so farm chunks equal a single run. Files are
written atomically (``atomic.py``). Must not import PyAV, torch or zmq.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import cv2
import numpy as np
import OpenImageIO as oiio

from ned_core.errors import CorruptImageError, InputNotFoundError, InvalidOptionError, OutputError
from ned_core.io.atomic import commit, discard, make_parent, temp_path
from ned_core.io.colour import check_colorspace, interop_id, to_output
from ned_core.io.plate import ImageInfo, carried_attribute

COMPRESSIONS = ("none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab")
"""OpenEXR compressions; ``dwaa``/``dwab``/``zip``/``zips`` also take a level: ``"dwaa:45"``."""

_RGBA = ("R", "G", "B", "A")
RGBA_PART = "rgba"
"""Name of the first part (R, G, B, A) of a multi-part output: what Nuke's Write names it."""


def _first_line(text: str, fallback: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else fallback


def _compression(value: str) -> str:
    name, _, level = value.partition(":")
    if name not in COMPRESSIONS or (level and not level.isdigit()):
        raise InvalidOptionError(
            f"unknown EXR compression {value!r} (one of {', '.join(COMPRESSIONS)}, optionally NAME:LEVEL)",
            field="compression")
    return value


def _set_attribute(spec: oiio.ImageSpec, name: str, value: object, type_name: str | None) -> None:
    if type_name:
        spec.attribute(name, oiio.TypeDesc(type_name), value)
    elif isinstance(value, (str, int, float)):
        spec.attribute(name, value)
    elif isinstance(value, (tuple, list)) and value and all(isinstance(v, (int, float)) for v in value):
        kind = "int" if all(isinstance(v, int) for v in value) else "float"
        spec.attribute(name, oiio.TypeDesc(f"{kind}[{len(value)}]"),
                       tuple(int(v) if kind == "int" else float(v) for v in value))
    # other Python objects have no EXR attribute type: they are not written


def _layer_of(name: str) -> str:
    """The layer a channel belongs to: ``ned`` for ``ned.matte``, the name itself without a dot."""
    return name.rpartition(".")[0] or name


def _spec(width: int, height: int, names: list[str], half: bool, like: ImageInfo | None, compression: str,
          colorspace: str | None, source_colorspace: str | None = None, part: str | None = None
          ) -> oiio.ImageSpec:
    """One part's header: ``half`` or float channels ``names``; ``part`` names a part of a multi-part file.

    Every part carries the same windows, pixel aspect and source metadata (OpenEXR wants the shared
    attributes equal in all parts); only the colour part says its colourspace.
    """
    spec = oiio.ImageSpec(width, height, len(names), oiio.TypeDesc("half" if half else "float"))
    spec.channelnames = tuple(names)
    if "A" in names:
        spec.alpha_channel = names.index("A")
    if like is not None:
        spec.x, spec.y = like.data_window[0], like.data_window[1]
        spec.full_x, spec.full_y, spec.full_width, spec.full_height = like.display_window
        spec.attribute("PixelAspectRatio", float(like.pixel_aspect))
        for name, value in like.metadata.items():
            if carried_attribute(name):
                try:
                    _set_attribute(spec, name, value, like.metadata_types.get(name))
                except (TypeError, ValueError, RuntimeError):
                    pass  # an attribute OIIO cannot type is dropped rather than failing the frame
    # No DateTime (OpenImageIO stamps the clock unless told ""): a frame must be byte-identical however
    # a shot is split across farm machines and whenever it is rendered.
    spec.attribute("DateTime", "")
    spec.attribute("compression", compression)
    if part is not None:
        spec.attribute("name", part)
    if colorspace is not None and (part is None or part == RGBA_PART):
        canonical = check_colorspace(colorspace)
        spec.attribute("ned:colorspace", canonical)
        interop = interop_id(canonical)
        if interop:
            spec.attribute("colorInteropID", interop)
        if source_colorspace is not None and source_colorspace != canonical:
            spec.attribute("ned:source_colorspace", source_colorspace)
    return spec


def _channels_of_one_array(planes: list[np.ndarray]) -> np.ndarray | None:
    """The (H, W, k) C-contiguous array whose channels are exactly ``planes`` in order, else None.

    An STMap handed in as ``uv[..., 0]``, ``uv[..., 1]`` is written from ``uv`` itself, not a copy.
    """
    whole = planes[0].base
    if not isinstance(whole, np.ndarray) or whole.dtype != np.float32 or whole.ndim != 3 \
            or whole.shape[2] != len(planes) or not whole.flags.c_contiguous:
        return None
    start = whole.__array_interface__["data"][0]
    for index, plane in enumerate(planes):
        if plane.base is not whole or plane.shape != whole.shape[:2] or plane.strides != whole.strides[:2] \
                or plane.__array_interface__["data"][0] != start + index * whole.itemsize:
            return None
    return whole


def _half_bits(pixels: np.ndarray) -> np.ndarray:
    """float32 (H, W, C) → float16 with the bits OpenImageIO's own conversion on write gives (checked over
    every float32 value), so the file is the same and the writer need not convert: OpenCV's SIMD
    conversion when there is no NaN or infinity (it quiets NaN payloads differently), else numpy's."""
    flat = pixels.reshape(pixels.shape[0], -1)
    if cv2.checkRange(flat)[0]:
        return cv2.convertFp16(flat).view(np.float16).reshape(pixels.shape)
    with np.errstate(over="ignore", invalid="ignore"):  # beyond half's range is infinity, as in OpenEXR
        return pixels.astype(np.float16)


def write_exr(path: str, rgba: np.ndarray, like: ImageInfo | None = None,
              layers: Mapping[str, np.ndarray] | None = None, compression: str = "zip", half: bool = True,
              colorspace: str | None = None, convert_from: str | None = None) -> None:
    """Write one EXR frame atomically.

    Parameters
    ----------
    path
        Destination; its directory is created.
    rgba
        (H, W, 4) float32 → channels R, G, B, A (an (H, W, 3) array writes R, G, B).
    like
        The source frame's info: its data window origin, display window, pixel aspect and metadata are
        kept (its data window size must be the image's).
    layers
        Extra channels, e.g. ``{"ned.matte": (H, W), "stmap.u": (H, W)}``, always 32-bit float, written
        as one part per layer (the name before the last dot) after the RGBA part.
    compression
        One of ``COMPRESSIONS`` (optionally ``NAME:LEVEL``).
    half
        RGBA as half float (default) or 32-bit float.
    colorspace
        The OCIO colourspace the file holds, written into the header so applications know.
    convert_from
        The colourspace ``rgba`` is in when it is not ``colorspace`` (the plate's): its RGB is converted
        here (``colour.to_output``, associated alpha honoured), the caller's array left as it is.
        Needs ``colorspace``.

    Raises
    ------
    InvalidOptionError
        Unknown compression or colourspace.
    OutputError
        Mismatched shapes or a file that cannot be written; no partial file is left behind.
    """
    compression = _compression(compression)
    if rgba.ndim != 3 or rgba.shape[2] not in (3, 4):
        raise OutputError(f"cannot write {path}: RGBA must be (H, W, 4), got {rgba.shape}", path=path)
    height, width, channels = rgba.shape
    source = None
    if convert_from is not None:
        if colorspace is None:
            raise OutputError(f"cannot write {path}: convert_from needs the colourspace to write",
                              path=path)
        source, colorspace = check_colorspace(convert_from), check_colorspace(colorspace)
        rgba = to_output(rgba, source, colorspace)
    if like is not None and (like.width, like.height) != (width, height):
        raise OutputError(f"cannot write {path}: the image is {width}x{height} but its source data window "
                          f"is {like.width}x{like.height}", path=path)
    names = list(_RGBA[:channels])
    groups: dict[str, list[tuple[str, np.ndarray]]] = {}  # layer → its channels, in the order given
    for name, values in (layers or {}).items():
        if not name or name in names:
            raise OutputError(f"cannot write {path}: bad or repeated layer channel name {name!r}", path=path)
        if values.shape != (height, width):
            raise OutputError(f"cannot write {path}: layer {name!r} is {values.shape}, the image is "
                              f"{(height, width)}", path=path)
        groups.setdefault(_layer_of(name), []).append((name, values))
    if RGBA_PART in groups:
        raise OutputError(f"cannot write {path}: layer name {RGBA_PART!r} is the colour part's", path=path)
    multipart = bool(groups)
    # Part 0 holds R, G, B, A (half or float), then one 32-bit float part per layer, named after it. One
    # format per part lets OpenImageIO hand each part to OpenEXR as it is, instead of converting a mixed
    # half/float pixel channel by channel (a third of the write's time at 1080p).
    colour = np.ascontiguousarray(rgba, np.float32)
    parts = [(_spec(width, height, names, half, like, compression, colorspace, source,
                    RGBA_PART if multipart else None), _half_bits(colour) if half else colour)]
    for layer, members in groups.items():
        planes = [np.asarray(values, np.float32) for _, values in members]
        pixels = _channels_of_one_array(planes)
        if pixels is None:
            pixels = planes[0][..., None] if len(planes) == 1 else np.stack(planes, axis=-1)
        parts.append((_spec(width, height, [n for n, _ in members], False, like, compression, None, None, layer),
                      np.ascontiguousarray(pixels)))

    make_parent(path)
    temp = temp_path(path)
    try:
        output = oiio.ImageOutput.create("openexr")
        if output is None or not output.open(temp, tuple(spec for spec, _ in parts)):
            reason = output.geterror() if output is not None else oiio.geterror()
            raise OutputError(f"cannot write {path}: {_first_line(reason, 'open failed')}", path=path)
        ok = True
        for index, (spec, pixels) in enumerate(parts):
            if index:
                ok = ok and output.open(temp, spec, "AppendSubimage")
            ok = ok and output.write_image(pixels)
        error = output.geterror()
        closed = output.close()
        if not ok or not closed:
            reason = _first_line(error or output.geterror(), "write failed")
            raise OutputError(f"cannot write {path}: {reason}", path=path)
        commit(temp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}", path=path) from exc
    finally:
        discard(temp)
        oiio.geterror()


def read_exr_channels(path: str) -> dict[str, np.ndarray]:
    """Every channel of an EXR, from all its parts, by name: ``{"R": (H, W) float32, "ned.matte": ...}``.

    A channel name that appears in more than one part is taken from the first.
    """
    if not os.path.isfile(path):
        raise InputNotFoundError(f"missing file {path}", path=path)
    image = oiio.ImageInput.open(path)
    if image is None:
        raise CorruptImageError(f"cannot read {path}: {_first_line(oiio.geterror(), 'unknown format')}",
                                path=path)
    try:
        channels: dict[str, np.ndarray] = {}
        part = 0
        while part == 0 or image.seek_subimage(part, 0):
            spec = image.spec()
            data = image.read_image(part, 0, 0, spec.nchannels, oiio.FLOAT)
            if data is None or image.has_error:
                raise CorruptImageError(f"cannot read {path}: {_first_line(image.geterror(), 'corrupt data')}",
                                        path=path)
            data = np.asarray(data, np.float32).reshape(spec.height, spec.width, spec.nchannels)
            for i, name in enumerate(spec.channelnames):
                channels.setdefault(name, np.ascontiguousarray(data[..., i]))
            part += 1
        return channels
    finally:
        image.close()
        oiio.geterror()
