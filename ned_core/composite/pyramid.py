"""composite backend ``pyramid``: NED's Laplacian-pyramid blend of the rendered face into the plate.

As NED's ``postprocessing/blend.py``: the renderer's face mask is eroded with FSGAN's SoftErosion (a
normalised cone filter, thresholded: the *hard* mask), then the rendered face and the plate are
blended band by band with a 4-level Laplacian pyramid, each band weighted by the Gaussian pyramid of
the eroded mask. NED blends 256-px face crops (erosion kernel 33, threshold 0.8); here the blend runs
at plate resolution, so the erosion kernel and the number of pyramid levels grow with the face's size
in the plate (the matte's height against its ~169 px in NED's aligned crop), keeping NED's look.

Contract (as ``composite/base.py``): the returned matte is what a flat face would receive from the
blend (the coarsest Gaussian level of the mask, expanded: 1 inside, falling off over the blend band),
times the user's mask; wherever it is 0 the returned pixels are the plate's own bits, copied. Inside,
the pixels are ``plate + user_mask * (blend - plate)``.

Must not import torch (NumPy and OpenCV only), zmq or the engine.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ned_core.errors import InvalidOptionError
from ned_core.render.base import RenderOutput

NED_CROP_MASK_HEIGHT = 169.0
"""Height in px of the renderer's face mask in NED's 256-px aligned crop (chin to raised brows)."""
NED_EROSION_KERNEL = 33
MATTE_FLOOR = 1.0 / 4096.0
"""Matte values below this count as 0 (the plate is copied there)."""


def soft_erosion(mask: np.ndarray, kernel_size: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """FSGAN's SoftErosion: (soft, hard) masks of an (H, W) float mask in [0, 1].

    The mask is filtered with a normalised cone (max distance minus distance from the centre) with
    zero padding; values at or above ``threshold`` become 1 (the hard mask is exactly those), the rest
    are divided by their maximum.
    """
    size = max(1, int(kernel_size)) | 1
    r = size // 2
    yy, xx = np.mgrid[0:size, 0:size]
    dist = np.hypot(xx - r, yy - r)
    kernel = dist.max() - dist
    kernel = (kernel / kernel.sum()) if kernel.sum() > 0 else np.ones((1, 1))
    x = cv2.filter2D(np.asarray(mask, np.float32), cv2.CV_32F, kernel.astype(np.float32),
                     borderType=cv2.BORDER_CONSTANT)
    hard = x >= threshold
    soft = x.copy()
    soft[hard] = 1.0
    below = soft[~hard]
    if below.size and below.max() > 0:
        soft[~hard] = below / below.max()
    return soft, hard


def _gaussian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    pyramid = [image]
    for _ in range(levels - 1):
        pyramid.append(cv2.pyrDown(pyramid[-1]))
    return pyramid


def _expand(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = cv2.pyrUp(image, dstsize=(shape[1], shape[0]))
    return out.reshape(shape)


def laplacian_blend(top: np.ndarray, bottom: np.ndarray, mask: np.ndarray, levels: int = 4) -> np.ndarray:
    """Blend ``top`` over ``bottom`` ((H, W, C) float32) band by band with the (H, W) ``mask``."""
    levels = max(1, int(levels))
    g_top, g_bottom = _gaussian_pyramid(top, levels), _gaussian_pyramid(bottom, levels)
    g_mask = _gaussian_pyramid(np.asarray(mask, np.float32), levels)
    bands = []
    for i in range(levels):
        if i < levels - 1:
            l_top = g_top[i] - _expand(g_top[i + 1], g_top[i].shape)
            l_bottom = g_bottom[i] - _expand(g_bottom[i + 1], g_bottom[i].shape)
        else:
            l_top, l_bottom = g_top[i], g_bottom[i]
        m = g_mask[i][..., None]
        bands.append(l_top * m + l_bottom * (1.0 - m))
    out = bands[-1]
    for i in range(levels - 2, -1, -1):
        out = _expand(out, bands[i].shape) + bands[i]
    return out


def blend_weight(mask: np.ndarray, levels: int) -> np.ndarray:
    """What ``laplacian_blend`` gives a flat 1 over a flat 0: the coarsest mask level, expanded."""
    g_mask = _gaussian_pyramid(np.asarray(mask, np.float32), max(1, int(levels)))
    out = g_mask[-1]
    for i in range(len(g_mask) - 2, -1, -1):
        out = _expand(out, g_mask[i].shape)
    return np.clip(out, 0.0, 1.0)


class PyramidCompositor:
    """composite backend ``pyramid`` (see the module docstring).

    Parameters
    ----------
    levels:
        Laplacian levels at NED's face size (4); larger faces get ``round(log2(face scale))`` more.
    erosion:
        SoftErosion kernel in plate pixels; default NED's 33 px scaled by the face's size.
    threshold:
        SoftErosion threshold (NED's 0.8).
    """

    def __init__(self, levels: int = 4, erosion: int | None = None, threshold: float = 0.8) -> None:
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise InvalidOptionError(f"levels must be an integer >= 1, got {levels!r}", field="levels")
        if erosion is not None and (isinstance(erosion, bool) or not isinstance(erosion, int) or erosion < 1):
            raise InvalidOptionError(f"erosion must be an integer >= 1 (pixels), got {erosion!r}", field="erosion")
        if not 0.0 < float(threshold) <= 1.0:
            raise InvalidOptionError(f"threshold must be in (0, 1], got {threshold!r}", field="threshold")
        self.levels, self.erosion, self.threshold = levels, erosion, float(threshold)

    def composite(self, plate: np.ndarray, rendered: RenderOutput,
                  user_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Blend ``rendered`` into ``plate`` ((H, W, C) float32); returns (pixels, matte (H, W))."""
        plate = np.asarray(plate)
        face = np.asarray(rendered.pixels)
        if plate.ndim != 3 or face.shape != plate.shape:
            raise InvalidOptionError(f"composite needs rendered pixels of the plate's shape {plate.shape}, "
                                     f"got {face.shape}", field="render")
        height, width = plate.shape[:2]
        render_matte = np.asarray(rendered.matte, np.float32)
        if render_matte.shape != (height, width):
            raise InvalidOptionError(f"render matte is {render_matte.shape}, the plate {plate.shape[:2]}",
                                     field="render")
        user = None
        if user_mask is not None:
            user = np.asarray(user_mask, np.float32).reshape(height, width)
            user = np.clip(np.nan_to_num(user, nan=0.0), 0.0, 1.0)
        out = np.array(plate, dtype=np.float32, copy=True)
        matte = np.zeros((height, width), np.float32)
        support = np.nan_to_num(render_matte, nan=0.0) > 0
        if not support.any():
            return out, matte
        x, y, w, h = cv2.boundingRect(support.view(np.uint8))
        scale = max(h / NED_CROP_MASK_HEIGHT, 1e-6)
        kernel = self.erosion or max(3, int(NED_EROSION_KERNEL * scale) | 1)
        levels = self.levels + max(0, round(math.log2(scale)))
        # Work in a box around the matte wide enough for the erosion and the coarsest pyramid level.
        pad = kernel + 4 * 2 ** levels
        y0, y1 = max(y - pad, 0), min(y + h + pad, height)
        x0, x1 = max(x - pad, 0), min(x + w + pad, width)
        box = (slice(y0, y1), slice(x0, x1))
        _, hard = soft_erosion(np.clip(render_matte[box], 0.0, 1.0), kernel, self.threshold)
        eroded = hard.astype(np.float32)
        base = out[box]
        blended = laplacian_blend(face[box].astype(np.float32), base, eroded, levels)
        weight = blend_weight(eroded, levels)
        if user is not None:
            weight = weight * user[box]
            blended = base + user[box][..., None] * (blended - base)
        weight[weight < MATTE_FLOOR] = 0.0
        inside = weight > 0
        base[inside] = blended[inside]
        matte[box] = weight
        return out, matte
