"""composite 'pyramid': NED's SoftErosion + Laplacian blend; the plate's bits outside the matte."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ned_core.composite.pyramid import PyramidCompositor, laplacian_blend, soft_erosion
from ned_core.errors import InvalidOptionError
from ned_core.render.base import RenderOutput

H, W = 240, 320


def _scene(seed: int = 0) -> tuple[np.ndarray, RenderOutput]:
    rng = np.random.default_rng(seed)
    plate = (rng.random((H, W, 4)) * 3 - 0.5).astype(np.float32)  # scene-linear: HDR and negatives
    matte = np.zeros((H, W), np.float32)
    cv2.ellipse(matte, (160, 120), (50, 70), 0, 0, 360, 1.0, -1)
    face = plate.copy()
    face[matte > 0, :3] = 0.25
    return plate, RenderOutput(pixels=face, matte=matte)


def test_soft_erosion_shrinks_a_hard_mask():
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 16:48] = 1.0
    soft, hard = soft_erosion(mask, 9, 0.8)
    assert hard.sum() < mask.sum() and hard[32, 32] and not hard[16, 16]
    assert soft.max() == 1.0 and soft[hard].min() == 1.0 and 0 < soft[16, 16] < 1


def test_blending_a_thing_with_itself_gives_it_back():
    rng = np.random.default_rng(1)
    image = rng.random((50, 70, 3)).astype(np.float32)
    mask = (rng.random((50, 70)) > 0.5).astype(np.float32)
    assert np.allclose(laplacian_blend(image, image, mask, 4), image, atol=1e-5)


def test_outside_the_matte_the_plate_is_untouched_and_inside_is_the_face():
    plate, rendered = _scene()
    out, matte = PyramidCompositor().composite(plate, rendered)
    assert out.dtype == np.float32 and matte.shape == (H, W)
    assert np.array_equal(out[matte == 0], plate[matte == 0])
    assert np.allclose(out[120, 160, :3], 0.25, atol=1e-4) and matte[120, 160] == pytest.approx(1.0, abs=1e-3)
    assert matte[0, 0] == 0 and (matte > 0).sum() > (rendered.matte > 0).sum() * 0.5


def test_user_mask_limits_the_edit():
    plate, rendered = _scene()
    user = np.zeros((H, W), np.float32)
    user[:, :160] = 1.0
    out, matte = PyramidCompositor().composite(plate, rendered, user)
    assert not matte[:, 160:].any()
    assert np.array_equal(out[:, 160:], plate[:, 160:])
    assert np.allclose(out[120, 150, :3], 0.25, atol=1e-3)


def test_nothing_to_blend_and_bad_options():
    plate, rendered = _scene()
    empty = RenderOutput(pixels=plate.copy(), matte=np.zeros((H, W), np.float32))
    out, matte = PyramidCompositor().composite(plate, empty)
    assert np.array_equal(out, plate) and not matte.any()
    with pytest.raises(InvalidOptionError, match="levels"):
        PyramidCompositor(levels=0)
    with pytest.raises(InvalidOptionError, match="plate's shape"):
        PyramidCompositor().composite(plate[:10], rendered)
