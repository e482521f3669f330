"""The 68-point (iBUG / FAN) landmark scheme NED works in: from other trackers, its template, alignment.

NED crops faces for DECA from FAN's 68 points and aligns the renderer's 256-px face to a fixed 68-point
template. Our default tracker gives MediaPipe's 478 points, so ``to_68`` maps them to the 68-point
scheme (one MediaPipe point, or the mean of two, per iBUG point). ``template_68`` is NED's template
when the user has it (``renderer/template.gz``) and otherwise a built-in one: the Procrustes mean of
the 68 points of 35 neutral faces (London face set, CC BY 4.0), made left-right symmetric and scaled to
the box NED's template spans (x 57..186, y 85..220 in the 256-px crop).

Must not import torch, zmq, msgpack or the engine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ned_core.errors import CorruptModelError, InvalidOptionError

# iBUG 68 point -> MediaPipe face-mesh indices (their mean). Jaw 0-16 from the subject's right (image
# left), brows 17-26, nose 27-35, eyes 36-41 (subject's right) and 42-47, outer lips 48-59, inner 60-67.
MEDIAPIPE_TO_68: tuple[tuple[int, ...], ...] = (
    (127,), (234,), (93,), (132, 58), (58, 172), (136,), (150,), (176,), (152,), (400,), (379,), (365,),
    (397, 288), (361,), (323,), (454,), (356,),
    (70,), (63,), (105,), (66,), (107,), (336,), (296,), (334,), (293,), (300,),
    (168, 6), (197, 195), (5,), (4,), (75,), (97,), (2,), (326,), (305,),
    (33,), (160,), (158,), (133,), (153,), (144,), (362,), (385,), (387,), (263,), (373,), (380,),
    (61,), (39,), (37,), (0,), (267,), (269,), (291,), (321,), (314,), (17,), (84,), (91,),
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),
)
MEDIAPIPE_IRISES = (468, 473)
"""Iris centres of the subject's right eye (iBUG 36-41) and left eye (42-47)."""
TOPOLOGIES_68 = ("ibug68", "fan68", "dlib68")
RIGHT_EYE, LEFT_EYE = tuple(range(36, 42)), tuple(range(42, 48))
MOUTH = tuple(range(48, 68))
TEMPLATE_SIZE = 256

_TEMPLATE_68 = np.array([
    [57.0, 116.1], [57.7, 130.7], [58.9, 145.3], [62.2, 165.1], [68.1, 183.4], [77.4, 198.6],
    [85.7, 206.4], [100.8, 216.0], [121.5, 220.0], [142.2, 216.0], [157.3, 206.4], [165.6, 198.6],
    [174.9, 183.4], [180.8, 165.1], [184.1, 145.3], [185.3, 130.7], [186.0, 116.1], [68.9, 94.3],
    [74.4, 88.2], [83.2, 85.0], [94.8, 85.6], [108.0, 87.6], [135.0, 87.6], [148.2, 85.6], [159.8, 85.0],
    [168.6, 88.2], [174.1, 94.3], [121.5, 107.9], [121.5, 121.4], [121.5, 131.6], [121.5, 140.2],
    [110.1, 150.0], [114.7, 153.1], [121.5, 153.3], [128.3, 153.1], [132.9, 150.0], [80.7, 109.3],
    [86.3, 105.2], [95.8, 104.4], [106.2, 111.0], [97.0, 113.0], [87.7, 113.1], [136.8, 111.0],
    [147.2, 104.4], [156.7, 105.2], [162.3, 109.3], [155.3, 113.1], [146.0, 113.0], [98.9, 175.7],
    [108.3, 168.8], [114.9, 166.5], [121.5, 167.9], [128.1, 166.5], [134.7, 168.8], [144.1, 175.7],
    [138.7, 179.7], [128.1, 183.8], [121.5, 184.2], [114.9, 183.8], [104.3, 179.7], [101.0, 175.4],
    [116.1, 174.0], [121.5, 174.2], [126.9, 174.0], [142.0, 175.4], [126.8, 174.0], [121.5, 174.3],
    [116.2, 174.0],
])


