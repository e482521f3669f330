"""The eyes under moving lids: the eyeball stays where it is while the lids open or narrow over it.

A warp moves everything inside the eye opening with the lids, so raised lids (AU5) stretch the iris
into an oval and narrowed ones (AU6, AU7) squash it. Here, inside each *edited* eye opening, the plate's
own eyeball is shown unmoved; where the lids now bare eyeball the plate never showed, it is drawn: the
iris as a disc of its own colour where the iris circle reaches, the white of the eye (its own colour,
measured in the plate's opening) elsewhere, darkened just under the upper lid as a real lid shades it.

Must not import mediapipe, torch or other stages' backends.
"""

from __future__ import annotations

import cv2
import numpy as np

# Lid contours (the subject's right eye first), corner to corner, and the iris (centre, ring of four).
EYES: tuple[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...] = (
    ((33, 246, 161, 160, 159, 158, 157, 173, 133), (33, 7, 163, 144, 145, 153, 154, 155, 133),
     (468, 469, 470, 471, 472)),
    ((362, 398, 384, 385, 386, 387, 388, 466, 263), (362, 382, 381, 380, 374, 373, 390, 249, 263),
     (473, 474, 475, 476, 477)),
)
LID_SHADE = (0.25, 0.75)  # the top quarter of a bared opening, darkened to 75% at the lid


def _polygon(points: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...]) -> np.ndarray:
    return np.concatenate([points[list(upper), :2], points[list(lower[::-1]), :2]])


def _coverage(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [np.round(polygon * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0


def eye_layer(plate_linear: np.ndarray, source: np.ndarray, edited: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """(alpha (h, w), linear colour (h, w, 3)) over a box of the frame: the eyeballs under the edited lids.

    ``plate_linear`` is the box of the plate in scene-linear light; ``source`` and ``edited`` are the
    (N, 2+) face meshes in the box's pixels.
    """
    shape = plate_linear.shape[:2]
    alpha = np.zeros(shape, np.float32)
    colour = np.zeros(shape + (3,), np.float32)
    gy, gx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    for upper, lower, iris in EYES:
        new = _coverage(_polygon(edited, upper, lower), shape)
        if not new.any():
            continue
        old = _coverage(_polygon(source, upper, lower), shape)
        centre = source[iris[0], :2]
        radius = float(np.mean(np.linalg.norm(source[list(iris[1:]), :2] - centre, axis=1)))
        in_iris = np.hypot(gx - centre[0], gy - centre[1]) <= radius
        shown = old > 0.5
        white = shown & ~in_iris
        iris_seen = shown & in_iris
        lum = plate_linear @ np.array([0.2126, 0.7152, 0.0722], np.float32)
        # The white is the brightest part of what the opening shows beside the iris (its edge pixels are
        # lashes, lid margin and shadow); a tiny eye with no room beside the iris uses all it shows.
        pool = white if white.sum() >= 3 else shown
        if not pool.any():
            continue
        order = np.argsort(lum[pool])
        sclera = plate_linear[pool][order[-max(1, len(order) // 3):]].mean(axis=0)
        iris_colour = np.median(plate_linear[iris_seen], axis=0) if iris_seen.any() else 0.3 * sclera
        drawn = np.where(in_iris[..., None], iris_colour, sclera).astype(np.float32)
        # The upper lid shades the eyeball just under it.
        top = np.interp(gx, edited[list(upper), 0], edited[list(upper), 1])
        bottom = np.interp(gx, edited[list(lower), 0], edited[list(lower), 1])
        depth = np.clip((gy - top) / np.maximum(bottom - top, 1e-3), 0.0, 1.0)
        shade = LID_SHADE[1] + (1.0 - LID_SHADE[1]) * np.clip(depth / LID_SHADE[0], 0.0, 1.0)
        drawn *= shade[..., None]
        # Where the plate showed the eyeball, it shows unmoved; the rest of the new opening is drawn.
        # The plate's own margin pixels (lashes over eyeball) stay as they are: mixing drawn white into
        # them would lighten the lash line.
        here = np.where(old[..., None] > 0.0, plate_linear, drawn)
        colour = np.where(new[..., None] > 0.0, here, colour)
        alpha = np.maximum(alpha, new)
    return alpha, colour
