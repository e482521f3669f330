"""Emotion keyframes: the strip's animated ``ned_<label>`` properties sampled per frame → the job's keys.

Blender's fcurves are the keyframes (any interpolation, easing, modifiers or drivers the artist used):
the host evaluates each property at every frame of the range and this module turns the samples into
``EmotionKey`` dicts in the plate's numbering. Sampling every frame and sending ``linear`` interpolation
reproduces Blender's curves exactly at every frame; runs of identical samples are thinned to their ends,
which linear interpolation fills in exactly, so a constant shot costs two keys, not one per frame.
An animated ``ned_mouth_preservation`` rides along in each key's ``mouth_preservation`` (protocol 1.2);
a constant one is left to the job's single value.

No bpy; ``ned_protocol.schema`` only for the label order and limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ned_protocol.errors import InvalidOptionError
from ned_protocol.schema import EMOTIONS, LIMITS

PROPERTY_PREFIX = "ned_"
EMOTION_PROPERTIES: tuple[str, ...] = tuple(PROPERTY_PREFIX + label for label in EMOTIONS)
"""The strip's keyframable weights, in NED's label order: ``ned_neutral`` ... ``ned_surprised``."""
INTENSITY_PROPERTY = "ned_intensity"
MOUTH_PROPERTY = "ned_mouth_preservation"
MAX_WEIGHT = 10.0
"""The schema's bound on one weight (``EmotionKey.weights``)."""

Samples = Mapping[str, Sequence[float]]
"""Property name → its value at each frame of the range (all the same length)."""


def weights_at(samples: Samples, index: int) -> dict[str, float]:
    """The weights at sample ``index``: each non-neutral weight × ``ned_intensity``, neutral as it is.

    All seven labels are sent (zeros included), so the engine never fills a weight in itself.
    """
    intensity = float(samples.get(INTENSITY_PROPERTY, [1.0] * (index + 1))[index])
    weights = {}
    for label, prop in zip(EMOTIONS, EMOTION_PROPERTIES):
        value = float(samples[prop][index]) if prop in samples else 0.0
        if label != "neutral":
            value *= intensity
        weights[label] = round(min(max(value, 0.0), MAX_WEIGHT), 6)
    return weights


def mouth_animated(samples: Samples) -> bool:
    """Whether ``ned_mouth_preservation`` changes over the range (then each key carries its value)."""
    values = samples.get(MOUTH_PROPERTY)
    return bool(values) and any(_mouth(v) != _mouth(values[0]) for v in values)


def _mouth(value: float) -> float:
    return round(min(max(float(value), 0.0), 1.0), 6)


def emotion_keys(samples: Samples, plate_frames: Sequence[int]) -> list[dict]:
    """``EmotionKey`` dicts (``{"frame", "weights"}``, and ``"mouth_preservation"`` when the property is
    animated) for samples taken at ``plate_frames``.

    Keys inside a run of identical keys are dropped (linear interpolation restores them exactly).

    Raises
    ------
    InvalidOptionError
        A sample list of the wrong length, or more keys than the protocol allows.
    """
    count = len(plate_frames)
    if count == 0:
        raise InvalidOptionError("no frames to sample", field="frame_range")
    for name, values in samples.items():
        if len(values) != count:
            raise InvalidOptionError(f"{name} has {len(values)} samples for {count} frames", field=name)
    mouth = [_mouth(v) for v in samples[MOUTH_PROPERTY]] if mouth_animated(samples) else None
    per_frame = [(weights_at(samples, i), None if mouth is None else mouth[i]) for i in range(count)]
    keys = []
    for i, (weights, value) in enumerate(per_frame):
        inside_run = 0 < i < count - 1 and per_frame[i - 1] == per_frame[i] == per_frame[i + 1]
        if not inside_run:
            key = {"frame": int(plate_frames[i]), "weights": weights}
            if value is not None:
                key["mouth_preservation"] = value
            keys.append(key)
    if len(keys) > LIMITS["max_keys"]:
        raise InvalidOptionError(f"the emotion curves change on {len(keys)} frames; a job takes at most "
                                 f"{LIMITS['max_keys']} keys (process a shorter range)", field="keys")
    return keys


def mouth_preservation(samples: Samples) -> float:
    """The job's mouth preservation: the property's mean over the range. Where it is animated the keys
    carry each frame's value and this mean is what an engine older than protocol 1.2 gets instead."""
    values = samples.get(MOUTH_PROPERTY)
    if not values:
        return 1.0
    return min(max(sum(float(v) for v in values) / len(values), 0.0), 1.0)
