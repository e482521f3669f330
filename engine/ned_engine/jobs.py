"""A job spec (the protocol's ``JobSpec``) ⇄ what ``ned_core.pipeline`` runs, written once.

``plan`` turns a spec into a ``JobPlan`` (``Shot``, ``EmotionCurve``, ``OutputSpec``, ``Backends``);
``job_from_cli_args`` turns ``ned edit``'s arguments into a spec, so ``ned edit``, ``ned edit
--engine``, the server and the farm runner all read the same edit the same way. ``spool_paths`` names
where an engine keeps a job's inline plate and inline-only output.

Imports ned_core and ned_protocol's schema and errors; no networking.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from typing import Any

from ned_protocol.errors import InvalidOptionError as ProtocolError
from ned_protocol.schema import COMPRESSIONS, JOB_SPEC, check_job_spec

from ned_core import appearance, composite, face3d, manipulate, render, track
from ned_core.errors import InvalidOptionError, UnknownBackendError
from ned_core.io import is_sequence_pattern, parse_frame_range
from ned_core.io.sequence import is_movie
from ned_core.keyframes import EmotionCurve, EmotionKey
from ned_core.pipeline import PRESETS, STAGES, Backends, OutputSpec, Shot, check_layers
from ned_core.track.base import FaceHint

REGISTRIES = {"track": track.BACKENDS, "face3d": face3d.BACKENDS, "manipulate": manipulate.BACKENDS,
              "render": render.BACKENDS, "appearance": appearance.BACKENDS, "composite": composite.BACKENDS}
"""Stage → its registered backend names (what ``welcome.backends`` lists)."""

PLATE_EXTENSIONS = {".exr": "exr", ".dpx": "dpx", ".tif": "tif", ".tiff": "tif", ".png": "png", ".jpg": "jpg",
                    ".jpeg": "jpg"}
"""Image extensions an inline plate may carry → the spec's ``plate_format``."""


@dataclass
class JobPlan:
    """One job as the pipeline runs it."""

    shot: Shot
    curve: EmotionCurve
    output: OutputSpec
    backends: Backends
    mouth_preservation: float | None  # None: 1 for footage, 0 for a still (the pipeline decides)
    inline: bool
    pattern: str | None
    """The spec's output pattern (None for inline-only delivery, whose frames go to the spool)."""


def check_spec(spec: Any) -> None:
    """Check a JobSpec against the protocol schema (for specs that did not arrive in a message).

    Raises
    ------
    InvalidOptionError
        The spec is outside the schema; ``field`` is the path at fault (``spec.keys[0].frame``).
    """
    try:
        check_job_spec(spec)
    except ProtocolError as error:  # the protocol's error class, as ned_core's for the engine's callers
        raise InvalidOptionError(error.message, field=error.field) from None


