"""Keyed mouth preservation: the artist frees the mouth on some frames of a talking shot, keeps it on others."""

from __future__ import annotations

import numpy as np
import pytest
from face_fixtures import skin, template_fit

from ned_core import EMOTIONS, mesh
from ned_core.appearance.ratio import ExpressionAppearance
from ned_core.errors import InvalidOptionError
from ned_core.face3d.base import FaceFit
from ned_core.keyframes import EmotionCurve, EmotionKey
from ned_core.manipulate.facs import FacsRig
from ned_core.render.base import FrameFace
from ned_core.render.warp import MeshWarpRenderer

FRAMES = [1001, 1002, 1003, 1004, 1005, 1006]


@pytest.fixture(scope="module")
def rig() -> FacsRig:
    return FacsRig()


@pytest.fixture(scope="module")
def fit() -> FaceFit:
    """The appearance template, mouth shut, on six frames."""
    return template_fit(FRAMES)


def happy_curve(*mouth: tuple[int, float | None], interpolation: str = "step") -> EmotionCurve:
    return EmotionCurve([EmotionKey(f, {"happy": 1.0}, p) for f, p in mouth], interpolation)


def openings(fit: FaceFit, expression: np.ndarray) -> np.ndarray:
    shape = fit.identity[None] + expression
    return shape[:, [lo for _, lo in mesh.INNER_LIP_PAIRS]] - shape[:, [u for u, _ in mesh.INNER_LIP_PAIRS]]


# -- the curve --------------------------------------------------------------------------------------------
def test_keys_without_a_value_take_the_jobs_and_values_interpolate_like_the_weights() -> None:
    curve = happy_curve((1001, 1.0), (1005, 0.0), (1009, None), interpolation="linear")
    assert curve.keys_mouth
    assert np.allclose(curve.mouth_preservation([1000, 1001, 1003, 1005, 1007, 1009, 1020], 1.0),
                       [1.0, 1.0, 0.5, 0.0, 0.5, 1.0, 1.0])
    assert np.allclose(curve.mouth_preservation([1007], 0.0), [0.0])  # a still's default
    smooth = happy_curve((0, 1.0), (10, 0.0), interpolation="smooth")
    weights = EmotionCurve([EmotionKey(0, {"happy": 1.0}), EmotionKey(10, {"happy": 0.0})], "smooth")
    frames = list(range(11))
    assert np.allclose(smooth.mouth_preservation(frames, 1.0),
                       weights.weights(frames)[:, EMOTIONS.index("happy")])
    assert not EmotionCurve.parse_keys(["1:happy=1"]).keys_mouth


def test_parse_keys_reads_the_reserved_mouth_item_and_round_trips() -> None:
    curve = EmotionCurve.parse_keys(["1001:happy=1,mouth=0", "1010:happy=0.5"], "linear")
    assert curve.keys[0].mouth_preservation == 0.0 and curve.keys[0].weights == {"happy": 1.0}
    assert curve.keys[1].mouth_preservation is None
    data = curve.to_data()
    assert data["keys"][0]["mouth_preservation"] == 0.0 and "mouth_preservation" not in data["keys"][1]
    again = EmotionCurve.from_data(data)
    assert [k.mouth_preservation for k in again.keys] == [0.0, None]
    with pytest.raises(InvalidOptionError, match="within 0..1") as error:
        EmotionCurve.parse_keys(["1001:happy=1,mouth=2"])
    assert error.value.field == "mouth_preservation"
    with pytest.raises(InvalidOptionError, match="bad --key") as error:
        EmotionCurve.parse_keys(["1001:mouth=0"])  # a key still needs an emotion weight
    assert error.value.field == "key"


# -- the rig ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0.0, 0.35, 1.0])
def test_a_constant_array_is_the_scalar_bit_for_bit(rig: FacsRig, fit: FaceFit, value: float) -> None:
    weights = happy_curve((1001, None)).weights(FRAMES)
    assert np.array_equal(rig.edit(fit, weights, np.full(len(FRAMES), value)), rig.edit(fit, weights, value))


def test_keyed_frames_open_the_mouth_and_kept_frames_keep_every_opening(rig: FacsRig, fit: FaceFit) -> None:
    curve = happy_curve((1001, 1.0), (1003, 0.0), (1005, 1.0))  # step: 1, 1, 0, 0, 1, 1
    mouth = curve.mouth_preservation(FRAMES, 1.0)
    assert mouth.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    edited = rig.edit(fit, curve.weights(FRAMES), mouth)
    change = np.abs(openings(fit, edited) - openings(fit, fit.expression)).max(axis=(1, 2))
    kept, free = mouth == 1.0, mouth == 0.0
    assert np.all(change[kept] <= 1e-12)  # the plate's inner-lip openings, exactly
    assert np.all(change[free] > 0.005)
    # Each frame is what a scalar run gives it.
    np.testing.assert_allclose(edited[kept], rig.edit(fit, curve.weights(FRAMES), 1.0)[kept], atol=1e-12)
    np.testing.assert_allclose(edited[free], rig.edit(fit, curve.weights(FRAMES), 0.0)[free], atol=1e-12)


def test_only_the_freed_frames_get_teeth(rig: FacsRig, fit: FaceFit) -> None:
    curve = happy_curve((1001, 1.0), (1003, 0.0), (1005, 1.0))
    weights, mouth = curve.weights(FRAMES), curve.mouth_preservation(FRAMES, 1.0)
    edited = rig.edit(fit, weights, mouth)
    stage, renderer = ExpressionAppearance(), MeshWarpRenderer()
    plate = skin()
    x, y = fit.to_image(0, fit.local_shape(0))[mesh.UPPER_LIP_INNER, :2].astype(int)
    box = (slice(y - 15, y + 30), slice(x - 40, x + 40))
    teeth = []
    for i in range(len(FRAMES)):
        face = FrameFace(source=fit.to_image(i, fit.local_shape(i)),
                         edited=fit.to_image(i, fit.local_shape(i, edited[i])), triangles=fit.triangles, fit=fit,
                         index=i, edited_expression=edited[i], edited_sequence=edited, colorspace=None,
                         weights=weights[i][None])
        warped = renderer.render(plate, face)
        out = stage.apply(plate, warped, face)
        # Creases alone are a gentle gain on the warped mouth; the mouth layer (teeth, and the dark
        # between them) replaces the skin with far brighter and far darker pixels.
        ratio = out.pixels[box][..., :3] / np.maximum(warped.pixels[box][..., :3], 1e-6)
        teeth.append(bool(ratio.max() > 1.6 and ratio.min() < 0.4))
    assert teeth == [False, False, True, True, False, False]


def test_bad_per_frame_values_are_refused(rig: FacsRig, fit: FaceFit) -> None:
    weights = happy_curve((1001, None)).weights(FRAMES)
    for bad in (np.ones(len(FRAMES) + 1), np.array([1.0, 1.0, np.nan, 1.0, 1.0, 1.0]),
                np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.2])):
        with pytest.raises(InvalidOptionError) as error:
            rig.edit(fit, weights, bad)
        assert error.value.field == "mouth_preservation"
