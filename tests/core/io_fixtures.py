"""Helpers for the plate I/O tests: real image files written straight through OpenImageIO.

Files are written with OIIO, not with ``ned_core.io``, so the readers are tested against what other
applications produce.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import numpy as np
import OpenImageIO as oiio

GRID_MOVIE = "/work/shared/data/grid/grid_bbaf2n.mpg"
"""A real talking-head clip: 75 frames, 360x288, 25 fps, MPEG-1 video with MP2 audio."""


def gradient(width: int, height: int, channels: int = 4, seed: int = 0) -> np.ndarray:
    """A smooth float32 image in [0, 1] with a little per-seed variation (frames differ).

    With four channels the colour is premultiplied by the alpha (0.75 + variation), as in an EXR.
    """
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(abs(seed))
    planes = [xs / max(width - 1, 1), ys / max(height - 1, 1), (xs + ys) / max(width + height - 2, 1),
              np.full_like(xs, 0.75)]
    image = np.stack(planes[:3] + planes[3:] * max(channels - 3, 0), axis=-1)[..., :channels]
    image = np.clip(image * 0.9 + rng.uniform(0.0, 0.1, size=(1, 1, channels)), 0.0, 1.0)
    if channels == 4:
        image[..., :3] *= image[..., 3:]
    return image.astype(np.float32)


def write_image(path: str | os.PathLike[str], pixels: np.ndarray, pixel_type: str = "half",
                channel_names: Iterable[str] | None = None,
                data_window: tuple[int, int] | None = None,
                display_window: tuple[int, int, int, int] | None = None,
                attributes: Mapping[str, object] | None = None,
                typed_attributes: Mapping[str, tuple[str, object]] | None = None) -> str:
    """Write ``pixels`` (H, W, C) float32 to ``path`` with OIIO; the format follows the extension.

    ``data_window`` is the (x, y) origin of the pixels; ``display_window`` is (x, y, w, h).
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    height, width, channels = pixels.shape
    spec = oiio.ImageSpec(width, height, channels, oiio.TypeDesc(pixel_type))
    if channel_names is not None:
        spec.channelnames = tuple(channel_names)
    if data_window is not None:
        spec.x, spec.y = data_window
    if display_window is not None:
        spec.full_x, spec.full_y, spec.full_width, spec.full_height = display_window
    for name, value in (attributes or {}).items():
        spec.attribute(name, value)
    for name, (type_name, value) in (typed_attributes or {}).items():
        spec.attribute(name, oiio.TypeDesc(type_name), value)
    output = oiio.ImageOutput.create(path)
    assert output is not None, oiio.geterror()
    assert output.open(path, spec), output.geterror()
    assert output.write_image(np.ascontiguousarray(pixels, np.float32)), output.geterror()
    output.close()
    return path


SITE_CONFIG = """\
ocio_profile_version: 2
roles:
  default: raw
  scene_linear: linear
  data: raw
displays:
  sRGB:
    - !<View> {name: Standard, colorspace: sRGB}
active_displays: []
active_views: []
colorspaces:
  - !<ColorSpace>
    name: raw
    isdata: true
  - !<ColorSpace>
    name: linear
  - !<ColorSpace>
    name: sRGB
    from_scene_reference: !<ExponentWithLinearTransform> {gamma: 2.4, offset: 0.055, direction: inverse}
  - !<ColorSpace>
    name: plate_log
    to_scene_reference: !<LogAffineTransform>
      {base: 10, logSideSlope: 0.25, logSideOffset: 0.5, direction: inverse}
"""
"""A small site OCIO config in the style of older studio configs: no interop IDs, no ACES names."""


def write_sequence(directory: str | os.PathLike[str], name_for: str, frames: Iterable[int],
                   width: int = 48, height: int = 32, channels: int = 4, pixel_type: str = "half",
                   **options: object) -> dict[int, np.ndarray]:
    """Write one file per frame; ``name_for`` formats ``{frame}`` (e.g. ``"p.{frame:04d}.exr"``).

    Returns the float32 pixels written for each frame (before quantisation to ``pixel_type``).
    """
    written = {}
    for frame in frames:
        pixels = gradient(width, height, channels, seed=frame)
        write_image(os.path.join(os.fspath(directory), name_for.format(frame=frame)), pixels, pixel_type,
                    **options)  # type: ignore[arg-type]
        written[frame] = pixels
    return written


def header(path: str | os.PathLike[str]) -> oiio.ImageSpec:
    """The ImageSpec of a file (its attributes, windows, channel formats)."""
    image = oiio.ImageInput.open(os.fspath(path))
    assert image is not None, oiio.geterror()
    spec = image.spec()
    image.close()
    return spec


def truncate(path: str | os.PathLike[str], keep: float) -> None:
    """Cut a file down to ``keep`` of its size, as an interrupted copy leaves it."""
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        handle.truncate(int(size * keep))
