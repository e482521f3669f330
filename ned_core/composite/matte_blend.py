"""The default composite backend: the rendered face over the plate through a feathered matte.

Owns combining the renderer's matte with the user's mask, the optional extra feather, and the blend.
Guarantee: the returned matte is > 0 only where both the renderer's matte and the user's mask are > 0
(feathering works inward, it never grows the matte), and wherever the returned matte is 0 the returned
pixels are the plate's own bits (copied, never computed). Must not import torch or other pipeline stages:
only numpy, OpenCV, ``ned_core.render.base`` and ``ned_core.errors``.
"""

from __future__ import annotations

import math
import numbers

import cv2
import numpy as np

from ned_core.errors import InvalidOptionError
from ned_core.render.base import RenderOutput


class MatteCompositor:
    """``out = plate + matte * (rendered - plate)`` over every channel (alpha included).

    Parameters
    ----------
    feather
        Sigma in pixels of an extra blur of the combined matte (0 turns it off). It softens a hard user
        mask without ever spreading past it: the matte is first eroded by the blur's radius
        ``ceil(3 * feather)``, then blurred with a kernel no wider than that, so its support can only
        shrink.
    """

    def __init__(self, feather: float = 1.0) -> None:
        if isinstance(feather, bool) or not isinstance(feather, numbers.Real) or not math.isfinite(feather) \
                or feather < 0:
            raise InvalidOptionError(f"composite option feather must be a finite number >= 0 (pixels), "
                                     f"got {feather!r}", field="feather")
        self.feather = float(feather)

    def composite(self, plate: np.ndarray, rendered: RenderOutput,
                  user_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Blend ``rendered`` into ``plate`` ((H, W, C) float32) through its matte ∩ ``user_mask``.

        Parameters
        ----------
        plate
            The frame's original pixels.
        rendered
            The renderer's output for this frame (pixels the plate's shape, matte (H, W)).
        user_mask
            Optional (H, W) or (H, W, 1) float mask in [0, 1] (values outside are clipped, NaN counts
            as 0); multiplies the renderer's matte.

        Returns
        -------
        (pixels, matte)
            The composited frame (float32, the plate's shape) and the matte actually used ((H, W)
            float32 in [0, 1]).
        """
        plate = np.asarray(plate)
        face = np.asarray(rendered.pixels)
        if plate.ndim not in (2, 3) or face.shape != plate.shape:
            raise InvalidOptionError(f"composite needs rendered pixels of the plate's shape {plate.shape}, "
                                     f"got {face.shape}", field="render")
        height, width = plate.shape[:2]
        render_matte = _plane(rendered.matte, (height, width), "render matte", "render")
        mask = None if user_mask is None else _plane(user_mask, (height, width), "mask", "mask")
        out = np.array(plate, dtype=np.float32, copy=True)
        matte = np.zeros((height, width), np.float32)

        # Everything happens inside the box around the renderer's matte (the result can only shrink),
        # padded by the feather's reach so its erosion sees the true zeros around the box.
        reach = math.ceil(3.0 * self.feather) + 1 if self.feather > 0 else 0
        box = _support_box(render_matte, reach)
        if box is None:
            return out, matte
        local = _unit(render_matte[box])
        if mask is not None:
            local *= _unit(mask[box])
        if self.feather > 0:
            local = _feather_inward(local, self.feather)
        matte[box] = local

        base = out[box]
        top = face[box].astype(np.float32, copy=False)
        # Where matte == 1 the rendered pixel is taken as is; in between, where rendered == plate the
        # difference is exactly 0, so the plate's bits survive even inside the matte.
        full = local >= 1.0
        np.copyto(base, top, where=full if plate.ndim == 2 else full[..., None])
        part = np.nonzero((local > 0) & ~full)
        weight = local[part] if plate.ndim == 2 else local[part][:, None]
        under = base[part]
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf in a plate are its own business
            base[part] = under + weight * (top[part] - under)
        return out, matte


def _plane(values: np.ndarray, shape: tuple[int, int], what: str, field: str) -> np.ndarray:
    """``values`` as an (H, W) array of the plate's size (an (H, W, 1) image is accepted)."""
    array = np.asarray(values)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.shape != shape:
        got = f"{array.shape[1]}x{array.shape[0]}" if array.ndim >= 2 else str(array.shape)
        raise InvalidOptionError(f"{what} is {got} but the plate is {shape[1]}x{shape[0]}", field=field)
    return array


def _unit(values: np.ndarray) -> np.ndarray:
    """A fresh float32 copy of ``values`` clipped to [0, 1]; NaN becomes 0."""
    array = np.asarray(values, dtype=np.float32)
    return np.clip(np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def _support_box(matte: np.ndarray, pad: int) -> tuple[slice, slice] | None:
    """Slices of the box around ``matte > 0`` grown by ``pad`` (within the frame), or None if empty."""
    support = (matte > 0).view(np.uint8)
    if not support.any():
        return None
    x, y, w, h = cv2.boundingRect(support)
    return (slice(max(y - pad, 0), min(y + h + pad, matte.shape[0])),
            slice(max(x - pad, 0), min(x + w + pad, matte.shape[1])))


def _feather_inward(matte: np.ndarray, sigma: float) -> np.ndarray:
    """Soften ``matte`` with a Gaussian of ``sigma`` px without letting it grow past where it is > 0.

    Erosion and blur both use a square window of the same radius r: a blurred value at q is > 0 only if
    some eroded value within r of q is > 0, which needs the matte > 0 on that whole window, q included.
    """
    radius = math.ceil(3.0 * sigma)
    size = 2 * radius + 1
    eroded = cv2.erode(matte, np.ones((size, size), np.uint8), borderType=cv2.BORDER_REPLICATE)
    soft = cv2.GaussianBlur(eroded, (size, size), sigma, borderType=cv2.BORDER_REPLICATE)
    # A blurred run of ones comes out a rounding error off 1: snap it, so solid stays solid.
    soft[soft >= 1.0 - 1e-6] = 1.0
    # Belt and braces against rounding: the support claim above is exact, this keeps it so.
    return np.where(matte > 0, np.maximum(soft, 0.0), 0.0).astype(np.float32)
