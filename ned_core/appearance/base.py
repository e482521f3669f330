"""The appearance stage's interface: a rendered face in, the same face with an expression's looks out.

A warp moves the plate's own skin; it cannot make what a real expression shows and a neutral face does
not: creases, the cheeks' bulge, parted lips with teeth behind them. An appearance backend adds those in
the face's texture space, on top of the renderer's pixels and inside its matte. A neural renderer that
paints the whole face itself needs none (``"none"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from ned_core.face3d.base import FaceFit
from ned_core.io import PlateImage
from ned_core.render.base import FrameFace, RenderOutput


class Appearance(Protocol):
    """Adds an expression's appearance to one rendered frame."""

    def measure_shot(self, fit: FaceFit, edited: np.ndarray, weights: np.ndarray,
                     read: Callable[[int], PlateImage]) -> np.ndarray | None:
        """One measure of the whole shot that every frame's ``apply`` gets as ``face.shot_light``.

        Called once per render with the shot's fit, its (T, N, 3) edited expressions (the manipulate
        stage's output), its (T, 7) emotion weights and ``read`` (a plate frame by number), so every
        chunk of a shot gets the same value and a frame looks the same whichever chunk renders it.
        """
        ...

    def apply(self, plate: np.ndarray, rendered: RenderOutput, face: FrameFace) -> RenderOutput:
        """Return ``rendered`` with the looks of ``face``'s edit added.

        ``plate`` is the frame's original (H, W, C) float32 pixels (the plate's colourspace). The
        returned pixels differ from ``rendered.pixels`` only where ``rendered.matte`` > 0.
        """
        ...


class NoAppearance:
    """Leaves the renderer's pixels as they are (for renderers that paint the face themselves)."""

    def measure_shot(self, fit: FaceFit, edited: np.ndarray, weights: np.ndarray,
                     read: Callable[[int], PlateImage]) -> np.ndarray | None:
        return None

    def apply(self, plate: np.ndarray, rendered: RenderOutput, face: FrameFace) -> RenderOutput:
        return rendered
