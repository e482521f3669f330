"""FACS action units as displacement fields on the MediaPipe face mesh, in face-local units.

Owns: the mesh regions the rig needs (brows, lids, lips, face outline), the fields of the action units
that no data here calibrates (built from their FACS descriptions on a template shape), the split of the
calibrated smile into AU6 and AU12, and the two constraints every field obeys: it tapers to zero at the
face outline and leaves the irises still, and its speech-safe form moves both members of every inner-lip
pair identically (so the mouth opening of the speech survives any mix of fields).

A field is an (N, 3) displacement at activation 1 on the template (the mean neutral shape shipped with
the calibration); the rig scales it to each face. Must not import mediapipe, torch or other stages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ned_core import mesh
from ned_core.ramps import smoothstep

# Outlines, outer corner to inner corner (subject's right = image left = negative x).
RIGHT_EYE_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_EYE_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
LEFT_EYE_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
# Brows as (upper edge, lower edge) pairs, outer to inner.
RIGHT_BROW = ((70, 46), (63, 53), (105, 52), (66, 65), (107, 55))
LEFT_BROW = ((300, 276), (293, 283), (334, 282), (296, 295), (336, 285))
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
IRISES = tuple(range(468, 478))

ACTION_UNIT_ORDER = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12", "AU15", "AU16", "AU17",
                     "AU20", "AU23", "AU24", "AU25", "AU26", "AU41")
# The AUs that open the mouth: the speech owns the opening, so their speech-safe form is no motion at all.
SPEECH_OWNED = frozenset({"AU25", "AU26"})

# Which proportion of a face scales each AU (see ``proportions``).
AU_PROPORTION = {"AU1": "brows", "AU2": "brows", "AU4": "brows", "AU5": "eyes", "AU6": "cheeks",
                 "AU7": "eyes", "AU9": "nose", "AU10": "mouth", "AU12": "mouth", "AU15": "mouth",
                 "AU16": "mouth", "AU17": "mouth", "AU20": "mouth", "AU23": "mouth", "AU24": "mouth",
                 "AU25": "mouth", "AU26": "mouth", "AU41": "eyes"}

# Under speech preservation, which lip leads an inner-lip pair: 1 = the upper lip's motion is kept and
# the lower follows, 0 = the reverse, 0.5 = the mean. AU16 pulls the lower lip alone, so its pair motion
# follows the (still) upper lip and the lower lip thickens instead of opening the mouth.
LIP_LEAD = {"AU9": 0.7, "AU10": 1.0, "AU16": 1.0, "AU17": 0.0}

OUTLINE_FALLOFF = 0.12  # distance (face-local units) over which a field fades to zero at the face outline
LIP_SPREAD = 0.07  # vertical reach of the speech-safe correction from the mouth line into the lips
BROW_BETWEEN = 0.22  # reach of AU1 (centred 0.19 from the midline) and AU2 (0.55) toward each other


@dataclass(frozen=True)
class AuField:
    """One action unit's displacement at activation 1 on the template.

    ``raw`` is the FACS motion; ``safe`` is the same motion with every inner-lip pair moving together.
    """

    name: str
    raw: np.ndarray
    safe: np.ndarray
    proportion: str


def proportions(shape: np.ndarray) -> dict[str, float]:
    """The lengths of ``shape`` (N, 3, face-local) that scale each family of AUs."""
    p = np.asarray(shape, dtype=np.float64)

    def dist(a: int, b: int) -> float:
        return float(np.linalg.norm(p[a] - p[b]))

    return {
        "mouth": dist(mesh.MOUTH_RIGHT, mesh.MOUTH_LEFT),
        "eyes": 0.5 * (dist(159, 145) + dist(386, 374)),
        "brows": dist(mesh.NOSE_BRIDGE, mesh.FOREHEAD),
        "nose": dist(mesh.NOSE_BRIDGE, 2),
        "cheeks": 0.5 * (dist(mesh.MOUTH_RIGHT, mesh.RIGHT_EYE_OUTER)
                         + dist(mesh.MOUTH_LEFT, mesh.LEFT_EYE_OUTER)),
    }


def _curve(template: np.ndarray, indices: tuple[int, ...], x: np.ndarray) -> np.ndarray:
    """y of the polyline through ``indices`` at each x (held flat beyond its ends)."""
    pts = template[list(indices)]
    order = np.argsort(pts[:, 0])
    return np.interp(x, pts[order, 0], pts[order, 1])


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def outline_taper(template: np.ndarray) -> np.ndarray:
    """(N,) weight that is 0 on the face outline, rises smoothly inward and is 0 on the irises."""
    xy = template[:, :2]
    ring = template[list(FACE_OVAL), :2]
    dist = np.min([_segment_distance(xy, ring[i], ring[(i + 1) % len(ring)]) for i in range(len(ring))],
                  axis=0)
    taper = smoothstep(dist / OUTLINE_FALLOFF)
    taper[list(FACE_OVAL)] = 0.0
    taper[list(IRISES)] = 0.0
    return taper


def mirror_map(template: np.ndarray, rounds: int = 4) -> np.ndarray:
    """(N,) index of each vertex's left-right mirror partner on a (near-symmetric) template.

    The mirrored shape is first aligned onto the shape (a real face's midline is not exactly x = 0),
    then partners are matched one to one, nearest first; the inner lips are pulled apart beforehand
    because a closed mouth puts upper and lower inner-lip points on top of each other.
    """
    shape = np.array(template, dtype=np.float64)
    for up, lo in mesh.INNER_LIP_PAIRS:
        if up != lo:
            shape[up, 1] -= 0.03
            shape[lo, 1] += 0.03
    mirrored = shape * np.array([-1.0, 1.0, 1.0])
    n = len(shape)
    partner = np.arange(n)
    for _ in range(rounds):
        d = np.linalg.norm(shape[:, None, :] - mirrored[None, :, :], axis=2)
        partner = np.full(n, -1)
        for flat in np.argsort(d, axis=None):
            i, j = divmod(int(flat), n)
            if partner[i] < 0 and partner[j] < 0:
                partner[i], partner[j] = j, i
        scale, rotation, translation = mesh.similarity_fit(mirrored[partner], shape)
        mirrored = scale * mirrored @ rotation.T + translation
    return partner


def symmetrize(field: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Average a field with its mirror image (x negated on the partner vertex)."""
    flipped = field[mirror] * np.array([-1.0, 1.0, 1.0])
    return 0.5 * (field + flipped)


def _mouth_line(template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y of the inner-lip pairs' midpoints, right corner to left: the closed mouth's line."""
    mids = np.array([(template[u] + template[lo]) / 2.0 for u, lo in mesh.INNER_LIP_PAIRS])
    order = np.argsort(mids[:, 0])
    return mids[order, 0], mids[order, 1]


def speech_safe(field: np.ndarray, template: np.ndarray, lead: float = 0.5) -> np.ndarray:
    """The field with both members of every inner-lip pair moved identically.

    Each pair gets ``lead * upper + (1 - lead) * lower`` of the field's motion; the change this makes is
    spread smoothly into the rest of its lip (fading with distance from the mouth line), so the lips do
    not tear from their inner contour. Openings between pair members are then unchanged by the field.
    """
    out = np.array(field, dtype=np.float64)
    pairs = [(u, lo) for u, lo in mesh.INNER_LIP_PAIRS if u != lo]
    together = np.array([lead * out[u] + (1.0 - lead) * out[lo] for u, lo in pairs])
    fix_upper = together - out[[u for u, _ in pairs]]
    fix_lower = together - out[[lo for _, lo in pairs]]
    pair_x = np.array([(template[u, 0] + template[lo, 0]) / 2.0 for u, lo in pairs])
    order = np.argsort(pair_x)
    # The corners pair with themselves and need no fix: anchor the interpolation at zero there.
    corners_x = [template[mesh.INNER_LIP_PAIRS[0][0], 0], template[mesh.INNER_LIP_PAIRS[-1][0], 0]]
    xs = np.concatenate([[min(corners_x)], pair_x[order], [max(corners_x)]])
    line_x, line_y = _mouth_line(template)
    dy = template[:, 1] - np.interp(template[:, 0], line_x, line_y)
    reach = np.exp(-(dy / LIP_SPREAD) ** 2)
    upper = dy < 0.0
    for axis in range(3):
        fu = np.concatenate([[0.0], fix_upper[order, axis], [0.0]])
        fl = np.concatenate([[0.0], fix_lower[order, axis], [0.0]])
        along_u = np.interp(template[:, 0], xs, fu, left=0.0, right=0.0)
        along_l = np.interp(template[:, 0], xs, fl, left=0.0, right=0.0)
        out[:, axis] += reach * np.where(upper, along_u, along_l)
    for (u, lo), move in zip(pairs, together, strict=True):
        out[u] = move
        out[lo] = move
    out[list(IRISES)] = 0.0
    return out


class _Face:
    """Template geometry the procedural fields are drawn on."""

    def __init__(self, template: np.ndarray) -> None:
        t = np.asarray(template, dtype=np.float64)
        self.t = t
        self.x, self.y = t[:, 0], t[:, 1]
        self.ax = np.abs(self.x)
        self.side = np.tanh(self.x / 0.04)  # smooth sign: 0 on the midline, so nothing tears there
        brow_mid = np.array([(t[a] + t[b]) / 2.0 for a, b in RIGHT_BROW + LEFT_BROW])
        order = np.argsort(brow_mid[:, 0])
        self.brow_y = np.interp(self.x, brow_mid[order, 0], brow_mid[order, 1])
        self.brow_dy = self.y - self.brow_y
        # The face outline above the brows (the hairline and temples), as y of x.
        oval = t[list(FACE_OVAL)]
        above = oval[oval[:, 1] < np.interp(oval[:, 0], brow_mid[order, 0], brow_mid[order, 1])]
        top = above[np.argsort(above[:, 0])]
        self.top_y = np.minimum(np.interp(self.x, top[:, 0], top[:, 1]), self.brow_y)
        self.mouth_dy = self.y - np.interp(self.x, *_mouth_line(t))
        self.mouth_half = 0.5 * float(np.linalg.norm(t[mesh.MOUTH_LEFT] - t[mesh.MOUTH_RIGHT]))
        self.mouth_y = 0.5 * float(t[mesh.MOUTH_LEFT, 1] + t[mesh.MOUTH_RIGHT, 1])
        self.eyes = [self._eye(RIGHT_EYE_UPPER, RIGHT_EYE_LOWER), self._eye(LEFT_EYE_UPPER, LEFT_EYE_LOWER)]

    def _eye(self, upper: tuple[int, ...], lower: tuple[int, ...]) -> dict[str, np.ndarray]:
        """Per-vertex coordinates relative to one eye: along (0 outer .. 1 inner), lid side and depth."""
        outer, inner = self.t[upper[0], 0], self.t[upper[-1], 0]
        u = (self.x - outer) / (inner - outer)
        y_up = _curve(self.t, upper, self.x)
        y_lo = _curve(self.t, lower, self.x)
        along = np.where((u > 0.0) & (u < 1.0), np.sin(np.pi * np.clip(u, 0.0, 1.0)), 0.0)
        mid = 0.5 * (y_up + y_lo)
        return {
            "along": along,
            "outer": 1.0 - np.clip(u, 0.0, 1.0),
            "is_upper": self.y < mid,
            # 1 on the upper lid margin, falling to 0 at the brow: the lid skin folds, the brow stays.
            "upper_ramp": np.clip(self.brow_dy / np.maximum(y_up - self.brow_y, 1e-6), 0.0, 1.0) ** 2,
            "below_lower": np.maximum(self.y - y_lo, 0.0),
        }

    def brow_band(self, below: float = 0.08) -> np.ndarray:
        """1 on the brow line, falling linearly to 0 at the outline above it (the forehead takes up the
        motion evenly, so nothing folds near the hairline or temples) and fading down over the upper
        lid's skin."""
        span = np.maximum(self.brow_y - self.top_y, 1e-6)
        up = np.clip((self.y - self.top_y) / span, 0.0, 1.0)
        return np.where(self.brow_dy < 0.0, up, np.exp(-(self.brow_dy / below) ** 2))

    def raised_brow_band(self) -> np.ndarray:
        """``brow_band`` for a brow that rises: the brow's hair rises as one (1 from its upper edge down
        to 0.3 of the way from the brow line to the upper lid margin); above it the forehead takes up
        the motion toward the outline, below it the lid skin above the margin takes the stretch, as on
        a real face. (A field that falls off from the brow line itself would squeeze or stretch the
        brow into a thick band wherever the hair reaches past the tracked line.)"""
        edge = np.array([self.t[a] for a, _ in RIGHT_BROW + LEFT_BROW])
        order = np.argsort(edge[:, 0])
        brow_top = np.minimum(np.interp(self.x, edge[order, 0], edge[order, 1]), self.brow_y)
        top = np.minimum(self.top_y, brow_top)
        above = np.clip((self.y - top) / np.maximum(brow_top - top, 1e-6), 0.0, 1.0)
        lid_y = np.where(self.x < 0.0, _curve(self.t, RIGHT_EYE_UPPER, self.x),
                         _curve(self.t, LEFT_EYE_UPPER, self.x))
        share = self.brow_dy / np.maximum(lid_y - self.brow_y, 0.05)
        below = 1.0 - smoothstep((share - 0.3) / 0.7)
        return np.where(self.y < brow_top, above, np.where(self.brow_dy < 0.0, 1.0, below))

    def bump(self, cx: float, cy: float, sx: float, sy: float, sy_below: float | None = None) -> np.ndarray:
        """Gaussian bump centred at (±cx, cy) on both halves of the face."""
        dy = self.y - cy
        sy_eff = np.where(dy > 0.0, sy if sy_below is None else sy_below, sy)
        return np.exp(-((self.ax - cx) / sx) ** 2 - (dy / sy_eff) ** 2)

    def upper_lids(self) -> np.ndarray:
        return sum(e["along"] * e["is_upper"] * e["upper_ramp"] for e in self.eyes)

    def drooping_lids(self) -> np.ndarray:
        """``upper_lids`` weighted toward the outer corner: a relaxed upper lid sags most toward the
        temple, its inner end held where the brow's inner raise (AU1) lifts it."""
        return sum(e["along"] * e["is_upper"] * e["upper_ramp"] * (0.4 + 0.6 * e["outer"]) for e in self.eyes)

    def lower_lids(self, depth: float) -> np.ndarray:
        return sum(e["along"] * ~e["is_upper"] * np.exp(-(e["below_lower"] / depth) ** 2) for e in self.eyes)


def _field(dx: np.ndarray | float = 0.0, dy: np.ndarray | float = 0.0, dz: np.ndarray | float = 0.0,
           n: int = mesh.N_VERTICES) -> np.ndarray:
    return np.stack([np.broadcast_to(dx, (n,)), np.broadcast_to(dy, (n,)), np.broadcast_to(dz, (n,))], axis=1)


def facs_fields(template: np.ndarray) -> dict[str, np.ndarray]:
    """Raw fields of the AUs built from FACS descriptions (all but AU6 and AU12), on ``template``.

    Magnitudes are for a clear but natural apex, in face-local units (1 = outer eye-corner distance):
    brows move ~0.05-0.08, lids ~0.02-0.03, lip corners ~0.04-0.05 (the measured smile moves them ~0.08).
    """
    f = _Face(template)
    n = len(template)
    band = f.brow_band()
    raised = f.raised_brow_band()
    fields: dict[str, np.ndarray] = {}

    # AU1 inner brow raiser: the medial brow and the forehead above it rise; the brow becomes oblique.
    # AU1 and AU2 are two parts of one muscle (frontalis) and together raise the whole brow evenly (1+2,
    # surprise): toward each other their falloffs reach far enough that the sum is even (0.10-0.11) from
    # the brow's head to its arch; narrower ones left the middle of a surprised brow a third lower than
    # its ends, a kink no brow shows. Toward the midline and the temple they stay short (the outline holds).
    inner = np.exp(-((f.ax - 0.19) / np.where(f.ax < 0.19, 0.17, BROW_BETWEEN)) ** 2)
    fields["AU1"] = _field(dy=-0.11 * raised * inner, n=n)
    # AU2 outer brow raiser: the lateral brow rises and arches.
    outer = np.exp(-((f.ax - 0.55) / np.where(f.ax > 0.55, 0.16, BROW_BETWEEN)) ** 2)
    fields["AU2"] = _field(dy=-0.10 * raised * outer, n=n)
    # AU4 brow lowerer: brows pulled down and together, pressing on the upper lids. The whole brow comes
    # down, its head most (a third as much at the arch): lowered only toward the midline (falloff 0.22),
    # the arch stayed up and an angry brow kept a neutral face's curve over a stare.
    low = np.exp(-((f.ax - 0.2) / 0.34) ** 2) * f.brow_band(below=0.11)
    medial = np.exp(-((f.ax - 0.17) / 0.13) ** 2) * f.brow_band(below=0.09)
    fields["AU4"] = _field(dx=-0.04 * f.side * medial, dy=0.058 * low, dz=0.006 * low, n=n)
    # AU5 upper lid raiser: the upper lid margin retracts upward; the lid skin folds under the brow.
    fields["AU5"] = _field(dy=-0.04 * f.upper_lids(), n=n)
    # AU7 lid tightener: the lower lid rises and straightens; the upper lid drops a little.
    fields["AU7"] = _field(dy=-0.024 * f.lower_lids(0.06) + 0.008 * f.upper_lids(), n=n)
    # AU41 lid droop: the upper lid sags (its lifting muscle relaxed), most toward the outer corner; the
    # opening narrows by about a fifth at its middle. Sadness's heavy lids under an inner brow's raise.
    fields["AU41"] = _field(dy=0.03 * f.drooping_lids(), n=n)
    # AU9 nose wrinkler: nose sides and alae drawn up, upper lip raised at its sides, infraorbital skin
    # and lower lids pushed up, inner brows pulled down.
    nose = f.bump(0.12, 0.40, 0.11, 0.12) + f.bump(0.21, 0.52, 0.08, 0.07)
    lip_sides = f.bump(0.15, 0.76, 0.10, 0.06, sy_below=0.035)
    cheek = f.bump(0.30, 0.32, 0.12, 0.10)
    brows_down = np.exp(-((f.ax - 0.12) / 0.13) ** 2) * band
    fields["AU9"] = _field(dx=-0.006 * f.side * nose,
                           dy=-0.04 * nose - 0.035 * lip_sides - 0.02 * cheek - 0.02 * f.lower_lids(0.05)
                           + 0.04 * brows_down, n=n)
    # AU15 lip corner depressor: corners pulled down (the muscle lies below them) and slightly out.
    corners = f.bump(f.mouth_half, f.mouth_y, 0.12, 0.07, sy_below=0.17)
    fields["AU15"] = _field(dx=0.008 * f.side * corners, dy=0.05 * corners, dz=-0.008 * corners, n=n)
    # AU16 lower lip depressor: the lower lip pulled down and a little forward, mostly off-centre.
    lower_side = f.mouth_dy > 0.0
    lip = np.exp(-((f.ax - 0.1) / 0.16) ** 2) * np.exp(-((f.mouth_dy - 0.11) / 0.1) ** 2) * lower_side
    fields["AU16"] = _field(dy=0.035 * lip, dz=0.012 * lip, n=n)
    # AU20 lip stretcher: corners pulled sideways (toward the ears), lips flatten and widen.
    stretch = f.bump(f.mouth_half, f.mouth_y, 0.14, 0.10, sy_below=0.16)
    fields["AU20"] = _field(dx=0.045 * f.side * stretch, dy=0.01 * stretch, dz=-0.01 * stretch, n=n)
    # AU23 lip tightener: red lips narrow and thin around the (kept) opening.
    span = smoothstep((f.mouth_half + 0.06 - f.ax) / 0.12)
    lips = np.exp(-(f.mouth_dy / 0.14) ** 4) * span
    fields["AU23"] = _field(dx=-0.09 * f.x * lips, dy=-0.35 * f.mouth_dy * lips, dz=0.006 * lips, n=n)
    # AU24 lip pressor: the lips pressed together, the red lips squeezed thin toward the mouth line.
    fields["AU24"] = _field(dy=-0.3 * f.mouth_dy * lips, dz=-0.006 * lips, n=n)

    upper_lip = f.mouth_dy < 0.0
    # How far along the mouth a point lies: 1 across the middle, 0 at and beyond the corners.
    along = smoothstep((f.mouth_half - f.ax) / (0.7 * f.mouth_half))
    # AU10 upper lip raiser: the upper lip drawn up, most beside the philtrum (the canines show); the
    # skin above it bunches toward the nose wings and the nasolabial furrow deepens.
    lateral = 0.6 + 0.4 * np.exp(-((f.ax - 0.13) / 0.12) ** 2)
    lift = upper_lip * np.exp(-(np.maximum(-f.mouth_dy - 0.04, 0.0) / 0.12) ** 2) * lateral
    lift = lift * smoothstep((f.mouth_half + 0.05 - f.ax) / 0.15)
    fields["AU10"] = _field(dy=-0.035 * lift - 0.008 * f.bump(0.2, 0.52, 0.08, 0.07), dz=0.006 * lift, n=n)
    # AU17 chin raiser: the chin boss pushed up, pushing the lower lip up and out.
    chin = ~upper_lip * np.exp(-((f.mouth_dy - 0.28) / 0.16) ** 2) * np.exp(-(f.ax / 0.28) ** 2)
    lower_body = ~upper_lip * np.exp(-((f.mouth_dy - 0.06) / 0.07) ** 2) * along
    fields["AU17"] = _field(dy=-0.035 * chin - 0.015 * lower_body, dz=0.015 * chin + 0.01 * lower_body, n=n)
    # AU25 lips part: the upper lip rises off the teeth and the lower lip falls, most in the middle; the
    # corners stay where they are. Sized so that with AU6 + AU12 the inner lips move as the median
    # open-mouthed smile of the calibration persons does (upper -0.059, lower +0.031: a 0.09 gap).
    fields["AU25"] = _field(
        dy=np.where(upper_lip, -0.038 * np.exp(-(np.maximum(-f.mouth_dy, 0.0) / 0.13) ** 2),
                    0.06 * np.exp(-(np.maximum(f.mouth_dy, 0.0) / 0.18) ** 2)) * along, n=n)
    # AU26 jaw drop: everything below the mouth line goes down with the jaw, the chin a little back; the
    # corners follow half way and draw in, which rounds the opening. A warp keeps the face's outline
    # (the chin's edge) where it is, so the drop is what the skin between lip and chin can take: the
    # lips part ~0.14 eye-corner distances (~1.3 cm), a clear but not a gaping surprise.
    # Between the corners the lower lip goes down whole (its inner edge sits on the mouth line); beyond
    # them the cheek skin takes the drop up gradually, so nothing tears at the corners.
    between = smoothstep((f.mouth_half - f.ax) / (0.3 * f.mouth_half))
    jaw = ~upper_lip * (between + (1.0 - between) * smoothstep(f.mouth_dy / 0.1)) * np.exp(-(f.ax / 0.6) ** 2)
    corners = f.bump(f.mouth_half, f.mouth_y, 0.06, 0.05)
    fields["AU26"] = _field(dx=-0.015 * f.side * corners, dy=0.13 * jaw + 0.05 * corners, dz=-0.03 * jaw, n=n)
    return fields


def jaw_mask(template: np.ndarray) -> np.ndarray:
    """(N,) weight of the region the jaw carries when the mouth opens: 0 down to the lower lip's
    middle, 1 from just below it to the chin."""
    return smoothstep((_Face(template).mouth_dy - 0.06) / 0.08)


def split_smile(smile: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a measured smile into AU6 (eyes, lower lids, upper cheeks) and AU12 (mouth, lower face).

    The split is a smooth horizontal band between the lower lids and the nostrils; the two parts sum to
    the smile.
    """
    y = np.asarray(template, dtype=np.float64)[:, 1]
    eye_y = float(template[[mesh.RIGHT_EYE_OUTER, mesh.LEFT_EYE_OUTER, mesh.RIGHT_EYE_INNER,
                            mesh.LEFT_EYE_INNER], 1].mean())
    nose_y = float(template[mesh.NOSE_TIP, 1])
    w6 = 1.0 - smoothstep((y - (eye_y + 0.35 * (nose_y - eye_y))) / (0.45 * (nose_y - eye_y)))
    return smile * w6[:, None], smile * (1.0 - w6[:, None])


UNFOLD_LEAST = 0.5
"""Under a field at activation 1 (the full smile, each drawn AU) no sizeable triangle of the template keeps
less than this share of its frontal area: twice the rig's fold guard bound (``FacsRig.min_area_ratio``),
so the change of a triangle's area from frame to frame (the speech, a blink) does not wake the guard,
which trims per frame: a smile whose corners weakened each time the mouth closed, brows that dipped at
every blink."""


def unfold(field: np.ndarray, template: np.ndarray, triangles: np.ndarray, mirror: np.ndarray,
           least: float = UNFOLD_LEAST, rounds: int = 200, still: tuple[int, ...] = ()) -> np.ndarray:
    """``field`` with no sizeable triangle of ``template`` squeezed below ``least`` of its frontal area.

    Skin folds where a field squeezes it (real smiles at the mouth corners: 9 of the 35 London smiles
    flip the corner's triangle; a raised outer brow against the temple); a warp cannot show a fold. The
    vertices of each offending triangle move halfway toward their mean motion, round after round, so the
    region moves together and keeps its motion; the field stays symmetric and speech-safe (both members
    of an inner-lip pair move alike), the irises and the vertices ``still`` still (a triangle that
    touches them gives up its motion instead).
    """
    field = np.array(field, dtype=np.float64)
    corners = [template[triangles[:, k], :2] for k in range(3)]

    def areas(points: list[np.ndarray]) -> np.ndarray:
        e1, e2 = points[1] - points[0], points[2] - points[0]
        return e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]

    before = areas(corners)
    sizeable = np.abs(before) > 0.2 * np.median(np.abs(before))  # as the rig's guard counts them
    pairs = np.array([(u, lo) for u, lo in mesh.INNER_LIP_PAIRS if u != lo])
    for _ in range(rounds):
        moved = [c + field[triangles[:, k], :2] for k, c in enumerate(corners)]
        bad = sizeable & (areas(moved) / np.where(sizeable, before, 1.0) < least)
        if not bad.any():
            break
        mean = field[triangles[bad]].mean(axis=1)
        total, count = np.zeros_like(field), np.zeros(len(field))
        for k in range(3):
            np.add.at(total, triangles[bad, k], mean)
            np.add.at(count, triangles[bad, k], 1.0)
        hit = count > 0
        field[hit] += 0.5 * (total[hit] / count[hit, None] - field[hit])
        field = symmetrize(field, mirror)
        together = 0.5 * (field[pairs[:, 0]] + field[pairs[:, 1]])
        field[pairs[:, 0]] = together
        field[pairs[:, 1]] = together
        field[list(IRISES) + list(still)] = 0.0
    return field


def fold_free(field: np.ndarray, shape: np.ndarray, triangles: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """``field`` made fold-free on ``shape`` (``unfold``), the face outline held exactly still."""
    out = unfold(field, shape, triangles, mirror, still=FACE_OVAL)
    out[list(FACE_OVAL)] = 0.0  # where nothing folds, unfold returns the field as it came
    return out


def build_fields(template: np.ndarray, au6: np.ndarray, au12: np.ndarray, triangles: np.ndarray | None = None,
                 mirror: np.ndarray | None = None) -> dict[str, AuField]:
    """Every AU of the rig as an ``AuField`` (calibrated AU6/AU12 plus the FACS-described rest).

    All fields fade out at the face outline and leave the irises still. Given the mesh's ``triangles``
    (and the template's ``mirror_map``), each FACS-described field that the speech does not own is made
    fold-free on the template (``unfold``); the calibrated smile comes so already, and the mouth-opening
    AUs act only on a free mouth, where the lips roll in at the corners as they part.
    """
    template = np.asarray(template, dtype=np.float64)
    taper = outline_taper(template)[:, None]
    raw = facs_fields(template)
    raw["AU6"] = np.asarray(au6, dtype=np.float64)
    raw["AU12"] = np.asarray(au12, dtype=np.float64)
    if triangles is not None and mirror is None:
        mirror = mirror_map(template)
    out = {}
    for name in ACTION_UNIT_ORDER:
        r = raw[name] * taper
        # Tapering again after the lip fix zeroes the outline exactly; the lips sit where taper == 1.
        if name in SPEECH_OWNED:
            safe = np.zeros_like(r)
        else:
            safe = speech_safe(r, template, LIP_LEAD.get(name, 0.5)) * taper
            if triangles is not None and name not in ("AU6", "AU12"):
                r, safe = (fold_free(f, template, triangles, mirror) for f in (r, safe))
        out[name] = AuField(name, r, safe, AU_PROPORTION[name])
    return out
