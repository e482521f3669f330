"""The issue's acceptance figures on real footage: the demo GRID clip edited happy and sad.

The edited EXRs are re-tracked with the same tracker and compared with the original: the mouth keeps
saying the same words, the landmarks do not get jittery, nothing outside the matte changes, and the
face moves toward the target emotion.
"""

from pathlib import Path

import numpy as np
import pytest

from ned_core import metrics, track
from ned_core.io import Plate, frame_path, read_exr_channels
from ned_core.io.colour import to_display_rgb8
from ned_core.keyframes import EmotionCurve
from ned_core.pipeline import OutputSpec, Pipeline, Shot

CLIP = Path(__file__).resolve().parents[2] / "demo" / "grid_bbaf2n.mpg"
FRAMES = (1001, 1040)


@pytest.fixture(scope="module")
def original():
    with Plate.open(str(CLIP), frame_range=FRAMES) as plate:
        images = [plate.read(f) for f in plate.frames]
    tracked = track.get().track([i.frame for i in images], [i.display_rgb8() for i in images])
    return images, tracked


@pytest.mark.parametrize("emotion", ["happy", "sad"])
def test_edit_keeps_speech_and_moves_toward_the_emotion(tmp_path, original, emotion):
    images, before = original
    pattern = str(tmp_path / f"{emotion}.####.exr")
    # Written in the plate's own colourspace so the pixels outside the matte compare bit for bit as they
    # are; the default scene-linear output's round trip is test_colour_roundtrip's.
    Pipeline(use_cache=False).run(Shot(str(CLIP), frame_range=FRAMES), EmotionCurve.parse_emotion(emotion),
                                  OutputSpec(pattern, half=False, colorspace=images[0].colorspace))
    frames = [i.frame for i in images]
    channels = [read_exr_channels(frame_path(pattern, f)) for f in frames]
    rgb = [np.stack([c["R"], c["G"], c["B"]], -1) for c in channels]
    after = track.get().track(frames, [to_display_rgb8(x, images[0].colorspace) for x in rgb])

    assert metrics.mouth_correlation(before.landmarks, after.landmarks) >= 0.95
    assert metrics.jitter_ratio(before.landmarks, after.landmarks) <= 1.2
    for image, out, c in zip(images, rgb, channels, strict=True):
        assert metrics.identical_outside(image.pixels[..., :3], out, c["ned.matte"]) == 1.0
        assert c["ned.matte"].max() > 0.5
    change = metrics.au_change_toward(metrics.face_local_landmarks(before), metrics.face_local_landmarks(after),
                                      emotion)
    assert change > 0.01
