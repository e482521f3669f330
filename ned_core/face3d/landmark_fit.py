"""The default face model: a 3D face built from the tracked dense landmarks themselves.

Owns splitting a MediaPipe-478 track into one identity shape per shot (face-local units, see mesh.py),
a head pose per frame (similarity fitted to the identity's stable points, smoothed in time without lag)
and per-frame expression offsets, plus the fixed hole-free triangulation the render warp uses (MediaPipe's
tessellation, shipped as data, with the eye and mouth openings filled). It fits no statistical model, so
``identity + expression`` mapped by the pose gives the tracked points back.

Imports numpy, cv2 (point-in-polygon tests) and the track stage's smoother; not mediapipe (the
tessellation is read from ``ned_core/data``), not torch, not scipy.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import cv2
import numpy as np

from ned_core import mesh
from ned_core.errors import CorruptModelError, InvalidOptionError, MissingModelError, NoFaceError
from ned_core.face3d.base import FaceFit
from ned_core.track.base import FaceTrack
from ned_core.track.smoothing import adaptive_smooth, bandwidth_ladder, segments

_STABLE = list(mesh.STABLE)
TESSELLATION_FILE = Path(__file__).resolve().parent.parent / "data" / "face_mesh_tessellation.json"
# Eye openings, the subject's right eye first: (upper lid, lower lid) from the image-left corner to the
# image-right one, and the iris (centre, then its ring of four points).
_EYES: tuple[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...] = (
    ((33, 246, 161, 160, 159, 158, 157, 173, 133), (33, 7, 163, 144, 145, 153, 154, 155, 133),
     (468, 469, 470, 471, 472)),
    ((362, 398, 384, 385, 386, 387, 388, 466, 263), (362, 382, 381, 380, 374, 373, 390, 249, 263),
     (473, 474, 475, 476, 477)),
)
# An iris point joins its eye's fill only this many iris radii inside the lids: one right at a lid would
# make triangles that flip as soon as the lid moves.
_IRIS_MARGIN = 0.25


def _canonical(shape: np.ndarray) -> np.ndarray:
    """``shape`` re-expressed in its own face-local frame (origin, unit and axes of mesh.py)."""
    return mesh.to_local(shape, *mesh.canonical_pose(shape))


def _fit_poses(model: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame similarity (scale (T,), rotation (T, 3, 3), translation (T, 3)) of ``model`` (K, 3)
    onto each frame's ``targets`` (T, K, 3)."""
    fits = [mesh.similarity_fit(model, p) for p in targets]
    scale = np.array([f[0] for f in fits])
    rotation = np.stack([f[1] for f in fits])
    translation = np.stack([f[2] for f in fits])
    return scale, rotation, translation


def _local(points: np.ndarray, scale: np.ndarray, rotation: np.ndarray, translation: np.ndarray
           ) -> np.ndarray:
    """Batched ``mesh.to_local``: (T, N, 3) pixels to face-local shapes."""
    return np.einsum("tnj,tjk->tnk", points - translation[:, None], rotation) / scale[:, None, None]


