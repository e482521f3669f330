"""The render stage's interface: a plate frame and its original vs edited face in, new face pixels out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from ned_core.face3d.base import FaceFit


@dataclass
class FrameFace:
    """The face of one frame as the renderer sees it, in analysed-frame pixels.

    source / edited: (N, 3) projected vertices of the original and the edited face model; triangles:
    (F, 3) int vertex indices of the model's mesh. Model-based renderers also get the shot's ``fit``,
    the frame's ``index`` in it, the ``edited_expression`` (N, 3) and the whole shot's
    ``edited_sequence`` (T, N, 3) (temporal renderers), the plate's ``colorspace``, the frame's
    emotion ``weights`` (1, 7) and the appearance stage's ``shot_light`` (its one measure of the whole
    shot, ``Appearance.measure_shot``); a warp needs only the vertices.
    """

    source: np.ndarray
    edited: np.ndarray
    triangles: np.ndarray
    fit: FaceFit | None = None
    index: int = -1
    edited_expression: np.ndarray | None = None
    edited_sequence: np.ndarray | None = None
    colorspace: str | None = None
    weights: np.ndarray | None = None
    shot_light: np.ndarray | None = None


@dataclass
class RenderOutput:
    """New face pixels for one frame.

    pixels: (H, W, C) float32 in the plate's own colourspace, same size as the input.
    matte: (H, W) float32 in [0, 1], where the renderer changed the face (already feathered).
    stmap: (H, W, 2) float32 source pixel coordinates (x, y) each output pixel was sampled from, or
    None when the backend is not a warp.
    """

    pixels: np.ndarray
    matte: np.ndarray
    stmap: np.ndarray | None = None


class Renderer(Protocol):
    """Turns an edited face back into pixels of the frame."""

    def render(self, image: np.ndarray, face: FrameFace) -> RenderOutput:
        """Render ``face`` into ``image`` ((H, W, C) float32, the plate's colourspace)."""
        ...
