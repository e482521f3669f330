"""Fast stand-in analysis stages for engine tests, loaded by ``ned-engine serve --stages standin:stages``.

A fixed 7x7 grid of "landmarks" stands in for a face (found on every frame, or lost on the frames
given by the job's ``track`` option ``lost``; its ``delay`` slows each analysed frame down), a trivial
rig lifts the grid's centre by the happy weight, no appearance layer (the grid is no MediaPipe face), and
the real mesh-warp renderer and matte compositor do the pixels. The job's ``render`` option ``delay``
(seconds, default ``NED_TEST_FRAME_DELAY``) slows each rendered frame down so a test can cancel or kill
a job half way. Deterministic, so outputs can be
compared bit for bit.
"""

from __future__ import annotations

import os
import time
from typing import Any

import cv2
import numpy as np

from ned_core import render
from ned_core.appearance.base import NoAppearance
from ned_core.face3d.base import FaceFit
from ned_core.track.base import FaceTrack

W, H = 160, 120


def _grid() -> np.ndarray:
    xs, ys = np.meshgrid(np.linspace(50, 110, 7), np.linspace(30, 90, 7))
    return np.stack([xs.ravel(), ys.ravel(), np.zeros(49)], axis=1)


class GridTracker:
    topology = "grid49"

    def __init__(self, lost: list[int] = (), delay: float = 0.0) -> None:
        self.lost = set(lost)
        self.delay = delay

    def track(self, frames, images, hint=None, progress=None) -> FaceTrack:
        lost = self.lost
        for _ in images:  # consume, so the pipeline reports analysis progress per frame
            time.sleep(self.delay)
        found = np.array([f not in lost for f in frames])
        landmarks = np.repeat(_grid()[None], len(frames), axis=0).astype(np.float32)
        landmarks[~found] = np.nan
        return FaceTrack(frames=list(frames), landmarks=landmarks, found=found,
                         confidence=found.astype(np.float32),
                         boxes=np.tile([50, 30, 110, 90], (len(frames), 1)).astype(np.float32),
                         image_size=(W, H), topology=self.topology)

    def detect(self, image) -> list:
        return [(50.0, 30.0, 110.0, 90.0)]


class GridModeller:
    def fit(self, track: FaceTrack) -> FaceFit:
        t = len(track.frames)
        points = _grid()
        subdiv = cv2.Subdiv2D((0, 0, W, H))
        for x, y, _ in points:
            subdiv.insert((float(x), float(y)))
        triangles = []
        for x1, y1, x2, y2, x3, y3 in subdiv.getTriangleList():
            corners = ((x1, y1), (x2, y2), (x3, y3))
            ids = [int(np.argmin(np.hypot(points[:, 0] - x, points[:, 1] - y))) for x, y in corners]
            if len(set(ids)) == 3:
                triangles.append(ids)
        return FaceFit(frames=track.frames, identity=points, expression=np.zeros((t, 49, 3)),
                       rotation=np.tile(np.eye(3), (t, 1, 1)), scale=np.ones(t), translation=np.zeros((t, 3)),
                       found=track.found.copy(), topology=track.topology, triangles=np.array(triangles, np.int32))


class LiftRig:
    """Moves the centre landmark up by 4 px times the happy weight, and a lower one down by 3 px times
    (1 - mouth preservation) on happy frames (a freed mouth), one value or one per frame."""

    def edit(self, fit: FaceFit, weights: np.ndarray, mouth_preservation: float | np.ndarray = 1.0) -> np.ndarray:
        out = fit.expression.copy()
        out[:, 24, 1] -= 4.0 * weights[:, 4]
        free = 1.0 - np.broadcast_to(np.asarray(mouth_preservation, np.float64), (len(out),))
        out[:, 31, 1] += 3.0 * free * weights[:, 4]
        return out


class SlowWarp:
    """The real mesh warp, ``NED_TEST_FRAME_DELAY`` seconds slower per frame."""

    def __init__(self, delay: float | None = None) -> None:
        self.inner = render.get()
        self.delay = float(os.environ.get("NED_TEST_FRAME_DELAY", "0")) if delay is None else delay

    def render(self, image, face):
        time.sleep(self.delay)
        return self.inner.render(image, face)


def stages(backends: Any = None) -> dict[str, Any]:
    """Fresh stage objects for a job's ``Backends`` (one set per worker and backend set)."""
    options = getattr(backends, "options", {}) or {}
    return {"track": GridTracker(**options.get("track", {})), "face3d": GridModeller(), "manipulate": LiftRig(),
            "render": SlowWarp(**options.get("render", {})), "appearance": NoAppearance()}
