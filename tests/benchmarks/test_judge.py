"""The benchmark's measuring instruments (benchmarks/judge.py, second_judge.py) and emotion_reads' pixel check.

Skipped where ``bash benchmarks/setup_judge.sh`` has not been run (weights, dlib) or the shared London
photos are absent: they are benchmark tools, not part of the product.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import judge  # noqa: E402
import second_judge  # noqa: E402

LONDON = BENCH.parents[1] / "shared" / "data" / "london"
needs_weights = pytest.mark.skipif(not judge.WEIGHTS.is_file(), reason="run benchmarks/setup_judge.sh")
needs_dlib = pytest.mark.skipif(importlib.util.find_spec("dlib") is None, reason="run benchmarks/setup_judge.sh")
needs_second = pytest.mark.skipif(not second_judge.WEIGHTS.is_file(), reason="run benchmarks/setup_judge.sh")
needs_london = pytest.mark.skipif(not (LONDON / "smiling").is_dir(), reason="shared London photos absent")


def _photo(path: Path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@needs_weights
def test_network_copy_loads_the_sdist_weights_strictly() -> None:
    emotion = judge.EmotionJudge()
    out = emotion.scores(np.full((48, 48), 128, np.uint8))
    assert out.shape == (7,)
    assert np.all((out > 0) & (out < 1))  # sigmoid outputs


@needs_weights
def test_no_face_is_reported_not_guessed() -> None:
    verdict = judge.judge(np.zeros((288, 360, 3), np.uint8))
    assert verdict == {"face": False, "box": None, "probs": {}, "top": None}


@needs_weights
@needs_london
def test_judge_reads_a_real_smile_and_a_neutral_face() -> None:
    smile = judge.judge(_photo(LONDON / "smiling" / "002_08.jpg"))
    neutral = judge.judge(_photo(LONDON / "neutral" / "002_03.jpg"))
    assert set(smile["probs"]) == set(judge.NED_LABELS)
    assert sum(smile["probs"].values()) == pytest.approx(1.0)
    assert smile["probs"]["happy"] > 0.5 > neutral["probs"]["happy"]


def test_same_max_pool_pads_at_the_end_as_tensorflow_does() -> None:
    """Keras 'same' 3x3/2 pooling: an even side gets its one padding row at the end, an odd side one
    at each end (torch's symmetric padding would shift every window of an even side by a pixel)."""
    import torch

    even = torch.arange(16.0).reshape(1, 1, 4, 4)
    # windows start at 0 and 2: rows/columns {0,1,2} and {2,3}
    assert second_judge._max_pool_same(even)[0, 0].tolist() == [[10.0, 11.0], [14.0, 15.0]]
    odd = torch.arange(25.0).reshape(1, 1, 5, 5)
    # padded one each side: windows {0,1}, {1,2,3}, {3,4}
    assert second_judge._max_pool_same(odd)[0, 0].tolist() == [[6.0, 8.0, 9.0], [16.0, 18.0, 19.0],
                                                               [21.0, 23.0, 24.0]]


@needs_second
@needs_london
def test_second_judge_reads_a_real_smile_on_the_first_judges_face() -> None:
    smile_rgb = _photo(LONDON / "smiling" / "002_08.jpg")
    neutral_rgb = _photo(LONDON / "neutral" / "002_03.jpg")
    other = second_judge.second_judge()
    smile = other.judge(smile_rgb, judge.judge(smile_rgb)["box"])
    neutral = other.judge(neutral_rgb, judge.judge(neutral_rgb)["box"])
    assert set(smile["probs"]) == set(judge.NED_LABELS)
    assert sum(smile["probs"].values()) == pytest.approx(1.0)  # softmax
    assert smile["top"] == "happy" and neutral["top"] == "neutral"
    assert other.judge(smile_rgb, None) == {"face": False, "probs": {}, "top": None}


@needs_dlib
@needs_london
def test_identity_distance_separates_persons() -> None:
    neutral = _photo(LONDON / "neutral" / "002_03.jpg")
    same = judge.identity_distance(neutral, _photo(LONDON / "smiling" / "002_08.jpg"))
    other = judge.identity_distance(neutral, _photo(LONDON / "neutral" / "003_03.jpg"))
    assert same is not None and other is not None
    assert same < 0.6 < other


def test_changed_outside_compares_codes_after_converting_back() -> None:
    import emotion_reads

    from ned_core.io.colour import convert

    srgb, linear = "sRGB Encoded Rec.709 (sRGB)", "Linear Rec.709 (sRGB)"
    plate = np.random.default_rng(0).integers(0, 256, (6, 8, 3)).astype(np.float32) / 255.0
    matte = np.zeros((6, 8), np.float32)
    matte[2:4, 2:4] = 1.0
    stored = convert(plate, srgb, linear).astype(np.float16).astype(np.float32)  # scene-linear half output
    stored[2, 2] = 0.5  # inside the matte: ignored
    out = {"rgb": stored.copy(), "matte": matte, "colorspace": linear}
    assert emotion_reads.changed_outside(plate, srgb, out) == (0, 1.0)
    out["rgb"][0, 0, 1] += 0.25
    changed, fraction = emotion_reads.changed_outside(plate, srgb, out)
    assert changed == 1 and fraction == pytest.approx(1 - 1 / 44)
