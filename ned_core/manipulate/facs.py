"""The FACS rig: the default manipulate backend (emotion weights → action units → displaced face mesh).

Owns: turning per-frame emotion weights into action-unit activations (EMOTION_AUS), the soft clamp of
exaggerated intensities, scaling the AU fields to one face's proportions, keeping the speech (every
inner-lip pair moves as one under ``mouth_preservation`` 1, per shot or per frame) and keeping the edited
mesh free of folds.
The fields themselves come from ``au_fields`` and the shipped smile calibration (``calibrate``).
Must not import mediapipe, torch or other stages' backends.
"""

from __future__ import annotations

from numbers import Real
from pathlib import Path

import numpy as np

from ned_core import EMOTIONS, mesh
from ned_core.errors import InvalidOptionError
from ned_core.face3d.base import FaceFit
from ned_core.manipulate import au_fields
from ned_core.manipulate.emotions import action_units, emotion_strengths, recipes
from ned_core.model_files import load_arrays
from ned_core.ramps import smoothstep

CALIBRATION_FILE = Path(__file__).resolve().parent.parent / "data" / "facs_smile.npz"
PROPORTION_LIMITS = (0.7, 1.4)  # a face's proportions scale its fields at most this much
LOCAL_PASSES = 4  # rounds of local fold relief before the per-frame guard
FOLD_FALLOFF = 0.6  # share of a vertex's motion cut that its neighbours give up too (per ring)
# A blink belongs to the actor, as the speech does: an eye this shut keeps its opening exactly. Relative to
# the shot's open eye (its 90th percentile opening), and absolute (opening over eye width) for a still.
BLINK_RELATIVE = (0.3, 0.7)
BLINK_ABSOLUTE = (0.04, 0.10)


def load_calibration(path: str | Path = CALIBRATION_FILE) -> dict[str, np.ndarray]:
    """The shipped smile calibration: template, au6, au12, triangles and the person split."""
    return load_arrays(path, "FACS calibration", "python -m ned_core.manipulate.calibrate")


