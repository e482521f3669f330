"""Measures of an edit's quality, shared by the tests and the benchmarks.

Owns: the mouth-opening curve and its correlation between original and edited footage (speech kept),
landmark jitter (temporal steadiness), the fraction of bit-identical pixels outside the face matte, and
geometric action-unit proxies with the change an edit made toward a target emotion. Landmark inputs are
``mediapipe478`` arrays (T, N, 3) with NaN rows where the face was lost.

Imports numpy and the face-mesh facts only; ``face_local_landmarks`` imports the face3d backend when
called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ned_core import mesh
from ned_core.errors import InvalidOptionError
from ned_core.manipulate.emotions import EMOTION_AUS

if TYPE_CHECKING:
    from ned_core.track.base import FaceTrack

_UPPER = [u for u, _ in mesh.INNER_LIP_PAIRS]
_LOWER = [lo for _, lo in mesh.INNER_LIP_PAIRS]


def _landmarks(array: np.ndarray, name: str) -> np.ndarray:
    out = np.asarray(array, dtype=np.float64)
    if out.ndim != 3 or out.shape[1] < mesh.N_VERTICES - 10 or out.shape[2] != 3:
        raise InvalidOptionError(f"{name} must be landmarks (T, {mesh.N_VERTICES}, 3), got {out.shape}",
                                 field=name)
    return out


def _same_length(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise InvalidOptionError(f"original and edited landmarks differ in shape: {a.shape} vs {b.shape}",
                                 field="landmarks")


def _eye_distance(landmarks: np.ndarray) -> np.ndarray:
    return np.linalg.norm(landmarks[:, mesh.LEFT_EYE_OUTER] - landmarks[:, mesh.RIGHT_EYE_OUTER], axis=-1)


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip opening per frame (T,), in outer-eye-corner distances of the same frame (NaN where lost).

    The mean distance between the upper and lower inner-lip points of ``mesh.INNER_LIP_PAIRS``; the
    ratio makes it independent of the face's size and of rotation in 3D.
    """
    pts = _landmarks(landmarks, "landmarks")
    gap = np.linalg.norm(pts[:, _UPPER] - pts[:, _LOWER], axis=-1).mean(axis=1)
    return gap / _eye_distance(pts)


def mouth_correlation(orig_landmarks: np.ndarray, edited_landmarks: np.ndarray) -> float:
    """Pearson r of the mouth-opening curves over frames found in both (NaN if < 3 such frames or flat)."""
    a, b = mouth_opening(orig_landmarks), mouth_opening(edited_landmarks)
    _same_length(a, b)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    denom = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b / denom) if denom > 0 else float("nan")


def jitter(landmarks: np.ndarray) -> float:
    """Mean landmark acceleration: the norm of the second temporal difference, per point and frame.

    Landmarks are divided by the shot's median outer-eye-corner distance (one number, not per frame: a
    per-frame scale would add the eye corners' own noise to every point). Only triples of consecutive
    found frames count. NaN when there is none.
    """
    pts = _landmarks(landmarks, "landmarks")
    found = np.isfinite(pts).all(axis=(1, 2))
    if not found.any():
        return float("nan")
    pts = pts / float(np.median(_eye_distance(pts[found])))
    triple = found[2:] & found[1:-1] & found[:-2]
    if not triple.any():
        return float("nan")
    accel = pts[2:][triple] - 2.0 * pts[1:-1][triple] + pts[:-2][triple]
    return float(np.linalg.norm(accel, axis=-1).mean())


def jitter_ratio(orig_landmarks: np.ndarray, edited_landmarks: np.ndarray) -> float:
    """``jitter(edited) / jitter(orig)``: 1.2 means the edit made the face 20% less steady."""
    _same_length(np.asarray(orig_landmarks), np.asarray(edited_landmarks))
    return jitter(edited_landmarks) / jitter(orig_landmarks)


