"""The default render backend: a dense, mesh-driven backward warp of the plate's own face.

Owns turning an (original, edited) pair of face meshes into a smooth per-pixel displacement field, sampling
the plate through it, and the matte and STMap that describe the warp. Works in the plate's own colourspace
and never clips (scene-linear values above 1 and negatives pass through). Must not import torch, mediapipe
or other pipeline stages: only numpy, OpenCV, ``ned_core.render.base`` and ``ned_core.errors``.

How a frame is warped, inside the face's bounding box only:

1. rasterize the *edited* triangles into an id image (``cv2.fillConvexPoly``, sub-pixel precise);
2. per covered pixel, its edited triangle's barycentrics give the piecewise-affine backward displacement
   ``d(p) = src(p) - p`` onto the original triangle (folded or degenerate triangles fall back to their
   mean vertex displacement, so nothing tears or explodes);
3. a normalised Gaussian on the *displacement field* (not the image) removes the kinks along triangle
   edges, then a smoothstep fall-off on the distance to the mesh outline takes ``d`` to exactly 0 at and
   beyond the outline (the band widens with the largest displacement so the fall-off itself cannot fold);
4. ``cv2.remap`` samples the plate at ``p + d(p)``; pixels whose ``d`` is exactly 0 keep their bits.
   The default filter is cubic, clamped to the range of the 2x2 plate pixels around each sample point
   (as Nuke's Transform ``clamp``): bilinear sampling at fractional offsets loses about a sixth of the
   skin's fine detail, a soft patch that shows when a compositor flips between plate and edit, while an
   unclamped sharp filter rings around HDR highlights and can go negative.

Steps 1-3 run on a grid coarser than the frame when the face is larger than ``field_size`` pixels (the
field is smooth, so a face ~500 px across resolves it fully); the field is then upsampled bilinearly and
the image is still sampled at full resolution.
"""

from __future__ import annotations

import math
import numbers

import cv2
import numpy as np

from ned_core.errors import InvalidOptionError
from ned_core.ramps import smoothstep
from ned_core.render.base import FrameFace, RenderOutput

INTERPOLATIONS: dict[str, int] = {
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
}
_SHIFT = 8  # fillConvexPoly sub-pixel bits: vertices are placed to 1/256 px
# A triangle whose smallest altitude is below this fraction of its longest edge counts as degenerate.
_DEGENERATE = 1e-4
# The fall-off band is at least this many times the displacement inside it (see _falloff_band).
_BAND_PER_DISPLACEMENT = 3.0


