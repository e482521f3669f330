"""Learn the appearance stage's data from real neutral/smiling photo pairs of the same persons.

Owns writing ``ned_core/data/appearance.npz``:

- ``smile_log_ratio``: the expression ratio image of a full smile (Liu, Shan & Zhang, SIGGRAPH 2001) in
  face texture space: per texel, log(smiling luminance / neutral luminance) per unit of each person's smile
  strength, a robust slope over the persons scaled to the smile the rig's activation 1 makes; each photo
  is unwrapped through its own face mesh, so the creases, the cheeks' bulge and the narrowed lower lids
  line up across faces while each person's albedo and lighting cancel out. Skin only: the texels that
  see a photo's mouth opening are left out (the mouth layer draws the inside).
- ``smile_open_log_ratio``: what those texels add where the smiles part their lips (the lip line lit by
  the teeth, the dark pockets at the corners), applied as far as an edited mouth is open.
- ``mouth``: the inside of a smiling mouth in mouth space (teeth under the upper lip, the dark beyond),
  as linear RGB over (skin luminance beside the mouth) ** ``mouth_skin_slope``: one real smile's, the
  one closest to the median over the persons whose lips part (``mouth_exemplar``), since a median of
  teeth blurs every tooth's edges into a band; the slope is how teeth brightness follows skin brightness
  across those persons.
- ``mouth_lower``: the same seen from the lower inner lip upward (the lower half of each opening: lower
  teeth, tongue, the dark), for mouths opened wider than a smile.
- ``mouth_lip_raise``: how far that smile raised its upper inner lip over its neutral photo, along the
  mouth (face-local units): the teeth are fixed to the skull, so a lip raised less covers more of them.

Run: ``python -m ned_core.appearance.build [--data DIR] [--persons all|odd] [--out FILE]``; the shipped
file uses every person (``all``); ``odd`` leaves the even ids out for held-out benchmarks. Imports
mediapipe (the ``track`` extra) to read the photos; must not import torch or the engine.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from ned_core import mesh
from ned_core.appearance import texture
from ned_core.errors import InputNotFoundError, NedError
from ned_core.io.colour import convert, scene_linear, srgb_encoded
from ned_core.manipulate import au_fields, calibrate
from ned_core.model_files import save_arrays

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data" / "appearance.npz"
MIN_OPENING = 0.04  # a smile's lips part at least this much (face-local units) to show its mouth
LOG_RATIO_LIMITS = (-0.8, 0.5)
MIN_STRENGTH = 0.2  # a person who barely smiles (a fifth of the mean smile) says little about a full one
OPENING_MARGIN = 0.01  # face-local width around a photo's mouth opening its lips' blurred edges reach
LIP_INSIDE = 0.02  # face-local: the tracked inner lip runs this far inside the lower lip's visible red (on
# the exemplar smiles 026 and 009 the red begins 0.016-0.021 above the tracked line)
EXEMPLAR_COVER = 0.9  # the smile the mouth is drawn from shows at least this share of what the median does


def read_linear(path: Path) -> np.ndarray:
    """A photo as scene-linear float32 RGB."""
    bgr = cv2.imread(str(path))
    if bgr is None:
        raise InputNotFoundError(f"photo {path} cannot be read", path=str(path))
    rgb = np.ascontiguousarray(bgr[:, :, ::-1], dtype=np.float32) / 255.0
    return convert(rgb, srgb_encoded(), scene_linear())


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def smile_ratio(pairs: dict[str, tuple[np.ndarray, np.ndarray]], photos: dict[str, tuple[np.ndarray, np.ndarray]],
                template: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(skin, open_mouth): (h, w) log luminance ratios smiling/neutral of a full smile in face texture
    space (0 where unknown).

    ``skin`` leaves out, person by person, the texels that see either photo's mouth opening: what shows
    between parted lips is not skin, and on a shut mouth it drew a lit lip line and dark lip corners.
    ``open_mouth`` is what those texels add where the smiles part their lips (the teeth lighting the lip
    line, the dark pockets at the corners): the stage applies it as far as the edited lips are apart.

    Persons smile more or less: each one's ratio image is taken per unit of their smile's strength
    (``calibrate.fit_persons``: their landmarks' smile projected on the mean's), a robust per-texel
    slope is found over the persons (the median of ratio / strength, weighted by strength², which is
    least squares through the origin made robust), and it is scaled to the strength the rig's activation
    1 stands for (the persons' upper quartile), so the creases are as deep as the shape goes far.
    """
    skin = texture.skin_triangles(triangles)
    fitted = calibrate.fit_persons(list(pairs.values()))
    smiled = fitted.strengths >= MIN_STRENGTH
    if smiled.sum() < 3:
        raise InputNotFoundError(f"only {int(smiled.sum())} of {len(pairs)} persons smile at least {MIN_STRENGTH} "
                                 "of the mean smile; the smile's ratio image needs at least 3")
    ratios, skin_ratios = [], []
    for pid, (neutral_px, smiling_px) in pairs.items():
        neutral, smiling = photos[pid]
        tex_n, cov_n = texture.unwrap(neutral, neutral_px, template, skin)
        tex_s, cov_s = texture.unwrap(smiling, smiling_px, template, skin)
        ln, ls = luminance(tex_n), luminance(tex_s)
        ok = cov_n & cov_s & (ln > 1e-3) & (ls > 1e-3)
        skin_ok = ok & ~opening_texels(neutral, neutral_px, template, skin) & ~opening_texels(
            smiling, smiling_px, template, skin)
        ratio = np.full(ln.shape, np.nan, np.float32)
        ratio[ok] = np.log(ls[ok] / ln[ok])
        # The two photos' exposures and the light's slow fall-off across the face are not the smile:
        # take out the person's best plane over the skin in texture space.
        ys, xs = np.nonzero(skin_ok)
        design = np.stack([np.ones_like(xs), xs, ys], axis=1).astype(np.float64)
        coef = np.linalg.lstsq(design, ratio[skin_ok].astype(np.float64), rcond=None)[0]
        h, w = ratio.shape
        gy, gx = np.mgrid[0:h, 0:w]
        ratio -= (coef[0] + coef[1] * gx + coef[2] * gy).astype(np.float32)
        ratios.append(ratio)
        skin_ratios.append(np.where(skin_ok, ratio, np.nan))
    # Fade to 1 toward the face outline, where meshes disagree most and the matte ends.
    taper = texture_taper(template, triangles)
    skin_only = _full_smile(np.stack(skin_ratios), fitted, smiled, taper)
    return skin_only, _full_smile(np.stack(ratios), fitted, smiled, taper) - skin_only


