"""Creases of the action units no open data here pairs with a neutral face, drawn in face texture space.

Owns: where each AU's skin folds (FACS's descriptions of its appearance changes: the vertical furrows
between lowered brows, the forehead's horizontal lines over raised ones, the wrinkles across a wrinkled
nose's root, the nasolabial furrow of a raised upper lip, the chin's crease under a raised chin...), as
log luminance maps on the face texture (``texture.py``) that the ``ratio`` backend adds, scaled by each
AU's activation, to the smile's learned ratio image. The smile's own creases (AU6, AU12) are learned from
the London pairs (``build.py``) and not drawn here. Coordinates are face-local (1 = the outer eye-corner
distance, y down); every crease is mirrored to both halves unless it crosses the midline.

Must not import mediapipe, torch or other stages' backends.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ned_core.appearance import texture

_SUB = 4  # supersampling of the drawn lines (sharper than a texel, then filtered)


@dataclass(frozen=True)
class Crease:
    """A fold line: ``points`` (face-local x, y), darkening ``depth`` (log luminance) at its middle,
    ``width`` (face-local) of its cross-section; ``mirror`` draws it on the other half too."""

    points: tuple[tuple[float, float], ...]
    depth: float
    width: float = 0.012
    mirror: bool = True


@dataclass(frozen=True)
class Shade:
    """A broad change of shading (a shadow under a lowered brow, light on a bulge): a Gaussian blob."""

    centre: tuple[float, float]
    size: tuple[float, float]
    depth: float
    mirror: bool = True


def _arc(y_mid: float, half: float, sag: float, n: int = 9) -> tuple[tuple[float, float], ...]:
    """A horizontal line across the midline, ``sag`` lower at x = ±half than in the middle."""
    xs = np.linspace(-half, half, n)
    return tuple((float(x), float(y_mid + sag * (x / half) ** 2)) for x in xs)


CREASES: dict[str, tuple[Crease | Shade, ...]] = {
    # Inner brow raiser: short horizontal lines over the middle of the forehead; the upper lid's skin,
    # pulled out from under the brow's overhang, catches the light (the warp alone would stretch the
    # brow's shadow over it).
    "AU1": tuple(Crease(_arc(y, 0.26, 0.03), 0.22, 0.011, mirror=False) for y in (-0.24, -0.31, -0.38))
    + (Shade((0.26, -0.04), (0.1, 0.04), 0.1),),
    # Outer brow raiser: the lines reach out over the lateral brows; light on the stretched lid skin.
    "AU2": tuple(Crease(((0.16, y), (0.3, y + 0.005), (0.44, y + 0.03)), 0.2, 0.011)
                 for y in (-0.25, -0.32, -0.39))
    + (Shade((0.42, -0.03), (0.1, 0.04), 0.1),),
    # Brow lowerer: vertical furrows between the brows, a crease across the nose's root, and the
    # brows' shadow over the upper lids.
    "AU4": (Crease(((0.055, -0.16), (0.045, -0.06), (0.035, 0.02)), 0.32, 0.012),
            Crease(((0.02, -0.12), (0.015, -0.04)), 0.18, 0.009),
            Crease(((-0.07, 0.065), (0.0, 0.07), (0.07, 0.065)), 0.16, 0.01, mirror=False),
            Shade((0.33, 0.0), (0.16, 0.06), -0.14)),
    # Lid tightener: a crease under the lower lid.
    "AU7": (Crease(((0.24, 0.21), (0.35, 0.235), (0.46, 0.21)), 0.14, 0.011),),
    # Nose wrinkler: wrinkles across the nose's root and sides, the upper nasolabial furrow.
    "AU9": tuple(Crease(_arc(y, 0.085, -0.01, 5), 0.24, 0.008, mirror=False) for y in (0.11, 0.16, 0.21))
    + (Crease(((0.2, 0.56), (0.25, 0.65), (0.29, 0.74)), 0.2, 0.014),),
    # Upper lip raiser: the nasolabial furrow deepens from the nose wing past the mouth corner.
    "AU10": (Crease(((0.2, 0.55), (0.26, 0.67), (0.31, 0.79), (0.34, 0.9)), 0.24, 0.016),),
    # Lip corner depressor: folds running down and out from the corners.
    "AU15": (Crease(((0.29, 0.9), (0.315, 0.99), (0.34, 1.08)), 0.18, 0.013),),
    # Chin raiser: the crease between lower lip and chin deepens; light on the chin's boss.
    "AU17": (Crease(_arc(1.06, 0.15, -0.02, 7), 0.26, 0.014, mirror=False),
             Shade((0.0, 1.22), (0.1, 0.07), 0.08, mirror=False)),
    # Lip stretcher: short folds beside the stretched corners.
    "AU20": (Crease(((0.3, 0.85), (0.36, 0.87)), 0.12, 0.01),),
    # Lip tightener: the narrowed lips' line pressed darker; light on the skin bulging just below the
    # lower lip.
    "AU23": (Crease(_arc(0.845, 0.24, 0.01, 9), 0.18, 0.007, mirror=False),
             Shade((0.0, 0.99), (0.12, 0.025), 0.07, mirror=False)),
    # Lip pressor: the lips pressed together: their line darker, light on the skin bulging above the
    # upper lip, the shadow under the bulge below the lower lip.
    "AU24": (Crease(_arc(0.845, 0.22, 0.01, 9), 0.14, 0.007, mirror=False),
             Shade((0.0, 0.74), (0.14, 0.025), 0.05, mirror=False),
             Crease(_arc(1.03, 0.12, -0.01, 7), 0.12, 0.012, mirror=False)),
}


def crease_maps(order: tuple[str, ...]) -> np.ndarray:
    """(len(order), h, w) float32 log luminance maps, one per AU of ``order`` (zeros for AUs without)."""
    h, w = texture.face_texture_shape()
    maps = np.zeros((len(order), h, w), np.float32)
    for i, au in enumerate(order):
        for mark in CREASES.get(au, ()):
            maps[i] += _draw(mark, (h, w))
    return maps


def _to_texels(xy: np.ndarray) -> np.ndarray:
    return (np.asarray(xy, np.float64) - np.array(texture.FACE_BOX[:2])) * texture.TEXELS_PER_UNIT - 0.5


def _draw(mark: Crease | Shade, shape: tuple[int, int]) -> np.ndarray:
    sides = (1.0, -1.0) if mark.mirror else (1.0,)
    out = np.zeros(shape, np.float32)
    if isinstance(mark, Shade):
        gy, gx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
        for side in sides:
            cx, cy = _to_texels([side * mark.centre[0], mark.centre[1]])
            sx, sy = (s * texture.TEXELS_PER_UNIT for s in mark.size)
            out += mark.depth * np.exp(-((gx - cx) / sx) ** 2 - ((gy - cy) / sy) ** 2)
        return out
    big = np.zeros((shape[0] * _SUB, shape[1] * _SUB), np.float32)
    for side in sides:
        pts = _to_texels([(side * x, y) for x, y in mark.points])
        # Resample the polyline finely so its darkness can swell in the middle and fade at both ends.
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        t = np.concatenate([[0.0], np.cumsum(seg)]) / max(seg.sum(), 1e-9)
        fine = np.linspace(0.0, 1.0, 64)
        line = np.stack([np.interp(fine, t, pts[:, 0]), np.interp(fine, t, pts[:, 1])], axis=1)
        line = (line + 0.5) * _SUB - 0.5
        for k in range(len(line) - 1):
            strength = float(np.sin(np.pi * (fine[k] + fine[k + 1]) / 2.0) ** 0.5)
            a, b = np.round(line[k] * 16).astype(int), np.round(line[k + 1] * 16).astype(int)
            cv2.line(big, tuple(a), tuple(b), strength, thickness=1, lineType=cv2.LINE_AA, shift=4)
    sigma = mark.width * texture.TEXELS_PER_UNIT * _SUB
    # Blur only around the line (a whole supersampled canvas per crease would cost a second at start-up),
    # on a window aligned to whole texels so it shrinks back exactly.
    x, y, w, h = cv2.boundingRect((big > 0).view(np.uint8))
    pad = int(np.ceil(4.0 * sigma))
    x0, y0 = max(x - pad, 0) // _SUB * _SUB, max(y - pad, 0) // _SUB * _SUB
    x1 = min(-(-(x + w + pad) // _SUB) * _SUB, big.shape[1])
    y1 = min(-(-(y + h + pad) // _SUB) * _SUB, big.shape[0])
    window = cv2.GaussianBlur(big[y0:y1, x0:x1], (0, 0), sigma)
    # A blurred one-pixel line peaks at 1 / (sqrt(2 pi) sigma): normalise so the middle reaches depth.
    window *= np.sqrt(2.0 * np.pi) * sigma
    small = cv2.resize(window, ((x1 - x0) // _SUB, (y1 - y0) // _SUB), interpolation=cv2.INTER_AREA)
    out[y0 // _SUB:y1 // _SUB, x0 // _SUB:x1 // _SUB] = -mark.depth * np.minimum(small, 1.0)
    return out
