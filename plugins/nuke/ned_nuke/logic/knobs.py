"""The NeuralEmotionDirector node's knobs as data: names, kinds, labels, defaults, ranges and tooltips.

``ned_nuke.host`` turns each ``KnobDef`` into the matching ``nuke.*_Knob``; the docs and tests read the
same table, so a knob has one name everywhere. The emotion knobs follow NED's label order
(``ned_protocol.schema.EMOTIONS``).

Imports only ``ned_protocol.schema``; never ``nuke``, torch, numpy, ned_core or ned_engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ned_protocol.schema import EMOTIONS

NODE_CLASS = "NeuralEmotionDirector"
"""The node's name in menus, and the value of its hidden ``ned_node`` knob (how the plugin knows it)."""
NODE_VERSION = 1
DEFAULT_ADDRESS = "tcp://127.0.0.1:7741"
"""``ned-engine serve``'s default endpoint."""
BACKENDS: tuple[str, ...] = ("default", "ned")
"""The engine's named backend sets (``ned edit --backend``)."""
MASK_CHANNELS: tuple[str, ...] = ("alpha", "red", "green", "blue")
INPUTS: tuple[str, ...] = ("Source", "Mask")
"""The Group's inputs, in input order."""
RESULT_READ = "NEDResult"
"""The internal Read node that shows the engine's frames."""
COMMAND = "import ned_nuke.host; ned_nuke.host.{}(nuke.thisNode())"


@dataclass(frozen=True)
class KnobDef:
    """One knob. ``kind`` is one of: tab, string, file, button, enum, bool, xy, double, int, text, divider,
    hidden."""

    kind: str
    name: str
    label: str = ""
    default: Any = None
    range: tuple[float, float] | None = None
    values: tuple[str, ...] = ()
    command: str = ""
    tooltip: str = ""
    new_line: bool = True


def _button(name: str, label: str, function: str, tooltip: str, new_line: bool = True) -> KnobDef:
    return KnobDef("button", name, label, command=COMMAND.format(function), tooltip=tooltip, new_line=new_line)


KNOBS: tuple[KnobDef, ...] = (
    KnobDef("tab", "ned_tab", "NED"),
    KnobDef("hidden", "ned_node", default=NODE_CLASS),
    KnobDef("hidden", "ned_job", default="", tooltip="the engine's id of the last job (for Cancel)"),
    KnobDef("hidden", "ned_result", default="", tooltip="the output pattern the internal Read shows"),
    KnobDef("string", "address", "engine", DEFAULT_ADDRESS,
            tooltip="the ned-engine to send the job to (ZeroMQ endpoint, e.g. tcp://127.0.0.1:7741)"),
    _button("start_engine", "start local engine", "start_engine",
            "start `ned-engine serve` on this machine at the engine address (loopback only)", new_line=False),
    KnobDef("enum", "backend", "backend", "default", values=BACKENDS,
            tooltip="the engine's backend set: default (embedded models) or ned (NED's models, see "
                    "docs/using_ned_models.md)"),
    KnobDef("divider", "face_divider", "face"),
    KnobDef("bool", "use_face", "pick face", False,
            tooltip="off: edit the largest face; on: the face nearest the face point"),
    KnobDef("xy", "face", "face point", (0.0, 0.0), new_line=False,
            tooltip="drag onto the face to edit, in the Viewer on the first frame of the range"),
    KnobDef("divider", "emotion_divider", "emotion (animate these: the curves are the keyframes)"),
    *(KnobDef("double", label, label, 1.0 if label == "neutral" else 0.0, (0.0, 1.0),
              tooltip=f"weight of {label} (0..1), keyframe it with Nuke's own curves") for label in EMOTIONS),
    KnobDef("double", "intensity", "intensity", 1.0, (0.0, 2.0),
            tooltip="multiplies every non-neutral weight (animatable)"),
    KnobDef("double", "mouth_preservation", "mouth preservation", 1.0, (0.0, 1.0),
            tooltip="how much of the speech's mouth motion is kept (1: all); animate it below 1 to free the "
                    "mouth (lips parted, teeth) on some frames"),
    KnobDef("divider", "range_divider", "frames"),
    KnobDef("bool", "use_input_range", "input range", True,
            tooltip="on: process the Source's frame range; off: the range below"),
    KnobDef("int", "first", "first", 1, new_line=False),
    KnobDef("int", "last", "last", 1, new_line=False),
    KnobDef("file", "output", "output", "",
            tooltip="EXR pattern for the edited frames (####); empty: a new version folder beside the "
                    "script, ned/<script>/<node>/v###/"),
    KnobDef("bool", "write_matte", "matte layer", True,
            tooltip="write the face matte (ned.matte) beside RGBA"),
    KnobDef("bool", "write_stmap", "STMap layer", True, new_line=False,
            tooltip="write the warp as an STMap (stmap.u, stmap.v) beside RGBA; off saves 15–20% of a "
                    "1080p frame's CPU and nearly a third of its bytes"),
    KnobDef("enum", "mask_channel", "mask channel", "alpha", values=MASK_CHANNELS,
            tooltip="the Mask input's channel that limits the edit"),
    KnobDef("divider", "run_divider", ""),
    _button("process", "Process", "process", "send the job to the engine; frames appear as they are written"),
    _button("cancel", "Cancel", "cancel", "stop the job (frames already written stay)", new_line=False),
    _button("farm", "Write farm job", "write_farm_job",
            "write the job as JSON for `ned-engine analyze` / `ned-engine render` on a farm", new_line=False),
    KnobDef("text", "status", "status", "idle"),
)
"""Every knob of the node, in panel order."""

EMOTION_KNOBS: tuple[str, ...] = EMOTIONS
"""Knob names of the emotion weights (one per NED label, in label order)."""


def knob(name: str) -> KnobDef:
    """The definition of knob ``name``."""
    for definition in KNOBS:
        if definition.name == name:
            return definition
    raise KeyError(name)


__all__ = ["BACKENDS", "DEFAULT_ADDRESS", "EMOTION_KNOBS", "INPUTS", "KNOBS", "MASK_CHANNELS", "NODE_CLASS",
           "RESULT_READ", "KnobDef", "knob"]
