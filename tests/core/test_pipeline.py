"""The pipeline on a synthetic EXR shot with stand-in analysis stages and the real warp and composite."""

from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from ned_core.cache import AnalysisCache
from ned_core.errors import CancelledError, FrameRangeError, InvalidOptionError, NoFaceError
from ned_core.face3d.base import FaceFit
from ned_core.io import read_exr_channels
from ned_core.keyframes import EmotionCurve
from ned_core.pipeline import CancelToken, OutputSpec, Pipeline, Shot
from ned_core.track.base import FaceTrack

W, H = 160, 120
FRAMES = list(range(1001, 1007))
LOST = 1003


def _grid_face() -> np.ndarray:
    """A 7x7 grid of 'landmarks' standing in for a face, centred in the frame."""
    xs, ys = np.meshgrid(np.linspace(50, 110, 7), np.linspace(30, 90, 7))
    return np.stack([xs.ravel(), ys.ravel(), np.zeros(49)], axis=1)


class FakeTracker:
    topology = "grid49"

    def __init__(self, lost=(LOST,), none=False):
        self.calls = 0
        self.lost = set(lost)
        self.none = none

    def track(self, frames, images, hint=None, progress=None):
        self.calls += 1
        images = list(images)
        found = np.array([not self.none and f not in self.lost for f in frames])
        lm = np.repeat(_grid_face()[None], len(frames), axis=0).astype(np.float32)
        lm[~found] = np.nan
        return FaceTrack(frames=list(frames), landmarks=lm, found=found, confidence=found.astype(np.float32),
                         boxes=np.tile([50, 30, 110, 90], (len(frames), 1)).astype(np.float32),
                         image_size=(W, H), topology=self.topology)

    def detect(self, image):
        return [(50.0, 30.0, 110.0, 90.0)]


class FakeModeller:
    def fit(self, track):
        t = len(track.frames)
        import cv2
        pts = _grid_face()
        sub = cv2.Subdiv2D((0, 0, W, H))
        for x, y, _ in pts:
            sub.insert((float(x), float(y)))
        tris = []
        for x1, y1, x2, y2, x3, y3 in sub.getTriangleList():
            idx = [int(np.argmin(np.hypot(pts[:, 0] - x, pts[:, 1] - y))) for x, y in ((x1, y1), (x2, y2), (x3, y3))]
            if len(set(idx)) == 3:
                tris.append(idx)
        return FaceFit(frames=track.frames, identity=pts, expression=np.zeros((t, 49, 3)),
                       rotation=np.tile(np.eye(3), (t, 1, 1)), scale=np.ones(t), translation=np.zeros((t, 3)),
                       found=track.found.copy(), topology=track.topology, triangles=np.array(tris, np.int32))


class FakeManipulator:
    """Moves the centre landmark up by 4 px times the happy weight."""

    def edit(self, fit, weights, mouth_preservation=1.0):
        out = fit.expression.copy()
        out[:, 24, 1] -= 4.0 * weights[:, 4]
        return out


def _pipeline(tmp_path, tracker=None):
    stages = {"track": tracker or FakeTracker(), "face3d": FakeModeller(), "manipulate": FakeManipulator()}
    return Pipeline(cache=AnalysisCache(tmp_path / "cache"), stages=stages)


@pytest.fixture
def plate(tmp_path) -> str:
    rng = np.random.default_rng(0)
    for f in FRAMES:
        pixels = (rng.random((H, W, 3)) * 4 - 0.5).astype(np.float32)  # scene-linear, HDR and negatives
        spec = oiio.ImageSpec(W, H, 3, "half")
        spec.attribute("compression", "zip")
        spec.attribute("ned:test", "kept")
        out = oiio.ImageOutput.create(str(tmp_path / f"plate.{f}.exr"))
        out.open(str(tmp_path / f"plate.{f}.exr"), spec)
        out.write_image(pixels)
        out.close()
    return str(tmp_path / "plate.####.exr")


def _read(path):
    buf = oiio.ImageBuf(path)
    return buf.get_pixels(oiio.FLOAT)


def test_every_frame_written_with_layers_and_lost_frame_untouched(tmp_path, plate):
    out = tmp_path / "out" / "edit.####.exr"
    result = _pipeline(tmp_path).run(Shot(plate), EmotionCurve.parse_emotion("happy"), OutputSpec(str(out)))
    assert sorted(result.written) == FRAMES and result.lost_frames == [LOST]
    for f in FRAMES:
        channels = read_exr_channels(str(out).replace("####", str(f)))
        assert {"R", "G", "B", "A", "ned.matte", "stmap.u", "stmap.v"} <= set(channels)
    lost = read_exr_channels(str(out).replace("####", str(LOST)))
    src = _read(plate.replace("####", str(LOST)))
    assert np.array_equal(np.stack([lost["R"], lost["G"], lost["B"]], -1), src)
    assert not lost["ned.matte"].any()
    assert np.all(lost["A"] == 1)
    edited = read_exr_channels(str(out).replace("####", "1001"))
    assert edited["ned.matte"].max() > 0
    # STMap: Nuke convention u=(x+.5)/W, v=1-(y+.5)/H, identity where nothing moves.
    assert edited["stmap.u"][0, 0] == pytest.approx(0.5 / W) and edited["stmap.v"][0, 0] == pytest.approx(1 - 0.5 / H)
    spec = oiio.ImageInput.open(str(out).replace("####", "1001")).spec()
    assert spec.getattribute("ned:test") == "kept"


