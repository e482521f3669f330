"""The manipulate stage's interface: a face fit and per-frame emotion weights in, edited expressions out.

Emotion weights are (T, 7) float arrays in NED's label order (``ned_core.EMOTIONS``); the sum of a row's
non-neutral weights is the edit's intensity (0 = no change, so ``neutral=1`` is no edit; 1 = full
emotion; above 1 = exaggerated, clamped by the backend).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ned_core.face3d.base import FaceFit


class Manipulator(Protocol):
    """Rewrites a shot's expression sequence toward per-frame target emotions, keeping the speech."""

    def edit(self, fit: FaceFit, weights: np.ndarray,
             mouth_preservation: float | np.ndarray = 1.0) -> np.ndarray:
        """Return the edited (T, N, 3) face-local expression offsets for ``fit``.

        ``mouth_preservation`` 1 keeps the original mouth opening and inner-lip shape exactly; 0 lets the
        backend move them freely. It is one value for the shot or a (T,) array, one per frame (keyed
        mouth preservation); a constant array must give the same result as the scalar.
        """
        ...