def identical_outside(plate: np.ndarray, output: np.ndarray, matte: np.ndarray) -> float:
    """Fraction of the pixels where ``matte == 0`` whose every channel is bit-identical in both images.

    Bytes are compared, so NaN equals the same NaN and -0.0 differs from 0.0. NaN when the matte covers
    every pixel.

    Parameters
    ----------
    plate, output : (H, W, C) or (H, W) arrays of one dtype.
    matte : (H, W) or (H, W, 1) face matte.
    """
    plate, output = np.asarray(plate), np.asarray(output)
    if plate.shape != output.shape or plate.dtype != output.dtype:
        raise InvalidOptionError(
            f"plate and output differ: {plate.shape} {plate.dtype} vs {output.shape} {output.dtype}",
            field="output")
    matte = np.asarray(matte)
    if matte.ndim == 3 and matte.shape[2] == 1:
        matte = matte[:, :, 0]
    if matte.shape != plate.shape[:2]:
        raise InvalidOptionError(f"matte is {matte.shape}, the images are {plate.shape[:2]}", field="matte")
    height, width = plate.shape[:2]
    a = np.ascontiguousarray(plate).view(np.uint8).reshape(height, width, -1)
    b = np.ascontiguousarray(output).view(np.uint8).reshape(height, width, -1)
    outside = matte == 0
    if not outside.any():
        return float("nan")
    same = (a == b).all(axis=2)
    return float(same[outside].mean())


# --- action units ------------------------------------------------------------------------------------
# MediaPipe-478 vertices (subject's right first). Heights are measured up from the eye line (the mean
# height of the four eye corners) in face-local units, where y points down.
_EYE_CORNERS = [mesh.RIGHT_EYE_OUTER, mesh.RIGHT_EYE_INNER, mesh.LEFT_EYE_INNER, mesh.LEFT_EYE_OUTER]
_INNER_BROW = [107, 55, 336, 285]
_OUTER_BROW = [70, 46, 63, 300, 276, 293]
_ALL_BROW = [70, 63, 105, 66, 107, 46, 53, 52, 65, 55, 300, 293, 334, 296, 336, 276, 283, 282, 295, 285]
_BROW_INNER_RIGHT, _BROW_INNER_LEFT = 55, 285
_UPPER_LID = [159, 386]
_LOWER_LID = [145, 374]
_CHEEK = [116, 345, 117, 346, 118, 347, 50, 280]
_NOSE_WING = [48, 278, 64, 294, 129, 358, 98, 327]
_CORNERS = [mesh.MOUTH_RIGHT, mesh.MOUTH_LEFT]
_LOWER_LIP = [mesh.LOWER_LIP_OUTER, 84, 314]


def _au_table(shapes: np.ndarray) -> dict[str, np.ndarray]:
    """Every AU proxy for face-local shapes (T, N, 3): name -> (T,)."""
    y, x = shapes[..., 1], shapes[..., 0]
    eye_line = y[:, _EYE_CORNERS].mean(axis=1)

    def height(ids: list[int]) -> np.ndarray:
        return eye_line - y[:, ids].mean(axis=1)

    width = x[:, mesh.MOUTH_LEFT] - x[:, mesh.MOUTH_RIGHT]
    brow_gap = x[:, _BROW_INNER_LEFT] - x[:, _BROW_INNER_RIGHT]
    red_lips = ((y[:, mesh.UPPER_LIP_INNER] - y[:, mesh.UPPER_LIP_OUTER])
                + (y[:, mesh.LOWER_LIP_OUTER] - y[:, mesh.LOWER_LIP_INNER]))
    return {
        "AU1": height(_INNER_BROW),
        "AU2": height(_OUTER_BROW),
        "AU4": -height(_ALL_BROW) - brow_gap,  # brows lowered and drawn together
        "AU5": height(_UPPER_LID),
        "AU6": height(_CHEEK),
        "AU7": height(_LOWER_LID),
        "AU9": height(_NOSE_WING),
        "AU12": height(_CORNERS) + 0.5 * width,  # corners pulled up and out
        # Against the upper lip's centre, which the jaw barely moves, so speech does not read as AU15.
        "AU15": y[:, _CORNERS].mean(axis=1) - y[:, mesh.UPPER_LIP_OUTER],
        # Against the chin, so opening the jaw does not read as AU16.
        "AU16": y[:, _LOWER_LIP].mean(axis=1) - y[:, mesh.CHIN],
        "AU20": width,
        "AU23": -red_lips,  # thinner red lips
        "AU41": -height(_UPPER_LID),  # upper lid lowered
    }


