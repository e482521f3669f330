"""render 'ned': conditioning images, temporal chains (chunk = full run), output into the plate."""

from __future__ import annotations

import numpy as np
import pytest

from ned_core.errors import InvalidOptionError
from ned_core.ned import landmarks
from ned_core.ned.conditioning import Conditioner, FrameGeometry, pupil_from_image
from ned_core.ned.face3d_deca import DecaFaceModeller
from ned_core.ned.flame import load_flame, nmfc_vertex_colors
from ned_core.ned.manipulate_ned import NedManipulator
from ned_core.ned.render_ned import NedRenderer, chain_start
from ned_core.render.base import FrameFace

from .conftest import PLATE_FRAMES, PLATE_H, PLATE_W, StandInTracker


@pytest.fixture(scope="module")
def edited_fit(tiny_models):
    tracker = StandInTracker()
    images = [np.full((PLATE_H, PLATE_W, 3), 90, np.uint8) for _ in PLATE_FRAMES]
    fit = DecaFaceModeller(flame=tiny_models["flame"], deca=tiny_models["deca"]).fit(
        tracker.track(PLATE_FRAMES, images), images=tracker.images)
    weights = np.zeros((len(PLATE_FRAMES), 7))
    weights[:, 4] = 1.0
    edited = NedManipulator(checkpoint=tiny_models["manipulator"], flame=tiny_models["flame"]).edit(fit, weights, 0.0)
    return fit, edited


def _renderer(tiny_models, **options) -> NedRenderer:
    options.setdefault("size", 64)
    return NedRenderer(checkpoint=tiny_models["renderer"], flame=tiny_models["flame"], **options)


def _face(fit, edited, i) -> FrameFace:
    src = fit.to_image(i, fit.local_shape(i))
    return FrameFace(source=src, edited=fit.to_image(i, fit.identity + edited[i]), triangles=fit.triangles,
                     fit=fit, index=i, edited_expression=edited[i])


def test_chain_starts():
    found = np.array([True] * 5 + [False] + [True] * 12)
    starts = [chain_start(found, i, segment=4, warmup=2) for i in range(len(found))]
    assert starts[:5] == [0] * 4 + [2]  # 4 into the first run: restart 2 frames early
    assert starts[6:10] == [6] * 4 and starts[10:14] == [8] * 4 and starts[14:] == [12] * 4
    assert [chain_start(found, i, 0, 0) for i in (3, 17)] == [0, 6]


def test_conditioning_images(tiny_models, edited_fit):
    fit, edited = edited_fit
    flame = load_flame(tiny_models["flame"])
    cond = Conditioner(flame.faces.numpy(), nmfc_vertex_colors(flame.v_template).numpy(), size=64)
    i = 0
    geometry = FrameGeometry(source=fit.to_image(i, fit.local_shape(i)),
                             edited=fit.to_image(i, fit.identity + edited[i]),
                             points68=fit.params["points68"][i], pupils=fit.params["pupils"][i])
    eye_ids = Conditioner.eye_vertices(geometry.source, geometry.points68)
    c = cond.frame(geometry, eye_ids)
    covered = c.nmfc.sum(axis=2) > 0
    assert covered.mean() > 0.1 and 0.0 <= c.nmfc.min() and c.nmfc.max() <= 1.0
    assert np.array_equal(covered, c.shape[..., 0] > 0)  # same visible surface
    assert c.shape.max() <= 1.0 and np.allclose(c.shape[..., 0], c.shape[..., 2])  # grey
    assert c.eye[..., 0].max() > 0.5 and c.eye[..., 1:].max() == 0  # red disks only
    assert set(np.unique(c.mask)) == {0.0, 1.0}
    aligned = landmarks.apply_2d(c.align, geometry.points68)
    assert np.abs(aligned - cond.template).mean() < 1.0  # the track lands on the template
    assert c.channels().shape == (10, 64, 64)


def test_pupil_is_the_dark_centre():
    gray = np.full((20, 20), 255, np.uint8)
    gray[9:12, 12:15] = 0
    eye = np.array([[4, 10], [8, 6], [14, 6], [18, 10], [14, 14], [8, 14]], np.float64)
    assert np.allclose(pupil_from_image(gray, eye), [13, 10], atol=1.0)


def test_a_chunk_gives_the_pixels_of_the_full_run(tiny_models, edited_fit):
    fit, edited = edited_fit
    plate = np.random.default_rng(0).random((PLATE_H, PLATE_W, 4)).astype(np.float32)
    found = np.flatnonzero(fit.found)
    full = _renderer(tiny_models, segment=4, warmup=2)
    outputs = {i: full.render(plate, _face(fit, edited, i)) for i in found}
    for start in (8, 10, 11):  # a fresh renderer (a farm node) starting mid-shot
        chunk = _renderer(tiny_models, segment=4, warmup=2)
        for i in range(start, len(PLATE_FRAMES)):
            out = chunk.render(plate, _face(fit, edited, i))
            assert np.array_equal(out.pixels, outputs[i].pixels), (start, i)
            assert np.array_equal(out.matte, outputs[i].matte)


def test_first_frames_are_rendered_and_the_rest_is_the_plate(tiny_models, edited_fit):
    fit, edited = edited_fit
    plate = np.random.default_rng(1).random((PLATE_H, PLATE_W, 4)).astype(np.float32)
    renderer = _renderer(tiny_models)
    for i in (0, 1):
        out = renderer.render(plate, _face(fit, edited, i))
        inside = out.matte > 0
        assert inside.any() and out.matte.max() <= 1.0
        assert np.array_equal(out.pixels[~inside], plate[~inside])
        assert not np.array_equal(out.pixels[inside], plate[inside])
        assert np.array_equal(out.pixels[..., 3], plate[..., 3])  # alpha kept


def test_bad_options_and_inputs(tiny_models, edited_fit):
    with pytest.raises(InvalidOptionError, match="multiple of 4"):
        _renderer(tiny_models, size=66)
    with pytest.raises(InvalidOptionError, match="warmup"):
        _renderer(tiny_models, segment=4, warmup=4)
    fit, edited = edited_fit
    face = _face(fit, edited, 0)
    face.fit = None
    with pytest.raises(InvalidOptionError, match="face fit"):
        _renderer(tiny_models).render(np.zeros((PLATE_H, PLATE_W, 4), np.float32), face)


def test_another_manipulators_offsets_win_over_stale_codes(tiny_models, edited_fit):
    import copy

    fit, _ = edited_fit
    plain = copy.copy(fit)
    plain.params = {k: v for k, v in fit.params.items() if not k.startswith("edit_")}
    plate = np.zeros((PLATE_H, PLATE_W, 4), np.float32)
    unedited = np.asarray(fit.expression)
    stale = _renderer(tiny_models).render(plate, _face(fit, unedited, 0))  # codes say "happy", offsets don't
    clean = _renderer(tiny_models).render(plate, _face(plain, unedited, 0))
    assert np.array_equal(stale.pixels, clean.pixels)