class MeshWarpRenderer:
    """Render an edited face by warping the plate's original face onto it.

    Parameters
    ----------
    falloff
        Width of the band inside the mesh outline over which the warp fades to nothing, as a fraction
        of the face size (square root of the edited mesh's hull area).
    smooth
        Sigma of the Gaussian that smooths the displacement field, as a fraction of the face size
        (0 keeps the raw piecewise-affine map).
    matte_feather
        Width of the matte's soft edge outside the mesh outline, as a fraction of the face size.
    interpolation
        Image filter of the resampling: "cubic" (default), "lanczos" (sharper still) or "linear"
        (bilinear: softens fine detail at fractional offsets).
    clamp
        Keep every "cubic" or "lanczos" sample within the range of the four plate pixels around it (the
        ones bilinear blends), so the sharp filter never rings around highlights or makes negatives
        (bilinear needs no clamp).
    field_size
        Face size in pixels above which the displacement field is built on a grid coarser by the
        smallest integer factor that brings the face within it (speed at 4K; 0 always uses full size).

    Notes
    -----
    ``RenderOutput.stmap`` holds absolute source pixel coordinates (x, y) with pixel centres on integers,
    identity outside the face. Nuke's STMap node wants ``u = (x + 0.5) / W`` and
    ``v = 1 - (y + 0.5) / H`` over the display window; the pipeline does that conversion.
    """

    def __init__(self, falloff: float = 0.12, smooth: float = 0.012, matte_feather: float = 0.04,
                 interpolation: str = "cubic", clamp: bool = True, field_size: int = 512) -> None:
        self.falloff = _option("falloff", falloff, positive=True)
        self.smooth = _option("smooth", smooth)
        self.matte_feather = _option("matte_feather", matte_feather)
        if interpolation not in INTERPOLATIONS:
            raise InvalidOptionError(f"render option interpolation must be one of "
                                     f"{', '.join(INTERPOLATIONS)}, got {interpolation!r}",
                                     field="interpolation")
        self.interpolation = interpolation
        if not isinstance(clamp, bool):
            raise InvalidOptionError(f"render option clamp must be true or false, got {clamp!r}", field="clamp")
        self.clamp = clamp
        self.field_size = _option("field_size", field_size)
        self._identity_kept: np.ndarray | None = None

    def render(self, image: np.ndarray, face: FrameFace) -> RenderOutput:
        """Warp ``image`` ((H, W, C) or (H, W) float32) so its face takes the shape of ``face.edited``.

        Returns full-size pixels (bit-identical to ``image`` wherever the warp does not move a pixel),
        the matte (1 on the edited mesh, soft edge outside it, all 0 when nothing moves) and the STMap.
        """
        pixels = _check_image(image)
        height, width = pixels.shape[:2]
        source, edited, triangles = _check_face(face)
        out = pixels.copy()
        matte = np.zeros((height, width), np.float32)
        grid = self._identity(width, height)
        stmap = grid.copy()

        field = self._field(source, edited, triangles, width, height)
        if field is not None:
            (x0, y0, x1, y1), disp, mesh_matte = field
            sample = grid[y0:y1, x0:x1] + disp
            flat = pixels.reshape(height, width, -1)
            warped = self._sample(flat, sample).reshape((y1 - y0, x1 - x0) + pixels.shape[2:])
            nonzero = disp != 0
            moved = nonzero[..., 0] | nonzero[..., 1]
            where = moved if pixels.ndim == 2 else moved[..., None]
            np.copyto(out[y0:y1, x0:x1], warped, where=where)
            stmap[y0:y1, x0:x1] = sample
            matte[y0:y1, x0:x1] = mesh_matte
        return RenderOutput(pixels=out, matte=matte, stmap=stmap)

    def _sample(self, flat: np.ndarray, sample: np.ndarray) -> np.ndarray:
        """``flat`` (H, W, C) read at ``sample`` (h, w, 2) with the chosen filter (and clamp)."""
        if self.interpolation == "linear":
            return cv2.remap(flat, sample, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # OpenCV samples at fixed-point positions (1/32 px) either way; converting once gives the same
        # bits and the integer cells the clamp needs.
        cells, fractions = cv2.convertMaps(sample, None, cv2.CV_16SC2)
        # Its cubic and Lanczos remaps take at most 4 channels: more go 4 at a time.
        groups = [flat] if flat.shape[2] <= 4 else [flat[..., i:i + 4] for i in range(0, flat.shape[2], 4)]
        parts = []
        for group in groups:
            warped = cv2.remap(group, cells, fractions, INTERPOLATIONS[self.interpolation],
                               borderMode=cv2.BORDER_REPLICATE)
            if self.clamp:
                _clamp_to_cells(warped, group, cells)
            parts.append(warped.reshape(sample.shape[:2] + (-1,)))
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)

    def _identity(self, width: int, height: int) -> np.ndarray:
        """The frame's identity STMap, kept per frame size (read-only: copying it is ~4x faster than
        filling the two interleaved coordinates again)."""
        kept = self._identity_kept
        if kept is None or kept.shape[:2] != (height, width):
            kept = _identity_grid(0, 0, width, height)
            kept.flags.writeable = False
            self._identity_kept = kept
        return kept

    def _field(self, source: np.ndarray, edited: np.ndarray, triangles: np.ndarray, width: int, height: int
               ) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray] | None:
        """(box, displacement (h, w, 2), matte (h, w)) inside the face's box, or None when nothing moves."""
        # Vertices far outside the frame mean a broken fit; their triangles are dropped rather than
        # overflowing the rasterizer's fixed-point coordinates.
        reach = 2.0 * (width + height)
        ok_vertex = np.all(np.isfinite(source) & np.isfinite(edited), axis=1) \
            & np.all((edited > -reach) & (edited < reach), axis=1) \
            & np.all((source > -reach) & (source < reach), axis=1)
        triangles = triangles[np.all(ok_vertex[triangles], axis=1)]
        if len(triangles) == 0:
            return None
        used = np.unique(triangles)
        if not np.any(source[used] != edited[used]):
            return None

        hull = cv2.convexHull(edited[used].astype(np.float32))
        size = math.sqrt(max(cv2.contourArea(hull), 1.0))
        pad = math.ceil(self.matte_feather * size) + 2
        lo = np.floor(edited[used].min(axis=0)).astype(int) - pad
        hi = np.ceil(edited[used].max(axis=0)).astype(int) + pad + 1
        x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
        x1, y1 = min(int(hi[0]), width), min(int(hi[1]), height)
        if x1 <= x0 or y1 <= y0:
            return None

        # Coarse grid: cell centres follow cv2.resize's convention, so upsampling lines up exactly.
        k = max(1, math.ceil(size / self.field_size)) if self.field_size > 0 else 1
        shape = (math.ceil((y1 - y0) / k), math.ceil((x1 - x0) / k))

        def to_grid(points: np.ndarray) -> np.ndarray:
            return (points - (x0, y0) + 0.5) / k - 0.5

        field = self._grid_field(to_grid(source), to_grid(edited), triangles, shape, size / k)
        if field is None:
            return None
        disp, matte = field
        if k > 1:
            full = (shape[1] * k, shape[0] * k)
            disp = cv2.resize(disp, full, interpolation=cv2.INTER_LINEAR)[:y1 - y0, :x1 - x0] * k
            matte = cv2.resize(matte, full, interpolation=cv2.INTER_LINEAR)[:y1 - y0, :x1 - x0]
        return (x0, y0, x1, y1), disp, matte

    def _grid_field(self, source: np.ndarray, edited: np.ndarray, triangles: np.ndarray,
                    shape: tuple[int, int], size: float) -> tuple[np.ndarray, np.ndarray] | None:
        """(displacement (h, w, 2), matte (h, w)) on a grid, vertices in its pixel coordinates."""
        table, order = _triangle_tables(source, edited, triangles)
        ids = _rasterize(edited[triangles], order, shape)
        inside = ids >= 0
        if not inside.any():
            return None

        disp = np.zeros(shape + (2,), np.float32)
        covered = np.flatnonzero(inside)
        disp.reshape(-1, 2)[covered] = _affine_displacement(table, ids.reshape(-1)[covered], covered,
                                                            shape[1])
        inside_f = inside.astype(np.float32)
        sigma = self.smooth * size
        if sigma >= 0.3:  # below that the kernel is a single tap
            # Normalised convolution: averaging only over mesh pixels keeps the border displacement unbiased.
            ksize = (2 * math.ceil(3.0 * sigma) + 1,) * 2  # 3 sigma: OpenCV's default 4 costs a third more
            weight = cv2.GaussianBlur(inside_f, ksize, sigma)
            disp = cv2.GaussianBlur(disp, ksize, sigma)
            disp /= np.maximum(weight, 1e-12)[..., None]

        depth = _distance(inside)
        band = _falloff_band(disp, depth, self.falloff * size)
        # The outermost ring of mesh pixels sits at distance 1: the fall-off is 0 there.
        disp *= smoothstep((depth - 1.0) / band)[..., None]
        if not np.any(disp):
            return None

        if self.matte_feather > 0:
            gap = _distance(~inside)
            matte = (1.0 - smoothstep(gap / (self.matte_feather * size))).astype(np.float32)
        else:
            matte = inside_f
        return disp, matte


