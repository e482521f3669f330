"""The shot pipeline: plate → track → face3d → manipulate → render → composite → EXR.

``Pipeline`` holds one backend per stage (built once, kept warm by the engine) and runs a ``Shot``:
``analyze`` (track + face fit, cached per shot), then ``run`` (edit, render, composite and write each
frame atomically). Networking, job queues and the CLI live in ``ned_engine``; this module knows none of
them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ned_core import appearance, composite, face3d, manipulate, render, track
from ned_core.cache import Analysis, AnalysisCache, analysis_key
from ned_core.errors import (
    CancelledError,
    FrameRangeError,
    InvalidOptionError,
    NoFaceError,
    UnknownBackendError,
)
from ned_core.io import Plate, PlateImage, frame_path, write_exr
from ned_core.io.colour import check_colorspace, output_colorspace, output_needs_float, to_display_rgb8
from ned_core.io.exr import COMPRESSIONS
from ned_core.io.plate import widen_half
from ned_core.keyframes import EmotionCurve
from ned_core.process_tuning import tune_process
from ned_core.render.base import FrameFace
from ned_core.track.base import FaceHint

STAGES = ("track", "face3d", "manipulate", "render", "appearance", "composite")
MATTE_LAYER = "ned.matte"
STMAP_LAYERS = ("stmap.u", "stmap.v")
OUTPUT_LAYERS = ("matte", "stmap")
"""The layers an output frame may carry beside RGBA, each an EXR part: the face matte (``ned.matte``)
and the STMap (``stmap.u``, ``stmap.v``)."""
PREVIEW_MAX_WIDTH = 960

PRESETS: dict[str, dict[str, str]] = {
    "default": {},  # the embedded backends: MediaPipe mesh, landmark fit, FACS rig, mesh warp, ratio, matte
    # NED's stack on user-supplied model files (DECA/FLAME, manipulator, per-actor renderer): see
    # docs/using_ned_models.md. Tracking stays on the embedded face mesh.
    "ned": {"face3d": "deca", "manipulate": "ned", "render": "ned", "appearance": "none", "composite": "pyramid"},
}
"""Named backend sets; a stage a preset does not name keeps its default backend."""


@dataclass
class Shot:
    """What to work on: a plate, its frame range and colourspace, an optional user mask and face choice.

    ``start`` numbers a movie's first frame (1001 by default); sequences keep their own numbers.
    """

    plate: str
    frame_range: tuple[int, int] | None = None
    colorspace: str | None = None
    mask: str | None = None
    face: FaceHint | None = None
    start: int = 1001


@dataclass
class Backends:
    """Which backend runs each stage, by registry name, with its options."""

    track: str = track.DEFAULT
    face3d: str = face3d.DEFAULT
    manipulate: str = manipulate.DEFAULT
    render: str = render.DEFAULT
    appearance: str = appearance.DEFAULT
    composite: str = composite.DEFAULT
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def preset(cls, name: str) -> Backends:
        """The backends of a named preset (the CLI's ``--backend``): see ``PRESETS``."""
        if name not in PRESETS:
            raise UnknownBackendError(
                f"unknown backend {name!r} (known: {', '.join(PRESETS)})", field="backend")
        return cls(**PRESETS[name])

    def names(self) -> dict[str, str]:
        return {s: getattr(self, s) for s in STAGES}


def check_layers(names: str | Iterable[str]) -> tuple[str, ...]:
    """``names`` (one name, or several) as a tuple when they are distinct ``OUTPUT_LAYERS``.

    Raises
    ------
    InvalidOptionError
        (field ``layers``) an unknown or repeated name.
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    if any(name not in OUTPUT_LAYERS for name in names) or len(set(names)) != len(names):
        raise InvalidOptionError(f"output layers must be distinct names among {', '.join(OUTPUT_LAYERS)}, "
                                 f"got {', '.join(map(repr, names))}", field="layers")
    return names


@dataclass
class OutputSpec:
    """Where and how frames are written: an EXR pattern, compression, RGBA bit depth, colourspace, layers.

    ``half`` None (the default) picks per plate: half unless the plate's values, or their conversion to
    the output colourspace, need float to come back exactly (``colour.output_needs_float``).
    ``colorspace`` None: the plate's own when scene-linear, else the config's ``scene_linear`` role
    (``colour.output_colorspace``). ``layers`` are written beside RGBA (``OUTPUT_LAYERS``, both by
    default); none gives a single-part RGBA file. The STMap is the costliest part to write (two float
    channels over the whole frame: 15–20% of a 1080p frame's CPU and nearly a third of its bytes).
    """

    pattern: str
    compression: str = "zip"
    half: bool | None = None
    colorspace: str | None = None
    layers: tuple[str, ...] = OUTPUT_LAYERS

    def __post_init__(self) -> None:
        self.layers = check_layers(self.layers)
        if self.compression not in COMPRESSIONS:
            raise InvalidOptionError(
                f"unknown EXR compression {self.compression!r} (use {', '.join(COMPRESSIONS)})",
                field="compression")
        if self.colorspace is not None:
            try:
                check_colorspace(self.colorspace)
            except InvalidOptionError as error:
                raise InvalidOptionError(str(error), field="output_colorspace") from None


@dataclass(frozen=True)
class Progress:
    """One progress report: ``stage`` is "analyze" or "render"; ``done`` of ``total`` frames."""

    stage: str
    frame: int | None
    done: int
    total: int


ProgressFn = Callable[[Progress], None]


class CancelToken:
    """Set from any thread; the pipeline stops at the next frame boundary."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise CancelledError("cancelled")


@dataclass
class FrameResult:
    """One finished output frame."""

    frame: int
    rgba: np.ndarray
    matte: np.ndarray
    stmap_uv: np.ndarray | None  # None when the caller asked for no STMap
    face_found: bool


@dataclass
class RunResult:
    """What ``Pipeline.run`` wrote."""

    written: dict[int, str]
    lost_frames: list[int]
    analysis_cached: bool
    shot_lost_frames: list[int] = field(default_factory=list)
    """Frames of the whole shot (not only those written) where the face was lost."""


class Pipeline:
    """One backend per stage, built on first use and kept for every later shot."""

    def __init__(self, backends: Backends | None = None, cache: AnalysisCache | None = None,
                 use_cache: bool = True, stages: dict[str, Any] | None = None) -> None:
        """``stages`` may hand in already-built backend objects by stage name (embedding, tests)."""
        self.backends = backends or Backends()
        self.cache = (cache or AnalysisCache()) if use_cache else None
        self._stages: dict[str, Any] = dict(stages or {})

    def stage(self, name: str) -> Any:
        """The backend object running stage ``name`` (built once)."""
        if name not in self._stages:
            module = {"track": track, "face3d": face3d, "manipulate": manipulate, "render": render,
                      "appearance": appearance, "composite": composite}[name]
            self._stages[name] = module.get(getattr(self.backends, name),
                                            **self.backends.options.get(name, {}))
        return self._stages[name]

    def load(self) -> None:
        """Build every stage now (missing model files fail here, before any work; the engine keeps them warm)."""
        for name in STAGES:
            self.stage(name)

    # -- analysis ---------------------------------------------------------------------------------------
    def analysis_settings(self, shot: Shot) -> dict[str, Any]:
        hint = shot.face
        # A backend's ``version`` changes when its results change, so old cache entries are not reused.
        return {
            "track": [self.backends.track, self.backends.options.get("track", {}),
                      getattr(self.stage("track"), "version", 0)],
            "face3d": [self.backends.face3d, self.backends.options.get("face3d", {}),
                       getattr(self.stage("face3d"), "version", 0)],
            "face": None if hint is None else [hint.point, hint.box],
            "colorspace": shot.colorspace,
        }

    def analyze(self, shot: Shot, plate: Plate | None = None, progress: ProgressFn | None = None,
                cancel: CancelToken | None = None, keep: KeptFrames | None = None) -> tuple[Analysis, bool]:
        """Track and fit the face through the whole shot; returns (analysis, came_from_cache).

        ``keep`` receives the frames the analysis read (up to its memory budget), so a render pass
        that follows need not read them again.
        """
        tune_process()
        own = plate is None
        plate = plate or open_plate(shot)
        resources = contextlib.ExitStack()
        try:
            key = analysis_key(plate.content_key(), self.analysis_settings(shot))
            if self.cache is not None and (cached := self.cache.load(key)) is not None:
                return cached, True
            frames = plate.frames
            total = len(frames)

            def display(frame: int) -> np.ndarray:
                image = plate.read(frame)
                if keep is not None:
                    keep.put(image)
                return image.display_rgb8()

            # The next frames are read and made display-referred while the tracker looks at this one
            # (reading and the colour conversion cost a 1080p frame ten times what tracking does, so
            # image sequences are read by two threads at once; a movie decodes in order, on one). The
            # reading starts before the tracker, whose first call imports its library (~1 s).
            reader = resources.enter_context(_FrameReader(display, frames, threads=_reader_threads(plate),
                                                          ahead=_READ_AHEAD))

            def images() -> Iterator[np.ndarray]:
                for done, frame in enumerate(frames):
                    if cancel is not None:
                        cancel.check()
                    yield reader.next()
                    if progress is not None:
                        progress(Progress("analyze", frame, done + 1, total))

            face_track = self.stage("track").track(frames, images(), hint=shot.face)
            if not face_track.found.any():
                raise NoFaceError(f"no face found in any of the {total} frames", path=shot.plate)
            modeller = self.stage("face3d")
            if getattr(modeller, "needs_frames", False):  # image-based fits (DECA) look at the pixels again
                fit = modeller.fit(face_track, images=lambda frame: plate.read(frame).display_rgb8())
            else:
                fit = modeller.fit(face_track)
            analysis = Analysis(track=face_track, fit=fit)
            if self.cache is not None:
                self.cache.save(key, analysis)
            return analysis, False
        finally:
            resources.close()  # the reader threads stop before the plate closes
            if own:
                plate.close()

    # -- editing ----------------------------------------------------------------------------------------
    def edit(self, analysis: Analysis, curve: EmotionCurve, mouth_preservation: float = 1.0) -> np.ndarray:
        """Edited (T, N, 3) expressions of the whole shot (chunks of a shot all use the same result).

        ``mouth_preservation`` is the job's value; keys that set their own make it per frame.
        """
        weights = curve.weights(analysis.frames)
        return self.stage("manipulate").edit(analysis.fit, weights,
                                             mouth_preservation=_mouth(curve, analysis, mouth_preservation))

    def render_frame(self, image: PlateImage, index: int, analysis: Analysis, edited: np.ndarray,
                     mask: np.ndarray | None = None, weights: np.ndarray | None = None,
                     shot_light: np.ndarray | None = None, stmap: bool = True) -> FrameResult:
        """Render and composite one frame; a frame where the face is lost passes through untouched.

        ``weights`` (7,) are the frame's emotion weights and ``shot_light`` the appearance stage's
        measure of the shot (``Appearance.measure_shot``), both for the appearance stage. ``stmap``
        False leaves the STMap out (an output without that layer).
        """
        pixels = image.pixels
        height, width = pixels.shape[:2]
        rgba = _rgba(image)
        fit = analysis.fit
        if not fit.found[index]:
            return FrameResult(image.frame, rgba, np.zeros((height, width), np.float32),
                               _identity_uv(image).copy() if stmap else None, False)
        source = fit.to_image(index, fit.local_shape(index))
        target = fit.to_image(index, fit.local_shape(index, edited[index]))
        face = FrameFace(source=source, edited=target, triangles=fit.triangles, fit=fit, index=index,
                         edited_expression=edited[index], edited_sequence=edited, colorspace=image.colorspace,
                         weights=None if weights is None else np.asarray(weights)[None], shot_light=shot_light)
        rendered = self.stage("render").render(rgba, face)
        rendered = self.stage("appearance").apply(rgba, rendered, face)
        out, matte = self.stage("composite").composite(rgba, rendered, mask)
        uv = None
        if stmap:
            uv = _identity_uv(image).copy() if rendered.stmap is None else _stmap_uv(rendered.stmap, image)
        return FrameResult(image.frame, out, matte.astype(np.float32, copy=False), uv, True)

    # -- the whole job ----------------------------------------------------------------------------------
    def run(self, shot: Shot, curve: EmotionCurve, output: OutputSpec, *, frames: list[int] | None = None,
            mouth_preservation: float | None = None, progress: ProgressFn | None = None,
            cancel: CancelToken | None = None, on_frame: Callable[[int, str], None] | None = None,
            preview: str | None = None) -> RunResult:
        """Edit ``shot`` and write every frame of ``frames`` (default: the whole range) to ``output``.

        The analysis and the edit always cover the whole shot, so any chunk of frames is bit-identical
        to the same frames of a single run. Frames are written one by one, each atomically.
        ``mouth_preservation`` None keeps the speech of moving footage (1) and frees the mouth of a
        still, which has no speech to keep (0); keys that set their own override it on their frames.
        """
        self.load()
        tune_process()
        with open_plate(shot) as plate, contextlib.ExitStack() as resources:
            todo = list(plate.frames) if frames is None else list(frames)
            outside = [f for f in todo if f not in set(plate.frames)]
            if outside:
                raise FrameRangeError(
                    f"frames {outside[0]}..{outside[-1]} are outside the shot {plate.first}-{plate.last}",
                    path=shot.plate, frame=outside[0])
            mask_plate = open_mask(shot, plate)
            if mask_plate is not None:
                resources.enter_context(mask_plate)
            check_not_overwriting_inputs(shot, plate, mask_plate, output, todo, preview)
            kept = KeptFrames(todo)
            analysis, cached = self.analyze(shot, plate, progress, cancel, keep=kept)
            if mouth_preservation is None:
                mouth_preservation = 0.0 if plate.kind == "still" and len(plate.frames) == 1 else 1.0
            weights = curve.weights(analysis.frames)
            edited = self.stage("manipulate").edit(analysis.fit, weights,
                                                   mouth_preservation=_mouth(curve, analysis, mouth_preservation))
            shot_light = self.stage("appearance").measure_shot(
                analysis.fit, edited, weights, lambda frame: kept.peek(frame) or plate.read(frame))
            index_of = {f: i for i, f in enumerate(analysis.frames)}
            out_space = output_colorspace(plate.colorspace, output.colorspace)
            written: dict[int, str] = {}
            previews: list[tuple[np.ndarray, np.ndarray]] = []

            def finished(frame: int, path: str) -> None:
                written[frame] = path
                if on_frame is not None:
                    on_frame(frame, path)
                if progress is not None:
                    progress(Progress("render", frame, len(written), len(todo)))

            def read(frame: int) -> tuple[PlateImage, np.ndarray | None]:
                image = kept.take(frame) or plate.read(frame)  # what the analysis just read, else the file
                return image, read_mask(mask_plate, frame, image) if mask_plate is not None else None

            # Three stages overlap: the next frame is read, this one rendered, earlier ones written.
            with _FrameWriter(finished) as writer, _FrameReader(read, todo) as reader:
                for frame in todo:
                    if cancel is not None:
                        cancel.check()
                    image, mask = reader.next()
                    result = self.render_frame(image, index_of[frame], analysis, edited, mask,
                                               weights[index_of[frame]], shot_light, "stmap" in output.layers)
                    layers = _layers(result, output.layers)
                    writer.write(frame, frame_path(output.pattern, frame), result.rgba, like=image.info,
                                 layers=layers, compression=output.compression,
                                 half=_output_half(output, image, out_space), colorspace=out_space,
                                 convert_from=image.colorspace)
                    if preview is not None:
                        previews.append(_preview_pair(image, result))
            if preview is not None:
                from ned_core.io.preview import write_preview
                fps = plate.fps or 24.0
                write_preview(preview, previews, fps=fps, audio_from=shot.plate if plate.has_audio else None,
                              audio_offset=(todo[0] - shot.start) / fps)
            lost = [f for f in todo if not analysis.fit.found[index_of[f]]]
            shot_lost = [int(f) for f, ok in zip(analysis.frames, analysis.fit.found, strict=True) if not ok]
            return RunResult(written=written, lost_frames=lost, analysis_cached=cached, shot_lost_frames=shot_lost)


class _FrameReader:
    """Reads the frames of ``todo`` ahead on ``threads`` background threads, handed out in order.

    ``next()`` returns what ``read(frame)`` returned for the next frame (raising what it raised) and
    starts reading another, so reading overlaps rendering; ``threads`` frames are read at once (only
    for a ``read`` that may run on several threads: one thread reads a movie, which decodes in order),
    and up to ``ahead`` (at least ``threads``) are read or waiting.
    """

    def __init__(self, read: Callable[[int], Any], todo: list[int], threads: int = 1, ahead: int = 1) -> None:
        self._read = read
        self._todo = iter(todo)
        self._executor = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="ned-read")
        self._ahead: deque[Future[Any]] = deque()
        for _ in range(max(1, threads, ahead)):
            self._start_next()

    def _start_next(self) -> None:
        frame = next(self._todo, None)
        if frame is not None:
            self._ahead.append(self._executor.submit(self._read, frame))

    def next(self) -> Any:
        if not self._ahead:
            raise StopIteration
        value = self._ahead.popleft().result()
        self._start_next()
        return value

    def __enter__(self) -> _FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


KEEP_FRAMES_BYTES = int(float(os.environ.get("NED_KEEP_FRAMES_MB", "1024")) * (1 << 20))
"""Memory the analysis may hold decoded frames in for the render pass that follows (``NED_KEEP_FRAMES_MB``,
default 1024; 0 reads every frame twice). A 1080p half-float RGB frame takes 12 MB."""


class KeptFrames:
    """Frames the analysis read, kept for the render pass of the same run up to ``KEEP_FRAMES_BYTES``.

    Only frames the run renders are kept, the earliest first (the render reads in order and gives each
    back as it takes it). Pixels that half floats hold exactly (a half-float EXR's, checked bit for
    bit) are kept as half, half the memory, and come back as the same float32 bits; the rest stay
    float32. Thread-safe.
    """

    def __init__(self, frames: list[int], budget: int | None = None) -> None:
        self._wanted = set(frames)
        self._budget = KEEP_FRAMES_BYTES if budget is None else budget
        self._used = 0
        self._kept: dict[int, tuple[PlateImage, np.ndarray]] = {}
        self._lock = threading.Lock()

    def put(self, image: PlateImage) -> None:
        if image.frame not in self._wanted or self._budget <= 0:
            return
        pixels, stored = image.pixels, image.stored
        if stored is not None and stored.dtype == np.float16 and stored.shape == pixels.shape:
            compact = stored  # pixels were widened from these halves: nothing to convert or check
        else:
            compact = _exact_half(pixels) if image.info.source_format == "half" else None
            if compact is None:
                compact = pixels
        with self._lock:
            if self._used + compact.nbytes > self._budget:
                self._wanted.discard(image.frame)
                return
            self._used += compact.nbytes
            self._kept[image.frame] = dataclasses.replace(image, pixels=compact, stored=None)

    def take(self, frame: int) -> PlateImage | None:
        """The kept frame (its memory given back), or None when it was not kept."""
        with self._lock:
            image = self._kept.pop(frame, None)
            if image is None:
                return None
            self._used -= image.pixels.nbytes
        return _widened(image)

    def peek(self, frame: int) -> PlateImage | None:
        """The kept frame, kept on for its render, or None when it was not kept."""
        with self._lock:
            image = self._kept.get(frame)
        return None if image is None else _widened(image)


def _widened(image: PlateImage) -> PlateImage:
    """A kept frame back in float32 (the same bits it was read with; ``widen_half`` is exact for every
    half, signalling NaNs of a file's own halves included)."""
    if image.pixels.dtype == np.float32:
        return image
    return dataclasses.replace(image, pixels=widen_half(image.pixels), stored=image.pixels)


def _exact_half(pixels: np.ndarray) -> np.ndarray | None:
    """``pixels`` (float32) as float16 (OpenCV's SIMD conversion: ~15x numpy's), or None when a value
    would not come back bit for bit (not a half-float image after all)."""
    if pixels.dtype != np.float32 or pixels.ndim != 3 or not pixels.flags.c_contiguous:
        return None
    flat = pixels.reshape(pixels.shape[0], -1)
    half = cv2.convertFp16(flat)
    if not np.array_equal(cv2.convertFp16(half).view(np.uint32), flat.view(np.uint32)):
        return None
    return half.view(np.float16).reshape(pixels.shape)


_READ_AHEAD = 8
"""Frames the analysis reads ahead of the tracker (display-referred 8-bit frames, 6 MB each at 1080p):
enough for the reading threads to keep busy while the tracker starts up (imports, graph set-up)."""


def _reader_threads(plate: Plate) -> int:
    """Threads reading a plate ahead: two for image files (decoding and colour conversion release
    Python's lock), one for a movie (decoded in order) or a process held to one thread."""
    if plate.kind == "movie":
        return 1
    return 2 if cv2.getNumThreads() > 1 else 1


class _FrameWriter:
    """Writes EXR frames on background threads while the next frame renders.

    At most ``depth`` writes are in flight (two: the single-threaded part of one write, OpenImageIO's
    channel conversion, overlaps the compression of the other). A frame counts as finished
    (``finished(frame, path)``) only once its file is complete and renamed into place, in frame order;
    on leaving the block every write already started is completed, and reported up to the first that
    failed (whose error is raised), even when the loop is leaving on an error or a cancellation.
    """

    def __init__(self, finished: Callable[[int, str], None], depth: int = 2) -> None:
        self._finished = finished
        self._depth = depth
        self._executor = ThreadPoolExecutor(max_workers=depth, thread_name_prefix="ned-write")
        self._pending: deque[tuple[int, str, Future[None]]] = deque()

    def write(self, frame: int, path: str, rgba: np.ndarray, **options: Any) -> None:
        while len(self._pending) >= self._depth:
            self._settle_oldest()
        self._pending.append((frame, path, self._executor.submit(write_exr, path, rgba, **options)))

    def _settle_oldest(self) -> None:
        frame, path, future = self._pending.popleft()
        try:
            future.result()  # a failed write raises here, before anything later is reported
        except BaseException:
            for _, _, later in self._pending:  # finish what was started, report none of it
                later.exception()
            self._pending.clear()
            raise
        self._finished(frame, path)

    def __enter__(self) -> _FrameWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            while self._pending:
                self._settle_oldest()
        finally:
            self._executor.shutdown(wait=True)


def _layers(result: FrameResult, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The channels of the output layers ``names`` (``OutputSpec.layers``) of one finished frame."""
    channels: dict[str, np.ndarray] = {}
    if "matte" in names:
        channels[MATTE_LAYER] = result.matte
    if "stmap" in names:
        uv = result.stmap_uv
        assert uv is not None, "the frame was rendered without its STMap"
        channels[STMAP_LAYERS[0]] = uv[..., 0]
        channels[STMAP_LAYERS[1]] = uv[..., 1]
    return channels


def open_plate(shot: Shot) -> Plate:
    """Open the shot's plate (validates the path, the pattern and the frame range)."""
    return Plate.open(shot.plate, frame_range=shot.frame_range, colorspace=shot.colorspace, start=shot.start)


def open_mask(shot: Shot, plate: Plate) -> Plate | None:
    """Open the user mask over the same frames as the plate, or None without a mask."""
    if shot.mask is None:
        return None
    return Plate.open(shot.mask, frame_range=(plate.first, plate.last), start=shot.start)


def read_mask(mask_plate: Plate, frame: int, like: PlateImage) -> np.ndarray:
    """The mask of ``frame`` over the plate's data window, (H, W) float32 in [0, 1].

    Taken from the mask's alpha, else its first channel, and placed by the images' windows (as a
    compositing package would): a mask with the plate's display window but another data window is
    moved into place, zero where it has no pixels. A mask of another format is refused, not stretched.
    """
    image = mask_plate.read(frame)
    values = image.alpha if image.alpha is not None else image.pixels[..., 0]
    mx, my, mw, mh = image.info.data_window
    px, py, pw, ph = like.info.data_window
    if (mx, my, mw, mh) == (px, py, pw, ph):
        placed = values
    elif image.info.display_window == like.info.display_window:
        placed = np.zeros((ph, pw), np.float32)
        x0, y0 = max(mx, px), max(my, py)
        x1, y1 = min(mx + mw, px + pw), min(my + mh, py + ph)
        if x1 > x0 and y1 > y0:
            placed[y0 - py:y1 - py, x0 - px:x1 - px] = values[y0 - my:y1 - my, x0 - mx:x1 - mx]
    else:
        fw, fh = image.info.display_window[2:]
        raise InvalidOptionError(
            f"the mask is {fw}x{fh} but the plate is {like.info.display_window[2]}x{like.info.display_window[3]}"
            f" (display windows differ)", path=mask_plate.path, frame=frame, field="mask")
    return np.clip(placed, 0.0, 1.0).astype(np.float32)


def check_not_overwriting_inputs(shot: Shot, plate: Plate, mask_plate: Plate | None, output: OutputSpec,
                                 frames: list[int], preview: str | None) -> None:
    """Refuse an output frame or preview that is one of the shot's own input files."""
    inputs = {os.path.realpath(p) for p in plate.files()}
    if mask_plate is not None:
        inputs |= {os.path.realpath(p) for p in mask_plate.files()}
    for frame in frames:
        path = frame_path(output.pattern, frame)
        if os.path.realpath(path) in inputs:
            raise InvalidOptionError(f"the output {path} would overwrite an input file of the shot",
                                     path=path, frame=frame, field="output")
    if preview is not None and os.path.realpath(preview) in inputs:
        raise InvalidOptionError(f"the preview {preview} would overwrite an input file of the shot",
                                 path=preview, field="preview")


def _rgba(image: PlateImage) -> np.ndarray:
    """The plate's RGB plus its alpha (1 where it has none), float32 (H, W, 4)."""
    pixels = image.pixels
    alpha = image.alpha
    if alpha is None and pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.float32:
        # OpenCV copies the three channels and sets alpha to 1.0 in one pass, ~5x numpy's strided copy.
        return cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2RGBA)
    rgba = np.empty(pixels.shape[:2] + (4,), np.float32)
    rgba[..., :3] = pixels[..., :3]
    rgba[..., 3] = 1.0 if alpha is None else alpha
    return rgba


def _output_half(output: OutputSpec, image: PlateImage, colorspace: str) -> bool:
    """The RGBA depth of ``image``'s output frame: the spec's, else what keeps its values exact."""
    if output.half is not None:
        return output.half
    return not output_needs_float(image.info.source_format, image.info.source_bits, image.colorspace, colorspace)


def _uv(x: np.ndarray, y: np.ndarray, image: PlateImage) -> tuple[np.ndarray, np.ndarray]:
    """Nuke STMap (u, v) of absolute data-window pixel coordinates (x, y), float32 arrays.

    u = (x + 0.5) / width and v = 1 - (y + 0.5) / height in display-window pixels (v grows upward).
    """
    dx, dy, _, _ = image.info.data_window
    fx, fy, fw, fh = image.info.display_window
    u = (x + (dx - fx) + 0.5) / fw
    v = 1.0 - (y + (dy - fy) + 0.5) / fh
    return u.astype(np.float32, copy=False), v.astype(np.float32, copy=False)


# The identity STMap and pixel grid of the last frame geometry: a shot's frames share them, and
# building them costs a few full-frame passes (read-only: callers copy before changing them).
_IDENTITY: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[np.ndarray, np.ndarray]] = {}
_IDENTITY_LOCK = threading.Lock()