def has_68(topology: str) -> bool:
    """Whether ``to_68`` can map landmarks of this tracker topology."""
    return topology in TOPOLOGIES_68 or topology.startswith("mediapipe")


def to_68(landmarks: np.ndarray, topology: str) -> np.ndarray:
    """(..., N, D) tracker landmarks -> (..., 68, D) in the iBUG scheme (NaN rows stay NaN)."""
    points = np.asarray(landmarks, dtype=np.float64)
    if topology in TOPOLOGIES_68:
        if points.shape[-2] != 68:
            raise InvalidOptionError(f"{topology} landmarks must have 68 points, got {points.shape[-2]}",
                                     field="track")
        return points
    if topology.startswith("mediapipe") and points.shape[-2] >= 468:
        return np.stack([points[..., list(idx), :].mean(axis=-2) for idx in MEDIAPIPE_TO_68], axis=-2)
    raise InvalidOptionError(f"the NED backend needs 68-point or MediaPipe landmarks, got a {topology!r} "
                             f"track of {points.shape[-2]} points", field="track")


def pupils(landmarks: np.ndarray, topology: str) -> np.ndarray | None:
    """(..., 2, 2) pupil centres (subject's right eye first) when the tracker gives irises, else None."""
    points = np.asarray(landmarks, dtype=np.float64)
    if topology.startswith("mediapipe") and points.shape[-2] >= 478:
        return points[..., list(MEDIAPIPE_IRISES), :2]
    return None


def template_68(size: int = TEMPLATE_SIZE, path: str | Path | None = None) -> np.ndarray:
    """The (68, 2) alignment template in pixels of a ``size`` crop: NED's file at ``path`` or built in.

    Raises ``CorruptModelError`` when ``path`` is not a 68 x 2 text array (``np.loadtxt``, gz or not).
    """
    if path is None:
        points = _TEMPLATE_68
    else:
        try:
            points = np.loadtxt(path, dtype=np.float64)
        except (OSError, ValueError) as exc:
            raise CorruptModelError(f"{path} is not a 68-point template ({exc})", path=str(path)) from exc
        if points.shape != (68, 2):
            raise CorruptModelError(f"{path} holds a {points.shape} array, not a 68 x 2 template",
                                    path=str(path))
    return points * (size / TEMPLATE_SIZE)


def similarity_2d(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2D similarity (Umeyama, no reflection) taking ``src`` (K, 2) to ``dst``: a 2x3 matrix."""
    src = np.asarray(src, dtype=np.float64)[:, :2]
    dst = np.asarray(dst, dtype=np.float64)[:, :2]
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s0, d0 = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d0.T @ s0 / len(src))
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(d) @ vt
    var = (s0 ** 2).sum() / len(src)
    scale = float((sig * d).sum() / var) if var > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_d - scale * rotation @ mu_s
    return matrix


def apply_2d(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine ``matrix`` to (..., 2) points."""
    pts = np.asarray(points, dtype=np.float64)
    return pts[..., :2] @ matrix[:, :2].T + matrix[:, 2]


def invert_2d(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix."""
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def face_box(points_68: np.ndarray) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of 68 points: the box DECA's crop is built from (``kpt68``)."""
    pts = np.asarray(points_68, dtype=np.float64)
    return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


def face_outline(points_68: np.ndarray, forehead: float = 0.3) -> np.ndarray:
    """A closed face outline (27, 2): the jaw line, then the brows raised to cover the forehead.

    NED's face mask (a face-parsing network) covers the skin from the chin to the hairline; without
    that network the brows are lifted along the face's chin-to-nose-root direction by ``forehead``
    times the nose-root-to-chin distance.
    """
    pts = np.asarray(points_68, dtype=np.float64)[:, :2]
    up = pts[27] - pts[8]
    brows = pts[26:16:-1] + forehead * up
    return np.concatenate([pts[0:17], brows], axis=0)


def eye_radius(eye: np.ndarray) -> float:
    """NED's pupil-disk radius for one eye's 6 points: the mean of its two eyelid openings, halved."""
    e = np.asarray(eye, dtype=np.float64)
    opening = (np.linalg.norm(e[1] - e[5]) + np.linalg.norm(e[2] - e[4])) / 2.0
    return float(opening / 2.0)
