"""The eye layer worked inside each eye's window gives the same bits as over the whole face box.

``reference_eye_layer`` draws each eye (``eyes._eye``) over the whole box, its lid openings covered on a
whole-box canvas; the windowed ``eye_layer`` must return identical alpha and colour for eyes anywhere in the
box, cut by its edges or not.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ned_core.appearance.eyes import EYES, _eye, eye_layer
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
    for eye in EYES:
        upper, lower, _ = eye
        new = _coverage(_polygon(edited, upper, lower), shape)
        if not new.any():
            continue
        old = _coverage(_polygon(source, upper, lower), shape)
        here = _eye(plate_linear, old, source, edited, eye, (0, 0), shape[0])
        if here is None:
            continue
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
    # The lower lids up (a smile, a glare) or down, each carrying its margin along.
    lower_lids = sorted({i for _, lower, _ in EYES for i in lower[1:-1]})
    edited[lower_lids, 1] += rng.uniform(-0.04, 0.02) * scale + rng.normal(0.0, 0.5, len(lower_lids))
    plate = (rng.random((height, width, 3)) * rng.uniform(0.5, 4.0)).astype(np.float32)
    got_alpha, got_colour = eye_layer(plate, source, edited)
    want_alpha, want_colour = reference_eye_layer(plate, source, edited)
    assert got_alpha.tobytes() == want_alpha.tobytes()
    assert got_colour.tobytes() == want_colour.tobytes()