def _full_smile(stack: np.ndarray, fitted: calibrate.SmileFit, smiled: np.ndarray, taper: np.ndarray) -> np.ndarray:
    """The full smile's log ratio from per-person ratios (P, h, w): ``smile_ratio``'s robust slope."""
    count = np.isfinite(stack).sum(axis=0)
    slope = _weighted_median(stack[smiled] / fitted.strengths[smiled, None, None], fitted.strengths[smiled] ** 2)
    full = np.where(count >= max(3, len(stack) // 2), fitted.full_smile * slope, 0.0).astype(np.float32)
    return np.clip(cv2.GaussianBlur(full, (0, 0), 0.8) * taper, *LOG_RATIO_LIMITS).astype(np.float32)


def opening_texels(photo: np.ndarray, points: np.ndarray, template: np.ndarray, triangles: np.ndarray
                   ) -> np.ndarray:
    """(h, w) bool: the face texels that sample ``photo``'s mouth opening, grown by ``OPENING_MARGIN``."""
    unit = mesh.canonical_pose(points)[0]
    inside = np.zeros(photo.shape[:2], np.uint8)
    polygon = texture.MouthFrame(points, unit).polygon()
    cv2.fillPoly(inside, [np.round(polygon * 16).astype(np.int32)], 1, shift=4)
    reach = max(1, round(OPENING_MARGIN * unit))
    inside = cv2.dilate(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1)))
    sampled, _ = texture.unwrap(inside, points, template, triangles)
    return sampled > 0.0


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per texel, the weighted median over axis 0 of ``values`` (P, h, w), NaN left out; 0 where all are NaN."""
    known = np.isfinite(values)
    order = np.argsort(np.where(known, values, np.inf), axis=0)
    ranked = np.take_along_axis(values, order, axis=0)
    cumulative = np.cumsum(np.take_along_axis(known * weights[:, None, None], order, axis=0), axis=0)
    middle = np.argmax(cumulative >= 0.5 * cumulative[-1:], axis=0)
    median = np.take_along_axis(ranked, middle[None], axis=0)[0]
    return np.where(known.any(axis=0), median, 0.0)


def texture_taper(template: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(h, w) weight in face texture space: the AU fields' outline taper, 0 off the skin."""
    weight = au_fields.outline_taper(template)[:, None].astype(np.float32)
    tex = texture.texels(template)
    # Each skin triangle drawn with its vertices' mean taper, then blurred: smooth enough for a fade.
    out = np.zeros(texture.face_texture_shape(), np.float32)
    covered = np.zeros(out.shape, np.uint8)
    for tri in texture.skin_triangles(triangles):
        corners = np.round(tex[tri] * 16).astype(np.int32)
        cv2.fillConvexPoly(out, corners, float(weight[tri].mean()), lineType=cv2.LINE_8, shift=4)
        cv2.fillConvexPoly(covered, corners, 1, lineType=cv2.LINE_8, shift=4)
    return np.where(covered > 0, cv2.GaussianBlur(out, (0, 0), 3.0), 0.0).astype(np.float32)