def plan(spec: dict[str, Any], *, plate: str | None = None, output: str | None = None) -> JobPlan:
    """The pipeline objects of a schema-valid JobSpec.

    Parameters
    ----------
    spec
        A JobSpec (defaults need not be filled in).
    plate
        Where the inline plate's frames were written (a sequence pattern); required when the spec
        has ``plate_frames``.
    output
        The pattern for an inline-only job's frames (the engine's spool); the spec's ``pattern``
        otherwise.

    Raises
    ------
    InvalidOptionError, UnknownBackendError
        Values the schema allows but the pipeline does not (``field`` names the spec's path).
    """
    s = JOB_SPEC.with_defaults(spec)
    face = None
    if "face" in s:
        hint = s["face"]
        face = FaceHint(point=tuple(float(v) for v in hint["point"]) if "point" in hint else None,
                        box=tuple(float(v) for v in hint["box"]) if "box" in hint else None)
    plate_path = s.get("plate", plate)
    if plate_path is None or (plate is None and "plate_frames" in s):
        raise InvalidOptionError("the job's plate is inline: give the pattern its frames were written to",
                                 field="spec.plate_frames")
    frame_range = s.get("frame_range")
    shot = Shot(plate=plate_path, frame_range=None if frame_range is None else (int(frame_range[0]),
                                                                                 int(frame_range[1])),
                colorspace=s.get("colorspace"), mask=s.get("mask"), face=face, start=int(s["start"]))
    if "emotion" in s:
        curve = EmotionCurve.constant(s["emotion"], float(s["intensity"]))
    else:
        keys = [EmotionKey(int(k["frame"]), {name: float(w) for name, w in k["weights"].items()},
                           None if k.get("mouth_preservation") is None else float(k["mouth_preservation"]))
                for k in s["keys"]]
        curve = EmotionCurve(keys, s["interpolation"])
    out = s["output"]
    pattern = out.get("pattern")
    target = pattern if pattern is not None else output
    if target is None:
        raise InvalidOptionError("the job delivers inline only: give the pattern to write its frames to",
                                 field="spec.output.pattern")
    try:
        output_spec = OutputSpec(target, compression=out["compression"],
                                 half=bool(out["half"]) if "half" in out else None, colorspace=out.get("colorspace"),
                                 layers=tuple(out["layers"]))
    except InvalidOptionError as error:
        if error.field not in ("output_colorspace", "layers"):
            raise
        name = "colorspace" if error.field == "output_colorspace" else error.field
        raise InvalidOptionError(str(error), field=f"spec.output.{name}") from None
    mouth = s.get("mouth_preservation")
    return JobPlan(shot=shot, curve=curve, output=output_spec,
                   backends=backends_from_spec(s.get("backends", {})),
                   mouth_preservation=None if mouth is None else float(mouth), inline=bool(out["inline"]),
                   pattern=pattern)


def backends_from_spec(spec: dict[str, Any]) -> Backends:
    """``Backends`` of a spec's ``backends`` map: the preset's, then each named stage, then options."""
    preset = spec.get("preset", "default")
    if preset not in PRESETS:
        raise UnknownBackendError(f"unknown backend preset {preset!r} (known: {', '.join(PRESETS)})",
                                  field="spec.backends.preset")
    backends = Backends.preset(preset)
    for stage in STAGES:
        name = spec.get(stage)
        if name is None:
            continue
        if name not in REGISTRIES[stage]:
            known = ", ".join(sorted(REGISTRIES[stage]))
            raise UnknownBackendError(f"unknown {stage} backend {name!r} (known: {known})",
                                      field=f"spec.backends.{stage}")
        setattr(backends, stage, name)
    backends.options = {stage: dict(options) for stage, options in spec.get("options", {}).items()}
    return backends


def spool_paths(spool: str, job_id: str, plate_format: str = "exr") -> tuple[str, str]:
    """``(plate pattern, output pattern)`` of a job's inline plate and inline-only output in ``spool``."""
    folder = os.path.join(spool, job_id)
    return (os.path.join(folder, "plate", f"plate.%d.{plate_format}"),
            os.path.join(folder, "out", "frame.%d.exr"))