def triangulate(shape: np.ndarray) -> np.ndarray:
    """The warp's triangles (F, 3) int32 over a face-local ``mediapipe478`` shape (478, 3).

    MediaPipe's own tessellation of the face (shipped in ``ned_core/data``), with its three holes filled
    so a warp driven by it covers the whole face:

    - the mouth opening by a strip between the upper and lower inner-lip contours
      (``mesh.INNER_LIP_PAIRS``), so the inside of the mouth follows the lips' shared motion;
    - each eye opening between the lid contour and the iris: the iris centre and those of its four ring
      points that ``shape`` shows well inside the lids, in a Delaunay triangulation constrained to the
      opening. A ring point hidden under a lid stays out: tying the lid's skin to a still iris shears it
      as soon as the lid moves.

    Triangles wind clockwise on screen (positive signed area with y down) on a typical face; where the
    frontal projection of the 3D mesh folds (nose wings, mouth corners) a few small ones may not.

    Raises
    ------
    InvalidOptionError : ``shape`` is not (478, 2 or 3) finite points.
    """
    xy = np.asarray(shape, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[0] != mesh.N_VERTICES or xy.shape[1] not in (2, 3) \
            or not np.isfinite(xy).all():
        raise InvalidOptionError(
            f"triangulate needs {mesh.N_VERTICES} finite face-local points, got shape {xy.shape}",
            field="shape")
    xy = xy[:, :2]
    fills = [_strip([u for u, _ in mesh.INNER_LIP_PAIRS], [lo for _, lo in mesh.INNER_LIP_PAIRS])]
    fills += [_eye_fill(xy, upper, lower, iris) for upper, lower, iris in _EYES]
    return np.concatenate([tessellation(), *fills]).astype(np.int32)


@functools.cache
def tessellation() -> np.ndarray:
    """MediaPipe's face-mesh tessellation (852, 3) of the first 468 points, read from ``TESSELLATION_FILE``.

    A disc with three holes (the eyes and the mouth); the irises are not part of it.
    """
    try:
        with open(TESSELLATION_FILE, encoding="utf-8") as f:
            triangles = np.asarray(json.load(f)["triangles"], dtype=np.int32)
    except OSError as exc:
        raise MissingModelError(f"face mesh tessellation {TESSELLATION_FILE} is missing: reinstall ned-core",
                                path=str(TESSELLATION_FILE)) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptModelError(f"face mesh tessellation {TESSELLATION_FILE} cannot be read: {exc}",
                                path=str(TESSELLATION_FILE)) from exc
    if triangles.ndim != 2 or triangles.shape[1] != 3 or triangles.min() < 0 or triangles.max() >= 468:
        raise CorruptModelError(f"face mesh tessellation {TESSELLATION_FILE} holds no (F, 3) triangles "
                                "over 468 points", path=str(TESSELLATION_FILE))
    triangles.setflags(write=False)
    return triangles


def _strip(upper: list[int], lower: list[int]) -> np.ndarray:
    """Triangles of the band between two contours of equal length running left to right on screen,
    ``upper`` above ``lower``, point i of one facing point i of the other (shared ends allowed)."""
    triangles = []
    for i in range(len(upper) - 1):
        triangles += [(upper[i], upper[i + 1], lower[i + 1]), (upper[i], lower[i + 1], lower[i])]
    return np.array([t for t in triangles if len(set(t)) == 3], dtype=np.int32)


def _eye_fill(xy: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...], iris: tuple[int, ...]
              ) -> np.ndarray:
    """Triangles filling one eye opening (lid contours ``upper`` and ``lower``, left to right on screen)
    around the visible points of ``iris`` (centre first, then its ring).

    Starts from the strip between the lids, adds each visible iris point into the triangle holding it,
    then flips edges inside the opening until the triangulation is Delaunay there (fat triangles shear
    least when the lids move). Flips and insertions only ever make positive triangles, so an unusual
    eye keeps the plain strip.
    """
    triangles = [tuple(t) for t in _strip(list(upper), list(lower))]
    outline = np.array(list(upper) + list(lower[-2:0:-1]))
    opening = xy[outline].astype(np.float32).reshape(-1, 1, 2)
    radius = float(np.linalg.norm(xy[list(iris[1:])] - xy[iris[0]], axis=1).mean())
    for point in iris:
        inside = cv2.pointPolygonTest(opening, (float(xy[point, 0]), float(xy[point, 1])), True)
        if inside < _IRIS_MARGIN * radius:
            continue  # hidden under a lid, or too near one to keep its triangles apart
        for k, (a, b, c) in enumerate(triangles):
            if min(_area(xy, a, b, point), _area(xy, b, c, point), _area(xy, c, a, point)) > 0:
                triangles[k:k + 1] = [(a, b, point), (b, c, point), (c, a, point)]
                break
    _delaunay_flips(xy, triangles)
    return np.array(triangles, dtype=np.int32)


def _delaunay_flips(xy: np.ndarray, triangles: list[tuple[int, int, int]]) -> None:
    """Lawson flips, in place, of the shared edges of ``triangles`` (the outline's edges never flip)."""
    for _ in range(10 * len(triangles)):  # far more rounds than a triangulation this small needs
        owner = {(t[i], t[(i + 1) % 3]): k for k, t in enumerate(triangles) for i in range(3)}
        for (a, b), k in owner.items():
            other = owner.get((b, a))
            if other is None:
                continue
            c = next(v for v in triangles[k] if v not in (a, b))
            d = next(v for v in triangles[other] if v not in (a, b))
            if _in_circle(xy, a, b, c, d) and _area(xy, c, a, d) > 0 and _area(xy, d, b, c) > 0:
                triangles[k], triangles[other] = (c, a, d), (d, b, c)
                break
        else:
            return


def _area(xy: np.ndarray, a: int, b: int, c: int) -> float:
    """Twice the signed area of triangle a, b, c (positive: clockwise on screen with y down)."""
    (ax, ay), (bx, by), (cx, cy) = xy[a], xy[b], xy[c]
    return float((bx - ax) * (cy - ay) - (by - ay) * (cx - ax))


