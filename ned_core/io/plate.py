"""Reading a shot's plate: an image sequence, a movie or a single still, frame by frame as float32.

``Plate.open`` checks everything it can up front (path, pattern, frame range, the first frame's
header, the colourspace name) so a job fails before any work; ``Plate.read`` gives one frame's
data-window pixels in the plate's own colourspace with the windows, pixel aspect and metadata an
output frame must keep. Images go through OpenImageIO, movies through PyAV (the OpenImageIO wheel has no
movie reader). Must not import torch or zmq.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from types import TracebackType
from typing import Any

import cv2
import numpy as np
import OpenImageIO as oiio

from ned_core.errors import CorruptImageError, FrameRangeError, InputNotFoundError
from ned_core.io.colour import (
    check_colorspace,
    colorspace_of_spec,
    half_to_display_rgb8,
    infer_colorspace,
    to_display_rgb8,
)
from ned_core.io.sequence import frame_path, is_movie, is_sequence_pattern, scan_frames

# Attributes describing how the source file was stored, or that the writer sets itself: copying them
# into an output would be wrong (compression, per-file layout) or stale (the colourspace, the date).
_SKIP_ATTRIBUTES = frozenset((
    "compression", "PixelAspectRatio", "DateTime", "colorInteropID", "ned:colorspace", "ned:source_colorspace",
    "ICCProfile", "planarconfig", "name", "view", "type", "tiles", "chunkCount", "version", "channels", "dataWindow",
    "displayWindow", "lineOrder", "BitsPerSample", "SampleFormat", "Compression", "Predictor",
    "RowsPerStrip", "ImageWidth", "ImageLength", "dwaCompressionLevel", "zipCompressionLevel",
))
_SKIP_PREFIXES = ("oiio:", "openexr:", "tiff:", "dpx:", "png:", "jpeg:", "jpeg2000:", "cineon:",
                  "targa:", "bmp:", "webp:", "heif:", "raw:", "ffmpeg:", "photoshop:", "psd:", "gif:")

_MOVIE_CACHE_FRAMES = 8
_decode_threads = 0  # 0: FFmpeg picks (one per core and one more); see set_decode_threads


def set_decode_threads(threads: int) -> None:
    """Threads each movie decoder of this process uses (0: FFmpeg's choice, one per core and one more).

    A worker process held to a share of the cores sets its share here, as it does for its other
    libraries. FFmpeg's threaded decoding is bit-exact, so no pixel changes.
    """
    global _decode_threads
    _decode_threads = max(0, int(threads))


def carried_attribute(name: str) -> bool:
    """True when a source attribute belongs in an output made from it (see ``ImageInfo.metadata``)."""
    return name not in _SKIP_ATTRIBUTES and not name.startswith(_SKIP_PREFIXES)


@dataclass
class ImageInfo:
    """Where a frame's pixels sit and what travels with them into an output.

    ``metadata`` holds the source attributes worth carrying (camera, lens, timecode, chromaticities,
    custom studio keys); storage details (compression, channel formats, ``oiio:*``...) are left out.
    ``metadata_types`` gives the OpenImageIO type of each (``"matrix"``, ``"timecode"``, ``"float2"``...)
    so typed attributes are written back as the same type.
    """

    width: int
    height: int
    data_window: tuple[int, int, int, int]
    display_window: tuple[int, int, int, int]
    pixel_aspect: float = 1.0
    metadata: dict[str, object] = field(default_factory=dict)
    metadata_types: dict[str, str] = field(default_factory=dict)
    source_format: str = "uint8"  # how the file stores its pixels: "half", "float", "uint8", "uint16"...
    source_bits: int = 8  # significant bits per sample (a 10-bit DPX stores uint16 with 10)

    @property
    def needs_float(self) -> bool:
        """True when half float cannot hold this source's values exactly (float, or ints over 11 bits)."""
        if self.source_format in ("float", "double"):
            return True
        return self.source_format != "half" and self.source_bits > 11

    @classmethod
    def from_spec(cls, spec: oiio.ImageSpec) -> ImageInfo:
        metadata: dict[str, object] = {}
        types: dict[str, str] = {}
        for attribute in spec.extra_attribs:
            if carried_attribute(attribute.name):
                metadata[attribute.name] = attribute.value
                types[attribute.name] = str(attribute.type)
        return cls(
            width=spec.width, height=spec.height,
            data_window=(spec.x, spec.y, spec.width, spec.height),
            display_window=(spec.full_x, spec.full_y, spec.full_width, spec.full_height),
            pixel_aspect=float(spec.get_float_attribute("PixelAspectRatio", 1.0)) or 1.0,
            metadata=metadata, metadata_types=types, source_format=str(spec.format),
            source_bits=int(spec.get_int_attribute("oiio:BitsPerSample", 0) or spec.format.size() * 8))


@dataclass
class PlateImage:
    """One frame: float32 (H, W, C) data-window pixels in the plate's own colourspace.

    Channels are R, G, B, then A when the plate has alpha (found by name, whatever order the file
    stores them in); a one-channel image is repeated into R, G and B. Alpha is associated
    (premultiplied), as EXR stores it: straight-alpha files (PNG) are premultiplied on read, which is
    OpenImageIO's convention.
    """

    frame: int
    pixels: np.ndarray
    channel_names: tuple[str, ...]
    info: ImageInfo
    colorspace: str
    stored: np.ndarray | None = field(default=None, repr=False, compare=False)
    """The same pixels as half floats, when the file stores them so (``pixels`` was widened from them):
    lets a frame be kept in half the memory without converting it again."""

    def display_rgb8(self) -> np.ndarray:
        """uint8 (H, W, 3) display-referred sRGB of the RGB, for analysis (never for output)."""
        stored = self.stored
        if stored is not None and stored.shape == self.pixels.shape:
            looked_up = half_to_display_rgb8(stored, self.colorspace)
            if looked_up is not None:
                return looked_up
        return to_display_rgb8(self.pixels, self.colorspace)

    @property
    def alpha(self) -> np.ndarray | None:
        """(H, W) float32 alpha, or None when the plate has none."""
        if "A" not in self.channel_names:
            return None
        return self.pixels[..., self.channel_names.index("A")]


# -- images through OpenImageIO --------------------------------------------------------------------------

def _first_error_line(text: str, fallback: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else fallback


def _open_image(path: str, frame: int | None) -> oiio.ImageInput:
    if not os.path.isfile(path):
        raise InputNotFoundError(f"missing file {path}" + (f" (frame {frame})" if frame is not None else ""),
                                 path=path, frame=frame)
    image = oiio.ImageInput.open(path)
    if image is None:
        reason = _first_error_line(oiio.geterror(), "unknown format")
        raise CorruptImageError(f"cannot read {path}: {reason}", path=path, frame=frame)
    return image


def _channel_layout(names: tuple[str, ...], alpha_channel: int) -> tuple[list[int | None], int | None]:
    """Where R, G and B come from (None: a missing colour channel, read as zero) and the alpha index.

    Channels are found by name (R/red, G/green, B/blue, A/alpha). Without colour names, a grey channel
    (Y, or the first one) is repeated into R, G and B; an alpha-only image shows its alpha as grey.
    """
    lookup: dict[str, int] = {}
    for i, name in enumerate(names):
        lookup.setdefault(name.lower(), i)
    alpha = lookup.get("a", lookup.get("alpha", alpha_channel if alpha_channel >= 0 else None))
    rgb = [lookup.get(c, lookup.get(long)) for c, long in (("r", "red"), ("g", "green"), ("b", "blue"))]
    if any(i is not None for i in rgb):
        return rgb, alpha
    others = [i for i in range(len(names)) if i != alpha]
    grey = lookup.get("y", lookup.get("l"))
    if grey is None and len(others) >= 3:
        return list(others[:3]), alpha
    if grey is None:
        grey = others[0] if others else alpha
    return [grey, grey, grey], alpha


def widen_half(half: np.ndarray) -> np.ndarray:
    """float16 → float32 with the bits OpenImageIO's conversion gives (checked over all 65536 halves):
    OpenCV's SIMD conversion, or numpy's when a NaN or infinity is there (OpenCV quiets signalling NaNs)."""
    shape = half.shape
    flat = np.ascontiguousarray(half).reshape(shape[0], -1) if half.ndim > 1 else half.reshape(1, -1)
    wide = cv2.convertFp16(flat.view(np.int16))
    if not cv2.checkRange(wide)[0]:
        wide = flat.astype(np.float32)
    return wide.reshape(shape)


def read_image(path: str, frame: int | None = None) -> tuple[np.ndarray, tuple[str, ...], ImageInfo, str]:
    """Read one image file: (float32 pixels RGB[A], channel names, info, colourspace the file implies).

    Raises InputNotFoundError for a missing file and CorruptImageError for one that cannot be decoded.
    """
    pixels, names, info, colorspace, _ = _read_image(path, frame)
    return pixels, names, info, colorspace


def _read_image(path: str, frame: int | None
                ) -> tuple[np.ndarray, tuple[str, ...], ImageInfo, str, np.ndarray | None]:
    """``read_image``, and the pixels as half floats when the file stores them so (else None)."""
    image = _open_image(path, frame)
    try:
        spec = image.spec()
        if spec.deep:
            raise CorruptImageError(f"cannot read {path}: deep images are not supported",
                                    path=path, frame=frame)
        rgb, alpha = _channel_layout(tuple(spec.channelnames), spec.alpha_channel)
        wanted = rgb + ([alpha] if alpha is not None else [])
        stop = max(i for i in wanted if i is not None) + 1  # read only up to the last channel used
        # Half-float files are read as stored and widened by numpy: the same float32 bits as asking
        # OpenImageIO for float (checked over all 65536 half values, signalling NaNs included), for
        # about a quarter less CPU at 1080p.
        native_half = str(spec.format) == "half" and all(str(f) == "half" for f in spec.channelformats[:stop])
        data = image.read_image(0, 0, 0, stop, oiio.HALF if native_half else oiio.FLOAT)
        if data is None or image.has_error:
            reason = _first_error_line(image.geterror(), "truncated or corrupt pixel data")
            raise CorruptImageError(f"cannot read {path}: {reason}", path=path, frame=frame)
        stored = None
        if native_half:
            stored = np.asarray(data, np.float16).reshape(spec.height, spec.width, stop)
            data = widen_half(stored)
        data = np.asarray(data, np.float32).reshape(spec.height, spec.width, stop)
        if wanted != list(range(stop)):
            stored = None
            gathered = np.zeros((spec.height, spec.width, len(wanted)), np.float32)
            for out_index, in_index in enumerate(wanted):
                if in_index is not None:
                    gathered[..., out_index] = data[..., in_index]
            data = gathered
        names = ("R", "G", "B", "A") if alpha is not None else ("R", "G", "B")
        colorspace = colorspace_of_spec(spec, os.path.splitext(path)[1])
        return data, names, ImageInfo.from_spec(spec), colorspace, stored
    finally:
        image.close()
        oiio.geterror()  # clear OIIO's global error so it is not reported against a later file


def _image_header(path: str, frame: int | None) -> oiio.ImageSpec:
    image = _open_image(path, frame)
    try:
        return image.spec()
    finally:
        image.close()


# -- movies through PyAV -----------------------------------------------------------------------------------

class _MovieDecoder:
    """Frames of a movie by index, decoded in order with a small cache of the latest ones.

    Reading forward decodes through; reading back past the cache restarts decoding from the start. That
    is cheap for the short clips a shot is, and memory stays at a few frames whatever the order.
    """

    def __init__(self, path: str) -> None:
        import av  # only movies need PyAV

        self._av = av
        self.path = path
        try:
            container = av.open(path)
        except (av.error.FFmpegError, OSError) as exc:
            raise CorruptImageError(f"cannot read movie {path}: {exc}", path=path) from exc
        try:
            if not container.streams.video:
                raise CorruptImageError(f"{path} has no video stream", path=path)
            stream = container.streams.video[0]
            context = stream.codec_context
            self.width, self.height = context.width, context.height
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else None
            self.fps_fraction = Fraction(rate.numerator, rate.denominator) if rate else None
            aspect = context.sample_aspect_ratio
            self.pixel_aspect = float(aspect) if aspect else 1.0
            self.has_audio = bool(container.streams.audio)
            # Count by demuxing (no decoding): container frame counts are often missing (MPEG-PS) and
            # discarded packets (edit lists) never become frames.
            self.count = sum(1 for packet in container.demux(stream)
                             if packet.size and not packet.is_discard)
        except av.error.FFmpegError as exc:
            raise CorruptImageError(f"cannot read movie {path}: {exc}", path=path) from exc
        finally:
            container.close()
        self._container: Any = None
        self._frames: Any = None
        self._next = 0
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def _restart(self) -> None:
        self.close()
        self._container = self._av.open(self.path)
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        if _decode_threads:
            stream.codec_context.thread_count = _decode_threads
        self._frames = self._container.decode(stream)
        self._next = 0

    def _to_rgb(self, frame: Any) -> np.ndarray:
        from av.video.reformatter import ColorRange, Colorspace

        # Untagged video: the usual player guess, Rec.709 matrix for HD and Rec.601 below it.
        matrix = {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.SMPTE170M,
                  7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}.get(
                      int(frame.colorspace),
                      Colorspace.ITU709 if frame.height >= 720 else Colorspace.ITU601)
        full = int(frame.color_range) == 2 or frame.format.name.startswith("yuvj")
        rgb = frame.reformat(format="rgb24", src_colorspace=matrix,
                             src_color_range=ColorRange.JPEG if full else ColorRange.MPEG,
                             dst_color_range=ColorRange.JPEG)
        return rgb.to_ndarray()

    def read(self, index: int, frame_number: int) -> np.ndarray:
        """uint8 (H, W, 3) RGB of the ``index``-th frame (0-based); ``frame_number`` names it in errors."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        if self._frames is None or index < self._next:
            self._restart()
        try:
            while self._next <= index:
                decoded = next(self._frames)
                rgb = self._to_rgb(decoded)
                self._cache[self._next] = rgb
                if len(self._cache) > _MOVIE_CACHE_FRAMES:
                    self._cache.popitem(last=False)
                self._next += 1
        except StopIteration:
            self.close()
            raise CorruptImageError(f"{self.path} ends before frame {frame_number}",
                                    path=self.path, frame=frame_number) from None
        except self._av.error.FFmpegError as exc:
            self.close()
            raise CorruptImageError(f"cannot decode {self.path} frame {frame_number}: {exc}",
                                    path=self.path, frame=frame_number) from exc
        return self._cache[index]

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._frames = None
        self._next = 0


# -- the plate ---------------------------------------------------------------------------------------------

class Plate:
    """A shot's frames: an image sequence, a movie or a still, opened and validated once.

    Use ``Plate.open``. ``frames`` is the shot (the requested range, else everything the plate has).
    A still is a one-frame shot numbered ``start``; given a frame range it is held on every frame of
    it, as Nuke's Read holds a file with no frame number. Sequences keep their own frame numbers;
    a movie's frames are numbered from ``start``. A movie plate decodes statefully: use one ``Plate``
    per thread.
    """

    path: str
    kind: str
    frames: list[int]
    first: int
    last: int
    width: int
    height: int
    colorspace: str
    fps: float | None
    has_audio: bool

    def __init__(self, path: str, kind: str, frames: list[int], width: int, height: int, colorspace: str,
                 fps: float | None = None, has_audio: bool = False, movie: _MovieDecoder | None = None,
                 start: int = 1001) -> None:
        self.path, self.kind, self.frames = path, kind, frames
        self.first, self.last = frames[0], frames[-1]
        self.width, self.height, self.colorspace = width, height, colorspace
        self.fps, self.has_audio = fps, has_audio
        self._movie = movie
        self._start = start
        self._content_key: str | None = None

    def __repr__(self) -> str:
        return (f"Plate({self.path!r}, kind={self.kind!r}, frames={self.first}-{self.last}, "
                f"{self.width}x{self.height}, colorspace={self.colorspace!r})")

    @classmethod
    def open(cls, path: str, frame_range: tuple[int, int] | None = None, colorspace: str | None = None,
             start: int = 1001) -> Plate:
        """Open and validate a plate.

        Parameters
        ----------
        path
            A sequence pattern (``plate.####.exr``, ``plate.%04d.dpx``, ``plate.@@@@.png``), a movie
            (.mp4/.mov/.mpg...) or a single image.
        frame_range
            (first, last), inclusive; default: every frame the plate has.
        colorspace
            The plate's OCIO colourspace; default: inferred (``colour.infer_colorspace``).
        start
            The frame number of a movie's first frame, and a still's frame number.

        Raises
        ------
        InputNotFoundError
            Missing file, a pattern matching nothing, or a frame missing inside the range (the first
            one is named).
        FrameRangeError
            A malformed range or one reaching outside the plate.
        CorruptImageError
            The first frame (or the movie) cannot be decoded.
        InvalidOptionError
            An unknown colourspace name.
        """
        if frame_range is not None and frame_range[1] < frame_range[0]:
            raise FrameRangeError(f"frame range {frame_range[0]}-{frame_range[1]} ends before it starts",
                                  path=path, field="frames")
        canonical = check_colorspace(colorspace) if colorspace is not None else None
        if is_movie(path):
            return cls._open_movie(path, frame_range, canonical, start)
        if is_sequence_pattern(path):
            return cls._open_sequence(path, frame_range, canonical)
        if not os.path.isfile(path):
            raise InputNotFoundError(f"missing file {path}", path=path)
        frames = list(range(frame_range[0], frame_range[1] + 1)) if frame_range else [start]
        spec = _image_header(path, frames[0])
        return cls(path, "still", frames, spec.width, spec.height, canonical or infer_colorspace(path),
                   fps=_fps(spec), start=start)

    @classmethod
    def _open_sequence(cls, pattern: str, frame_range: tuple[int, int] | None,
                       colorspace: str | None) -> Plate:
        on_disk = scan_frames(pattern)
        if not on_disk:
            raise InputNotFoundError(f"no files match {pattern}", path=pattern)
        first, last = frame_range if frame_range is not None else (on_disk[0], on_disk[-1])
        if first < on_disk[0] or last > on_disk[-1]:
            bad = first if first < on_disk[0] else last
            raise FrameRangeError(
                f"frame range {first}-{last} is outside the plate {pattern} ({on_disk[0]}-{on_disk[-1]})",
                path=pattern, frame=bad)
        present = set(on_disk)
        frames = list(range(first, last + 1))
        missing = [f for f in frames if f not in present]
        if missing:
            raise InputNotFoundError(
                f"frame {missing[0]} is missing: no file {frame_path(pattern, missing[0])}"
                + (f" ({len(missing)} frames missing in {first}-{last})" if len(missing) > 1 else ""),
                path=frame_path(pattern, missing[0]), frame=missing[0])
        first_file = frame_path(pattern, first)
        spec = _image_header(first_file, first)
        return cls(pattern, "sequence", frames, spec.width, spec.height,
                   colorspace or infer_colorspace(first_file), fps=_fps(spec))

    @classmethod
    def _open_movie(cls, path: str, frame_range: tuple[int, int] | None, colorspace: str | None,
                    start: int) -> Plate:
        if not os.path.isfile(path):
            raise InputNotFoundError(f"missing file {path}", path=path)
        movie = _MovieDecoder(path)
        if movie.count == 0:
            raise CorruptImageError(f"{path} has no video frames", path=path)
        end = start + movie.count - 1
        first, last = frame_range if frame_range is not None else (start, end)
        if first < start or last > end:
            raise FrameRangeError(
                f"frame range {first}-{last} is outside the movie {path} ({start}-{end})",
                path=path, frame=first if first < start else last)
        return cls(path, "movie", list(range(first, last + 1)), movie.width, movie.height,
                   colorspace or infer_colorspace(path), fps=movie.fps, has_audio=movie.has_audio,
                   movie=movie, start=start)

    def read(self, frame: int) -> PlateImage:
        """One frame of the shot, in any order.

        Raises FrameRangeError for a frame outside the shot, InputNotFoundError when its file has gone,
        CorruptImageError when it cannot be decoded.
        """
        if not self.first <= frame <= self.last:
            raise FrameRangeError(f"frame {frame} is outside the shot {self.first}-{self.last}",
                                  path=self.path, frame=frame)
        if self._movie is not None:
            rgb8 = self._movie.read(frame - self._start, frame)
            pixels = rgb8.astype(np.float32)
            pixels *= np.float32(1.0 / 255.0)
            metadata: dict[str, object] = {}
            types: dict[str, str] = {}
            if self._movie.fps_fraction is not None:
                rate = self._movie.fps_fraction
                metadata["FramesPerSecond"] = (rate.numerator, rate.denominator)
                types["FramesPerSecond"] = "rational"
            width, height = self._movie.width, self._movie.height
            info = ImageInfo(width, height, (0, 0, width, height), (0, 0, width, height),
                             self._movie.pixel_aspect, metadata, types)
            return PlateImage(frame, pixels, ("R", "G", "B"), info, self.colorspace)
        path = frame_path(self.path, frame) if self.kind == "sequence" else self.path
        pixels, names, info, _, stored = _read_image(path, frame)
        return PlateImage(frame, pixels, names, info, self.colorspace, stored=stored)

    def files(self) -> list[str]:
        """The files the shot reads, in frame order (one for a movie or a still)."""
        if self.kind == "sequence":
            return [frame_path(self.path, f) for f in self.frames]
        return [self.path]

    def content_key(self) -> str:
        """sha256 hex of the shot's content: every file's bytes in frame order, the range and the kind.

        Renaming or moving the plate keeps the key; changing a pixel, the range or (for a movie) the
        start number changes it. Computed once per open plate.
        """
        if self._content_key is None:
            digest = hashlib.sha256(f"ned-plate-1\n{self.kind}\n{self.first}-{self.last}\n".encode())
            if self.kind == "movie":
                digest.update(f"start {self._start}\n".encode())
            for path in self.files():
                try:
                    with open(path, "rb") as handle:
                        digest.update(hashlib.file_digest(handle, "sha256").digest())
                except FileNotFoundError:
                    raise InputNotFoundError(f"missing file {path}", path=path) from None
            self._content_key = digest.hexdigest()
        return self._content_key

    def close(self) -> None:
        """Release the movie decoder (image plates hold no open files between reads)."""
        if self._movie is not None:
            self._movie.close()

    def __enter__(self) -> Plate:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def _fps(spec: oiio.ImageSpec) -> float | None:
    """Frames per second a file's header states (EXR ``framesPerSecond``), or None."""
    for attribute in spec.extra_attribs:
        if attribute.name == "FramesPerSecond":
            value = attribute.value
            if isinstance(value, tuple) and len(value) == 2 and value[1]:
                return value[0] / value[1]
            if isinstance(value, (int, float)) and value > 0:
                return float(value)
    return None
