"""The default face model: a 3D face built from the tracked dense landmarks themselves.

Owns splitting a MediaPipe-478 track into one identity shape per shot (face-local units, see mesh.py),
a head pose per frame (similarity fitted to the identity's stable points, smoothed in time without lag)
and per-frame expression offsets, plus the fixed hole-free triangulation the render warp uses. It fits
no statistical model, so ``identity + expression`` mapped by the pose gives the tracked points back.

Imports numpy, cv2 (for the Delaunay triangulation) and the track stage's smoother; not mediapipe, not
torch, not scipy.
"""

from __future__ import annotations

import cv2
import numpy as np

from ned_core.errors import InvalidOptionError, NoFaceError
from ned_core.face3d import mesh
from ned_core.face3d.base import FaceFit
from ned_core.track.base import FaceTrack
from ned_core.track.smoothing import adaptive_smooth, bandwidth_ladder, segments

_STABLE = list(mesh.STABLE)


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
    """Delaunay triangles (F, 3) int32 of a face-local shape's x, y over all its points.

    Covers the face including across the mouth and eye openings, so a warp driven by it has no holes and
    the inside of the mouth and eyes follows the lips and lids. Triangles wind clockwise on screen
    (positive signed area with y down). Points that coincide in x, y share the first one's triangles.
    """
    xy = np.asarray(shape, dtype=np.float64)[:, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    # Subdiv2D works in float32: spread the points over a large canvas so neighbours stay distinct.
    px = ((xy - lo) / max(float((hi - lo).max()), 1e-12) * 4096.0).astype(np.float32)
    subdiv = cv2.Subdiv2D((-1, -1, 4099, 4099))
    index: dict[tuple[float, float], int] = {}
    for i, (x, y) in enumerate(px):
        key = (float(x), float(y))
        if key not in index:
            index[key] = i
            subdiv.insert(key)
    triangles = []
    for t in subdiv.getTriangleList().reshape(-1, 3, 2):
        keys = [(float(np.float32(x)), float(np.float32(y))) for x, y in t]
        if all(k in index for k in keys):  # drop triangles touching Subdiv2D's outer virtual vertices
            triangles.append([index[k] for k in keys])
    tri = np.asarray(triangles, dtype=np.int32).reshape(-1, 3)
    a, b, c = xy[tri[:, 0]], xy[tri[:, 1]], xy[tri[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    tri[area < 0] = tri[area < 0][:, [0, 2, 1]]
    return tri


class LandmarkFaceModeller:
    """Fit identity, pose and expression to a ``mediapipe478`` track.

    Parameters
    ----------
    iterations : rounds of (pose fit, identity re-estimate); 3 is plenty.
    pose_smoothing : strength of the zero-lag pose smoothing (0 = per-frame poses as fitted).
    """

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
