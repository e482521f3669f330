"""The default tracker: MediaPipe's legacy Face Mesh (478 points with irises), one face followed per shot.

The model ships inside the ``mediapipe==0.10.21`` wheel, so tracking runs offline on CPU. This module owns
turning MediaPipe's per-frame face lists into one followed face: choosing it (largest, or nearest the
user's point/box), following it by position continuity so another person crossing the shot does not steal
the track, reporting frames where it is lost (NaN rows, ``found`` False), and the zero-lag smoothing
(``smoothing.py``). MediaPipe is imported only when a shot is tracked; nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
import tempfile
import threading
import types
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ned_core import mesh
from ned_core.errors import FrameRangeError, InvalidOptionError, MissingDependencyError
from ned_core.track.base import FaceHint, FaceTrack, ProgressFn
from ned_core.track.smoothing import smooth_landmarks

# MediaPipe's FACEMESH_LIPS (outer and inner contours) and the two irises: smoothing leaves their shape
# as tracked so speech and gaze keep full fidelity.
LIP_POINTS: tuple[int, ...] = (
    0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267, 269,
    270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415,
)
IRIS_POINTS: tuple[int, ...] = tuple(range(468, 478))

# Native (glog/absl/TF-Lite) lines MediaPipe prints when a graph starts; anything else is passed on.
_QUIET_FRAMES = 3  # the graph's calculator threads log while their first frames go through
_NATIVE_NOISE = re.compile(
    r"^(INFO: Created TensorFlow Lite|WARNING: All log messages before absl::InitializeLog|[IW]\d{4} )")


class _NativeLogGate:
    """Holds back MediaPipe's native start-up chatter on file descriptor 2.

    The C++ side logs through absl before any Python-visible logging is set up, so environment variables
    and ``absl.logging`` cannot silence it; the descriptor is redirected to a temporary file instead and,
    afterwards, every line that is not known start-up noise (errors, other threads' output) is written
    back. Shots tracked at the same time in several threads share one redirection: the first to enter
    sets it up and the last to leave restores stderr.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved: int | None = None
        self._sink: Any = None

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        self._enter()
        try:
            yield
        finally:
            self._leave()

    def _enter(self) -> None:
        with self._lock:
            self._users += 1
            if self._users > 1:
                return
            try:
                saved = os.dup(2)
            except OSError:  # no usable stderr descriptor (embedded host): nothing to silence
                return
            if sys.stderr is not None:
                sys.stderr.flush()
            self._sink = tempfile.TemporaryFile(mode="w+b")
            os.dup2(self._sink.fileno(), 2)
            self._saved = saved

    def _leave(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._saved is None:
                return
            if sys.stderr is not None:
                sys.stderr.flush()
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._saved = None
            with self._sink as sink:
                sink.seek(0)
                text = sink.read().decode("utf-8", "replace")
            kept = [line for line in re.findall(r"[^\n]*\n|[^\n]+$", text) if not _NATIVE_NOISE.match(line)]
            if kept and sys.stderr is not None:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


_quiet_native_logs = _NativeLogGate().quiet


class _DeferredModule(types.ModuleType):
    """Stands in for a module while MediaPipe imports; the real one is imported on first use."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(importlib.import_module(self.__name__), name)


@contextlib.contextmanager
def _defer_matplotlib() -> Iterator[None]:
    """MediaPipe's drawing helpers import ``matplotlib.pyplot`` (half a second of a cold run's CPU) that
    tracking never uses: while MediaPipe imports, matplotlib is a stand-in that imports the real module
    if anything ever touches it; afterwards ``sys.modules`` is as before, so any later ``import
    matplotlib`` gets the real one. Nothing is deferred when matplotlib is already imported."""
    if "matplotlib" in sys.modules or "matplotlib.pyplot" in sys.modules:
        yield
        return
    package, pyplot = _DeferredModule("matplotlib"), _DeferredModule("matplotlib.pyplot")
    package.__path__ = []  # a package, so "import matplotlib.pyplot" resolves to the stand-ins
    package.pyplot = pyplot
    sys.modules["matplotlib"], sys.modules["matplotlib.pyplot"] = package, pyplot
    try:
        yield
    finally:
        for name, stand_in in (("matplotlib", package), ("matplotlib.pyplot", pyplot)):
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]


def _import_mediapipe() -> Any:
    try:
        with _quiet_native_logs(), _defer_matplotlib():
            import mediapipe as mp  # heavy and noisy: only when a shot is tracked
    except ImportError as exc:
        raise MissingDependencyError(
            "the mediapipe tracker needs mediapipe==0.10.21 (the last wheel that ships the face-mesh "
            "model): run installers/install.sh", field="track") from exc
    return mp


def _boxes(faces: list[np.ndarray]) -> np.ndarray:
    """(F, 4) x0, y0, x1, y1 of each face's landmarks."""
    if not faces:
        return np.zeros((0, 4))
    pts = np.stack([f[:, :2] for f in faces])
    return np.concatenate([pts.min(axis=1), pts.max(axis=1)], axis=1)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def choose_face(boxes: np.ndarray, hint: FaceHint | None) -> int:
    """Index of the face to follow among ``boxes`` (F, 4) of the first frame with faces.

    A point picks the box that contains it (the nearest centre when several do) or else the box nearest
    to it; a box picks the largest overlap (the nearest centre when none overlaps); no hint picks the
    largest face.
    """
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    if hint is not None and hint.point is not None:
        p = np.asarray(hint.point, dtype=np.float64)
        outside = np.maximum(np.maximum(boxes[:, :2] - p, p - boxes[:, 2:]), 0.0)
        gap = np.linalg.norm(outside, axis=1)
        centre_dist = np.linalg.norm(centres - p, axis=1)
        return int(np.lexsort((centre_dist, gap))[0])
    if hint is not None and hint.box is not None:
        box = np.asarray(hint.box, dtype=np.float64)
        overlap = _iou(box, boxes)
        if overlap.max() > 0:
            return int(np.argmax(overlap))
        return int(np.argmin(np.linalg.norm(centres - (box[:2] + box[2:]) / 2, axis=1)))
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return int(np.argmax(areas))


def follow_face(boxes: np.ndarray, last_box: np.ndarray, continuous: bool, reacquire_radius: float
                ) -> int | None:
    """Index of the face among ``boxes`` that continues the track last seen at ``last_box``, or None.

    Distances are in face widths of ``last_box``. From one frame to the next the face must stay within
    0.75 widths and keep its size within 1.5x (so another person passing never takes over); after a loss
    it may come back within ``reacquire_radius`` widths and 2x of its size.
    """
    if len(boxes) == 0:
        return None
    width = max(float(last_box[2] - last_box[0]), 1.0)
    centre = (last_box[:2] + last_box[2:]) / 2
    dist = np.linalg.norm((boxes[:, :2] + boxes[:, 2:]) / 2 - centre, axis=1) / width
    ratio = (boxes[:, 2] - boxes[:, 0]) / width
    gate, size = (0.75, 1.5) if continuous else (reacquire_radius, 2.0)
    ok = (dist <= gate) & (ratio <= size) & (ratio >= 1.0 / size)
    if not ok.any():
        return None
    # Prefer overlap (IoU), then closeness, among the plausible candidates.
    score = _iou(last_box, boxes) - 0.01 * dist
    score[~ok] = -np.inf
    return int(np.argmax(score))


def _check_hint(hint: FaceHint | None) -> None:
    if hint is None:
        return
    if hint.point is not None and (len(hint.point) != 2 or not np.all(np.isfinite(hint.point))):
        raise InvalidOptionError(f"face point must be two finite numbers (x, y), got {hint.point!r}",
                                 field="face")
    if hint.box is not None:
        box = hint.box
        if len(box) != 4 or not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
            raise InvalidOptionError(
                f"face box must be (x0, y0, x1, y1) with x0 < x1 and y0 < y1, got {box!r}", field="face")


def _as_rgb(image: np.ndarray, frame: int) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise InvalidOptionError(
            f"the tracker needs uint8 RGB images (H, W, 3), got {image.dtype} {image.shape} at frame {frame}",
            frame=frame, field="images")
    return np.ascontiguousarray(image[:, :, :3])


class MediaPipeTracker:
    """Track one face with MediaPipe's Face Mesh (``topology = "mediapipe478"``).

    Parameters
    ----------
    max_faces : faces MediaPipe looks for per frame (the others are candidates the choice can skip).
    min_detection_confidence, min_tracking_confidence : MediaPipe's thresholds in [0, 1].
    smoothing : strength of the zero-lag temporal smoothing (0 = raw landmarks, 1 = default, 2 = wider).
    reacquire_radius : after a loss, how far (in face widths) from where it was last seen the face may
        come back and still be taken for the same face.
    """

    topology = mesh.TOPOLOGY

    def __init__(self, max_faces: int = 4, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, smoothing: float = 1.0,
                 reacquire_radius: float = 1.5) -> None:
        if not isinstance(max_faces, int) or isinstance(max_faces, bool) or not 1 <= max_faces <= 16:
            raise InvalidOptionError(f"max_faces must be an integer in 1..16, got {max_faces!r}",
                                     field="max_faces")
        for name, value in (("min_detection_confidence", min_detection_confidence),
                            ("min_tracking_confidence", min_tracking_confidence)):
            if not 0.0 <= float(value) <= 1.0:
                raise InvalidOptionError(f"{name} must be in [0, 1], got {value!r}", field=name)
        if not 0.0 <= float(smoothing) <= 10.0:
            raise InvalidOptionError(f"smoothing must be in [0, 10], got {smoothing!r}", field="smoothing")
        if not float(reacquire_radius) > 0.0:
            raise InvalidOptionError(f"reacquire_radius must be > 0, got {reacquire_radius!r}",
                                     field="reacquire_radius")
        self.max_faces = max_faces
        self.min_detection_confidence = float(min_detection_confidence)
        self.min_tracking_confidence = float(min_tracking_confidence)
        self.smoothing = float(smoothing)
        self.reacquire_radius = float(reacquire_radius)

    def warm(self) -> None:
        """Import MediaPipe and run its graph once on a blank image, so a long-lived process (an engine
        worker) pays that start-up (~0.5 s of CPU, mostly MediaPipe importing matplotlib) before its
        first shot rather than inside it. Changes no result."""
        mp = _import_mediapipe()
        with _quiet_native_logs():
            face_mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=False, max_num_faces=self.max_faces, refine_landmarks=True,
                min_detection_confidence=self.min_detection_confidence,
                min_tracking_confidence=self.min_tracking_confidence)
            try:
                face_mesh.process(np.zeros((64, 64, 3), np.uint8))
            finally:
                face_mesh.close()

    def track(self, frames: list[int], images: Iterable[np.ndarray], hint: FaceHint | None = None,
              progress: ProgressFn | None = None) -> FaceTrack:
        """Track through ``images`` (uint8 RGB, one per entry of ``frames``).

        Raises
        ------
        FrameRangeError : no frames, or fewer/more images than frames.
        InvalidOptionError : an image that is not uint8 RGB, a size change mid-shot, or a bad hint.
        MissingDependencyError : mediapipe is not installed.
        """
        frames = [int(f) for f in frames]
        if not frames:
            raise FrameRangeError("no frames to track", field="frames")
        _check_hint(hint)
        mp = _import_mediapipe()
        with contextlib.ExitStack() as quiet:
            quiet.enter_context(_quiet_native_logs())  # closed by _follow after the first frames
            face_mesh = mp.solutions.face_mesh.FaceMesh(
                # Tracking mode: landmarks seed the next frame's region, and MediaPipe re-runs its
                # detector whenever fewer than max_faces are tracked, so a lost face is found again.
                static_image_mode=False, max_num_faces=self.max_faces, refine_landmarks=True,
                min_detection_confidence=self.min_detection_confidence,
                min_tracking_confidence=self.min_tracking_confidence)
            try:
                raw, size = self._follow(face_mesh, frames, images, hint, progress, quiet)
            finally:
                face_mesh.close()
        found = np.isfinite(raw[:, 0, 0])
        landmarks = smooth_landmarks(raw, found, self.smoothing, rigid_points=mesh.STABLE,
                                     detail_points=LIP_POINTS + IRIS_POINTS).astype(np.float32)
        boxes = np.full((len(frames), 4), np.nan, dtype=np.float32)
        if found.any():
            xy = landmarks[found, :, :2]
            boxes[found] = np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1)
        # The legacy Face Mesh exposes no per-face score: a face it returns passed min_tracking_confidence.
        confidence = found.astype(np.float32)
        return FaceTrack(frames=frames, landmarks=landmarks, found=found, confidence=confidence,
                         boxes=boxes, image_size=size, topology=self.topology)

    def detect(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Boxes (x0, y0, x1, y1) of every face in one uint8 RGB image, largest first."""
        mp = _import_mediapipe()
        rgb = _as_rgb(image, 0)
        height, width = rgb.shape[:2]
        with _quiet_native_logs():
            face_mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=self.max_faces, refine_landmarks=False,
                min_detection_confidence=self.min_detection_confidence)
            try:
                result = face_mesh.process(rgb)
            finally:
                face_mesh.close()
        faces = [self._to_pixels(f, width, height) for f in (result.multi_face_landmarks or [])]
        boxes = [tuple(float(v) for v in box) for box in _boxes(faces)] if faces else []
        return sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)

    def _follow(self, face_mesh: Any, frames: list[int], images: Iterable[np.ndarray],
                hint: FaceHint | None, progress: ProgressFn | None, quiet: contextlib.ExitStack
                ) -> tuple[np.ndarray, tuple[int, int]]:
        """Run MediaPipe over the shot and keep the followed face: (T, 478, 3) pixels (NaN where lost).

        ``quiet`` holds the native-log redirection; it is released once the graph has warmed up.
        """
        out = np.full((len(frames), mesh.N_VERTICES, 3), np.nan, dtype=np.float64)
        size: tuple[int, int] | None = None
        last_box: np.ndarray | None = None
        continuous = False
        count = 0
        for count, image in enumerate(images, start=1):
            if count > len(frames):
                raise FrameRangeError(f"more images than the {len(frames)} frames given", field="frames")
            frame = frames[count - 1]
            rgb = _as_rgb(image, frame)
            height, width = rgb.shape[:2]
            if size is None:
                size = (width, height)
            elif size != (width, height):
                raise InvalidOptionError(
                    f"frame {frame} is {width}x{height} but the shot started at {size[0]}x{size[1]}",
                    frame=frame, field="images")
            result = face_mesh.process(rgb)
            if count == _QUIET_FRAMES:
                quiet.close()
            faces = [self._to_pixels(f, width, height) for f in (result.multi_face_landmarks or [])]
            boxes = _boxes(faces)
            if last_box is None:
                index = choose_face(boxes, hint) if faces else None
            else:
                index = follow_face(boxes, last_box, continuous, self.reacquire_radius)
            if index is not None:
                out[count - 1] = faces[index]
                last_box = boxes[index]
            continuous = index is not None
            if progress is not None:
                progress(count)
        if count != len(frames):
            raise FrameRangeError(f"got {count} images for {len(frames)} frames", field="frames")
        assert size is not None
        return out, size

    @staticmethod
    def _to_pixels(face: Any, width: int, height: int) -> np.ndarray:
        # MediaPipe's z is scaled like x and smaller toward the camera: flip it so +z points at the viewer.
        pts = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float64)
        return pts * np.array([width, height, -width])
