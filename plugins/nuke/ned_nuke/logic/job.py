"""The node's values → a JobSpec: per-frame emotion keys sampled from the knobs' animation curves, the
plate (a Read's own files or the rendered input), mask, face, backend and output.

The host samples each emotion knob with ``getValueAt(frame)`` at every frame of the range, so Nuke's
step, linear and smooth curves all come through exactly; this module turns those samples into one
``EmotionKey`` per frame (non-neutral weights times the intensity) and checks the whole spec against
``ned_protocol.schema.JOB_SPEC``, the schema the engine checks it with. An animated mouth preservation
knob is sampled the same way into each key's ``mouth_preservation`` (protocol 1.2); a constant one is
sent once, as the job's value.

Imports only ``ned_protocol``; never ``nuke``, torch, numpy, ned_core or ned_engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ned_protocol.errors import InvalidOptionError
from ned_protocol.schema import EMOTIONS, LIMITS, OUTPUT_LAYERS, check_job_spec
from ned_protocol.schema import spec_for_version as for_version

Sampler = Callable[[int], float]
"""A knob's value at a frame (the host passes ``lambda f: knob.getValueAt(f)``)."""
MAX_WEIGHT = 10.0
"""The schema's bound on one weight."""


@dataclass(frozen=True)
class Plate:
    """What the engine reads: a sequence pattern or movie, its colourspace and a movie's first frame."""

    path: str
    colorspace: str | None = None
    start: int | None = None


@dataclass
class NodeValues:
    """Everything the job needs from one node, already read from its knobs and inputs.

    ``weights[label]`` and ``intensity`` hold one sample per frame of ``frame_range``; so does
    ``mouth`` when the mouth preservation knob is animated (None: ``mouth_preservation`` holds for the
    whole range). ``face`` is the face point in Nuke's coordinates (origin bottom-left); ``height`` is
    the Source's format height, to turn it into the engine's image coordinates (origin top-left).
    ``layers`` are the output layers written beside RGBA (``matte``, ``stmap``).
    """

    label: str
    plate: Plate
    frame_range: tuple[int, int]
    weights: dict[str, list[float]]
    intensity: list[float]
    output: str
    mouth_preservation: float = 1.0
    backend: str = "default"
    face: tuple[float, float] | None = None
    height: int = 0
    mask: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    mouth: list[float] | None = None
    layers: tuple[str, ...] = OUTPUT_LAYERS


def frames_of(frame_range: tuple[int, int]) -> list[int]:
    """Every frame of an inclusive range."""
    return list(range(frame_range[0], frame_range[1] + 1))


def sample(samplers: Mapping[str, Sampler], intensity: Sampler,
           frame_range: tuple[int, int]) -> tuple[dict[str, list[float]], list[float]]:
    """Sample each emotion's curve and the intensity at every frame of the range.

    ``samplers`` maps emotion labels to samplers; a label without one weighs 0.
    """
    frames = frames_of(frame_range)
    weights = {label: [float(samplers[label](f)) if label in samplers else 0.0 for f in frames]
               for label in EMOTIONS}
    return weights, [float(intensity(f)) for f in frames]


def _clamp(value: float, high: float) -> float:
    if value != value:  # NaN from a broken expression: treat as 0 rather than sending it
        return 0.0
    return min(max(float(value), 0.0), high)


def keys(weights: Mapping[str, Sequence[float]], intensity: Sequence[float],
         frame_range: tuple[int, int], mouth: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """One ``EmotionKey`` per frame: each emotion's weight clamped to 0..1, non-neutral ones times the
    intensity (the non-neutral sum is the edit's strength; neutral alone means no edit), and with
    ``mouth`` samples each frame's mouth preservation, clamped to 0..1.

    Raises
    ------
    InvalidOptionError
        (field ``first``) more frames than a job may carry keys for.
    """
    frames = frames_of(frame_range)
    if len(frames) > LIMITS["max_keys"]:
        raise InvalidOptionError(f"the range {frame_range[0]}-{frame_range[1]} has {len(frames)} frames; a job "
                                 f"carries at most {LIMITS['max_keys']} (split the shot)", field="first")
    for label, values in weights.items():
        if len(values) != len(frames):
            raise InvalidOptionError(f"{label}: {len(values)} samples for {len(frames)} frames", field=label)
    if mouth is not None and len(mouth) != len(frames):
        raise InvalidOptionError(f"mouth_preservation: {len(mouth)} samples for {len(frames)} frames",
                                 field="mouth_preservation")
    out = []
    for index, frame in enumerate(frames):
        gain = _clamp(intensity[index], MAX_WEIGHT)
        row = {}
        for label in EMOTIONS:
            weight = _clamp(weights[label][index], 1.0) if label in weights else 0.0
            row[label] = weight if label == "neutral" else min(weight * gain, MAX_WEIGHT)
        key: dict[str, Any] = {"frame": frame, "weights": row}
        if mouth is not None:
            key["mouth_preservation"] = _clamp(mouth[index], 1.0)
        out.append(key)
    return out


def face_point(face: tuple[float, float], height: int) -> list[float]:
    """Nuke's face point (origin bottom-left, y up) → the engine's pixel point (origin top-left, y down)."""
    return [float(face[0]), float(height) - float(face[1])]


def check(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` checked against the protocol's ``JobSpec`` schema: see ``schema.check_job_spec``."""
    return check_job_spec(spec)


def spec(values: NodeValues) -> dict[str, Any]:
    """The JobSpec of a node's values, checked against the schema.

    Raises
    ------
    InvalidOptionError
        A value the schema refuses (the field names it).
    """
    out: dict[str, Any] = {"plate": values.plate.path, "frame_range": list(values.frame_range)}
    if values.plate.colorspace:
        out["colorspace"] = values.plate.colorspace
    if values.plate.start is not None:
        out["start"] = int(values.plate.start)
    if values.mask:
        out["mask"] = values.mask
    if values.face is not None:
        out["face"] = {"point": face_point(values.face, values.height)}
    # Every frame carries its own key, so the engine's interpolation never runs between samples; "linear"
    # is the one that would reproduce the samples exactly if it did.
    out["keys"] = keys(values.weights, values.intensity, values.frame_range, values.mouth)
    out["interpolation"] = "linear"
    if values.mouth is None:
        out["mouth_preservation"] = _clamp(values.mouth_preservation, 1.0)
    else:  # every key carries its own; the mean is what an engine older than protocol 1.2 gets
        out["mouth_preservation"] = round(sum(_clamp(v, 1.0) for v in values.mouth) / len(values.mouth), 6)
    out["backends"] = {"preset": values.backend}
    if values.options:
        out["backends"]["options"] = values.options
    out["output"] = {"pattern": values.output}
    if tuple(values.layers) != OUTPUT_LAYERS:  # left out when both: an engine before protocol 1.3 takes it
        out["output"]["layers"] = list(values.layers)
    out["label"] = values.label[:256]
    return check(out)


__all__ = ["NodeValues", "Plate", "Sampler", "check", "face_point", "for_version", "frames_of", "keys", "sample",
           "spec"]
