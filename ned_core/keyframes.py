"""Emotion keyframes: per-frame target emotion weights from a few keys, with interpolation.

A key sets weights for some emotions at a frame (missing emotions are 0). Between keys the weights are
interpolated ("step" holds the earlier key, "linear", or "smooth" eases in and out with no overshoot);
before the first key and after the last the nearest key holds. A row's non-neutral sum is the edit's
intensity, so ``neutral=1`` means "no edit" and a neutral→happy ramp fades the smile in.

A key may also set the mouth preservation (0..1) at its frame, so an artist can free the mouth on some
frames of a talking shot; it is interpolated like the weights, and a key without it takes the job's value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ned_core import EMOTIONS
from ned_core.errors import InvalidOptionError

INTERPOLATIONS = ("step", "linear", "smooth")
MOUTH_ITEM = "mouth"
"""The reserved ``--key`` item that sets a key's mouth preservation (``1030:happy=1,mouth=0``)."""


@dataclass(frozen=True)
class EmotionKey:
    """Target emotion weights at one frame, and optionally the mouth preservation there."""

    frame: int
    weights: dict[str, float] = field(default_factory=dict)
    mouth_preservation: float | None = None

    def vector(self) -> np.ndarray:
        return np.array([self.weights.get(e, 0.0) for e in EMOTIONS], dtype=np.float64)


def _check_weights(weights: dict[str, float], where: str) -> None:
    for name, value in weights.items():
        if name not in EMOTIONS:
            raise InvalidOptionError(
                f"unknown emotion {name!r} in {where} (known: {', '.join(EMOTIONS)})", field="emotion")
        if not np.isfinite(value) or value < 0:
            raise InvalidOptionError(f"emotion weight {name}={value} in {where} must be >= 0", field="emotion")


def _check_mouth(value: float | None, where: str) -> None:
    if value is not None and not (np.isfinite(value) and 0.0 <= value <= 1.0):
        raise InvalidOptionError(f"mouth preservation {value} in {where} must be within 0..1",
                                 field="mouth_preservation")


class EmotionCurve:
    """Emotion keyframes and how to interpolate between them."""

    def __init__(self, keys: list[EmotionKey], interpolation: str = "smooth") -> None:
        if not keys:
            raise InvalidOptionError("at least one emotion key is needed", field="key")
        if interpolation not in INTERPOLATIONS:
            raise InvalidOptionError(
                f"unknown interpolation {interpolation!r} (use {', '.join(INTERPOLATIONS)})",
                field="interpolation")
        frames = [k.frame for k in keys]
        if len(set(frames)) != len(frames):
            raise InvalidOptionError(f"two emotion keys on the same frame in {sorted(frames)}", field="key")
        for key in keys:
            _check_weights(key.weights, f"key at frame {key.frame}")
            _check_mouth(key.mouth_preservation, f"key at frame {key.frame}")
        self.keys = sorted(keys, key=lambda k: k.frame)
        self.interpolation = interpolation

    @classmethod
    def constant(cls, emotion: str, intensity: float = 1.0) -> EmotionCurve:
        """The same emotion at the same intensity on every frame."""
        return cls([EmotionKey(0, {emotion: intensity})], "step")

    @classmethod
    def parse_emotion(cls, text: str) -> EmotionCurve:
        """Parse ``happy`` or ``happy:0.8`` (the CLI's ``--emotion``)."""
        name, _, value = text.partition(":")
        try:
            intensity = float(value) if value else 1.0
        except ValueError:
            raise InvalidOptionError(f"bad intensity in --emotion {text!r} (want NAME[:0.8])",
                                     field="emotion") from None
        _check_weights({name.strip(): intensity}, f"--emotion {text!r}")
        return cls.constant(name.strip(), intensity)

    @classmethod
    def parse_keys(cls, texts: list[str], interpolation: str = "smooth") -> EmotionCurve:
        """Parse ``FRAME:EMOTION=W[,EMOTION=W...][,mouth=P]`` items (the CLI's repeated ``--key``).

        The reserved item ``mouth=P`` sets the key's mouth preservation (0..1).
        """
        keys = []
        for text in texts:
            frame_text, sep, rest = text.partition(":")
            mouth = None
            try:
                frame = int(frame_text)
                weights = {}
                for item in rest.split(","):
                    name, eq, value = item.partition("=")
                    if not eq:
                        raise ValueError
                    if name.strip() == MOUTH_ITEM:
                        mouth = float(value)
                    else:
                        weights[name.strip()] = float(value)
                if not sep or not weights:
                    raise ValueError
            except ValueError:
                raise InvalidOptionError(
                    f"bad --key {text!r} (want FRAME:EMOTION=W[,EMOTION=W...][,mouth=P], e.g. 1030:happy=1 "
                    "or 1030:happy=1,mouth=0)", field="key") from None
            keys.append(EmotionKey(frame, weights, mouth))
        return cls(keys, interpolation)

    def to_data(self) -> dict:
        """Plain data (JSON/msgpack-safe) that ``from_data`` reads back."""
        keys = []
        for k in self.keys:
            key: dict = {"frame": k.frame, "weights": dict(k.weights)}
            if k.mouth_preservation is not None:
                key["mouth_preservation"] = float(k.mouth_preservation)
            keys.append(key)
        return {"interpolation": self.interpolation, "keys": keys}

    @classmethod
    def from_data(cls, data: dict) -> EmotionCurve:
        keys = [EmotionKey(int(k["frame"]), {str(n): float(w) for n, w in k["weights"].items()},
                           None if k.get("mouth_preservation") is None else float(k["mouth_preservation"]))
                for k in data["keys"]]
        return cls(keys, str(data.get("interpolation", "smooth")))

    @property
    def keys_mouth(self) -> bool:
        """Whether any key sets its own mouth preservation."""
        return any(k.mouth_preservation is not None for k in self.keys)

    def weights(self, frames: list[int]) -> np.ndarray:
        """(T, 7) emotion weights in NED's label order for ``frames``."""
        return self._interpolate(np.stack([k.vector() for k in self.keys]), frames)

    def mouth_preservation(self, frames: list[int], default: float) -> np.ndarray:
        """(T,) mouth preservation for ``frames``: each key's own value, or ``default`` (the job's) for a
        key without one, interpolated between keys as the weights are."""
        _check_mouth(default, "the job")
        values = [default if k.mouth_preservation is None else k.mouth_preservation for k in self.keys]
        return self._interpolate(np.array(values, dtype=np.float64)[:, None], frames)[:, 0]

    def _interpolate(self, vectors: np.ndarray, frames: list[int]) -> np.ndarray:
        """(T, D) rows for ``frames`` of one (D,) vector per key, held outside the keys."""
        key_frames = np.array([k.frame for k in self.keys], dtype=np.float64)
        out = np.empty((len(frames), vectors.shape[1]))
        for row, frame in enumerate(frames):
            after = int(np.searchsorted(key_frames, frame, side="right"))
            if after == 0:
                out[row] = vectors[0]
            elif after == len(key_frames):
                out[row] = vectors[-1]
            else:
                a, b = after - 1, after
                t = (frame - key_frames[a]) / (key_frames[b] - key_frames[a])
                if self.interpolation == "step":
                    t = 0.0
                elif self.interpolation == "smooth":
                    t = t * t * (3.0 - 2.0 * t)
                out[row] = (1.0 - t) * vectors[a] + t * vectors[b]
        return out
