"""The two texture spaces of the appearance stage, shared by its builder and its backend.

Owns: the face texture space (the template's frontal face-local x, y on a fixed texel grid), the mouth
space (along the mouth from corner to corner, and depth below the upper inner lip in face-local units),
how a face in an image maps into each, and the colour references read at mesh points (the skin beside
the mouth that lights the mouth layer, the lower lip that shades the tongue). Must not
import mediapipe, torch or other stages' backends.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from ned_core import mesh
from ned_core.render.warp import mesh_map

FACE_BOX = (-0.95, -0.65, 0.95, 1.45)  # face-local x0, y0, x1, y1 the face texture covers
TEXELS_PER_UNIT = 128  # one unit is the outer eye-corner distance
MOUTH_DEPTH = (-0.02, 0.34)  # depth below the upper (or height above the lower) inner lip the mouth
# textures cover (face-local)
MOUTH_SIZE = (96, 160)  # mouth texture (along, depth) samples
UPPER_INNER = tuple(u for u, _ in mesh.INNER_LIP_PAIRS)
LOWER_INNER = tuple(lo for _, lo in mesh.INNER_LIP_PAIRS)
# Cheek and chin skin beside the mouth: what the mouth layer's colour is measured against.
SKIN_POINTS = (50, 280, 101, 330, 205, 425, 36, 266, 187, 411, 199, 428, 208)
# The lower lip's red, midway between its inner and outer edges: the tongue's colour is read there.
LOWER_LIP_POINTS = (15, 16, 85, 86, 315, 316)


def face_texture_shape() -> tuple[int, int]:
    """(h, w) of the face texture."""
    x0, y0, x1, y1 = FACE_BOX
    return round((y1 - y0) * TEXELS_PER_UNIT), round((x1 - x0) * TEXELS_PER_UNIT)


def texels(template: np.ndarray) -> np.ndarray:
    """(N, 2) face-texture pixel coordinates of the template's vertices."""
    t = np.asarray(template, dtype=np.float64)[:, :2]
    # Texel i covers x0 + [i, i + 1) / TEXELS_PER_UNIT: its centre sits on the integer coordinate i.
    return (t - np.array(FACE_BOX[:2])) * TEXELS_PER_UNIT - 0.5


def skin_triangles(triangles: np.ndarray) -> np.ndarray:
    """The triangles that carry skin: no eye or mouth fill (those join points of one lid or one lip
    contour, and are what the fills add to MediaPipe's tessellation)."""
    tri = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    inner = set(UPPER_INNER) | set(LOWER_INNER)
    eyes = {33, 246, 161, 160, 159, 158, 157, 173, 133, 7, 163, 144, 145, 153, 154, 155,
            263, 466, 388, 387, 386, 385, 384, 398, 362, 249, 390, 373, 374, 380, 381, 382}
    fill = np.array([set(t) <= inner or set(t) <= eyes or max(t) >= 468 for t in tri.tolist()])
    return tri[~fill]


