"""Fit the FACS rig's smile (AU6 + AU12) to real neutral/smiling photo pairs of the same persons.

Owns: finding the MediaPipe face mesh on the London Set photos, putting each pair in one face-local frame,
the robust mean smile over the calibration persons (jaw drop regressed out, mirrored, made speech-safe,
scaled so that activation 1 is a full smile, made fold-free on the mean face), its split into AU6 and
AU12, and writing ``ned_core/data/facs_smile.npz``. Also the held-out evaluation helpers that
``benchmarks/london_smile.py`` and the tests share.

The shipped file is fitted on all 35 persons of the London Set; held-out evaluations fit on the odd ids
(``split_persons``) and score the even ones.

Run: ``python -m ned_core.manipulate.calibrate [--data DIR] [--out FILE] [--persons all|odd|ID,...]``.
Imports mediapipe (the ``track`` extra) only when photos are read; must not import torch or the engine.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ned_core import EMOTIONS, mesh
from ned_core.errors import InputNotFoundError, MissingDependencyError, NedError, NoFaceError
from ned_core.face3d.base import FaceFit
from ned_core.manipulate import au_fields
from ned_core.model_files import save_arrays

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "london"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data" / "facs_smile.npz"
NEUTRAL, SMILING = "neutral/{pid}_03.jpg", "smiling/{pid}_08.jpg"
FULL_SMILE_QUANTILE = 0.75  # which calibration person's smile strength activation 1 reproduces
ROBUST_C = 1.5  # persons farther than this many median distances from the mean smile are down-weighted


# -- photos to face-local shapes ---------------------------------------------------------------------------

class PhotoMesh:
    """MediaPipe's face mesh in static-image mode (refined lips and irises), one face per photo."""

    def __init__(self) -> None:
        try:
            import cv2
            from mediapipe.python.solutions import face_mesh
        except ImportError as exc:
            raise MissingDependencyError(
                f"calibration needs {exc.name!r} (the track extra): run installers/install.sh") from exc
        self._cv2 = cv2
        self._mesh = face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1)

    def landmarks(self, path: Path) -> np.ndarray:
        """(478, 3) landmarks of the photo at ``path`` in pixels (z toward the viewer, scaled like x)."""
        if not path.is_file():
            raise InputNotFoundError(f"photo {path} not found", path=str(path))
        bgr = self._cv2.imread(str(path))
        if bgr is None:
            raise InputNotFoundError(f"photo {path} cannot be read", path=str(path))
        height, width = bgr.shape[:2]
        result = self._mesh.process(np.ascontiguousarray(bgr[:, :, ::-1]))
        if not result.multi_face_landmarks:
            raise NoFaceError(f"no face found in {path}", path=str(path))
        lm = result.multi_face_landmarks[0].landmark
        return np.array([[p.x * width, p.y * height, -p.z * width] for p in lm], dtype=np.float64)

    def close(self) -> None:
        self._mesh.close()


def person_ids(root: Path) -> list[str]:
    """Ids of the persons photographed both neutral and smiling under ``root``."""
    if not (root / "neutral").is_dir() or not (root / "smiling").is_dir():
        raise InputNotFoundError(f"{root} has no neutral/ and smiling/ photo folders", path=str(root))
    ids = sorted(p.name[:3] for p in (root / "neutral").glob("*_03.jpg"))
    return [pid for pid in ids if (root / SMILING.format(pid=pid)).is_file()]