class LearnedMouth(NamedTuple):
    """The inside of a smiling mouth (``mouth_texture``)."""

    upper: np.ndarray
    lower: np.ndarray
    lip_raise: np.ndarray
    slope: float
    persons: list[str]
    exemplar: str


def mouth_texture(pairs: dict[str, tuple[np.ndarray, np.ndarray]], photos: dict[str, tuple[np.ndarray, np.ndarray]]
                  ) -> LearnedMouth:
    """The inside of a smiling mouth, seen from each lip.

    ``upper`` is (depth below the upper inner lip, along, 3) linear RGB over skin luminance ** slope (the
    upper teeth, then the dark); ``lower`` the same by height above the lower inner lip, from the lower
    half of each opening only (lower teeth, tongue, the dark), so a mouth opened wider than a smile gets
    the bottom of a real one instead of a stretched top. Both are one person's mouth, ``exemplar``'s
    (``_exemplar``), among ``persons`` (the smiles that part their lips). ``lip_raise`` is how far that
    smile raised its upper inner lip (``upper_lip_raise``).
    ``slope`` is how teeth brightness follows skin brightness across the persons.
    """
    along, depth = texture.mouth_grid()
    uppers, lowers, raises, skins, openings, used = [], [], [], [], [], []
    for pid, (neutral_px, smiling_px) in pairs.items():
        unit = mesh.canonical_pose(smiling_px)[0]
        frame = texture.MouthFrame(smiling_px, unit)
        opening = frame.opening(along[0])
        if np.median(opening[len(opening) // 4: -len(opening) // 4]) < MIN_OPENING:
            continue
        smiling = photos[pid][1]
        for points, inside, out in (
                (frame.to_image(along, depth), (depth >= 0.0) & (depth <= opening[None, :] - 0.005), uppers),
                (frame.to_image_above_lower(along, depth), (depth >= 0.0) & (depth <= 0.5 * opening[None, :]),
                 lowers)):
            xy = points.astype(np.float32)
            rgb = cv2.remap(smiling, xy[..., 0], xy[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            out.append(np.where(inside[..., None], rgb, np.nan))
        skins.append(float(luminance(texture.reference_colour(smiling, smiling_px, unit))))
        raises.append(upper_lip_raise(neutral_px, smiling_px, along[0]))
        openings.append(opening)
        used.append(pid)
    if not uppers:
        raise InputNotFoundError("no smiling photo parts its lips: cannot learn the mouth")
    # Teeth are not as dark as dark skin: how their brightness follows the skin's, across persons (a
    # log-log slope), sets how the layer is coloured by a new face's skin.
    band = (depth >= 0.01) & (depth <= 0.05) & (along > 0.3) & (along < 0.7)  # the front upper teeth
    teeth = np.array([np.nanmedian(luminance(x)[band]) for x in uppers])
    slope = float(np.clip(np.polyfit(np.log(skins), np.log(teeth), 1)[0], 0.0, 1.0))
    upper_stack = _normalised(uppers, skins, slope)
    upper_median = _median(upper_stack)
    pick = _exemplar(upper_stack, *upper_median)
    # Down there the exemplar's samples are its lower lip's red: a relaxed lip over a dropped jaw reads
    # the texture that deep and showed it as a pink arc under the upper teeth. The dark takes its place.
    lower_lip = depth > openings[pick][None, :] - LIP_INSIDE
    upper = _mouth_texture(upper_stack, *upper_median, pick, beyond=lower_lip)
    # One dark for both halves, the upper half's: where the two meet in a wide mouth they must agree.
    lower_stack = _normalised(lowers, skins, slope)
    lower = _mouth_texture(lower_stack, *_median(lower_stack), pick, dark_from=upper)
    return LearnedMouth(upper, lower, raises[pick], slope, used, used[pick])


def upper_lip_raise(neutral_px: np.ndarray, smiling_px: np.ndarray, along: np.ndarray) -> np.ndarray:
    """How far a smile raised the upper inner lip over the neutral photo, at ``along`` (face-local units,
    both faces aligned on the stable points)."""
    _, moved = calibrate.smile_displacement(neutral_px, smiling_px)
    frame = texture.MouthFrame(smiling_px, mesh.canonical_pose(smiling_px)[0])
    return frame.contour(np.stack([frame.upper[:, 0], -moved[list(texture.UPPER_INNER), 1]], axis=1), along)


def _normalised(samples: list[np.ndarray], skins: list[float], slope: float) -> np.ndarray:
    """(P, depth, along, 3) samples over each person's skin luminance ** ``slope`` (NaN where unseen)."""
    return np.stack([x / np.float32(sk ** slope) for x, sk in zip(samples, skins, strict=True)])


def _median(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(median over persons, where enough of them show it) of a (P, depth, along, 3) stack."""
    count = np.isfinite(stack[..., 0]).sum(axis=0)
    with warnings.catch_warnings():  # texels no smile shows are NaN, and say so
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(stack, axis=0)
    return median, count >= max(2, len(stack) // 4)


def _exemplar(stack: np.ndarray, median: np.ndarray, known: np.ndarray) -> int:
    """The person whose mouth is closest to the ``median`` over persons (mean absolute luminance
    difference where it is ``known``), among those that show at least ``EXEMPLAR_COVER`` of it (or as
    much as the best-covering person does)."""
    if not known.any():
        raise InputNotFoundError("no texel of the mouth is shown by enough smiles: cannot learn the mouth")
    shown = np.isfinite(stack[..., 0]) & known
    cover = shown.sum(axis=(1, 2)) / known.sum()
    enough = cover >= min(EXEMPLAR_COVER, float(cover.max()))
    distance = [float(np.mean(np.abs(luminance(stack[p][shown[p]]) - luminance(median[shown[p]]))))
                if enough[p] else np.inf for p in range(len(stack))]
    return int(np.argmin(distance))


def _mouth_texture(stack: np.ndarray, median: np.ndarray, known: np.ndarray, exemplar: int,
                   dark_from: np.ndarray | None = None, beyond: np.ndarray | None = None) -> np.ndarray:
    """Person ``exemplar``'s (depth, along, 3) mouth from a normalised stack, unknown texels filled.

    Where the ``median`` over persons is ``known``, the exemplar's own texels (the median's where that
    smile shows nothing: none in the shipped file, whose exemplar shows all of both halves); elsewhere
    the lip's edge or the dark. Texels ``beyond`` (a mask) are filled as unknown ones are.
    """
    own = stack[exemplar]
    # Beyond what the smiles show (deeper than their openings) the mouth is its dark interior: half the
    # darkest tenth of what they show, one colour across (no streaks of single columns); or the given
    # texture's deepest colour, so two textures meeting in one mouth agree there.
    out = np.where(np.isfinite(own), own, median).astype(np.float32)
    if dark_from is None:
        shown = median[known]
        dark = 0.5 * np.median(shown[luminance(shown) <= np.percentile(luminance(shown), 10)], axis=0)
    else:
        dark = dark_from[-1, dark_from.shape[1] // 2]
    if beyond is not None:
        known = known & ~beyond
    for col in range(out.shape[1]):
        rows = np.flatnonzero(known[:, col])
        first = rows.min() if len(rows) else out.shape[0]
        for row in np.flatnonzero(~known[:, col]):
            # Outside the first known row is the lip's edge: hold the teeth's edge there.
            out[row, col] = out[first, col] if row < first < out.shape[0] else dark
    out = np.nan_to_num(out, nan=0.05)
    return cv2.GaussianBlur(out, (3, 3), 0.6).astype(np.float32)


def build(data: Path, persons: str | list[str] = "all") -> dict[str, Any]:
    """The appearance arrays (what ``appearance.npz`` holds) from the London Set at ``data``.

    ``persons`` is "all", "odd" (the fixed split's fit half: ``calibrate.split_persons``) or a list of ids.
    """
    ids = calibrate.select_persons(calibrate.person_ids(data), persons)
    print(f"reading {len(ids)} neutral/smiling pairs from {data}", file=sys.stderr)
    pairs = calibrate.load_pairs(data, ids)
    photos = {pid: (read_linear(data / calibrate.NEUTRAL.format(pid=pid)),
                    read_linear(data / calibrate.SMILING.format(pid=pid))) for pid in ids}
    template = np.mean([calibrate.to_face_local(n) for n, _ in pairs.values()], axis=0)
    triangles = calibrate.tessellation_triangles().astype(np.int64)
    ratio, open_ratio = smile_ratio(pairs, photos, template, triangles)
    mouth = mouth_texture(pairs, photos)
    return {
        "template": template.astype(np.float32),
        "triangles": triangles.astype(np.int16),
        "smile_log_ratio": ratio.astype(np.float16),
        "smile_open_log_ratio": open_ratio.astype(np.float16),
        "mouth": mouth.upper.astype(np.float16),
        "mouth_lower": mouth.lower.astype(np.float16),
        "mouth_lip_raise": mouth.lip_raise.astype(np.float32),
        "mouth_skin_slope": np.float32(mouth.slope),
        "person_ids": np.array([int(p) for p in ids], dtype=np.int16),
        "mouth_person_ids": np.array([int(p) for p in mouth.persons], dtype=np.int16),
        "mouth_exemplar": np.int16(int(mouth.exemplar)),
        "source": np.array("Face Research Lab London Set (DeBruine & Jones 2017, CC BY 4.0), "
                           "neutral NNN_03 vs smiling NNN_08, MediaPipe face mesh 0.10.21"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ned_core.appearance.build",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=calibrate.DEFAULT_DATA,
                        help="London Set folder (neutral/, smiling/)")
    parser.add_argument("--persons", default="all",
                        help='who to learn from: "all" (what ships), "odd" (the fixed split) or ID,ID,...')
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="file to write")
    args = parser.parse_args(argv)
    try:
        arrays = build(args.data, args.persons)
    except NedError as exc:
        print(exc.one_line(), file=sys.stderr)
        return 1
    save_arrays(arrays, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) from {len(arrays['person_ids'])} persons "
          f"({len(arrays['mouth_person_ids'])} with parted lips for the mouth)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
