"""manipulate 'ned': keyframes -> styles, seeded label mode, reference mode, what is written back."""

from __future__ import annotations

import numpy as np
import pytest

from ned_core import EMOTIONS
from ned_core.errors import InvalidOptionError
from ned_core.ned import deca_codes
from ned_core.ned.face3d_deca import DecaFaceModeller
from ned_core.ned.manipulate_ned import NedManipulator, fill_lost, frame_styles
from ned_core.track.base import FaceTrack

T = 14
HAPPY = EMOTIONS.index("happy")


@pytest.fixture(scope="module")
def fit(tiny_models):
    rng = np.random.default_rng(3)
    codes = {"shape": np.repeat(rng.normal(size=(1, 100)), T, 0), "exp": rng.normal(size=(T, 50)) * 0.5,
             "pose": np.c_[rng.normal(size=(T, 3)) * 0.1, 0.1 + 0.05 * np.sin(np.arange(T)), np.zeros((T, 2))],
             "cam": np.tile([7.0, 0.0, 0.0], (T, 1)), "tform": np.tile(np.eye(3), (T, 1, 1))}
    found = np.ones(T, bool)
    found[4] = False
    track = FaceTrack(frames=list(range(T)), landmarks=np.zeros((T, 68, 3)), found=found, confidence=np.ones(T),
                      boxes=np.zeros((T, 4)), image_size=(64, 64), topology="ibug68")
    return DecaFaceModeller(flame=tiny_models["flame"], deca=tiny_models["deca"]).fit_from_codes(track, codes)


def _manipulator(tiny_models, **options) -> NedManipulator:
    return NedManipulator(checkpoint=tiny_models["manipulator"], flame=tiny_models["flame"], **options)


def _weights(emotion: str = "happy", intensity: float = 1.0) -> np.ndarray:
    w = np.zeros((T, 7))
    w[:, EMOTIONS.index(emotion)] = intensity
    return w