def mesh_map(target: np.ndarray, source: np.ndarray, triangles: np.ndarray, shape: tuple[int, int]
             ) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-affine correspondence of two meshes of one topology, over a (h, w) pixel grid.

    For each grid pixel covered by the ``target`` mesh ((N, 2) grid coordinates), the point of the
    ``source`` mesh ((N, 2), any units) that corresponds to it through its triangle's barycentrics.
    Returns (map (h, w, 2) float32, covered (h, w) bool); uncovered pixels map to themselves. This is
    how a face's pixels find their texture-space coordinates and the reverse.
    """
    table, order = _triangle_tables(np.asarray(source, np.float64), np.asarray(target, np.float64),
                                    np.asarray(triangles, np.int64))
    ids = _rasterize(np.asarray(target, np.float64)[triangles], order, shape)
    covered = ids >= 0
    out = _identity_grid(0, 0, shape[1], shape[0])
    flat = np.flatnonzero(covered)
    out.reshape(-1, 2)[flat] += _affine_displacement(table, ids.reshape(-1)[flat], flat, shape[1])
    return out, covered


def _rasterize(corners: np.ndarray, order: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) int32 image of the triangle drawn at each pixel (-1: none), drawn in ``order``.

    Pixel centres sit on integer coordinates; edge pixels belong to both neighbours (the later wins), so
    a closed mesh leaves no gaps.
    """
    ids = np.full(shape, -1, np.int32)
    fixed = np.round(corners * (1 << _SHIFT)).astype(np.int32)
    # One OpenCV call a triangle (~850 a frame): its arguments taken from lists and passed by position,
    # a third of the loop's time at a small face went to indexing and keyword handling.
    fill = cv2.fillConvexPoly
    for polygon, t in zip(fixed[order], order.tolist(), strict=True):
        fill(ids, polygon, t, cv2.LINE_8, _SHIFT)
    return ids