def job_from_cli_args(args: argparse.Namespace) -> dict[str, Any]:
    """The JobSpec of ``ned edit``'s parsed arguments (paths made absolute).

    Reads ``input``, ``output``, ``frames``, ``start``, ``emotion``, ``key``, ``interpolation``,
    ``mouth_preservation``, ``mask``, ``face``, ``face_box``, ``backend``, ``option``, ``colorspace``,
    ``compression``, ``float``, ``half``, ``output_colorspace``, ``layers`` and, when present, ``label`` and
    ``priority``. Without ``--float``/``--half`` the spec leaves ``output.half`` out, so the engine
    picks the depth where it converts the frames.

    Raises
    ------
    InvalidOptionError, UnknownBackendError, FrameRangeError
        An argument the edit cannot use, named as the command line spells it.
    """
    spec: dict[str, Any] = {"plate": os.path.abspath(args.input)}
    if getattr(args, "frames", None):
        spec["frame_range"] = list(parse_frame_range(args.frames))
    spec["start"] = int(getattr(args, "start", 1001))
    if getattr(args, "colorspace", None):
        spec["colorspace"] = args.colorspace
    if getattr(args, "mask", None):
        spec["mask"] = os.path.abspath(args.mask)
    point, box = getattr(args, "face", None), getattr(args, "face_box", None)
    if point and box:
        raise InvalidOptionError("give --face or --face-box, not both", field="face")
    if point:
        spec["face"] = {"point": numbers_option(point, 2, "--face")}
    elif box:
        spec["face"] = {"box": numbers_option(box, 4, "--face-box")}
    emotion, keys = getattr(args, "emotion", None), getattr(args, "key", None) or []
    if emotion and keys:
        raise InvalidOptionError("give --emotion or --key, not both", field="emotion")
    if emotion:
        # the in-process CLI parses --emotion the same way, so both runs build the same curve
        (name, intensity), = EmotionCurve.parse_emotion(emotion).keys[0].weights.items()
        spec["emotion"], spec["intensity"] = name, float(intensity)
    elif keys:
        curve = EmotionCurve.parse_keys(list(keys), getattr(args, "interpolation", "smooth"))
        spec["keys"] = curve.to_data()["keys"]
        spec["interpolation"] = curve.interpolation
    else:
        raise InvalidOptionError("say what to do: --emotion NAME[:INTENSITY] or --key FRAME:EMOTION=W",
                                 field="emotion")
    if getattr(args, "mouth_preservation", None) is not None:
        spec["mouth_preservation"] = float(args.mouth_preservation)
    preset = getattr(args, "backend", None) or "default"
    spec["backends"] = {"preset": preset}
    if getattr(args, "option", None):
        spec["backends"]["options"] = backends_from_args(args).options
    else:
        Backends.preset(preset)  # unknown_backend, worded as the in-process CLI words it
    compression = getattr(args, "compression", None) or "zip"
    if compression not in COMPRESSIONS:
        raise InvalidOptionError(f"unknown EXR compression {compression!r} for an engine job "
                                 f"(use {', '.join(COMPRESSIONS)})", field="compression")
    output = os.path.abspath(args.output)
    spec["output"] = {"pattern": output, "compression": compression}
    if getattr(args, "float", False) or getattr(args, "half", False):
        spec["output"]["half"] = not getattr(args, "float", False)
    if getattr(args, "output_colorspace", None):
        spec["output"]["colorspace"] = args.output_colorspace
    if getattr(args, "layers", None) is not None:  # left out otherwise: an engine before 1.3 takes the job
        spec["output"]["layers"] = list(layers_option(args.layers))
    if getattr(args, "label", None):
        spec["label"] = args.label
    if getattr(args, "priority", None) is not None:
        spec["priority"] = int(args.priority)
    check_spec(spec)
    return spec


def layers_option(text: str) -> tuple[str, ...]:
    """``--layers``: comma-separated output layers (``matte``, ``stmap``), or ``none`` for RGBA alone."""
    value = text.strip()
    return check_layers(() if value == "none" else [name.strip() for name in value.split(",")])


def needs_frame_token(spec: dict[str, Any]) -> bool:
    """True unless the job is known to have a single frame (then its output needs no ``####``)."""
    span = spec.get("frame_range")
    if span is not None:
        return span[0] != span[1]
    if "plate_frames" in spec:
        return len(spec["plate_frames"]) > 1
    plate = spec.get("plate", "")
    return is_movie(plate) or is_sequence_pattern(plate)


def backends_from_args(args: argparse.Namespace) -> Backends:
    """The ``--backend`` preset with every ``--option STAGE.KEY=VALUE`` applied (in-process runs and
    engine jobs alike).

    Values are read as JSON where they parse (numbers, true/false, lists), else kept as strings.
    """
    backends = Backends.preset(args.backend)
    for text in args.option:
        target, eq, raw = text.partition("=")
        stage, dot, key = target.partition(".")
        if not eq or not dot or not key or stage not in STAGES:
            raise InvalidOptionError(
                f"bad --option {text!r} (want STAGE.KEY=VALUE, STAGE one of {', '.join(STAGES)})", field="option")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        backends.options.setdefault(stage, {})[key] = value
    return backends


def numbers_option(text: str, count: int, option: str) -> list[float]:
    """A command-line option of ``count`` comma-separated numbers."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count:
        raise InvalidOptionError(f"{option} wants {count} comma-separated numbers, got {text!r}", field=option)
    return values


__all__ = ["JobPlan", "REGISTRIES", "backends_from_args", "backends_from_spec", "check_spec", "job_from_cli_args",
           "needs_frame_token", "plan", "spool_paths"]