def _in_circle(xy: np.ndarray, a: int, b: int, c: int, d: int) -> bool:
    """Whether point d lies strictly inside the circumcircle of positive triangle a, b, c."""
    rows = [(*(xy[v] - xy[d]), float(((xy[v] - xy[d]) ** 2).sum())) for v in (a, b, c)]
    return float(np.linalg.det(np.array(rows))) > 1e-12


class LandmarkFaceModeller:
    """Fit identity, pose and expression to a ``mediapipe478`` track.

    Parameters
    ----------
    iterations : rounds of (pose fit, identity re-estimate); 3 is plenty.
    pose_smoothing : strength of the zero-lag pose smoothing (0 = per-frame poses as fitted).
    """

    version = 2  # 2: MediaPipe tessellation with eye and mouth fills instead of a Delaunay

    topology = mesh.TOPOLOGY

    def __init__(self, iterations: int = 3, pose_smoothing: float = 1.0) -> None:
        if not isinstance(iterations, int) or isinstance(iterations, bool) or not 1 <= iterations <= 20:
            raise InvalidOptionError(f"iterations must be an integer in 1..20, got {iterations!r}",
                                     field="iterations")
        if not 0.0 <= float(pose_smoothing) <= 10.0:
            raise InvalidOptionError(f"pose_smoothing must be in [0, 10], got {pose_smoothing!r}",
                                     field="pose_smoothing")
        self.iterations = iterations
        self.pose_smoothing = float(pose_smoothing)

    def fit(self, track: FaceTrack) -> FaceFit:
        """Model the tracked face of every frame (a single still works: a one-frame track).

        Raises
        ------
        InvalidOptionError : a track of another topology or landmark shape.
        NoFaceError : no frame of the track has the face.
        """
        if track.topology != mesh.TOPOLOGY:
            raise InvalidOptionError(
                f"the landmarks face model needs a {mesh.TOPOLOGY} track, got {track.topology!r}",
                field="face3d")
        landmarks = np.asarray(track.landmarks, dtype=np.float64)
        count = len(track.frames)
        if landmarks.shape != (count, mesh.N_VERTICES, 3):
            raise InvalidOptionError(
                f"track landmarks must be ({count}, {mesh.N_VERTICES}, 3), got {landmarks.shape}",
                field="landmarks")
        found = np.asarray(track.found, dtype=bool) & np.isfinite(landmarks).all(axis=(1, 2))
        if not found.any():
            raise NoFaceError("no frame of the track has a face to fit", field="face3d")
        points = landmarks[found]

        # First guess from each frame alone, then alternate: pose from the identity's stable points,
        # identity as the median face-local shape (robust to the expressions the shot holds).
        identity = _canonical(np.median(np.stack([_canonical(p) for p in points]), axis=0))
        for _ in range(self.iterations):
            scale, rotation, translation = _fit_poses(identity[_STABLE], points[:, _STABLE])
            identity = _canonical(np.median(_local(points, scale, rotation, translation), axis=0))
        scale, rotation, translation = _fit_poses(identity[_STABLE], points[:, _STABLE])
        scale, rotation, translation = self._smooth_poses(identity, found, scale, rotation, translation)

        rot = np.tile(np.eye(3), (count, 1, 1))
        scl = np.ones(count)
        trn = np.zeros((count, 3))
        expression = np.zeros((count, mesh.N_VERTICES, 3))
        rot[found], scl[found], trn[found] = rotation, scale, translation
        expression[found] = _local(points, scale, rotation, translation) - identity
        return FaceFit(frames=list(track.frames), identity=identity.astype(np.float32),
                       expression=expression.astype(np.float32), rotation=rot.astype(np.float32),
                       scale=scl.astype(np.float32), translation=trn.astype(np.float32), found=found,
                       topology=mesh.TOPOLOGY, triangles=triangulate(identity), params={})

    def _smooth_poses(self, identity: np.ndarray, found: np.ndarray, scale: np.ndarray,
                      rotation: np.ndarray, translation: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Zero-lag smoothing of the found frames' poses, never across a lost frame.

        The pose is smoothed through the image positions of the identity's stable points, then fitted
        again: a plain linear smoother on points avoids averaging rotations directly.
        """
        ladder = bandwidth_ladder(self.pose_smoothing)
        if not ladder:
            return scale, rotation, translation
        anchors = (scale[:, None, None] * np.einsum("nj,tkj->tnk", identity[_STABLE], rotation)
                   + translation[:, None])
        start = 0
        for seg in segments(found):
            length = seg.stop - seg.start
            part = slice(start, start + length)
            start += length
            if length < 3:
                continue
            smooth = adaptive_smooth(anchors[part], ladder)
            scale[part], rotation[part], translation[part] = _fit_poses(identity[_STABLE], smooth)
        return scale, rotation, translation