@pytest.mark.parametrize("layers", [("matte",), ("stmap",), ()])
def test_only_the_chosen_layers_are_written_and_the_rest_is_the_same(tmp_path, plate, layers):
    pipe = _pipeline(tmp_path)
    full = tmp_path / "full.####.exr"
    pipe.run(Shot(plate), EmotionCurve.parse_emotion("happy"), OutputSpec(str(full)))
    some = tmp_path / "some.####.exr"
    pipe.run(Shot(plate), EmotionCurve.parse_emotion("happy"), OutputSpec(str(some), layers=layers))
    expected = {"R", "G", "B", "A"} | ({"ned.matte"} if "matte" in layers else set()) \
        | ({"stmap.u", "stmap.v"} if "stmap" in layers else set())
    for f in FRAMES:
        whole = read_exr_channels(str(full).replace("####", str(f)))
        chosen = read_exr_channels(str(some).replace("####", str(f)))
        assert set(chosen) == expected
        for name in expected:
            assert np.array_equal(chosen[name].view(np.uint32), whole[name].view(np.uint32)), (f, name)
    # RGBA alone is one part, as a plain EXR
    image = oiio.ImageInput.open(str(some).replace("####", "1001"))
    assert image.seek_subimage(1, 0) == bool(layers)
    image.close()


def test_unknown_or_repeated_layers_are_refused():
    for layers in (("alpha",), ("matte", "matte")):
        with pytest.raises(InvalidOptionError) as error:
            OutputSpec("o.####.exr", layers=layers)
        assert error.value.field == "layers"


def test_outside_matte_is_bit_identical(tmp_path, plate):
    out = tmp_path / "o.####.exr"
    _pipeline(tmp_path).run(Shot(plate), EmotionCurve.parse_emotion("happy"), OutputSpec(str(out), half=False))
    got = read_exr_channels(str(out).replace("####", "1002"))
    src = _read(plate.replace("####", "1002"))
    rgb = np.stack([got["R"], got["G"], got["B"]], -1)
    outside = got["ned.matte"] == 0
    assert outside.mean() > 0.5
    assert np.array_equal(rgb[outside], src[outside])
    assert not np.array_equal(rgb, src)


def test_analysis_is_cached_per_shot(tmp_path, plate):
    tracker = FakeTracker()
    pipe = _pipeline(tmp_path, tracker)
    first = pipe.run(Shot(plate), EmotionCurve.parse_emotion("happy"), OutputSpec(str(tmp_path / "a.####.exr")))
    second = pipe.run(Shot(plate), EmotionCurve.parse_emotion("sad"), OutputSpec(str(tmp_path / "b.####.exr")))
    assert tracker.calls == 1 and not first.analysis_cached and second.analysis_cached


def test_chunks_equal_the_single_run(tmp_path, plate):
    curve = EmotionCurve.parse_keys(["1001:neutral=1", "1006:happy=1"], "linear")
    pipe = _pipeline(tmp_path)
    pipe.run(Shot(plate), curve, OutputSpec(str(tmp_path / "all.####.exr")))
    pipe.run(Shot(plate), curve, OutputSpec(str(tmp_path / "chunk.####.exr")), frames=[1001, 1002, 1003])
    pipe.run(Shot(plate), curve, OutputSpec(str(tmp_path / "chunk.####.exr")), frames=[1004, 1005, 1006])
    for f in FRAMES:
        a = Path(tmp_path / f"all.{f}.exr").read_bytes()
        b = Path(tmp_path / f"chunk.{f}.exr").read_bytes()
        assert a == b


def test_frames_outside_the_shot_are_refused(tmp_path, plate):
    with pytest.raises(FrameRangeError):
        _pipeline(tmp_path).run(Shot(plate), EmotionCurve.parse_emotion("happy"),
                                OutputSpec(str(tmp_path / "x.####.exr")), frames=[1005, 1009])
    assert not list(tmp_path.glob("x.*"))


def test_no_face_anywhere_writes_nothing(tmp_path, plate):
    with pytest.raises(NoFaceError):
        _pipeline(tmp_path, FakeTracker(none=True)).run(
            Shot(plate), EmotionCurve.parse_emotion("happy"), OutputSpec(str(tmp_path / "n.####.exr")))
    assert not list(tmp_path.glob("n.*"))