def _triangle_tables(source: np.ndarray, edited: np.ndarray, triangles: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per-triangle affine backward displacement over grid pixels, and a drawing order.

    Row ``t`` of the (F, 10) float32 table is [ax, bx, cx, ay, by, cy, min dx, max dx, min dy, max dy]:
    inside edited triangle ``t`` the displacement at grid pixel (u, v) is ``(ax u + bx v + cx,
    ay u + by v + cy)``, the barycentric mix of its vertices' displacements ``source - edited``. A folded
    or degenerate triangle gets its mean vertex displacement as a constant, so its pixels translate
    rigidly instead of mirroring or blowing up; those are drawn first so good triangles win where a fold
    makes them overlap.
    """
    e = edited[triangles]
    s = source[triangles]
    dv = s - e
    ex, ey = e[:, 1] - e[:, 0], e[:, 2] - e[:, 0]
    sx, sy = s[:, 1] - s[:, 0], s[:, 2] - s[:, 0]
    det_e = ex[:, 0] * ey[:, 1] - ey[:, 0] * ex[:, 1]
    det_s = sx[:, 0] * sy[:, 1] - sy[:, 0] * sx[:, 1]

    def longest(points: np.ndarray) -> np.ndarray:
        edges = points - np.roll(points, 1, axis=1)
        return (edges ** 2).sum(-1).max(-1)

    good = (np.abs(det_e) > _DEGENERATE * longest(e)) & (np.abs(det_s) > _DEGENERATE * longest(s)) \
        & (np.sign(det_e) == np.sign(det_s))
    dv[~good] = dv[~good].mean(axis=1, keepdims=True)
    safe = np.where(good, det_e, 1.0)
    # Barycentric weights b1, b2 of a point q are inverse([ex ey]) @ (q - e0); b0 = 1 - b1 - b2.
    inv = np.stack([ey[:, 1], -ey[:, 0], -ex[:, 1], ex[:, 0]], axis=1) / safe[:, None]
    inv[~good] = 0.0
    table = np.empty((len(triangles), 10))
    for k in range(2):
        d1, d2 = dv[:, 1, k] - dv[:, 0, k], dv[:, 2, k] - dv[:, 0, k]
        a = d1 * inv[:, 0] + d2 * inv[:, 2]
        b = d1 * inv[:, 1] + d2 * inv[:, 3]
        table[:, 3 * k] = a
        table[:, 3 * k + 1] = b
        table[:, 3 * k + 2] = dv[:, 0, k] - a * e[:, 0, 0] - b * e[:, 0, 1]
        table[:, 6 + 2 * k] = dv[:, :, k].min(axis=1)
        table[:, 7 + 2 * k] = dv[:, :, k].max(axis=1)
    order = np.concatenate([np.flatnonzero(~good), np.flatnonzero(good)])
    return table.astype(np.float32), order


def _affine_displacement(table: np.ndarray, ids: np.ndarray, flat_index: np.ndarray, row: int
                         ) -> np.ndarray:
    """(P, 2) backward displacement of the grid pixels ``flat_index`` (row-major, ``row`` wide)."""
    columns = np.ascontiguousarray(table.T)  # (10, F): each gather below reads one contiguous column
    v, u = np.divmod(flat_index, row)
    u, v = u.astype(np.float32), v.astype(np.float32)
    out = np.empty((len(ids), 2), np.float32)
    for k in range(2):
        d = columns[3 * k].take(ids)
        d *= u
        term = columns[3 * k + 1].take(ids)
        term *= v
        d += term
        d += columns[3 * k + 2].take(ids)
        # Edge pixels the rasterizer includes lie slightly outside their triangle: clamping to the
        # vertices' range keeps thin triangles from extrapolating wildly there.
        np.clip(d, columns[6 + 2 * k].take(ids), columns[7 + 2 * k].take(ids), out=out[:, k])
    return out


def _falloff_band(disp: np.ndarray, depth: np.ndarray, nominal: float) -> float:
    """Width of the fall-off band: ``nominal``, widened where large displacements reach into it.

    The smoothstep's steepest slope is 1.5 / band; keeping band >= 3 |d| over the band bounds the fall-off's
    contribution to the warp's Jacobian by 0.5, so fading a large motion out cannot fold the image.
    """
    magnitude = np.hypot(disp[..., 0], disp[..., 1])
    band = max(nominal, 1.0)
    for _ in range(4):  # widening takes in more pixels: iterate to a fixed point
        reach = float(magnitude[depth <= band + 1.0].max(initial=0.0))
        if _BAND_PER_DISPLACEMENT * reach <= band:
            break
        band = _BAND_PER_DISPLACEMENT * reach
    return band


def _identity_grid(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """(y1 - y0, x1 - x0, 2) float32 pixel coordinates (x, y) of a box of the frame."""
    grid = np.empty((y1 - y0, x1 - x0, 2), np.float32)
    grid[..., 0] = np.arange(x0, x1, dtype=np.float32)[None, :]
    grid[..., 1] = np.arange(y0, y1, dtype=np.float32)[:, None]
    return grid


def _option(name: str, value: float, positive: bool = False) -> float:
    """A render option that must be a finite number >= 0 (> 0 when ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise InvalidOptionError(f"render option {name} must be a finite number {bound}, got {value!r}",
                                 field=name)
    return float(value)


def _distance(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of each ``mask`` pixel to the nearest pixel outside it (float32, 1 at the edge).

    OpenCV's 5x5 chamfer approximation (within ~2% of the exact distance, which only shapes smooth
    fall-offs here): its two raster passes give the same bits on any number of threads, where the exact
    transform's parallel passes differ in the last bits with OpenCV's thread count, which would make a
    frame's STMap depend on the core count of the machine that rendered it.
    """
    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)


def _clamp_to_cells(warped: np.ndarray, flat: np.ndarray, cells: np.ndarray) -> None:
    """Clip ``warped`` in place to the range of the 2x2 pixels of ``flat`` (H, W, C) whose top-left
    pixel each sample's cell in ``cells`` (h, w, 2) int16 (x, y) names: the pixels bilinear would blend."""
    height, width = flat.shape[:2]
    # Only the plate region the cells reach (per coordinate: numpy's reductions over interleaved pairs
    # are an order of magnitude slower).
    (x0, x1), (y0, y1) = [(int(c.min()), int(c.max()) + 2) for c in (cells[..., 0], cells[..., 1])]
    x0, y0 = min(max(x0, 0), width - 1), min(max(y0, 0), height - 1)
    x1, y1 = max(min(x1, width), x0 + 1), max(min(y1, height), y0 + 1)
    region = flat[y0:y1, x0:x1]
    local = cells - np.array([x0, y0], np.int16)
    # Min and max over each 2x2 block, stored at the block's top-left pixel, then read at each cell.
    block = np.ones((2, 2), np.uint8)
    shape = warped.shape
    for bound, limit in ((cv2.erode, np.maximum), (cv2.dilate, np.minimum)):
        extreme = bound(region, block, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
        at = cv2.remap(extreme, local, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        limit(warped, at.reshape(shape), out=warped)


def _check_image(image: np.ndarray) -> np.ndarray:
    pixels = np.asarray(image)
    if pixels.ndim not in (2, 3) or pixels.shape[0] == 0 or pixels.shape[1] == 0 \
            or (pixels.ndim == 3 and pixels.shape[2] == 0):
        raise InvalidOptionError(f"render needs an (H, W, C) image, got shape {pixels.shape}", field="image")
    if not np.issubdtype(pixels.dtype, np.floating):
        raise InvalidOptionError(f"render needs float pixels, got {pixels.dtype}", field="image")
    if max(pixels.shape[:2]) >= 32767:
        raise InvalidOptionError(f"render supports frames below 32767 px a side, got {pixels.shape[:2]}",
                                 field="image")
    return pixels.astype(np.float32, copy=False)


def _check_face(face: FrameFace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source (N, 2) float64, edited (N, 2) float64, triangles (F, 3) int64) from ``face``."""
    source = np.asarray(face.source, dtype=np.float64)
    edited = np.asarray(face.edited, dtype=np.float64)
    if source.ndim != 2 or source.shape[1] < 2 or edited.shape != source.shape:
        raise InvalidOptionError(f"face source/edited must be matching (N, 2|3) arrays, got "
                                 f"{source.shape} and {edited.shape}", field="face")
    triangles = np.asarray(face.triangles)
    if triangles.ndim != 2 or triangles.shape[1] != 3 or not np.issubdtype(triangles.dtype, np.integer):
        raise InvalidOptionError(f"face triangles must be an (F, 3) int array, got {triangles.shape} "
                                 f"{triangles.dtype}", field="face")
    if triangles.size and (triangles.min() < 0 or triangles.max() >= len(source)):
        raise InvalidOptionError(f"face triangles index vertices outside 0..{len(source) - 1}", field="face")
    return source[:, :2], edited[:, :2], triangles.astype(np.int64)