def unwrap(image: np.ndarray, points: np.ndarray, template: np.ndarray, triangles: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """``image`` resampled into face texture space through the face mesh ``points`` ((N, 2) pixels).

    Returns (texture (h, w, C) float32, covered (h, w) bool).
    """
    mapping, covered = mesh_map(texels(template), np.asarray(points)[:, :2], triangles, face_texture_shape())
    texture = cv2.remap(np.ascontiguousarray(image, np.float32), mapping, None, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
    return texture, covered


class Widening(NamedTuple):
    """How an edited mouth's inner-lip pairs part compared with the plate's (``MouthFrame.widened_from``)."""

    along: np.ndarray
    """Where each pair lies along the edited mouth (0..1), ascending."""
    widened: np.ndarray
    """How much further apart the pair is in the edit (face-local units; negative: closer)."""
    plate_gap: np.ndarray
    """How far apart the pair is in the plate (face-local units)."""


class MouthFrame:
    """One face's mouth space: ``along`` 0 at the subject's right inner-lip corner, 1 at the left;
    ``depth`` below the upper inner lip, in face-local units along the face's down axis.

    ``points`` (N, 2) are image pixels, ``unit`` the pixels of one face-local unit.
    """

    def __init__(self, points: np.ndarray, unit: float) -> None:
        p = np.asarray(points, dtype=np.float64)[:, :2]
        self.origin = p[UPPER_INNER[0]]
        self.axis = p[UPPER_INNER[-1]] - self.origin
        length2 = max(float(self.axis @ self.axis), 1e-9)
        self.down = np.array([-self.axis[1], self.axis[0]]) / np.sqrt(length2)
        self.unit = float(unit)
        self._length2 = length2
        self.upper = self.coords(p[list(UPPER_INNER)])
        self.lower = self.coords(p[list(LOWER_INNER)])
        self._pair_gaps = np.linalg.norm(p[list(LOWER_INNER)] - p[list(UPPER_INNER)], axis=1) / self.unit

    def coords(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) image points → (..., 2) (along, offset below the mouth axis in face units)."""
        d = np.asarray(xy, dtype=np.float64) - self.origin
        return np.stack([d @ self.axis / self._length2, d @ self.down / self.unit], axis=-1)

    def contour(self, which: np.ndarray, along: np.ndarray) -> np.ndarray:
        order = np.argsort(which[:, 0])
        return np.interp(along, which[order, 0], which[order, 1])

    def opening(self, along: np.ndarray) -> np.ndarray:
        """Gap between the inner lips at ``along`` (face-local units, 0 where shut)."""
        return np.maximum(self.contour(self.lower, along) - self.contour(self.upper, along), 0.0)

    def widened_from(self, plate: MouthFrame) -> Widening:
        """(along, widened, plate_gap): how much further apart each inner-lip pair is here than in
        ``plate`` (the same mouth before the edit; face-local units), and how far apart it was there,
        lip pair by lip pair, sorted by where the pair lies along this mouth. ``opening`` at one
        ``along`` would compare different lips where one mouth is wider, and each mouth sorted on its
        own would pair up different lips on a turned head."""
        along = 0.5 * (self.upper[:, 0] + self.lower[:, 0])
        order = np.argsort(along)
        return Widening(along[order], (self._pair_gaps - plate._pair_gaps)[order], plate._pair_gaps[order])

    def widest_opening(self) -> float:
        """The widest gap between the inner lips over the middle of the mouth (face-local units)."""
        return float(self.opening(np.linspace(0.2, 0.8, 7)).max())

    def _image(self, along: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """(..., 2) image points at ``along`` and ``offset`` below the mouth axis (face-local units)."""
        return self.origin + along[..., None] * self.axis + (offset * self.unit)[..., None] * self.down

    def to_image(self, along: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """(..., 2) image points of mouth-space samples."""
        return self._image(along, self.contour(self.upper, along) + depth)

    def to_image_above_lower(self, along: np.ndarray, height: np.ndarray) -> np.ndarray:
        """(..., 2) image points ``height`` face-local units above the lower inner lip."""
        return self._image(along, self.contour(self.lower, along) - height)

    def texels_per_pixel(self) -> tuple[float, float]:
        """(along, depth) mouth-texture texels one image pixel spans here (``prefiltered``)."""
        n_along, n_depth = MOUTH_SIZE
        return n_along / np.sqrt(self._length2), n_depth / ((MOUTH_DEPTH[1] - MOUTH_DEPTH[0]) * self.unit)

    def polygon(self) -> np.ndarray:
        """(K, 2) image outline of the mouth opening (upper contour, then the lower one back)."""
        return self._image(np.concatenate([self.upper[:, 0], self.lower[::-1, 0]]),
                           np.concatenate([self.upper[:, 1], self.lower[::-1, 1]]))


def prefiltered(image: np.ndarray, texels_per_pixel: tuple[float, float]) -> np.ndarray:
    """``image`` (a texture) blurred to what one output pixel spans of it, ``(x, y)`` texels, before it
    is sampled at single points: a texture read smaller than its texels aliases (on a small face the
    teeth's gaps and incisal edges and a drawn furrow came out as hard stripes and speckle). Gaussian
    of ``sqrt(s^2 - 1) / 2`` texels per axis: nothing where a pixel spans a texel or less, about half the
    footprint beyond."""
    # Capped at the texture's size: a degenerate face (a mouth a hundredth of a pixel wide) needs no
    # more than a flat colour, and an unbounded kernel would cost seconds.
    limit = float(max(image.shape[:2]))
    sx, sy = (min(0.5 * float(np.sqrt(max(s * s - 1.0, 0.0))), limit) for s in texels_per_pixel)
    if max(sx, sy) < 0.05:
        return image
    # A sigma of ~0 gives a one-tap kernel on that axis.
    return cv2.GaussianBlur(image, (0, 0), sigmaX=max(sx, 1e-3), sigmaY=max(sy, 1e-3),
                            borderType=cv2.BORDER_REPLICATE)


def mouth_grid() -> tuple[np.ndarray, np.ndarray]:
    """(along, depth) sample positions of the mouth texture, each (depth samples, along samples)."""
    n_along, n_depth = MOUTH_SIZE
    along = (np.arange(n_along) + 0.5) / n_along
    depth = MOUTH_DEPTH[0] + (np.arange(n_depth) + 0.5) / n_depth * (MOUTH_DEPTH[1] - MOUTH_DEPTH[0])
    return np.meshgrid(along, depth)


def mouth_texel(along: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mouth-texture pixel coordinates (x, y) of mouth-space points, for ``cv2.remap``."""
    n_along, n_depth = MOUTH_SIZE
    x = along * n_along - 0.5
    y = (depth - MOUTH_DEPTH[0]) / (MOUTH_DEPTH[1] - MOUTH_DEPTH[0]) * n_depth - 0.5
    return x.astype(np.float32), y.astype(np.float32)


def reference_colour(linear: np.ndarray, points: np.ndarray, unit: float,
                     where: tuple[int, ...] = SKIN_POINTS, reach: float = 0.04) -> np.ndarray:
    """(C,) median linear colour at the mesh points ``where`` (by default the skin beside the mouth),
    each averaged over a square reaching ``reach`` face-local units from it."""
    p = np.asarray(points, dtype=np.float64)[list(where), :2]
    # At least a pixel either side: on a small face (~40 px a unit) that reaches past a thin lip's red,
    # and the median over the points is what keeps the reading on it.
    radius = max(1, round(reach * unit))
    h, w = linear.shape[:2]
    samples = []
    for x, y in p:
        x0, x1 = int(max(x - radius, 0)), int(min(x + radius + 1, w))
        y0, y1 = int(max(y - radius, 0)), int(min(y + radius + 1, h))
        if x1 > x0 and y1 > y0:
            samples.append(linear[y0:y1, x0:x1].reshape(-1, linear.shape[2]).mean(axis=0))
    if not samples:
        return np.full(linear.shape[2], 0.18, np.float32)
    return np.median(np.array(samples), axis=0).astype(np.float32)