class FacsRig:
    """Emotions as mixes of FACS action units, each a displacement field on the MediaPipe face mesh.

    Parameters
    ----------
    calibration
        Path of the smile calibration (``ned_core/data/facs_smile.npz`` by default).
    max_intensity
        Ceiling of the soft clamp on exaggerated intensities (a row's non-neutral weight sum).
    min_area_ratio
        No mesh triangle (seen from the front) may shrink below this fraction of its area or flip: the
        motion around an offending triangle is scaled down until that holds (see ``limit_folds``).
    adapt_to_face
        Scale each AU by the face's proportions relative to the calibration mean (mouth width for the
        mouth AUs, eye opening for the lids, brow height for the brows...).
    keep_blinks
        Keep the plate's eye opening on frames where an eye is shut or closing (see ``lid_freedom``): a
        raised or narrowed lid must not open a blink.
    """

    def __init__(self, calibration: str | None = None, max_intensity: float = 1.6,
                 min_area_ratio: float = 0.25, adapt_to_face: bool = True, keep_blinks: bool = True) -> None:
        if not 1.0 <= max_intensity <= 3.0:
            raise InvalidOptionError(f"max_intensity {max_intensity} must be within 1..3",
                                     field="max_intensity")
        if not 0.0 <= min_area_ratio < 1.0:
            raise InvalidOptionError(f"min_area_ratio {min_area_ratio} must be within 0..1",
                                     field="min_area_ratio")
        data = load_calibration(CALIBRATION_FILE if calibration is None else calibration)
        self.template = data["template"].astype(np.float64)
        self.triangles = data["triangles"].astype(np.int64)
        # The template's mirror map ships with the calibration (finding it takes a third of a second).
        mirror = data["mirror"].astype(np.int64) if "mirror" in data else au_fields.mirror_map(self.template)
        self.fields = au_fields.build_fields(self.template, data["au6"], data["au12"], self.triangles, mirror)
        self._mirror = mirror
        # The last face's fields and emotion corrections (own_fields, own_corrections).
        self._own: tuple[bytes, np.ndarray, np.ndarray, np.ndarray] | None = None
        self.max_intensity = float(max_intensity)
        self.min_area_ratio = float(min_area_ratio)
        self.adapt_to_face = bool(adapt_to_face)
        self.keep_blinks = bool(keep_blinks)
        self._template_proportions = au_fields.proportions(self.template)

    # -- weights to activations ---------------------------------------------------------------------

    def activations(self, weights: np.ndarray) -> np.ndarray:
        """(T, n) AU activations (``au_fields.ACTION_UNIT_ORDER``) of (T, 7) emotion weights.

        The intensity of a row is its non-neutral sum (``neutral=1`` is no edit); above 1 it is soft
        clamped to ``max_intensity`` while the mix of emotions is kept.
        """
        return action_units(weights, au_fields.ACTION_UNIT_ORDER, self.max_intensity)

    # -- fields for one face --------------------------------------------------------------------------

    def face_fields(self, identity: np.ndarray, mouth_preservation: float = 1.0) -> np.ndarray:
        """(n, N, 3) AU fields for ``identity`` (``own_fields``), blended toward their speech-safe form by
        ``mouth_preservation``."""
        raw, safe = self.own_fields(identity)
        p = float(mouth_preservation)
        return p * safe + (1.0 - p) * raw

    def own_fields(self, identity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(raw, safe), each (n, N, 3): the AU fields scaled to ``identity``'s proportions and made
        fold-free on that face itself.

        The fields are fold-free on the template; a face whose own triangles are thinner somewhere (a
        narrow strip of forehead above the outer brow) would still be squeezed past the bound there, and
        the per-frame guard would then trim the expression on some frames only (a brow that dipped on
        the frames where the speech or a blink moved that skin). Made fold-free on the face once per
        shot, the motion is the same on every frame. The last face's fields are kept (read-only): a shot
        is edited in one call, a farm chunk in one more.
        """
        return self._own_face(identity)[1:3]

    def own_corrections(self, identity: np.ndarray) -> np.ndarray:
        """(6, N, 3): per non-neutral emotion, what makes its whole mix of AUs fold-free on ``identity``.

        Each AU alone is fold-free (``own_fields``), but two can squeeze the skin between them: angry's
        lowered brow and raised upper lid press the lid's skin, which a real face folds under the brow.
        Left to the per-frame guard, that skin's motion was cut by as much as each frame's lids and speech
        made it need, so the brows moved from frame to frame. Each emotion's mix (the AUs the speech does not
        own, speech-safe) is made fold-free once per shot instead; the difference is added in proportion
        to that emotion's strength. It keeps inner-lip pairs together, so it holds on a free mouth too.
        """
        return self._own_face(identity)[3]

    def _own_face(self, identity: np.ndarray) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
        ident = np.ascontiguousarray(identity, dtype=np.float64)
        key = ident.tobytes() + bytes([self.adapt_to_face])
        last = self._own
        if last is not None and last[0] == key:
            return last
        scales = {name: 1.0 for name in self._template_proportions}
        if self.adapt_to_face:
            own = au_fields.proportions(ident)
            scales = {name: float(np.clip(own[name] / ref, *PROPORTION_LIMITS))
                      for name, ref in self._template_proportions.items()}
        fields = [self.fields[au] for au in au_fields.ACTION_UNIT_ORDER]
        raw = np.stack([scales[f.proportion] * f.raw for f in fields])
        safe = np.stack([scales[f.proportion] * f.safe for f in fields])
        for k, name in enumerate(au_fields.ACTION_UNIT_ORDER):
            # The mouth-opening AUs are left as they are, as on the template (``au_fields.build_fields``).
            if name not in au_fields.SPEECH_OWNED:
                raw[k] = au_fields.fold_free(raw[k], ident, self.triangles, self._mirror)
                safe[k] = au_fields.fold_free(safe[k], ident, self.triangles, self._mirror)
        unowned = np.array([name not in au_fields.SPEECH_OWNED for name in au_fields.ACTION_UNIT_ORDER])
        mixes = recipes(au_fields.ACTION_UNIT_ORDER) * unowned
        corrections = np.zeros((len(mixes),) + safe.shape[1:])
        for e, recipe in enumerate(mixes):
            mix = np.einsum("a,anc->nc", recipe, safe)
            corrections[e] = au_fields.fold_free(mix, ident, self.triangles, self._mirror) - mix
        for array in (raw, safe, corrections):
            array.setflags(write=False)  # shared with later calls: nobody may edit them in place
        self._own = (key, raw, safe, corrections)
        return self._own

    # -- the edit ---------------------------------------------------------------------------------------

    def edit(self, fit: FaceFit, weights: np.ndarray,
             mouth_preservation: float | np.ndarray = 1.0) -> np.ndarray:
        """Edited (T, N, 3) face-local expression offsets of ``fit`` toward per-frame ``weights``.

        Parameters
        ----------
        fit
            A ``mediapipe478`` face fit.
        weights
            (T, 7) non-negative emotion weights in NED's label order, one row per frame of ``fit``.
        mouth_preservation
            1 keeps every inner-lip pair's opening exactly (the rig moves corners, cheeks, lids, brows and
            nose around it); 0 lets the AUs move the lips freely; in between blends the two. One value
            for the shot, or a (T,) array, one per frame (keyed mouth preservation).

        Frames where the face was lost come back unchanged; in a blink the lids keep their opening.
        """
        self._check(fit, weights, mouth_preservation)
        expression = np.asarray(fit.expression, dtype=np.float64)
        out = expression.copy()
        act = self.activations(weights)
        # Only frames with a face and something to do are touched: the rest come back bit-identical.
        rows = np.flatnonzero(np.asarray(fit.found, dtype=bool) & np.any(act != 0.0, axis=1))
        if len(rows) == 0:
            return out
        # Frames that share a mouth preservation share one blend of the fields: a constant array takes
        # exactly the scalar's arithmetic, so it gives the same result bit for bit.
        per_frame = np.broadcast_to(np.asarray(mouth_preservation, dtype=np.float64), (len(act),))[rows]
        move = np.empty((len(rows), expression.shape[1], 3))
        for p in np.unique(per_frame):
            group = per_frame == p
            fields = self.face_fields(fit.identity, float(p))
            move[group] = np.einsum("ta,anc->tnc", act[rows[group]], fields)
        corrections = self.own_corrections(fit.identity)
        if np.any(corrections):
            move += np.einsum("te,enc->tnc", emotion_strengths(weights, self.max_intensity)[rows], corrections)
        base = np.asarray(fit.identity, dtype=np.float64)[None] + expression[rows]
        triangles = np.asarray(fit.triangles, dtype=np.int64).reshape(-1, 3)
        if len(triangles) == 0:
            triangles = self.triangles
        if not self.keep_blinks:
            out[rows] += self.limit_folds(base, move, triangles)
            return out
        shapes = np.asarray(fit.identity, dtype=np.float64)[None] + expression
        freedom = lid_freedom(shapes, np.asarray(fit.found, dtype=bool))[rows]
        # The guard must see the lids as they will move: told nothing of a blink, it saw a tightening lid
        # squeeze the skin of a shut eye and cut the region around it on blink frames only. The triangles
        # that reach an iris are left out: they only carry the warp across the eye's opening, which the
        # appearance stage's eye layer draws, and the still irises would "fold" against a held lid. A shut
        # eye is held once more after the guard (its cuts must not open it); other eyes only once.
        guarded = triangles[~np.isin(triangles, au_fields.IRISES).any(axis=1)]
        move = self.limit_folds(base, hold_lids(move, freedom), guarded)
        out[rows] += hold_lids(move, np.where(freedom > 0.0, 1.0, 0.0))
        return out

    def limit_folds(self, base: np.ndarray, move: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        """``move`` (T, N, 3) reduced where it would fold the mesh over ``base`` (T, N, 3).

        Seen from the front, no sizeable triangle may shrink below ``min_area_ratio`` of its area or
        flip. An offending triangle scales down its vertices' motion, the cut fading out over two rings
        of neighbours (the field stays smooth and the rest of the expression keeps its strength); both
        members of an inner-lip pair are always scaled alike (the speech is kept). A last per-frame
        scale guarantees the bound where the local passes are not enough.
        """
        pairs = np.array([(u, lo) for u, lo in mesh.INNER_LIP_PAIRS if u != lo])
        edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
        edges = np.concatenate([edges, edges[:, ::-1]])
        move = move.copy()
        for _ in range(LOCAL_PASSES):
            limit = self._triangle_limits(base, move, triangles)  # (T, F)
            if np.all(limit >= 1.0):
                return move
            cut = np.zeros((move.shape[1], move.shape[0]))  # (N, T): share of its motion a vertex gives up
            for corner in range(3):
                np.maximum.at(cut, triangles[:, corner], 1.0 - limit.T)
            for _ in range(2):
                spread = np.zeros_like(cut)
                np.maximum.at(spread, edges[:, 0], FOLD_FALLOFF * cut[edges[:, 1]])
                cut = np.maximum(cut, spread)
            keep = (1.0 - cut).T  # (T, N)
            together = np.minimum(keep[:, pairs[:, 0]], keep[:, pairs[:, 1]])
            keep[:, pairs[:, 0]] = together
            keep[:, pairs[:, 1]] = together
            move *= keep[:, :, None]
        allowed = self._triangle_limits(base, move, triangles).min(axis=1)
        return move * allowed[:, None, None]

    def _triangle_limits(self, base: np.ndarray, move: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        """(T, F): per triangle, the largest f in [0, 1] for which ``base + f * move`` keeps it at least
        ``min_area_ratio`` of its frontal (x, y) area, unflipped (1 for triangles too small to matter).

        The signed area is quadratic in f, so the limit is the quadratic's first positive root.
        """
        a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
        p, d = base[..., :2], move[..., :2]
        e1, e2 = p[:, b] - p[:, a], p[:, c] - p[:, a]
        g1, g2 = d[:, b] - d[:, a], d[:, c] - d[:, a]

        def cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]

        area0 = cross(e1, e2)
        sign = np.sign(area0)
        # Degenerate triangles (a closed mouth's inner lips, the silhouette) carry no fold to guard.
        sizeable = np.abs(area0) > 0.2 * np.median(np.abs(area0), axis=1, keepdims=True)
        qa = sign * cross(g1, g2)
        qb = sign * (cross(e1, g2) + cross(g1, e2))
        qc = (1.0 - self.min_area_ratio) * np.abs(area0)
        with np.errstate(divide="ignore", invalid="ignore"):
            linear = np.where(qb < 0.0, -qc / qb, np.inf)
            disc = qb * qb - 4.0 * qa * qc
            root = np.sqrt(np.maximum(disc, 0.0))
            r1 = (-qb - root) / (2.0 * qa)
            r2 = (-qb + root) / (2.0 * qa)
            r1 = np.where(r1 > 0.0, r1, np.inf)
            r2 = np.where(r2 > 0.0, r2, np.inf)
            quad = np.where(disc >= 0.0, np.minimum(r1, r2), np.inf)
        first = np.where(np.abs(qa) < 1e-15, linear, quad)
        return np.clip(np.where(sizeable, first, np.inf), 0.0, 1.0)

    # -- input checks -----------------------------------------------------------------------------------

    @staticmethod
    def _check(fit: FaceFit, weights: np.ndarray, mouth_preservation: float | np.ndarray) -> None:
        if fit.topology != mesh.TOPOLOGY:
            raise InvalidOptionError(
                f"the facs rig works on the {mesh.TOPOLOGY} face model, not {fit.topology!r}: "
                "pick the matching face3d backend", field="face3d")
        n_frames = len(fit.frames)
        if np.shape(fit.identity) != (mesh.N_VERTICES, 3) or np.shape(fit.expression) != (
                n_frames, mesh.N_VERTICES, 3):
            raise InvalidOptionError(
                f"face fit shapes identity {np.shape(fit.identity)} / expression {np.shape(fit.expression)} "
                f"do not match {n_frames} frames of {mesh.N_VERTICES} vertices", field="face3d")
        w = np.asarray(weights)
        if w.shape != (n_frames, len(EMOTIONS)):
            raise InvalidOptionError(
                f"emotion weights have shape {w.shape}, expected ({n_frames}, {len(EMOTIONS)})",
                field="emotion")
        bad = ~np.isfinite(w) | (w < 0)
        if np.any(bad):
            row = int(np.argwhere(bad)[0, 0])
            raise InvalidOptionError("emotion weights must be finite and >= 0", frame=fit.frames[row],
                                     field="emotion")
        if isinstance(mouth_preservation, Real):
            if not 0.0 <= mouth_preservation <= 1.0:
                raise InvalidOptionError(f"mouth_preservation {mouth_preservation} must be within 0..1",
                                         field="mouth_preservation")
            return
        p = np.asarray(mouth_preservation)
        if p.shape != (n_frames,) or not np.issubdtype(p.dtype, np.number):
            raise InvalidOptionError(f"mouth_preservation must be one number or one per frame ({n_frames},), "
                                     f"not shape {p.shape}", field="mouth_preservation")
        bad = ~((p >= 0.0) & (p <= 1.0))  # NaN fails both
        if np.any(bad):
            row = int(np.flatnonzero(bad)[0])
            raise InvalidOptionError(f"mouth_preservation {p[row]} must be within 0..1", frame=fit.frames[row],
                                     field="mouth_preservation")


def lid_freedom(shapes: np.ndarray, found: np.ndarray) -> np.ndarray:
    """(T, 2) share of the edit's change to each eye's opening a frame may take: 0 in a blink, 1 open.

    ``shapes`` are the (T, N, 3) face-local shapes of the plate. An eye counts as open when its opening
    is at least 0.7 of the shot's open eye (90th percentile over the frames with a face) and 0.1 of its
    width; it is held shut at 0.3 and 0.04, smoothly in between, so the hold fades in and out with the
    blink's own motion.
    """
    openings = mesh.eye_openings(shapes)
    seen = openings[found] if found.any() else openings
    reference = np.maximum(np.quantile(seen, 0.9, axis=0), 1e-6)
    (r0, r1), (a0, a1) = BLINK_RELATIVE, BLINK_ABSOLUTE
    relative = smoothstep((openings / reference - r0) / (r1 - r0))
    return np.minimum(relative, smoothstep((openings - a0) / (a1 - a0)))


def hold_lids(move: np.ndarray, freedom: np.ndarray) -> np.ndarray:
    """``move`` (T, N, 3) with each lid pair's change of opening scaled by ``freedom`` (T, 2).

    The pair keeps its mean motion (a raised brow still lifts a shut lid), so at freedom 0 the eye's
    opening is exactly the plate's.
    """
    move = move.copy()
    for eye, pairs in enumerate(mesh.LID_PAIRS):
        upper = [u for u, _ in pairs]
        lower = [lo for _, lo in pairs]
        mean = 0.5 * (move[:, upper] + move[:, lower])
        keep = freedom[:, eye, None, None]
        move[:, upper] = mean + keep * (move[:, upper] - mean)
        move[:, lower] = mean + keep * (move[:, lower] - mean)
    return move
