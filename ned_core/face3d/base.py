"""The face3d stage's interface: a tracked face in, a 3D face model per frame out.

The model separates identity (one shape per shot), head pose (per frame) and expression (per frame), in
face-local units: a face-local point ``x`` lands in the analysed frame at ``scale * rotation @ x + translation``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ned_core.track.base import FaceTrack


@dataclass
class FaceFit:
    """Per-shot identity plus per-frame pose and expression for the N vertices of the face model.

    identity: (N, 3) neutral face-local shape. expression: (T, N, 3) face-local offsets (identity +
    expression is the frame's face-local shape). rotation (T, 3, 3), scale (T,), translation (T, 3) map
    face-local to analysed-frame pixels. found (T,) is False where the face was lost (identity pose and
zero expression there).
    ``params`` holds backend-specific per-frame codes (e.g. FLAME exp/jaw) that other backends ignore.
    """

    frames: list[int]
    identity: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    scale: np.ndarray
    translation: np.ndarray
    found: np.ndarray
    topology: str
    triangles: np.ndarray  # (F, 3) int32 vertex indices covering the face (for warps and rasterizers)
    params: dict[str, Any] = field(default_factory=dict)

    def local_shape(self, index: int, expression: np.ndarray | None = None) -> np.ndarray:
        """Face-local (N, 3) shape of frame ``index`` (with another expression if given)."""
        expr = self.expression[index] if expression is None else expression
        return self.identity + expr

    def to_image(self, index: int, local_points: np.ndarray) -> np.ndarray:
        """Map face-local (N, 3) points of frame ``index`` to analysed-frame pixels (N, 3)."""
        return self.scale[index] * local_points @ self.rotation[index].T + self.translation[index]


class FaceModeller(Protocol):
    """Builds a FaceFit from a FaceTrack."""

    def fit(self, track: FaceTrack) -> FaceFit:
        ...
