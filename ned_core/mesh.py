"""Facts about the default face model (MediaPipe's 478-point face mesh) and its face-local frame.

Face-local units: the origin is the centroid of the STABLE points, one unit is the distance between the
outer eye corners, x points to the image's right (the subject's left eye), y down (toward the chin), z
toward the viewer. Every backend of the default path (tracker smoothing, face3d fit, FACS rig, calibration,
appearance) uses this frame. It sits below the stages, so any of them may import it.
"""

from __future__ import annotations

import numpy as np

TOPOLOGY = "mediapipe478"
N_VERTICES = 478

# Named vertices (subject's right = image left).
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_OUTER, LEFT_EYE_INNER = 263, 362
NOSE_TIP, NOSE_BRIDGE = 1, 168
FOREHEAD, CHIN = 10, 152
MOUTH_RIGHT, MOUTH_LEFT = 61, 291
UPPER_LIP_INNER, LOWER_LIP_INNER = 13, 14
UPPER_LIP_OUTER, LOWER_LIP_OUTER = 0, 17

# Inner-lip contour pairs (upper, lower), from the right corner to the left: the opening of the mouth.
INNER_LIP_PAIRS: tuple[tuple[int, int], ...] = (
    (78, 78), (191, 95), (80, 88), (81, 178), (82, 87), (13, 14), (312, 317), (311, 402), (310, 318),
    (415, 324), (308, 308),
)
# Eyelid contour pairs (upper, lower) from the outer to the inner corner, the subject's right eye first,
# and each eye's corners (outer, inner): the eye's opening and its width.
LID_PAIRS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((246, 7), (161, 163), (160, 144), (159, 145), (158, 153), (157, 154), (173, 155)),
    ((466, 249), (388, 390), (387, 373), (386, 374), (385, 380), (384, 381), (398, 382)),
)
EYE_CORNERS: tuple[tuple[int, int], ...] = ((33, 133), (263, 362))
# Points that expressions barely move: eye corners, nose bridge and tip, upper face oval, temples.
STABLE: tuple[int, ...] = (
    33, 133, 263, 362, 168, 6, 197, 195, 5, 4, 1, 10, 338, 109, 67, 297, 151, 9, 8, 127, 356, 234, 454,
    162, 389, 21, 251, 54, 284,
)


def canonical_pose(points: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The similarity (scale, rotation (3, 3), translation (3,)) that maps face-local to ``points``.

    Built from one shape alone (eye line, forehead-chin line, stable centroid), so a single photo gets the
    same frame as a video.
    """
    pts = np.asarray(points, dtype=np.float64)
    x = pts[LEFT_EYE_OUTER] - pts[RIGHT_EYE_OUTER]
    scale = float(np.linalg.norm(x))
    x = x / scale
    down = pts[CHIN] - pts[FOREHEAD]
    y = down - x * float(down @ x)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    rotation = np.stack([x, y, z], axis=1)  # columns are the local axes in image space
    centre = pts[list(STABLE)].mean(axis=0)
    return scale, rotation, centre


def to_local(points: np.ndarray, scale: float, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Inverse of ``scale * rotation @ x + translation`` for (N, 3) points."""
    return (np.asarray(points, dtype=np.float64) - translation) @ rotation / scale


def similarity_fit(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None
                   ) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama) with ``dst ≈ scale * rotation @ src + translation``."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    s0, d0 = src - mu_s, dst - mu_d
    cov = (d0 * w[:, None]).T @ s0
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rotation = u @ np.diag(d) @ vt
    var_s = float((w * (s0 ** 2).sum(axis=1)).sum())
    scale = float((sig * d).sum() / var_s)
    translation = mu_d - scale * rotation @ mu_s
    return scale, rotation, translation


def eye_openings(points: np.ndarray) -> np.ndarray:
    """(..., 2) opening of each eye (mean lid-pair gap along y) over its width, for (..., N, 2+) points.

    About 0.2 for an open eye, under 0.05 in a blink; y must point down the face (face-local or pixels).
    """
    pts = np.asarray(points, dtype=np.float64)
    out = []
    for pairs, (outer, inner) in zip(LID_PAIRS, EYE_CORNERS, strict=True):
        upper, lower = [u for u, _ in pairs], [lo for _, lo in pairs]
        gap = (pts[..., lower, 1] - pts[..., upper, 1]).mean(axis=-1)
        width = np.linalg.norm(pts[..., outer, :2] - pts[..., inner, :2], axis=-1)
        out.append(gap / np.maximum(width, 1e-9))
    return np.stack(out, axis=-1)
