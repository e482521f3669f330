"""Writing NED's output frames as OpenEXR, atomically, and reading EXR channels back by name.

An output frame keeps everything a compositor relies on from its source: data window, display window,
pixel aspect and metadata (``like``), and it says its colourspace (``colorInteropID`` where the OCIO
colourspace has one, and ``ned:colorspace`` always). Pixels given in another colourspace
(``convert_from``, the plate's) are converted at write time, RGB only, and the header also names the
colourspace they came from (``ned:source_colorspace``). RGBA is half float unless asked otherwise;
AOV layers (mattes, STMaps) are always 32-bit float and never converted, as they are data.

Output bytes depend only on the inputs (no time stamp), so farm chunks equal a single run. Files are
written atomically (``atomic.py``). Must not import PyAV, torch or zmq.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import OpenImageIO as oiio

from ned_core.errors import CorruptImageError, InputNotFoundError, InvalidOptionError, OutputError
from ned_core.io.atomic import commit, discard, make_parent, temp_path
from ned_core.io.colour import check_colorspace, interop_id, to_output
from ned_core.io.plate import ImageInfo, carried_attribute

COMPRESSIONS = ("none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab")
"""OpenEXR compressions; ``dwaa``/``dwab``/``zip``/``zips`` also take a level: ``"dwaa:45"``."""

_RGBA = ("R", "G", "B", "A")


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


def _spec(width: int, height: int, names: list[str], half: bool, n_layers: int,
          like: ImageInfo | None, compression: str, colorspace: str | None,
          source_colorspace: str | None = None) -> oiio.ImageSpec:
    rgba_type = oiio.TypeDesc("half" if half else "float")
    spec = oiio.ImageSpec(width, height, len(names), rgba_type)
    spec.channelnames = tuple(names)
    if n_layers:
        spec.channelformats = (rgba_type,) * (len(names) - n_layers) + (oiio.TypeDesc("float"),) * n_layers
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
    if colorspace is not None:
        canonical = check_colorspace(colorspace)
        spec.attribute("ned:colorspace", canonical)
        interop = interop_id(canonical)
        if interop:
            spec.attribute("colorInteropID", interop)
        if source_colorspace is not None and source_colorspace != canonical:
            spec.attribute("ned:source_colorspace", source_colorspace)
    return spec


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
        Extra channels, e.g. ``{"ned.matte": (H, W), "stmap.u": (H, W)}``, always 32-bit float.
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
    planes = [np.asarray(rgba, np.float32)]
    for name, values in (layers or {}).items():
        if not name or name in names:
            raise OutputError(f"cannot write {path}: bad or repeated layer channel name {name!r}", path=path)
        if values.shape != (height, width):
            raise OutputError(f"cannot write {path}: layer {name!r} is {values.shape}, the image is "
                              f"{(height, width)}", path=path)
        names.append(name)
        planes.append(np.asarray(values, np.float32)[..., None])
    n_layers = len(names) - channels
    spec = _spec(width, height, names, half, n_layers, like, compression, colorspace, source)
    pixels = np.ascontiguousarray(planes[0] if len(planes) == 1 else np.concatenate(planes, axis=-1))

    make_parent(path)
    temp = temp_path(path)
    try:
        output = oiio.ImageOutput.create("openexr")
        if output is None or not output.open(temp, spec):
            reason = output.geterror() if output is not None else oiio.geterror()
            raise OutputError(f"cannot write {path}: {_first_line(reason, 'open failed')}", path=path)
        ok = output.write_image(pixels)
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
    """Every channel of an EXR's first part, by name: ``{"R": (H, W) float32, "ned.matte": ...}``."""
    if not os.path.isfile(path):
        raise InputNotFoundError(f"missing file {path}", path=path)
    image = oiio.ImageInput.open(path)
    if image is None:
        raise CorruptImageError(f"cannot read {path}: {_first_line(oiio.geterror(), 'unknown format')}",
                                path=path)
    try:
        spec = image.spec()
        data = image.read_image(0, 0, 0, spec.nchannels, oiio.FLOAT)
        if data is None or image.has_error:
            raise CorruptImageError(f"cannot read {path}: {_first_line(image.geterror(), 'corrupt data')}",
                                    path=path)
        data = np.asarray(data, np.float32).reshape(spec.height, spec.width, spec.nchannels)
        return {name: np.ascontiguousarray(data[..., i]) for i, name in enumerate(spec.channelnames)}
    finally:
        image.close()
        oiio.geterror()