def test_label_mode_is_deterministic_with_a_seed(tiny_models, fit):
    a = _manipulator(tiny_models, seed=5).edit_codes(fit, _weights(), 0.0)
    b = _manipulator(tiny_models, seed=5).edit_codes(fit, _weights(), 0.0)
    c = _manipulator(tiny_models, seed=6).edit_codes(fit, _weights(), 0.0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


def test_only_expression_and_jaw_opening_change(tiny_models, fit):
    exp, pose = _manipulator(tiny_models).edit_codes(fit, _weights(), mouth_preservation=0.0)
    src_pose = fit.params["pose"]
    assert not np.allclose(exp, fit.params["exp"])
    assert np.array_equal(np.delete(pose, 3, axis=1), np.delete(src_pose, 3, axis=1))
    assert not np.allclose(pose[:, 3], src_pose[:, 3])
    # mouth_preservation 1 (the pipeline's default) keeps the actor's jaw exactly.
    _, kept = _manipulator(tiny_models).edit_codes(fit, _weights(), mouth_preservation=1.0)
    assert np.array_equal(kept, src_pose.astype(np.float64))
    # Lost frames keep their codes.
    assert np.array_equal(exp[4], fit.params["exp"][4])


def test_intensity_scales_the_edit_and_neutral_is_no_edit(tiny_models, fit):
    m = _manipulator(tiny_models)
    full, _ = m.edit_codes(fit, _weights(intensity=1.0), 0.0)
    half, _ = m.edit_codes(fit, _weights(intensity=0.5), 0.0)
    src = fit.params["exp"].astype(np.float64)
    assert np.allclose(half - src, 0.5 * (full - src), atol=1e-5)
    none, _ = m.edit_codes(fit, _weights("neutral", 1.0), 0.0)
    assert np.array_equal(none, src)


def test_styles_blend_the_rows_emotions():
    labels = np.arange(7 * 2, dtype=np.float64).reshape(7, 2)
    w = np.zeros((3, 7))
    w[0, HAPPY] = 1.0
    w[1, [HAPPY, EMOTIONS.index("sad")]] = [0.25, 0.75]
    w[2, 0] = 1.0  # neutral only: intensity 0, style of the nearest emotional row
    styles, intensity = frame_styles(w, labels)
    assert np.allclose(styles[0], labels[HAPPY]) and np.allclose(intensity, [1.0, 1.0, 0.0])
    assert np.allclose(styles[1], 0.25 * labels[HAPPY] + 0.75 * labels[EMOTIONS.index("sad")])
    assert np.allclose(styles[2], styles[1])
    assert np.array_equal(fill_lost(np.arange(5.0), np.array([0, 1, 0, 0, 1], bool)), [1, 1, 1, 4, 4])


def test_edit_writes_codes_and_returns_flame_offsets(tiny_models, fit):
    m = _manipulator(tiny_models)
    edited = m.edit(fit, _weights(), mouth_preservation=0.0)
    assert edited.shape == fit.expression.shape and edited.dtype == np.float32
    assert fit.params["edit_exp"].shape == (T, 50) and fit.params["edit_pose"].shape == (T, 6)
    assert np.array_equal(edited[4], fit.expression[4])
    assert np.abs(edited - fit.expression).max() > 0
    # Unedited codes give back the fit's own expression.
    same = m.edit(fit, _weights("neutral"), 0.0)
    assert np.allclose(same, fit.expression, atol=1e-5)


def test_reference_mode_and_short_shots(tiny_models, fit, tmp_path):
    rng = np.random.default_rng(0)
    deca_codes.write_folder(tmp_path / "ref", {"exp": rng.normal(size=(12, 50)), "pose": rng.normal(size=(12, 6))})
    m = _manipulator(tiny_models, reference=str(tmp_path / "ref"))
    exp, _ = m.edit_codes(fit, _weights("angry"), 0.0)
    assert exp.shape == (T, 50) and not np.allclose(exp, fit.params["exp"])
    with pytest.raises(InvalidOptionError, match="at least 10"):
        deca_codes.write_folder(tmp_path / "short", {"exp": np.zeros((4, 50)), "pose": np.zeros((4, 6))})
        _manipulator(tiny_models, reference=str(tmp_path / "short"))
    # A shot shorter than a window is padded and still edited.
    out = _manipulator(tiny_models).translate(np.zeros((3, 51), np.float32), np.zeros((3, 16)))
    assert out.shape == (3, 51)


def test_bad_options(tiny_models, fit):
    with pytest.raises(InvalidOptionError, match="seed"):
        _manipulator(tiny_models, seed="x")
    with pytest.raises(InvalidOptionError, match="weights"):
        _manipulator(tiny_models).edit_codes(fit, np.zeros((T, 6)))


def test_mouth_preservation_per_frame_frees_the_jaw_only_where_keyed(tiny_models, fit):
    m = _manipulator(tiny_models)
    free_exp, free_pose = m.edit_codes(fit, _weights(), 0.0)
    _, kept_pose = m.edit_codes(fit, _weights(), 1.0)
    per_frame = np.ones(T)
    per_frame[:3] = 0.0  # the artist frees the mouth on the first three frames
    exp, pose = m.edit_codes(fit, _weights(), per_frame)
    assert np.array_equal(pose[:3], free_pose[:3]) and np.array_equal(pose[3:], kept_pose[3:])
    assert np.array_equal(exp, free_exp)  # only the jaw follows mouth preservation
    # A constant array is the scalar, bit for bit.
    for value in (0.0, 0.4, 1.0):
        a = m.edit_codes(fit, _weights(), np.full(T, value))
        b = m.edit_codes(fit, _weights(), value)
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    with pytest.raises(InvalidOptionError):
        m.edit_codes(fit, _weights(), np.ones(T + 1))
    with pytest.raises(InvalidOptionError):
        m.edit_codes(fit, _weights(), np.full(T, 1.5))
