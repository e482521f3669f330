"""The eyes under moving lids: the eyeball stays where it is while the lids open or narrow over it.

A warp moves everything inside the eye opening with the lids, so raised lids (AU5) stretch the iris
into an oval and narrowed ones (AU6, AU7) squash it. Here, inside each *edited* eye opening, the plate's
own eyeball is shown unmoved; where the lids now bare eyeball the plate never showed, it is drawn from
the plate's own eye: the iris's top from its lower half mirrored, the white of the eye from what the
plate shows of it in the same column, shaded at each depth under the lid as the plate's own white is.
Each lid takes its margin (the upper lid's shadow and lash line on the eyeball, the lower lid's wet
line) along to its new edge, whether it opens or narrows the eye; the band an opening lid leaves is
drawn as eyeball.

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
LID_SHADE = (0.35, 0.6)  # where a plate shows too little white to read its shade: the top 35% of an
# opening, darkened to 60% at the lid (lid and lashes shade it)
MARGIN_BAND = 0.15
"""How far into an opening each lid's margin reaches, as a share of the opening: in the London neutral
photos the white beside the iris is under half its brightest over the top ~15% of the opening (the upper
lid's shadow and lashes), and from 0.64 of it at the lower lid up to 0.84 over the bottom ~15% (its wet
line and lashes)."""
WHITE_REACH = 2  # a column's white is read from the pixels within this many columns of it
SHADE_BINS = 12  # depths over the upper half of the opening at which the plate's white is read for the
# lid's shade (``_lid_shade``)
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


def _polygon(points: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...]) -> np.ndarray:
    return np.concatenate([points[list(upper), :2], points[list(lower[::-1]), :2]])


def _coverage(polygon: np.ndarray, shape: tuple[int, int], origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Anti-aliased coverage of ``polygon`` over the (h, w) window of the box at ``origin`` (x, y).

    The polygon is placed in fixed point first and then moved by whole pixels, so a window sees exactly
    the pixels the whole box would.
    """
    canvas = np.zeros(shape, np.uint8)
    fixed = np.round(polygon * 16).astype(np.int32) - (np.asarray(origin, np.int32) * 16)
    cv2.fillPoly(canvas, [fixed], 255, lineType=cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0


def _window(polygons: list[np.ndarray], shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the box's pixels the polygons' anti-aliased fill can touch, or None."""
    points = np.concatenate(polygons)
    x0, y0 = np.floor(points.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + 3
    x0, y0, x1, y1 = max(int(x0), 0), max(int(y0), 0), min(int(x1), shape[1]), min(int(y1), shape[0])
    return None if x1 <= x0 or y1 <= y0 else (x0, y0, x1, y1)


def eye_layer(plate_linear: np.ndarray, source: np.ndarray, edited: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """(alpha (h, w), linear colour (h, w, 3)) over a box of the frame: the eyeballs under the edited lids.

    ``plate_linear`` is the box of the plate in scene-linear light; ``source`` and ``edited`` are the
    (N, 2+) face meshes in the box's pixels. Each eye is worked on inside the window around its plate
    and edited openings only (nothing outside them is read or changed), a fraction of the face's box.
    """
    shape = plate_linear.shape[:2]
    alpha = np.zeros(shape, np.float32)
    colour = np.zeros(shape + (3,), np.float32)
    for upper, lower, iris in EYES:
        new_polygon, old_polygon = _polygon(edited, upper, lower), _polygon(source, upper, lower)
        window = _window([new_polygon, old_polygon], shape)
        if window is None:
            continue
        x0, y0, x1, y1 = window
        size = (y1 - y0, x1 - x0)
        new = _coverage(new_polygon, size, (x0, y0))
        if not new.any():
            continue
        old = _coverage(old_polygon, size, (x0, y0))
        here = _eye(plate_linear[y0:y1, x0:x1], old, source, edited, (upper, lower, iris), (x0, y0), shape[0])
        if here is None:
            continue
        colour[y0:y1, x0:x1] = np.where(new[..., None] > 0.0, here, colour[y0:y1, x0:x1])
        np.maximum(alpha[y0:y1, x0:x1], new, out=alpha[y0:y1, x0:x1])
    return alpha, colour


def _eye(plate: np.ndarray, old: np.ndarray, source: np.ndarray, edited: np.ndarray,
         eye: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], origin: tuple[int, int], box_height: int
         ) -> np.ndarray | None:
    """(h, w, 3) linear colour of one eye over a window of the box (``plate``, its top-left pixel at
    ``origin`` in the box) whose plate opening covers ``old``: the plate's eyeball where it showed, the
    drawn eyeball where the edited lids bare more. Worked out from box coordinates only, so any window
    that holds both openings gives the same bits as the whole box. None where the plate shows no eye.
    """
    upper, lower, iris = eye
    x0, y0 = origin
    size = plate.shape[:2]
    gy = np.arange(y0, y0 + size[0], dtype=np.float32)[:, None] + np.zeros(size, np.float32)
    gx = np.arange(x0, x0 + size[1], dtype=np.float32)[None, :] + np.zeros(size, np.float32)
    centre = source[iris[0], :2]
    radius = float(np.mean(np.linalg.norm(source[list(iris[1:]), :2] - centre, axis=1)))
    dist = np.hypot(gx - centre[0], gy - centre[1])
    in_iris = dist <= radius
    shown = old > 0.5
    white = shown & ~in_iris
    iris_seen = shown & in_iris
    lum = _luminance(plate)
    # The white is the brighter half of what the opening shows beside the iris (its edge pixels are
    # lashes, lid margin and shadow); a tiny eye with no room beside the iris uses all it shows.
    pool = white if white.sum() >= 3 else shown
    if not pool.any():
        return None
    order = np.argsort(lum[pool])
    whole_white = plate[pool][order[-max(1, len(order) // 2):]].mean(axis=0)
    beside = np.abs(np.arange(x0, x0 + size[1]) - centre[0]) > radius + 1.0
    sclera = _white_by_column(plate, lum, pool, beside, whole_white)
    iris_colour = np.median(plate[iris_seen], axis=0) if iris_seen.any() else 0.3 * whole_white
    was_top, was_bottom = _contour(source, upper, gx), _contour(source, lower, gx)
    band = np.maximum(MARGIN_BAND * (was_bottom - was_top), 1.0)
    # The iris as the plate shows it clear of both lids' margins (lashes, the lower lid's wet line).
    clear_iris = iris_seen & (gy >= was_top + band) & (gy <= was_bottom - band)
    drawn = _iris_and_white(plate, y0, box_height, centre, radius, dist, gy, clear_iris, iris_colour, sclera)
    # The upper lid shades the eyeball under it as the plate's own white shows at the same distance
    # under the plate's lid (in the upper half of each column's opening: below, the lower lid's
    # shade begins), in units of the plate's widest opening.
    top = _contour(edited, upper, gx)
    opening = max(float(np.max(was_bottom - was_top)), 1.0)
    upper_half = white & beside[None, :] & (gy - was_top < 0.5 * (was_bottom - was_top))
    drawn *= _lid_shade(lum, upper_half, (gy - was_top) / opening, _luminance(sclera[0]),
                        np.clip((gy - top) / opening, 0.0, 1.0))[..., None]
    # Where the plate showed the eyeball, it shows unmoved; the rest of the new opening is drawn.
    # Each lid's margin (the upper lid's shadow and lashes, the lower lid's wet line: the tracked
    # contour runs along the lid's outer edge, so the margin lies inside the opening) moves with its
    # lid: the band of the new opening along each edited lid shows the plate's margin band, moved by
    # the lid's motion. Left where it was, a narrowing lid's margin was covered by the unmoved eyeball
    # and the lid seemed not to move (a smile's lower lids, 2-3 px up on a London face, read as 1);
    # a raised lid's old margin stayed as a dark seam across the iris. The band a lid leaves when it
    # opens is eyeball now: drawn, blended into the plate's pixels as far as the lid moved.
    bottom = _contour(edited, lower, gx)
    rise, fall = was_top - top, bottom - was_bottom  # > 0: the lid opened the eye
    left = np.maximum(np.clip(rise, 0.0, 1.0) * np.clip(1.0 - (gy - was_top) / band, 0.0, 1.0),
                      np.clip(fall, 0.0, 1.0) * np.clip(1.0 - (was_bottom - gy) / band, 0.0, 1.0))
    left = left.astype(np.float32)[..., None]
    shown_here = np.where(left > 0.0, plate + left * (drawn - plate), plate)
    here = np.where(old[..., None] > 0.0, shown_here, drawn)
    # In an opening narrower than the two bands (a hard squint) each pixel goes to the nearer lid.
    upper_nearer = gy - top <= bottom - gy
    for moved, depth, near in ((rise, gy - top, (gy >= top - 1.0) & upper_nearer),
                               (-fall, bottom - gy, (gy <= bottom + 1.0) & ~upper_nearer)):
        edge = (np.clip(np.abs(moved), 0.0, 1.0) * np.clip(1.0 - depth / band, 0.0, 1.0) * near)
        edge = edge.astype(np.float32)[..., None]
        if edge.any():
            lined = here + edge * (_lifted(plate, gy + moved, y0) - here)
            here = np.where(edge > 0.0, lined, here)
    return here


def _contour(points: np.ndarray, lid: tuple[int, ...], gx: np.ndarray) -> np.ndarray:
    """The lid's y at each ``gx``, along its contour through ``points`` (sorted by x: a rolled head's
    contour need not run left to right)."""
    xs, ys = points[list(lid), 0], points[list(lid), 1]
    order = np.argsort(xs, kind="stable")
    return np.interp(gx, xs[order], ys[order])


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel luminance, summed channel by channel: a matrix product's bits can depend on the array's
    size (its blocking), and a window must give the same bits as the whole box."""
    return rgb[..., 0] * _LUMA[0] + rgb[..., 1] * _LUMA[1] + rgb[..., 2] * _LUMA[2]


def _lid_shade(lum: np.ndarray, white: np.ndarray, was_depth: np.ndarray, column_white: np.ndarray,
               depth: np.ndarray) -> np.ndarray:
    """(h, w) how bright the eyeball is at each ``depth`` under the upper lid against its white: as the
    plate's own ``white`` pixels show at that depth under the plate's lid (``was_depth``), over their
    column's white. The lid's shadow and lashes reach a set distance down an eye, so a raised lid brings
    its shadow along and what it bares below that is lit. ``LID_SHADE`` where the plate shows too little
    white to read. A fixed shade drew a raised lid's bared band as a flat, pale ribbon."""
    rows = np.clip((was_depth[white] * 2.0 * SHADE_BINS).astype(np.int64), 0, SHADE_BINS - 1)
    ratio = lum[white] / np.maximum(np.broadcast_to(column_white, lum.shape)[white], 1e-6)
    counts = np.bincount(rows, minlength=SHADE_BINS)
    sums = np.bincount(rows, weights=ratio.astype(np.float64), minlength=SHADE_BINS)
    known = np.flatnonzero(counts >= 3)
    if len(known) < 2:
        return LID_SHADE[1] + (1.0 - LID_SHADE[1]) * np.clip(depth / LID_SHADE[0], 0.0, 1.0)
    profile = np.clip(sums[known] / counts[known], 0.05, 1.0)
    return np.interp(depth, (known + 0.5) / (2.0 * SHADE_BINS), profile).astype(np.float32)


def _white_by_column(plate: np.ndarray, lum: np.ndarray, pool: np.ndarray, beside: np.ndarray,
                     whole: np.ndarray) -> np.ndarray:
    """(1, w, 3) colour of the eye's white in each column of the window: the brighter half of what
    ``pool`` shows within ``WHITE_REACH`` columns of it, for the columns ``beside`` the iris (above and
    below it a plate shows only slivers of lid margin), carried across the others from their neighbours.
    A white is darker toward the corners, where the eyeball turns away from the light; one colour for the
    whole eye drew a flat, pale band along a raised lid. An eye too small to show three such pixels
    anywhere gets ``whole`` (the whole eye's white)."""
    use = pool & beside[None, :]
    width = plate.shape[1]
    # Each column with its neighbours' pixels stacked under it (none past the window's edges), so a
    # column that shows only a sliver of white does not hand one grainy pixel to the drawing.
    shifts = range(-WHITE_REACH, WHITE_REACH + 1)
    use = np.concatenate([_shifted(use, k, False) for k in shifts])
    lum = np.concatenate([_shifted(lum, k, 0.0) for k in shifts])
    plate = np.concatenate([_shifted(plate, k, 0.0) for k in shifts])
    counts = use.sum(axis=0)
    found = (counts >= 3) & beside
    if not found.any():
        return np.broadcast_to(whole, (1, width, 3)).astype(np.float32)
    # Each column's pixels brightest first (the rest after them), then the mean of the first half.
    order = np.argsort(np.where(use, -lum, np.inf), axis=0, kind="stable")
    ranked = np.cumsum(np.take_along_axis(plate, order[..., None], axis=0), axis=0, dtype=np.float64)
    half = np.maximum(counts // 2, 1)
    columns = np.arange(width)
    values = ranked[half - 1, columns] / half[:, None]
    known = np.flatnonzero(found)
    filled = np.stack([np.interp(columns, known, values[known, c]) for c in range(3)], axis=1)
    return filled.astype(np.float32)[None]


def _shifted(array: np.ndarray, k: int, fill: float | bool) -> np.ndarray:
    """``array`` moved ``k`` columns to the right (its first axis rows kept), ``fill`` where it left."""
    out = np.full_like(array, fill)
    if k > 0:
        out[:, k:] = array[:, :-k]
    elif k < 0:
        out[:, :k] = array[:, -k:]
    else:
        out[:] = array
    return out


def _iris_and_white(plate: np.ndarray, y0: int, box_height: int, centre: np.ndarray, radius: float,
                    dist: np.ndarray, gy: np.ndarray, clear_iris: np.ndarray, iris_colour: np.ndarray,
                    sclera: np.ndarray) -> np.ndarray:
    """(h, w, 3) eyeball to draw where the lids bare what the plate hid: the iris, its edge anti-aliased,
    is the plate's own iris mirrored about its horizontal midline (the lower iris a lid seldom covers
    gives the upper its texture and dark limbal ring), or, where the mirror falls off what the plate
    shows, what the plate shows at the same distance from the iris's centre; the white around it by
    column. (The tracked iris circle is seldom exact: a flat colour out to it drew a hard dark rim.)"""
    rows = 2.0 * centre[1] - gy
    inside = clear_iris.astype(np.float32)[..., None]
    # A mirror that falls past the box's edge would repeat its last row.
    mirrored_ok = (_lifted(inside, rows, y0)[..., 0] >= 0.999) & (rows >= 0.0) & (rows <= box_height - 1.0)
    iris = np.where(mirrored_ok[..., None], _lifted(plate, rows, y0),
                    _radial(plate, dist, clear_iris, iris_colour))
    cover = np.clip(radius + 0.5 - dist, 0.0, 1.0)[..., None]
    return (cover * iris + (1.0 - cover) * sclera).astype(np.float32)


def _radial(plate: np.ndarray, dist: np.ndarray, seen: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """(h, w, 3): at each pixel, the mean of what ``seen`` shows at the same distance from the iris's
    centre (half-pixel rings; rings it shows nothing of take the nearest ones), or ``fallback``."""
    if not seen.any():
        return np.broadcast_to(fallback, dist.shape + (3,)).astype(np.float32)
    ring = np.floor(dist * 2.0).astype(np.int64)
    rings = int(ring.max()) + 1
    counts = np.bincount(ring[seen], minlength=rings).astype(np.float64)
    known = np.flatnonzero(counts)
    profile = np.empty((rings, 3), np.float64)
    for c in range(3):
        sums = np.bincount(ring[seen], weights=plate[..., c][seen].astype(np.float64), minlength=rings)
        profile[:, c] = np.interp(np.arange(rings), known, sums[known] / counts[known])
    return profile.astype(np.float32)[ring]


def _lifted(window: np.ndarray, rows: np.ndarray, y0: int) -> np.ndarray:
    """``window`` (h, w, 3) (its first row is frame row ``y0``) sampled at frame rows ``rows`` (h, w) in
    each pixel's own column, linearly between rows; rows past the window take its edge. Worked out from
    frame coordinates, so a window gives the same bits as the whole frame would."""
    low = np.floor(rows)
    fraction = (rows - low).astype(np.float32)[..., None]
    top = np.clip(low.astype(np.int64) - y0, 0, window.shape[0] - 1)
    below = np.clip(top + 1, 0, window.shape[0] - 1)
    columns = np.arange(window.shape[1])[None, :]
    return window[top, columns] * (1.0 - fraction) + window[below, columns] * fraction

