"""The track stage's interface: display-referred frames in, one followed face's landmarks out."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class FaceHint:
    """Which face to follow: the one nearest ``point`` (x, y) or overlapping ``box`` (x0, y0, x1, y1),
    in pixels of the first frame where a face is found; with neither, the largest face."""

    point: tuple[float, float] | None = None
    box: tuple[float, float, float, float] | None = None


@dataclass
class FaceTrack:
    """One face followed through a shot.

    ``landmarks`` is (T, N, 3) float32 in pixel units of the analysed frame (x right, y down, z toward the
    viewer scaled like x); rows of frames where the face is lost are NaN and ``found`` is False there.
    """

    frames: list[int]
    landmarks: np.ndarray
    found: np.ndarray
    confidence: np.ndarray
    boxes: np.ndarray
    image_size: tuple[int, int]  # (width, height) of the analysed frames
    topology: str  # landmark scheme, e.g. "mediapipe478"

    @property
    def lost_frames(self) -> list[int]:
        return [f for f, ok in zip(self.frames, self.found, strict=True) if not ok]


ProgressFn = Callable[[int], None]
"""Called with the number of frames analysed so far."""


class Tracker(Protocol):
    """Finds and follows one face through a shot's frames."""

    topology: str

    def track(self, frames: list[int], images: Iterable[np.ndarray], hint: FaceHint | None = None,
              progress: ProgressFn | None = None) -> FaceTrack:
        """Track through ``images`` (uint8 RGB, display-referred, one per entry of ``frames``)."""
        ...

    def detect(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Boxes (x0, y0, x1, y1) of every face in one uint8 RGB image, largest first (``ned info``)."""
        ...
