"""The smooth 0→1 ramp the stages fade fields, mattes and layers with.

Sits below the stages (imports only numpy), so any of them may use it.
"""

from __future__ import annotations

import numpy as np


def smoothstep(t: np.ndarray | float) -> np.ndarray:
    """0 below 0, 1 above 1, and 3t² - 2t³ between: flat at both ends, so nothing fades in with a kink."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