def test_cancel_stops_and_keeps_finished_frames(tmp_path, plate):
    token = CancelToken()
    written = []

    def on_frame(frame, path):
        written.append(frame)
        if len(written) == 2:
            token.cancel()

    with pytest.raises(CancelledError):
        _pipeline(tmp_path).run(Shot(plate), EmotionCurve.parse_emotion("happy"),
                                OutputSpec(str(tmp_path / "c.####.exr")), cancel=token, on_frame=on_frame)
    # Every file on disk is complete and was reported (a write already in flight finishes); the rest of
    # the shot was never started.
    on_disk = sorted(p.name for p in tmp_path.glob("c.*"))
    assert on_disk == [f"c.{f}.exr" for f in written]
    assert written[:2] == [1001, 1002] and len(written) < len(FRAMES)


def test_user_mask_limits_the_edit(tmp_path, plate):
    for f in FRAMES:
        mask = np.zeros((H, W, 1), np.float32)
        spec = oiio.ImageSpec(W, H, 1, "half")
        out = oiio.ImageOutput.create(str(tmp_path / f"mask.{f}.exr"))
        out.open(str(tmp_path / f"mask.{f}.exr"), spec)
        out.write_image(mask)
        out.close()
    shot = Shot(plate, mask=str(tmp_path / "mask.####.exr"))
    _pipeline(tmp_path).run(shot, EmotionCurve.parse_emotion("happy"), OutputSpec(str(tmp_path / "m.####.exr"),
                                                                                 half=False))
    got = read_exr_channels(str(tmp_path / "m.1001.exr"))
    assert not got["ned.matte"].any()
    assert np.array_equal(np.stack([got["R"], got["G"], got["B"]], -1), _read(plate.replace("####", "1001")))


def _mask_image(path, values, origin=(0, 0), display=None):
    spec = oiio.ImageSpec(values.shape[1], values.shape[0], 1, "float")
    spec.x, spec.y = origin
    if display is not None:
        spec.full_x, spec.full_y, spec.full_width, spec.full_height = display
    out = oiio.ImageOutput.create(str(path))
    out.open(str(path), spec)
    out.write_image(values[..., None].astype(np.float32))
    out.close()


def test_mask_is_placed_by_its_windows_and_a_foreign_format_is_refused(tmp_path, plate):
    from ned_core.errors import InvalidOptionError
    from ned_core.io import Plate
    from ned_core.pipeline import read_mask

    with Plate.open(plate) as p:
        image = p.read(1001)
    # A mask covering only the right half of the same format (data window offset by W/2).
    _mask_image(tmp_path / "half.1001.exr", np.ones((H, W // 2)), origin=(W // 2, 0), display=(0, 0, W, H))
    with Plate.open(str(tmp_path / "half.####.exr")) as m:
        placed = read_mask(m, 1001, image)
    assert placed.shape == (H, W) and not placed[:, : W // 2].any() and placed[:, W // 2:].all()
    _mask_image(tmp_path / "big.1001.exr", np.ones((2 * H, 2 * W)))
    with Plate.open(str(tmp_path / "big.####.exr")) as m, pytest.raises(InvalidOptionError, match="display windows"):
        read_mask(m, 1001, image)


class MouthManipulator(FakeManipulator):
    """Also moves a 'lip' landmark down by 3 px times (1 - mouth preservation), and records what it got."""

    def __init__(self):
        self.got = []

    def edit(self, fit, weights, mouth_preservation=1.0):
        self.got.append(mouth_preservation)
        out = super().edit(fit, weights, mouth_preservation)
        out[:, 31, 1] += 3.0 * (1.0 - np.broadcast_to(mouth_preservation, (len(out),)))
        return out


def test_keyed_mouth_preservation_reaches_the_rig_per_frame_and_chunks_equal_the_single_run(tmp_path, plate):
    manipulator = MouthManipulator()
    pipe = Pipeline(cache=AnalysisCache(tmp_path / "cache"),
                    stages={"track": FakeTracker(), "face3d": FakeModeller(), "manipulate": manipulator})
    pipe.run(Shot(plate), EmotionCurve.parse_keys(["1001:happy=1"]), OutputSpec(str(tmp_path / "d.####.exr")))
    assert manipulator.got == [1.0]  # nothing keyed: the footage default, as one value
    curve = EmotionCurve.parse_keys(["1001:happy=1,mouth=1", "1003:happy=1,mouth=0", "1006:happy=1"], "linear")
    pipe.run(Shot(plate), curve, OutputSpec(str(tmp_path / "all.####.exr")), mouth_preservation=0.5)
    assert np.allclose(manipulator.got[-1], [1.0, 0.5, 0.0, 1 / 6, 1 / 3, 0.5])  # the last key takes the job's
    pipe.run(Shot(plate), curve, OutputSpec(str(tmp_path / "chunk.####.exr")), frames=[1001, 1002, 1003],
             mouth_preservation=0.5)
    pipe.run(Shot(plate), curve, OutputSpec(str(tmp_path / "chunk.####.exr")), frames=[1004, 1005, 1006],
             mouth_preservation=0.5)
    for f in FRAMES:
        assert Path(tmp_path / f"all.{f}.exr").read_bytes() == Path(tmp_path / f"chunk.{f}.exr").read_bytes()
