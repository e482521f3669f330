"""The composite stage's interface: plate + rendered face + mattes in, final frame out."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ned_core.render.base import RenderOutput


class Compositor(Protocol):
    """Blends rendered face pixels into the plate.

    Contract: wherever the returned matte is 0 the returned pixels are bit-identical to ``plate``.
    """

    def composite(self, plate: np.ndarray, rendered: RenderOutput,
                  user_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return (pixels (H, W, C) float32, matte (H, W) float32) for one frame."""
        ...