_MEASURED = frozenset(_au_table(np.zeros((1, mesh.N_VERTICES, 3))))


def au_measures(local_shape: np.ndarray) -> dict[str, float]:
    """Geometric action-unit proxies of one face-local shape (N, 3): AU name -> value.

    Values are in face-local units and mean something only as differences between two shapes of the
    same face (edited minus original): a positive difference means the AU is more active. AU1/AU2 inner
    and outer brow height, AU4 brow lowering plus inner-brow gap narrowing, AU5 upper-lid height, AU6
    cheek height, AU7 lower-lid height, AU9 nose-wing height, AU12 lip-corner height plus half the mouth
    width, AU15 corner depression, AU16 lower-lip depression, AU20 mouth width, AU23 red-lip thinning,
    AU41 upper-lid lowering.
    """
    shape = np.asarray(local_shape, dtype=np.float64)
    if shape.ndim != 2 or shape.shape[1] != 3 or shape.shape[0] < mesh.N_VERTICES - 10:
        raise InvalidOptionError(f"local_shape must be ({mesh.N_VERTICES}, 3), got {shape.shape}",
                                 field="local_shape")
    return {name: float(v[0]) for name, v in _au_table(shape[None]).items()}


def au_change_toward(orig_local: np.ndarray, edited_local: np.ndarray, emotion: str) -> float:
    """Mean over frames of the weighted signed change of ``emotion``'s AUs (``EMOTION_AUS``).

    Positive means the edit moved the face toward the emotion, in face-local units (weights normalised
    to sum 1). Frames lost in either input are skipped; NaN when none is left.

    Raises
    ------
    InvalidOptionError : an unknown emotion, or "neutral" (it has no AUs to move toward).
    """
    if emotion not in EMOTION_AUS:
        raise InvalidOptionError(f"unknown emotion {emotion!r} (known: {', '.join(EMOTION_AUS)})",
                                 field="emotion")
    # Only the AUs this table measures; the mouth-opening AUs are the speech's, not the emotion's, here.
    weights = {au: w for au, w in EMOTION_AUS[emotion].items() if au in _MEASURED}
    if not weights:
        raise InvalidOptionError(f"{emotion!r} has no action units to measure a change toward",
                                 field="emotion")
    a, b = _landmarks(orig_local, "orig_local"), _landmarks(edited_local, "edited_local")
    _same_length(a, b)
    ok = np.isfinite(a).all(axis=(1, 2)) & np.isfinite(b).all(axis=(1, 2))
    if not ok.any():
        return float("nan")
    before, after = _au_table(a[ok]), _au_table(b[ok])
    total = sum(weights.values())
    change = sum(w * (after[au] - before[au]) for au, w in weights.items()) / total
    return float(np.mean(change))


def face_local_landmarks(track: FaceTrack) -> np.ndarray:
    """A track's landmarks in face-local units (T, N, 3), NaN where lost, via the default face3d fit.

    The full local shape (identity + expression) is returned, so two tracks of the same actor (original
    and edited footage) compare directly even though each gets its own identity fit.
    """
    from ned_core.face3d.landmark_fit import LandmarkFaceModeller  # cv2 only when asked for

    fit = LandmarkFaceModeller().fit(track)
    out = fit.identity[None].astype(np.float64) + fit.expression
    out[~np.asarray(fit.found, dtype=bool)] = np.nan
    return out
