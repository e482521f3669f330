"""Emotion keyframes: parsing, validation and interpolation."""

import numpy as np
import pytest

from ned_core import EMOTIONS
from ned_core.errors import InvalidOptionError
from ned_core.keyframes import EmotionCurve, EmotionKey

HAPPY = EMOTIONS.index("happy")
NEUTRAL = EMOTIONS.index("neutral")


def test_constant_emotion_with_intensity():
    curve = EmotionCurve.parse_emotion("happy:0.8")
    w = curve.weights([1001, 1002, 2000])
    assert np.allclose(w[:, HAPPY], 0.8)
    assert np.allclose(np.delete(w, HAPPY, axis=1), 0)


def test_intensity_zero_is_valid():
    assert np.allclose(EmotionCurve.parse_emotion("sad:0").weights([1]), 0)


@pytest.mark.parametrize("interp,mid", [("step", 0.0), ("linear", 0.5), ("smooth", 0.5)])
def test_interpolation_between_keys(interp, mid):
    curve = EmotionCurve.parse_keys(["1001:neutral=1", "1011:happy=1"], interp)
    w = curve.weights([1000, 1001, 1006, 1011, 1020])
    assert w[0, NEUTRAL] == 1 and w[0, HAPPY] == 0  # held before the first key
    assert w[-1, HAPPY] == 1  # held after the last key
    assert w[2, HAPPY] == pytest.approx(mid)


def test_smooth_eases_in_and_never_overshoots():
    curve = EmotionCurve.parse_keys(["0:happy=0", "10:happy=1"], "smooth")
    linear = EmotionCurve.parse_keys(["0:happy=0", "10:happy=1"], "linear")
    frames = list(range(0, 11))
    s, lin = curve.weights(frames)[:, HAPPY], linear.weights(frames)[:, HAPPY]
    assert s[1] < lin[1] and s[9] > lin[9]
    assert np.all(np.diff(s) >= 0) and s.max() <= 1


def test_multi_emotion_key():
    curve = EmotionCurve.parse_keys(["5:happy=0.5,surprised=0.7"])
    w = curve.weights([5])[0]
    assert w[HAPPY] == 0.5 and w[EMOTIONS.index("surprised")] == 0.7


@pytest.mark.parametrize("text", ["1001", "x:happy=1", "1001:happy", "1001:happy=abc", "1001:"])
def test_malformed_keys_name_the_option(text):
    with pytest.raises(InvalidOptionError) as err:
        EmotionCurve.parse_keys([text])
    assert text in str(err.value) and err.value.code == "invalid_option"


def test_unknown_emotion_and_bad_weights():
    with pytest.raises(InvalidOptionError, match="unknown emotion 'joyful'"):
        EmotionCurve.parse_emotion("joyful")
    with pytest.raises(InvalidOptionError, match=">= 0"):
        EmotionCurve.parse_emotion("happy:-1")
    with pytest.raises(InvalidOptionError, match="same frame"):
        EmotionCurve([EmotionKey(1, {"happy": 1}), EmotionKey(1, {"sad": 1})])
    with pytest.raises(InvalidOptionError, match="interpolation"):
        EmotionCurve([EmotionKey(1, {"happy": 1})], "cubic")


def test_round_trip_as_data():
    curve = EmotionCurve.parse_keys(["1001:neutral=1", "1030:happy=1,sad=0.2"], "linear")
    again = EmotionCurve.from_data(curve.to_data())
    frames = list(range(995, 1040))
    assert np.array_equal(curve.weights(frames), again.weights(frames))