def _identity(image: PlateImage) -> tuple[np.ndarray, np.ndarray]:
    """(pixel grid (H, W, 2) of (x, y), identity STMap (H, W, 2) of (u, v)) of ``image``'s windows."""
    key = (tuple(image.info.data_window), tuple(image.info.display_window))
    with _IDENTITY_LOCK:
        found = _IDENTITY.get(key)
        if found is None:
            _, _, width, height = image.info.data_window
            grid = np.empty((height, width, 2), np.float32)
            grid[..., 0] = np.arange(width, dtype=np.float32)[None, :]
            grid[..., 1] = np.arange(height, dtype=np.float32)[:, None]
            uv = np.empty_like(grid)
            uv[..., 0], uv[..., 1] = _uv(grid[..., 0], grid[..., 1], image)
            grid.flags.writeable = uv.flags.writeable = False
            _IDENTITY.clear()  # one geometry at a time: a shot's, not every shot's ever run
            _IDENTITY[key] = found = (grid, uv)
    return found


def _identity_uv(image: PlateImage) -> np.ndarray:
    return _identity(image)[1]


def _stmap_uv(stmap: np.ndarray, image: PlateImage) -> np.ndarray:
    """Absolute data-window pixel coordinates (H, W, 2) → Nuke STMap (u, v) over the display window.

    Only the box where ``stmap`` moves a pixel is computed; the rest is the identity map, whose values
    are the same numbers the formula gives there (``_uv`` is elementwise).
    """
    grid, identity = _identity(image)
    if stmap.shape != grid.shape:
        raise ValueError(f"the STMap is {stmap.shape}, the frame {grid.shape}")
    # The (H, W, 2) comparison seen as (H, 2W) bytes: column 2x + c says whether coordinate c of
    # pixel x moved, so the byte box halves to the pixel box without a pass merging the two.
    moved = (stmap != grid).view(np.uint8).reshape(grid.shape[0], -1)
    x, y, w, h = cv2.boundingRect(moved)
    x, w = x // 2, (x + w + 1) // 2 - x // 2
    uv = identity.copy()
    if w and h:
        part = stmap[y:y + h, x:x + w]
        uv[y:y + h, x:x + w, 0], uv[y:y + h, x:x + w, 1] = _uv(part[..., 0], part[..., 1], image)
    return uv


def _preview_pair(image: PlateImage, result: FrameResult) -> tuple[np.ndarray, np.ndarray]:
    before = image.display_rgb8()
    after = to_display_rgb8(result.rgba[..., :3], image.colorspace)
    height, width = before.shape[:2]
    if width > PREVIEW_MAX_WIDTH:
        size = (PREVIEW_MAX_WIDTH, round(height * PREVIEW_MAX_WIDTH / width / 2) * 2)
        before = cv2.resize(before, size, interpolation=cv2.INTER_AREA)
        after = cv2.resize(after, size, interpolation=cv2.INTER_AREA)
    return before, after


def _mouth(curve: EmotionCurve, analysis: Analysis, default: float) -> float | np.ndarray:
    """The manipulate stage's mouth preservation: the job's value, or (T,) per frame where keys set it."""
    return curve.mouth_preservation(analysis.frames, default) if curve.keys_mouth else default
