"""Edit-quality metrics on synthetic arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from ned_core import mesh, metrics
from ned_core.errors import InvalidOptionError
from ned_core.track.base import FaceTrack

N = mesh.N_VERTICES
PAIRS = mesh.INNER_LIP_PAIRS


def face(rng: np.random.Generator) -> np.ndarray:
    """A face-local-like shape (N, 3): random points with the eye corners, forehead and chin in place."""
    shape = rng.uniform(-0.6, 0.6, (N, 3))
    shape[mesh.RIGHT_EYE_OUTER] = (-0.5, 0.1, 0.0)
    shape[mesh.LEFT_EYE_OUTER] = (0.5, 0.1, 0.0)
    shape[mesh.FOREHEAD] = (0.0, -0.6, 0.1)
    shape[mesh.CHIN] = (0.0, 1.4, 0.0)
    return shape


def mouth_frames(openings: np.ndarray, eye: float = 50.0) -> np.ndarray:
    """Landmarks (T, N, 3): inner-lip pairs ``openings`` apart (pixels), eye corners ``eye`` apart."""
    lm = np.zeros((len(openings), N, 3))
    lm[:, mesh.RIGHT_EYE_OUTER, 0] = -eye / 2
    lm[:, mesh.LEFT_EYE_OUTER, 0] = eye / 2
    for k, (upper, lower) in enumerate(PAIRS):
        lm[:, upper, 0] = lm[:, lower, 0] = k
        if upper != lower:
            lm[:, lower, 1] = openings
    return lm


def test_mouth_opening_is_the_mean_inner_lip_gap_over_eye_distance() -> None:
    gaps = np.array([0.0, 5.0, 11.0])
    opening = metrics.mouth_opening(mouth_frames(gaps, eye=50.0))
    moving = sum(1 for u, lo in PAIRS if u != lo)
    assert np.allclose(opening, gaps * moving / len(PAIRS) / 50.0)
    # Scale-free: the same face twice as large reads the same.
    assert np.allclose(metrics.mouth_opening(2 * mouth_frames(gaps)), opening)


def test_mouth_correlation() -> None:
    curve = np.sin(np.linspace(0, 6, 40)) * 5 + 6
    orig = mouth_frames(curve)
    assert metrics.mouth_correlation(orig, mouth_frames(0.5 * curve + 2)) == pytest.approx(1.0)
    assert metrics.mouth_correlation(orig, mouth_frames(12 - curve)) == pytest.approx(-1.0)
    # Frames lost in either are left out.
    edited = mouth_frames(curve)
    edited[5:9] = np.nan
    orig_lost = orig.copy()
    orig_lost[20] = np.nan
    assert metrics.mouth_correlation(orig_lost, edited) == pytest.approx(1.0)
    assert np.isnan(metrics.mouth_correlation(orig[:2], orig[:2]))
    assert np.isnan(metrics.mouth_correlation(mouth_frames(np.ones(5)), mouth_frames(np.arange(5.0))))
    with pytest.raises(InvalidOptionError):
        metrics.mouth_correlation(orig, orig[:10])


def test_jitter_is_zero_for_steady_motion_and_measures_acceleration() -> None:
    rng = np.random.default_rng(0)
    base = 100 * face(rng)  # eye corners 100 px apart
    t = np.arange(20, dtype=np.float64)
    still = np.repeat(base[None], 20, axis=0)
    assert metrics.jitter(still) == pytest.approx(0.0)
    steady = still + t[:, None, None] * np.array([3.0, -1.0, 0.5])
    assert metrics.jitter(steady) == pytest.approx(0.0, abs=1e-12)
    accelerating = still + (0.5 * 4.0 * t ** 2)[:, None, None] * np.array([1.0, 0.0, 0.0])
    assert metrics.jitter(accelerating) == pytest.approx(4.0 / 100.0)  # in eye-corner distances
    # Only runs of three found frames count: a loss does not read as a jump.
    lost = accelerating.copy()
    lost[10:] += 500.0
    lost[9:11] = np.nan
    assert metrics.jitter(lost) == pytest.approx(4.0 / 100.0)
    assert np.isnan(metrics.jitter(still[:2]))
    assert np.isnan(metrics.jitter(np.full((5, N, 3), np.nan)))


def test_jitter_ratio() -> None:
    rng = np.random.default_rng(1)
    still = np.repeat(100 * face(rng)[None], 30, axis=0)
    noise = rng.normal(0, 1, still.shape)
    noise[:, [mesh.RIGHT_EYE_OUTER, mesh.LEFT_EYE_OUTER]] = 0  # keep the face scale exact
    assert metrics.jitter_ratio(still + noise, still + 1.2 * noise) == pytest.approx(1.2)
    with pytest.raises(InvalidOptionError):
        metrics.jitter_ratio(still, still[:10])


def test_identical_outside_compares_bits() -> None:
    rng = np.random.default_rng(2)
    plate = rng.random((4, 5, 3)).astype(np.float32)
    plate[0, 0] = np.nan
    output = plate.copy()
    matte = np.zeros((4, 5), np.float32)
    matte[2:, 2:] = 0.5
    output[2:, 2:] = 7.0  # inside the matte: ignored
    assert metrics.identical_outside(plate, output, matte) == 1.0  # NaN equals the same NaN
    output[0, 1, 2] = np.nextafter(plate[0, 1, 2], np.float32(2))  # one ulp off in one channel
    plate[1, 1, 0], output[1, 1, 0] = 0.0, -0.0  # equal as numbers, different bits
    outside = int((matte == 0).sum())
    assert metrics.identical_outside(plate, output, matte) == pytest.approx((outside - 2) / outside)
    assert metrics.identical_outside(plate, output, matte[:, :, None]) == pytest.approx(1 - 2 / outside)
    assert np.isnan(metrics.identical_outside(plate, output, np.ones((4, 5))))
    gray = (rng.random((4, 5)) * 255).astype(np.uint8)
    assert metrics.identical_outside(gray, gray, matte) == 1.0


def test_identical_outside_rejects_mismatches() -> None:
    a = np.zeros((4, 5, 3), np.float32)
    with pytest.raises(InvalidOptionError):
        metrics.identical_outside(a, a.astype(np.float16), np.zeros((4, 5)))
    with pytest.raises(InvalidOptionError):
        metrics.identical_outside(a, a[:3], np.zeros((4, 5)))
    with pytest.raises(InvalidOptionError):
        metrics.identical_outside(a, a, np.zeros((5, 4)))


def moved(shape: np.ndarray, ids: list[int], dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    out = shape.copy()
    out[ids, 0] += dx
    out[ids, 1] += dy
    return out


CASES = [  # (vertices, dx, dy, AU that must grow by `expected`, expected)
    ([107, 55, 336, 285], 0.0, -0.05, "AU1", 0.05),  # inner brows up
    ([70, 46, 63, 300, 276, 293], 0.0, -0.04, "AU2", 0.04),  # outer brows up
    ([159, 386], 0.0, -0.02, "AU5", 0.02),  # upper lids up
    ([116, 345, 117, 346, 118, 347, 50, 280], 0.0, -0.03, "AU6", 0.03),  # cheeks up
    ([145, 374], 0.0, -0.02, "AU7", 0.02),  # lower lids up
    ([48, 278, 64, 294, 129, 358, 98, 327], 0.0, -0.03, "AU9", 0.03),  # nose wings up
    ([mesh.MOUTH_RIGHT, mesh.MOUTH_LEFT], 0.0, 0.04, "AU15", 0.04),  # corners down
    ([mesh.LOWER_LIP_OUTER, 84, 314], 0.0, 0.03, "AU16", 0.03),  # lower lip down
    ([159, 386], 0.0, 0.02, "AU41", 0.02),  # upper lids down
]


@pytest.mark.parametrize(("ids", "dx", "dy", "au", "expected"), CASES)
def test_au_measures_grow_with_their_action(ids: list[int], dx: float, dy: float, au: str,
                                            expected: float) -> None:
    base = face(np.random.default_rng(3))
    before, after = metrics.au_measures(base), metrics.au_measures(moved(base, ids, dx, dy))
    assert set(before) == {"AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU12", "AU15", "AU16", "AU20",
                           "AU23", "AU41"}
    assert after[au] - before[au] == pytest.approx(expected)


def test_mouth_and_brow_aus() -> None:
    base = face(np.random.default_rng(4))
    m = metrics.au_measures
    # Corners up and out: AU12 (height + half the widening), AU20 (width), AU15 goes the other way.
    smile = moved(moved(base, [mesh.MOUTH_RIGHT], dx=-0.02, dy=-0.03), [mesh.MOUTH_LEFT], dx=0.02, dy=-0.03)
    assert m(smile)["AU12"] - m(base)["AU12"] == pytest.approx(0.03 + 0.02)
    assert m(smile)["AU20"] - m(base)["AU20"] == pytest.approx(0.04)
    assert m(smile)["AU15"] - m(base)["AU15"] == pytest.approx(-0.03)
    # Inner brows down and together: AU4 (mean height of the 20 brow points, plus the gap).
    frown = moved(moved(moved(base, [55, 285], dy=0.02), [55], dx=0.01), [285], dx=-0.01)
    assert m(frown)["AU4"] - m(base)["AU4"] == pytest.approx(2 * 0.02 / 20 + 0.02)
    # Thinner red lips: AU23.
    thin = moved(moved(base, [mesh.UPPER_LIP_OUTER], dy=0.01), [mesh.LOWER_LIP_OUTER], dy=-0.01)
    assert m(thin)["AU23"] - m(base)["AU23"] == pytest.approx(0.02)
    # Moving the whole face changes nothing.
    assert m(base + np.array([0.3, -0.2, 0.1])) == pytest.approx(m(base))
    with pytest.raises(InvalidOptionError):
        m(base[:100])


def test_au_change_toward_the_target_emotion() -> None:
    base = face(np.random.default_rng(5))
    orig = np.repeat(base[None], 6, axis=0)
    corners = [mesh.MOUTH_RIGHT, mesh.MOUTH_LEFT]
    happy = np.stack([moved(base, corners, dy=-0.04) for _ in range(6)])
    # happy = AU6 (unchanged) + AU12 (+0.04), equal weights.
    assert metrics.au_change_toward(orig, happy, "happy") == pytest.approx(0.02)
    # Raised corners are the opposite of AU15, so the same edit moves away from sad.
    assert metrics.au_change_toward(orig, happy, "sad") < 0
    assert metrics.au_change_toward(orig, orig, "angry") == pytest.approx(0.0)
    lost = happy.copy()
    lost[:3] = np.nan
    assert metrics.au_change_toward(orig, lost, "happy") == pytest.approx(0.02)
    assert np.isnan(metrics.au_change_toward(orig, np.full_like(orig, np.nan), "happy"))
    with pytest.raises(InvalidOptionError):
        metrics.au_change_toward(orig, happy, "elated")
    with pytest.raises(InvalidOptionError):
        metrics.au_change_toward(orig, happy, "neutral")


def test_face_local_landmarks_undo_the_head_pose() -> None:
    base = face(np.random.default_rng(6))
    local = mesh.to_local(base, *mesh.canonical_pose(base))
    angles = np.deg2rad([0.0, 10.0, -15.0, 20.0, 5.0])
    frames = []
    for i, a in enumerate(angles):
        rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        frames.append(80.0 * local @ rot.T + np.array([150.0 + 5 * i, 120.0, 0.0]))
    landmarks = np.stack(frames).astype(np.float32)
    landmarks[2] = np.nan
    found = np.isfinite(landmarks[:, 0, 0])
    track = FaceTrack(frames=list(range(5)), landmarks=landmarks, found=found,
                      confidence=found.astype(np.float32), boxes=np.zeros((5, 4), np.float32),
                      image_size=(320, 240), topology=mesh.TOPOLOGY)
    out = metrics.face_local_landmarks(track)
    assert out.shape == (5, N, 3) and np.isnan(out[2]).all()
    for i in (0, 1, 3, 4):
        assert np.allclose(out[i], local, atol=1e-4)