def split_persons(ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """(fit, held-out): the fixed split of held-out evaluations, odd ids fit and even ids are scored."""
    ids = sorted(ids)
    return [p for p in ids if int(p) % 2 == 1], [p for p in ids if int(p) % 2 == 0]


def select_persons(ids: list[str], persons: str | Iterable[str]) -> list[str]:
    """The ids of ``ids`` that ``persons`` names: "all", "odd" (``split_persons``' fit half), a
    comma-separated string or a collection of ids."""
    if persons == "all":
        return list(ids)
    if persons == "odd":
        return split_persons(ids)[0]
    wanted = set(persons.split(",")) if isinstance(persons, str) else set(persons)
    return [pid for pid in ids if pid in wanted]


def load_pairs(root: Path, ids: Iterable[str], photo_mesh: PhotoMesh | None = None
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Pixel landmarks (neutral, smiling) of each person in ``ids``."""
    owner = photo_mesh is None
    photo_mesh = PhotoMesh() if owner else photo_mesh
    try:
        return {pid: (photo_mesh.landmarks(root / NEUTRAL.format(pid=pid)),
                      photo_mesh.landmarks(root / SMILING.format(pid=pid))) for pid in ids}
    finally:
        if owner:
            photo_mesh.close()


def to_face_local(points: np.ndarray) -> np.ndarray:
    """A photo's landmarks in face-local units (its own canonical pose)."""
    return mesh.to_local(points, *mesh.canonical_pose(points))


def smile_displacement(neutral_px: np.ndarray, smiling_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(neutral face-local shape, smiling − neutral) with the smile aligned on the stable points."""
    neutral = to_face_local(neutral_px)
    smiling = to_face_local(smiling_px)
    stable = list(mesh.STABLE)
    scale, rotation, translation = mesh.similarity_fit(smiling[stable], neutral[stable])
    return neutral, scale * smiling @ rotation.T + translation - neutral


def inner_opening(shape: np.ndarray) -> float:
    """Mean vertical gap of the inner-lip pairs (face-local units)."""
    return float(np.mean([shape[lo, 1] - shape[up, 1] for up, lo in mesh.INNER_LIP_PAIRS]))


# -- the fit -----------------------------------------------------------------------------------------------

def fit_smile(neutrals: list[np.ndarray], displacements: list[np.ndarray], template: np.ndarray,
              mirror: np.ndarray, iterations: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Robust mean smile without the mouth opening: returns (smile, weight per person).

    Mouth displacements are first normalised to the template's mouth width. The smile is the robust
    (Huber) mean over persons; the jaw drop that comes with open-mouthed smiles is removed below the
    lower lip (a regression of each vertex on the person's inner-lip opening change gives the jaw's
    motion per unit of opening); the result is mirrored to a symmetric field and made speech-safe, so
    on the lips no opening is left either: every inner-lip pair moves as one.
    """
    ref = au_fields.proportions(template)["mouth"]
    ys, openings = [], []
    for neutral, disp in zip(neutrals, displacements, strict=True):
        ys.append(disp * (ref / au_fields.proportions(neutral)["mouth"]))
        openings.append(inner_opening(neutral + disp) - inner_opening(neutral))
    y = np.stack(ys).reshape(len(ys), -1)
    opening = np.asarray(openings)
    w = np.ones(len(ys))
    for _ in range(iterations):
        mean = w @ y / w.sum()
        resid = np.linalg.norm(y - mean, axis=1)
        w = np.minimum(1.0, ROBUST_C * np.median(resid) / np.maximum(resid, 1e-12))
    mean = w @ y / w.sum()
    x = np.stack([np.ones(len(ys)), opening], axis=1) * np.sqrt(w)[:, None]
    jaw = np.linalg.lstsq(x, y * np.sqrt(w)[:, None], rcond=None)[0][1]
    smile = (mean - (w @ opening / w.sum()) * jaw * np.repeat(au_fields.jaw_mask(template), 3)).reshape(-1, 3)
    smile = au_fields.symmetrize(smile, mirror)
    smile[list(au_fields.IRISES)] = 0.0
    return au_fields.speech_safe(smile, template), w


def tessellation_triangles() -> np.ndarray:
    """(F, 3) triangles of MediaPipe's face-mesh tessellation, as the face fit ships them."""
    from ned_core.face3d.landmark_fit import tessellation

    return np.asarray(tessellation(), dtype=np.int16)


@dataclass(frozen=True)
class SmileFit:
    """The mean smile of a set of persons and how strongly each of them smiles."""

    template: np.ndarray
    """(478, 3) symmetric mean neutral shape (face-local)."""
    smile: np.ndarray
    """(478, 3) robust mean smile displacement on it (``fit_smile``)."""
    weights: np.ndarray
    """(P,) each person's weight in the robust mean."""
    strengths: np.ndarray
    """(P,) each person's smile projected on the mean's shape over the mouth and cheeks (1 = the mean)."""

    @property
    def full_smile(self) -> float:
        """The strength activation 1 stands for: the upper quartile among the persons. The mean itself
        is a mild smile, and a warp cannot add the creases and teeth that make a real mild smile read."""
        return float(np.quantile(self.strengths, FULL_SMILE_QUANTILE))


def fit_persons(pairs: list[tuple[np.ndarray, np.ndarray]]) -> SmileFit:
    """``SmileFit`` of neutral/smiling pixel-landmark pairs, one pair per person."""
    neutrals, disps = zip(*(smile_displacement(*pair) for pair in pairs), strict=True)
    template = np.mean(neutrals, axis=0)
    # A symmetric template: mirroring fields on it is exact and both halves get the same fields.
    mirror = au_fields.mirror_map(template)
    template = au_fields.symmetrize(template, mirror)
    smile, weights = fit_smile(list(neutrals), list(disps), template, mirror)
    region = mouth_cheek_vertices(template)
    norm = float((smile[region] ** 2).sum())
    strengths = np.array([float((d[region] * smile[region]).sum()) / norm for d in disps])
    return SmileFit(template=template, smile=smile, weights=weights, strengths=strengths)


def calibrate(pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """The calibration arrays (what ``facs_smile.npz`` holds), fitted on every person of ``pairs``."""
    if len(pairs) < 3:
        raise InputNotFoundError(f"only {len(pairs)} calibration persons found; need at least 3")
    persons = sorted(pairs)
    fitted = fit_persons([pairs[pid] for pid in persons])
    template, smile = fitted.template, fitted.smile
    gain = fitted.full_smile
    triangles = tessellation_triangles()
    mirror = au_fields.mirror_map(template)
    full = au_fields.unfold(gain * smile, template, triangles.astype(np.int64), mirror)
    au6, au12 = au_fields.split_smile(full, template)
    return {
        "template": template.astype(np.float32),
        "au6": au6.astype(np.float32),
        "au12": au12.astype(np.float32),
        "triangles": triangles,
        "mirror": mirror.astype(np.int16),
        "calibration_ids": np.array([int(p) for p in persons], dtype=np.int16),
        "calibration_weights": fitted.weights.astype(np.float32),
        "calibration_strengths": fitted.strengths.astype(np.float32),
        "smile_gain": np.float32(gain),
        "source": np.array("Face Research Lab London Set (DeBruine & Jones 2017, CC BY 4.0), "
                           "neutral NNN_03 vs smiling NNN_08, MediaPipe face mesh 0.10.21"),
    }


# -- evaluation (shared with benchmarks/london_smile.py and the tests) ---------------------------------------

def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def mouth_cheek_vertices(template: np.ndarray) -> np.ndarray:
    """Vertices of the mouth and cheeks: below the lower lids, above the chin, inside the outline."""
    lids = float(template[[145, 374], 1].mean())
    chin = float(template[mesh.CHIN, 1])
    taper = au_fields.outline_taper(template)
    keep = (template[:, 1] > lids + 0.05) & (template[:, 1] < chin - 0.15) & (taper > 0.5)
    return np.flatnonzero(keep)


def photo_fit(neutral_px: np.ndarray) -> FaceFit:
    """A one-frame FaceFit of a neutral photo (identity = its face-local shape, no expression)."""
    scale, rotation, translation = mesh.canonical_pose(neutral_px)
    return FaceFit(frames=[0], identity=mesh.to_local(neutral_px, scale, rotation, translation),
                   expression=np.zeros((1, mesh.N_VERTICES, 3)), rotation=rotation[None],
                   scale=np.array([scale]), translation=translation[None], found=np.array([True]),
                   topology=mesh.TOPOLOGY, triangles=np.zeros((0, 3), dtype=np.int32))


def happy_prediction(rig: Any, neutral_px: np.ndarray, intensity: float = 1.0) -> np.ndarray:
    """The rig's happy edit of a neutral photo as a face-local displacement (478, 3)."""
    fit = photo_fit(neutral_px)
    weights = np.zeros((1, len(EMOTIONS)))
    weights[0, EMOTIONS.index("happy")] = intensity
    return rig.edit(fit, weights)[0]


def smile_cosines(rig: Any, pairs: dict[str, tuple[np.ndarray, np.ndarray]]
                  ) -> dict[str, tuple[float, float]]:
    """Per person: cosine of the rig's happy displacement vs the real smile (all 478x3, mouth/cheeks)."""
    region = mouth_cheek_vertices(rig.template)
    out = {}
    for pid, (neutral_px, smiling_px) in pairs.items():
        _, real = smile_displacement(neutral_px, smiling_px)
        predicted = happy_prediction(rig, neutral_px)
        out[pid] = (cosine(predicted, real), cosine(predicted[region], real[region]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ned_core.manipulate.calibrate",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="London Set folder (neutral/, smiling/)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="calibration file to write")
    parser.add_argument("--persons", default="all",
                        help='who to fit on: "all" (what ships), "odd" (the fixed split) or ID,ID,... '
                             "(the persons left out are scored as held out)")
    args = parser.parse_args(argv)
    try:
        ids = person_ids(args.data)
        chosen = select_persons(ids, args.persons)
        print(f"reading {len(ids)} neutral/smiling pairs from {args.data}", file=sys.stderr)
        pairs = load_pairs(args.data, ids)
        arrays = calibrate({pid: pairs[pid] for pid in chosen})
        save_arrays(arrays, args.out)
    except NedError as exc:
        print(exc.one_line(), file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes); calibrated on {len(chosen)} persons")
    left_out = {pid: pairs[pid] for pid in ids if pid not in set(chosen)}
    if left_out:
        from ned_core.manipulate.facs import FacsRig

        cos = np.array(list(smile_cosines(FacsRig(calibration=str(args.out)), left_out).values()))
        print(f"held-out cosine ({len(left_out)} persons) full {cos[:, 0].mean():.3f} (min {cos[:, 0].min():.3f}), "
              f"mouth/cheeks {cos[:, 1].mean():.3f} (min {cos[:, 1].min():.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
