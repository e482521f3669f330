"""A face to edit in the appearance tests: the appearance template as a fit, and a plain skin plate."""

from __future__ import annotations

import numpy as np

from ned_core import mesh
from ned_core.appearance.ratio import load_model
from ned_core.face3d.base import FaceFit
from ned_core.face3d.landmark_fit import triangulate

SIZE = 400


def template_fit(frames: list[int]) -> FaceFit:
    """The appearance template, mouth shut, on ``frames``, 150 px between the outer eye corners."""
    template = load_model()["template"].astype(np.float64)
    t = len(frames)
    return FaceFit(frames=list(frames), identity=template, expression=np.zeros((t, mesh.N_VERTICES, 3)),
                   rotation=np.repeat(np.eye(3)[None], t, axis=0), scale=np.full(t, 150.0),
                   translation=np.tile([200.0, 170.0, 0.0], (t, 1)), found=np.ones(t, dtype=bool),
                   topology=mesh.TOPOLOGY, triangles=triangulate(template))


def skin(seed: int = 3) -> np.ndarray:
    """A SIZE x SIZE RGBA plate of slightly noisy skin-grey."""
    rng = np.random.default_rng(seed)
    rgb = 0.35 + 0.05 * rng.standard_normal((SIZE, SIZE, 3)).astype(np.float32)
    return np.concatenate([rgb, np.ones((SIZE, SIZE, 1), np.float32)], axis=-1)
