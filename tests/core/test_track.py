"""The default tracker (MediaPipe Face Mesh) on real GRID footage, and its zero-lag smoothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ned_core import mesh, metrics, track
from ned_core.errors import FrameRangeError, InvalidOptionError, MissingDependencyError
from ned_core.track.base import FaceHint, FaceTrack
from ned_core.track.mediapipe_mesh import LIP_POINTS, MediaPipeTracker, choose_face, follow_face
from ned_core.track.smoothing import adaptive_smooth, segments, smooth_landmarks

GRID = Path("/work/shared/data/grid/grid_bbaf2n.mpg")
pytest.importorskip("mediapipe")
av = pytest.importorskip("av")


def read_clip(path: Path, count: int | None = None) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if count is not None and len(frames) == count:
                break
    return frames


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    if not GRID.exists():
        pytest.skip(f"{GRID} is not here")
    return read_clip(GRID)


@pytest.fixture(scope="module")
def tracker() -> MediaPipeTracker:
    return MediaPipeTracker()


@pytest.fixture(scope="module")
def grid_track(clip: list[np.ndarray], tracker: MediaPipeTracker) -> FaceTrack:
    return tracker.track(list(range(1001, 1001 + len(clip))), clip)


@pytest.fixture(scope="module")
def grid_raw(clip: list[np.ndarray]) -> FaceTrack:
    return MediaPipeTracker(smoothing=0.0).track(list(range(30)), clip[:30])


def test_registered_by_name() -> None:
    tracker = track.get("mediapipe", max_faces=2)
    assert isinstance(tracker, MediaPipeTracker)
    assert tracker.topology == mesh.TOPOLOGY == "mediapipe478"
    assert track.DEFAULT == "mediapipe"


def test_grid_face_found_in_every_frame(grid_track: FaceTrack, clip: list[np.ndarray]) -> None:
    assert len(clip) == 75
    assert grid_track.frames == list(range(1001, 1076))
    assert grid_track.landmarks.shape == (75, 478, 3) and grid_track.landmarks.dtype == np.float32
    assert grid_track.found.all() and np.isfinite(grid_track.landmarks).all()
    assert grid_track.lost_frames == []
    assert grid_track.image_size == (360, 288)
    assert grid_track.topology == "mediapipe478"
    assert np.all(grid_track.confidence == 1.0)
    x0, y0, x1, y1 = grid_track.boxes.T
    assert np.all((0 <= x0) & (x0 < x1) & (x1 <= 360) & (0 <= y0) & (y0 < y1) & (y1 <= 288))
    # The face is about 100 px wide in a 360x288 frame, and +z points toward the viewer.
    assert 60 < np.median(x1 - x0) < 160
    lm = grid_track.landmarks
    assert np.all(lm[:, mesh.NOSE_TIP, 2] > lm[:, 234, 2]) and np.all(lm[:, mesh.NOSE_TIP, 2] > lm[:, 454, 2])
    # Image-right is the subject's left eye.
    assert np.all(lm[:, mesh.LEFT_EYE_OUTER, 0] > lm[:, mesh.RIGHT_EYE_OUTER, 0])


def test_speaker_mouth_moves(grid_track: FaceTrack) -> None:
    opening = metrics.mouth_opening(grid_track.landmarks)
    assert opening.min() < 0.02 and opening.max() > 0.05  # the speaker closes and opens the mouth


def test_flat_grey_frame_has_no_face(tracker: MediaPipeTracker) -> None:
    grey = np.full((288, 360, 3), 128, np.uint8)
    result = tracker.track([7, 8], [grey, grey])
    assert not result.found.any()
    assert np.isnan(result.landmarks).all() and np.isnan(result.boxes).all()
    assert result.lost_frames == [7, 8]
    assert np.all(result.confidence == 0)


def test_lost_frames_reported_and_face_found_again(clip: list[np.ndarray], tracker: MediaPipeTracker) -> None:
    grey = np.full_like(clip[0], 128)
    images = clip[:6] + [grey] * 3 + clip[6:12]
    frames = list(range(10, 10 + len(images)))
    progress: list[int] = []
    result = tracker.track(frames, images, progress=progress.append)
    assert result.found.tolist() == [True] * 6 + [False] * 3 + [True] * 6
    assert result.lost_frames == [16, 17, 18]
    assert np.isnan(result.landmarks[6:9]).all()
    assert np.isfinite(result.landmarks[result.found]).all()
    assert progress == list(range(1, len(images) + 1))


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate([left, right], axis=1))


def test_hint_point_picks_the_face_under_it(clip: list[np.ndarray], tracker: MediaPipeTracker) -> None:
    pair = side_by_side(clip[0], clip[0])
    height, width = clip[0].shape[:2]
    right = tracker.track([1], [pair], FaceHint(point=(1.5 * width, height / 2)))
    left = tracker.track([1], [pair], FaceHint(point=(0.5 * width, height / 2)))
    assert right.boxes[0, 0] > width and left.boxes[0, 2] < width
    # A point off every face picks the nearest one; a box picks the overlapping one.
    near_right = tracker.track([1], [pair], FaceHint(point=(2 * width - 1, 1)))
    assert near_right.boxes[0, 0] > width
    boxed = tracker.track([1], [pair], FaceHint(box=(width + 50, 80, width + 200, 260)))
    assert boxed.boxes[0, 0] > width


def test_default_picks_the_largest_face(clip: list[np.ndarray], tracker: MediaPipeTracker) -> None:
    import cv2

    height, width = clip[0].shape[:2]
    small = cv2.resize(clip[0], (width * 2 // 3, height * 2 // 3), interpolation=cv2.INTER_AREA)
    canvas = np.full((height, 2 * width, 3), 128, np.uint8)
    canvas[:, width:] = clip[0]  # the large copy on the right, so "first found" would be wrong
    canvas[:small.shape[0], :small.shape[1]] = small
    result = tracker.track([1], [canvas])
    assert result.found[0] and result.boxes[0, 0] > width


def test_another_face_does_not_steal_the_track(clip: list[np.ndarray], tracker: MediaPipeTracker) -> None:
    height, width = clip[0].shape[:2]
    grey = np.full_like(clip[0], 128)
    images = [side_by_side(clip[i], clip[i]) for i in range(4)]
    images += [side_by_side(clip[i], grey) for i in range(4, 7)]  # the followed (right) face leaves
    images += [side_by_side(clip[i], clip[i]) for i in range(7, 10)]  # and comes back
    result = tracker.track(list(range(10)), images, FaceHint(point=(1.5 * width, height / 2)))
    assert result.found.tolist() == [True] * 4 + [False] * 3 + [True] * 3
    assert np.all(result.boxes[result.found, 0] > width)


def test_follow_face_gates() -> None:
    last = np.array([100.0, 100.0, 200.0, 220.0])
    boxes = np.array([[400.0, 100.0, 500.0, 220.0], [110.0, 105.0, 212.0, 224.0]])
    assert follow_face(boxes, last, continuous=True, reacquire_radius=1.5) == 1
    assert follow_face(boxes[:1], last, continuous=True, reacquire_radius=1.5) is None
    assert follow_face(boxes[:1], last, continuous=False, reacquire_radius=1.5) is None
    assert follow_face(boxes[:1], last, continuous=False, reacquire_radius=4.0) == 0
    assert follow_face(np.zeros((0, 4)), last, continuous=True, reacquire_radius=1.5) is None
    # A face of a very different size is another person, even at the same place.
    assert follow_face(np.array([[120.0, 130.0, 160.0, 170.0]]), last, True, 1.5) is None


def test_choose_face_without_hint_is_largest() -> None:
    boxes = np.array([[0.0, 0.0, 50.0, 50.0], [100.0, 0.0, 200.0, 100.0], [300.0, 0.0, 340.0, 40.0]])
    assert choose_face(boxes, None) == 1
    assert choose_face(boxes, FaceHint(point=(320.0, 20.0))) == 2
    assert choose_face(boxes, FaceHint(box=(0.0, 0.0, 40.0, 40.0))) == 0


def test_bad_input_is_reported(tracker: MediaPipeTracker, clip: list[np.ndarray]) -> None:
    with pytest.raises(FrameRangeError):
        tracker.track([], [])
    with pytest.raises(FrameRangeError):
        tracker.track([1, 2, 3], clip[:2])
    with pytest.raises(FrameRangeError):
        tracker.track([1], clip[:2])
    with pytest.raises(InvalidOptionError) as err:
        tracker.track([5], [clip[0].astype(np.float32)])
    assert err.value.frame == 5
    with pytest.raises(InvalidOptionError):
        tracker.track([1, 2], [clip[0], clip[0][:100]])
    with pytest.raises(InvalidOptionError):
        tracker.track([1], clip[:1], FaceHint(box=(10, 10, 5, 20)))
    with pytest.raises(InvalidOptionError):
        MediaPipeTracker(max_faces=0)
    with pytest.raises(InvalidOptionError):
        MediaPipeTracker(smoothing=-1)
    with pytest.raises(InvalidOptionError):
        MediaPipeTracker(min_tracking_confidence=2)


def test_missing_mediapipe_names_the_installer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(MissingDependencyError, match="installers/install.sh"):
        MediaPipeTracker().track([1], [np.zeros((8, 8, 3), np.uint8)])


def test_native_startup_logs_are_silenced(clip: list[np.ndarray]) -> None:
    # A fresh process: MediaPipe prints some of its start-up lines only once per process.
    script = (
        "import av\n"
        "from ned_core.track.mediapipe_mesh import MediaPipeTracker\n"
        f"c = av.open({str(GRID)!r})\n"
        "images = [f.to_ndarray(format='rgb24') for _, f in zip(range(4), c.decode(video=0))]\n"
        "assert MediaPipeTracker().track([1, 2, 3, 4], images).found.all()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for noise in ("Created TensorFlow Lite", "absl::InitializeLog", "landmark_projection_calculator"):
        assert noise not in done.stderr


# --- smoothing -----------------------------------------------------------------------------------------

def test_smoothing_reduces_grid_jitter_and_keeps_the_mouth(grid_raw: FaceTrack) -> None:
    smooth = smooth_landmarks(grid_raw.landmarks, grid_raw.found, 1.0, mesh.STABLE, LIP_POINTS)
    assert metrics.jitter(smooth) < 0.75 * metrics.jitter(grid_raw.landmarks)
    assert metrics.mouth_correlation(grid_raw.landmarks, smooth) > 0.999


def test_segments() -> None:
    found = np.array([0, 1, 1, 0, 0, 1, 1, 1, 0, 1], bool)
    assert segments(found) == [slice(1, 3), slice(5, 8), slice(9, 10)]
    assert segments(np.zeros(3, bool)) == []
    assert segments(np.ones(4, bool)) == [slice(0, 4)]


def synthetic_face(rng: np.random.Generator) -> np.ndarray:
    """A face-like point cloud (478, 3) in pixels, about 100 px wide."""
    return rng.uniform(-50, 50, (mesh.N_VERTICES, 3)) * np.array([1.0, 1.2, 0.5]) + np.array([180, 140, 0])


def test_noise_free_input_comes_back_unchanged() -> None:
    t = np.arange(40, dtype=np.float64)
    values = np.stack([3 * t - 40, t ** 2 / 10 - t, t ** 3 / 500], axis=1)  # fast but noise-free motion
    assert np.allclose(adaptive_smooth(values), values)
    landmarks = synthetic_face(np.random.default_rng(0))[None] + t[:, None, None] * np.array([2.0, 0, 0])
    found = np.ones(40, bool)
    out = smooth_landmarks(landmarks, found, 1.0, mesh.STABLE, LIP_POINTS)
    assert np.allclose(out, landmarks, atol=1e-6)
    assert np.array_equal(smooth_landmarks(landmarks, found, 0.0, mesh.STABLE), landmarks)


def moving_face(rng: np.random.Generator, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """60 frames: still, a 40 px ramp over 4 frames, still, a 25 px step, still; plus white noise."""
    t = np.arange(60)
    shift = np.clip(t - 10, 0, 4) * 10.0 + np.where(t >= 40, 25.0, 0.0)
    clean = synthetic_face(rng)[None] + shift[:, None, None] * np.array([1.0, 0.3, 0.0])
    return clean, clean + rng.normal(0, noise, clean.shape)


def test_fast_step_and_ramp_are_not_lagged() -> None:
    rng = np.random.default_rng(1)
    clean, noisy = moving_face(rng, 0.4)
    out = smooth_landmarks(noisy, np.ones(60, bool), 1.0, mesh.STABLE, LIP_POINTS)
    raw_err = np.linalg.norm(noisy - clean, axis=-1).mean(axis=1)
    err = np.linalg.norm(out - clean, axis=-1).mean(axis=1)
    assert err.mean() < 0.7 * raw_err.mean()
    # Around the moves the smoother falls back to (about) the raw samples instead of smearing them.
    assert err.max() < 1.25 * raw_err.max()
    # Zero lag: the step lands on the same frame (half-way crossing of the mean x).
    x = out[:, :, 0].mean(axis=1)
    assert x[39] - x[30] < 1.0 and x[40] - x[39] > 24.0


def test_smoothing_reduces_jitter_of_noise() -> None:
    rng = np.random.default_rng(2)
    clean = np.repeat(synthetic_face(rng)[None], 50, axis=0)
    noisy = clean + rng.normal(0, 0.5, clean.shape)
    out = smooth_landmarks(noisy, np.ones(50, bool), 1.0, mesh.STABLE, LIP_POINTS)
    lips = list(LIP_POINTS)
    without_lips = [a.copy() for a in (noisy, out)]
    for a in without_lips:
        a[:, lips] = clean[:, lips]
    assert metrics.jitter(without_lips[1]) < 0.3 * metrics.jitter(without_lips[0])
    # The lips' shape is kept as tracked: their motion is only the (smoothed) head motion.
    spread_raw = np.linalg.norm(noisy[:, lips] - noisy[:, lips].mean(axis=1, keepdims=True), axis=-1)
    spread_out = np.linalg.norm(out[:, lips] - out[:, lips].mean(axis=1, keepdims=True), axis=-1)
    assert np.allclose(spread_out, spread_raw, rtol=0.02, atol=0.05)


def test_never_smooths_across_a_loss() -> None:
    rng = np.random.default_rng(3)
    face = synthetic_face(rng)
    landmarks = np.repeat(face[None], 30, axis=0) + rng.normal(0, 0.3, (30, mesh.N_VERTICES, 3))
    landmarks[15:] += np.array([60.0, 0.0, 0.0])
    landmarks[13:15] = np.nan
    found = np.isfinite(landmarks[:, 0, 0])
    out = smooth_landmarks(landmarks.astype(np.float32), found, 1.0, mesh.STABLE, LIP_POINTS)
    assert out.dtype == np.float32
    assert np.isnan(out[13:15]).all()
    assert np.abs(out[:13, :, 0].mean(axis=1) - face[:, 0].mean()).max() < 0.5
    assert np.abs(out[15:, :, 0].mean(axis=1) - face[:, 0].mean() - 60).max() < 0.5


def test_mediapipe_imports_without_matplotlib_and_matplotlib_stays_usable() -> None:
    """Tracking does not pay for MediaPipe's drawing helpers' matplotlib import; whoever uses
    matplotlib afterwards (or MediaPipe's drawing helpers) gets the real module."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from ned_core.track.mediapipe_mesh import _import_mediapipe\n"
        "_import_mediapipe()\n"
        "assert 'matplotlib' not in sys.modules and 'matplotlib.pyplot' not in sys.modules\n"
        "from mediapipe.python.solutions import drawing_utils\n"
        "import matplotlib.pyplot as plt\n"
        "assert type(plt).__name__ == 'module' and plt.__file__.endswith('pyplot.py')\n"
        "assert drawing_utils.plt.figure is plt.figure\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
