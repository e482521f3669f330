"""The eye layer worked inside each eye's window gives the same bits as over the whole face box.

``reference_eye_layer`` is ``eyes.eye_layer`` with every array over the whole box (as first written, plus the
raised lid's margin, and the drawn eyeball's helpers called on whole-box arrays); the windowed one must return
identical alpha and colour for eyes anywhere in the box, cut by its edges or not.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ned_core.appearance.eyes import (
    EYES,
    MARGIN_BAND,
    _iris_and_white,
    _lid_shade,
    _luminance,
    _white_by_column,
    eye_layer,
)
from ned_core.appearance.ratio import load_model


def _polygon(points, upper, lower):
    return np.concatenate([points[list(upper), :2], points[list(lower[::-1]), :2]])


def _coverage(polygon, shape):
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [np.round(polygon * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0


def reference_eye_layer(plate_linear, source, edited):
    shape = plate_linear.shape[:2]
    alpha = np.zeros(shape, np.float32)
    colour = np.zeros(shape + (3,), np.float32)
    gy, gx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    for upper, lower, iris in EYES:
        new = _coverage(_polygon(edited, upper, lower), shape)
        if not new.any():
            continue
        old = _coverage(_polygon(source, upper, lower), shape)
        centre = source[iris[0], :2]
        radius = float(np.mean(np.linalg.norm(source[list(iris[1:]), :2] - centre, axis=1)))
        dist = np.hypot(gx - centre[0], gy - centre[1])
        in_iris = dist <= radius
        shown = old > 0.5
        white = shown & ~in_iris
        iris_seen = shown & in_iris
        lum = _luminance(plate_linear)
        pool = white if white.sum() >= 3 else shown
        if not pool.any():
            continue
        order = np.argsort(lum[pool])
        whole_white = plate_linear[pool][order[-max(1, len(order) // 2):]].mean(axis=0)
        beside = np.abs(np.arange(shape[1]) - centre[0]) > radius + 1.0
        sclera = _white_by_column(plate_linear, lum, pool, beside, whole_white)
        iris_colour = np.median(plate_linear[iris_seen], axis=0) if iris_seen.any() else 0.3 * whole_white
        was_top = np.interp(gx, source[list(upper), 0], source[list(upper), 1])
        was_bottom = np.interp(gx, source[list(lower), 0], source[list(lower), 1])
        band = np.maximum(MARGIN_BAND * (was_bottom - was_top), 1.0)
        clear_iris = iris_seen & (gy >= was_top + band) & (gy <= was_bottom - band)
        drawn = _iris_and_white(plate_linear, 0, shape[0], centre, radius, dist, gy, clear_iris, iris_colour,
                                sclera)
        top = np.interp(gx, edited[list(upper), 0], edited[list(upper), 1])
        opening = max(float(np.max(was_bottom - was_top)), 1.0)
        upper_half = white & beside[None, :] & (gy - was_top < 0.5 * (was_bottom - was_top))
        drawn *= _lid_shade(lum, upper_half, (gy - was_top) / opening, _luminance(sclera[0]),
                            np.clip((gy - top) / opening, 0.0, 1.0))[..., None]
        rise = was_top - top
        risen = (np.clip(rise, 0.0, 1.0) * np.clip(1.0 - (gy - was_top) / band, 0.0, 1.0)).astype(np.float32)
        shown_here = np.where(risen[..., None] > 0.0, plate_linear + risen[..., None] * (drawn - plate_linear),
                              plate_linear)
        here = np.where(old[..., None] > 0.0, shown_here, drawn)
        edge = (np.clip(rise, 0.0, 1.0) * np.clip(1.0 - (gy - top) / band, 0.0, 1.0)
                * (gy >= top - 1.0)).astype(np.float32)
        if edge.any():
            rows = gy + np.maximum(rise, 0.0)
            low = np.floor(rows)
            fraction = (rows - low).astype(np.float32)[..., None]
            top_row = np.clip(low.astype(np.int64), 0, shape[0] - 1)
            columns = np.arange(shape[1])[None, :]
            moved = plate_linear[top_row, columns] * (1.0 - fraction) \
                + plate_linear[np.clip(top_row + 1, 0, shape[0] - 1), columns] * fraction
            here = np.where(edge[..., None] > 0.0, here + edge[..., None] * (moved - here), here)
        colour = np.where(new[..., None] > 0.0, here, colour)
        alpha = np.maximum(alpha, new)
    return alpha, colour


@pytest.mark.parametrize("case", range(32))
def test_windowed_eye_layer_equals_the_whole_box_one(case: int) -> None:
    rng = np.random.default_rng(case)
    template = load_model()["template"][:, :2].astype(np.float64)
    height, width = 260, 330
    scale = rng.uniform(60.0, 220.0)
    # Some faces sit so that an eye is cut by the box's edge, or lies outside it.
    offset = rng.uniform([-40.0, -60.0], [width + 40.0, height + 20.0]) if case % 3 == 0 \
        else rng.uniform([0.3 * width, 0.2 * height], [0.7 * width, 0.6 * height])
    source = template * scale + offset + rng.normal(0.0, 0.3, template.shape)
    if case >= 24:  # the iris tucked up under the lid (a squint, a look up): the plate shows none of it
        irises = [i for _, _, iris in EYES for i in iris]
        source[irises, 1] -= 0.12 * scale
    edited = source.copy()
    lids = [i for upper, _, _ in EYES for i in upper]
    edited[lids, 1] += rng.uniform(-0.08, 0.04) * scale + rng.normal(0.0, 0.5, len(lids))
    plate = (rng.random((height, width, 3)) * rng.uniform(0.5, 4.0)).astype(np.float32)
    got_alpha, got_colour = eye_layer(plate, source, edited)
    want_alpha, want_colour = reference_eye_layer(plate, source, edited)
    assert got_alpha.tobytes() == want_alpha.tobytes()
    assert got_colour.tobytes() == want_colour.tobytes()
