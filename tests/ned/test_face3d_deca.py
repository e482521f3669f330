"""face3d 'deca': DECA codes -> FaceFit geometry, the encoder path on frames, codes from files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ned_core.errors import InvalidOptionError, MissingModelError
from ned_core.ned import deca_codes
from ned_core.ned.face3d_deca import DecaFaceModeller, crop_box_transform, read_crop_boxes
from ned_core.ned.flame import load_flame
from ned_core.track.base import FaceTrack

from .conftest import LOST_FRAME, PLATE_FRAMES, StandInTracker


def _codes(count: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    tform = np.array([[0.5, 0.1, 10.0], [-0.1, 0.5, 20.0], [0.0, 0.0, 1.0]])
    return {"shape": np.repeat(rng.normal(size=(1, 100)), count, 0), "exp": rng.normal(size=(count, 50)),
            "pose": rng.normal(size=(count, 6)) * 0.2, "tex": np.zeros((count, 50)),
            "cam": np.c_[rng.uniform(6, 9, count), rng.normal(size=(count, 2)) * 0.01],
            "light": np.zeros((count, 9, 3)), "tform": np.repeat(tform[None], count, 0)}


def _track(count: int) -> FaceTrack:
    return FaceTrack(frames=list(range(count)), landmarks=np.zeros((count, 68, 3)), found=np.ones(count, bool),
                     confidence=np.ones(count), boxes=np.zeros((count, 4)), image_size=(100, 100),
                     topology="ibug68")


def test_fit_reproduces_decas_projection(tiny_models):
    """identity + expression through the fit's pose lands where DECA's camera and crop put FLAME."""
    modeller = DecaFaceModeller(flame=tiny_models["flame"], codes=None, deca=tiny_models["deca"])
    codes = _codes(4)
    fit = modeller.fit_from_codes(_track(4), codes)
    flame = load_flame(tiny_models["flame"])
    for t in range(4):
        with torch.no_grad():
            verts = flame(*(torch.tensor(codes[k][t:t + 1]).float() for k in ("shape", "exp", "pose")))[0]
        verts = verts.double().numpy()
        s, tx, ty = codes["cam"][t]
        crop = np.stack([112 + 112 * s * (verts[:, 0] + tx), 112 - 112 * s * (verts[:, 1] + ty)], axis=1)
        inv = np.linalg.inv(codes["tform"][t])
        expected = crop @ inv[:2, :2].T + inv[:2, 2]
        got = fit.to_image(t, fit.local_shape(t))
        assert np.abs(got[:, :2] - expected).max() < 1e-3
        assert np.isclose(np.linalg.det(fit.rotation[t]), 1.0)
        # The face (FLAME +z) points toward the viewer: its front vertex is the nearest.
        assert got[np.argmax(verts[:, 2]), 2] > got[:, 2].mean()
    assert fit.topology == f"flame{len(flame.v_template)}" and fit.triangles.dtype == np.int32
    assert np.allclose(fit.params["identity_shape"], codes["shape"][0], atol=1e-6)


def test_encoder_path_on_frames(tiny_models):
    tracker = StandInTracker()
    images = [np.full((120, 160, 3), 90, np.uint8) for _ in PLATE_FRAMES]
    track = tracker.track(PLATE_FRAMES, images)
    fit = DecaFaceModeller(flame=tiny_models["flame"], deca=tiny_models["deca"]).fit(track, images=tracker.images)
    lost = PLATE_FRAMES.index(LOST_FRAME)
    assert fit.found.tolist() == track.found.tolist()
    assert not fit.expression[lost].any() and fit.params["exp"][lost].sum() == 0
    for key, shape in (("exp", (50,)), ("pose", (6,)), ("cam", (3,)), ("light", (9, 3)), ("tform", (3, 3)),
                       ("points68", (68, 2)), ("pupils", (2, 2))):
        assert fit.params[key].shape == (len(PLATE_FRAMES), *shape), key
    assert np.allclose(fit.params["cam"][0, 0], 7.0, atol=0.1)  # the tiny encoder's camera
    # The head lands on the tracked face: its projected centre is inside the landmarks' box.
    centre = fit.to_image(0, fit.local_shape(0))[:, :2].mean(axis=0)
    pts = fit.params["points68"][0]
    assert (pts.min(axis=0) < centre).all() and (centre < pts.max(axis=0)).all()
    assert not np.isnan(fit.params["pupils"][0]).any()  # estimated from the frame (no iris points)


def test_codes_written_then_read_give_the_same_fit(tiny_models, tmp_path):
    tracker = StandInTracker(lost=())
    images = [np.full((120, 160, 3), 90, np.uint8) for _ in PLATE_FRAMES]
    track = tracker.track(PLATE_FRAMES, images)
    first = DecaFaceModeller(flame=tiny_models["flame"], deca=tiny_models["deca"], save_codes=str(tmp_path / "DECA"))
    fit = first.fit(track, images=tracker.images)
    assert len(list((tmp_path / "DECA").glob("*.npz"))) == len(PLATE_FRAMES)
    again = DecaFaceModeller(flame=tiny_models["flame"], codes=str(tmp_path / "DECA")).fit(track)
    assert np.allclose(again.expression, fit.expression, atol=1e-5)
    assert np.allclose(again.translation, fit.translation, atol=1e-3)


def test_ned_crop_boxes_compose_with_the_crop_transform(tmp_path):
    path = tmp_path / "clip.txt"
    path.write_text("videos/clip.mp4 25.0 fps 2 frames\n10 20 138 148\n12 20 140 148\n")
    boxes = read_crop_boxes(path)
    assert boxes.shape == (2, 4)
    m = crop_box_transform(boxes[0])
    # Pixel centres: the box's first pixel centre maps to the crop's, scale 2 (128 px -> 256).
    assert np.allclose(m @ [10.0, 20.0, 1.0], [0.5, 0.5, 1.0]) and np.isclose(m[0, 0], 2.0)


def test_errors_name_what_is_missing(tiny_models, tmp_path):
    with pytest.raises(MissingModelError, match="generic_model"):
        DecaFaceModeller(flame=str(tmp_path / "generic_model.pkl"), deca=tiny_models["deca"])
    modeller = DecaFaceModeller(flame=tiny_models["flame"], deca=tiny_models["deca"])
    with pytest.raises(InvalidOptionError, match="frames"):
        modeller.fit(_track(3))
    deca_codes.write_folder(tmp_path / "few", {k: v[:2] for k, v in _codes(2).items()})
    with pytest.raises(InvalidOptionError, match="2 frames"):
        DecaFaceModeller(flame=tiny_models["flame"], codes=str(tmp_path / "few")).fit(_track(3))
