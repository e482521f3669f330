"""The one schema of the NED wire protocol: ``PROTOCOL_VERSION``, the envelope, every message type with
its fields, limits and direction, and ``build`` / ``validate``, which both the engine and the clients use.

Nobody writes message dicts by hand anywhere else: the engine's server, the Nuke and Blender plugins and
``ned_protocol.client`` all go through ``build`` (and ``codec``, which validates again on both ends).
``protocol/PROTOCOL.md``'s tables are rendered from this module (``python -m ned_protocol.spec --write``).

Must not import torch, numpy, ned_core or ned_engine: this module installs into Nuke's and Blender's
Python (3.9+). Lists that mirror ``ned_core`` (``EMOTIONS``, ``STAGES``...) are checked against it by the
test suite, not imported.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

from ned_protocol.errors import (
    CODES,
    MAX_NAME,
    MAX_PATH,
    MAX_TEXT,
    InvalidMessageError,
    InvalidOptionError,
    UnsupportedVersionError,
)
from ned_protocol.fields import (
    Bool,
    Dict,
    Field,
    Float,
    Int,
    List,
    Option,
    Problem,
    Rule,
    Str,
    Struct,
    Version,
    at_least_one,
    at_most_one,
    exactly_one,
    kind,
    only_with,
    ordered,
    short,
)

PROTOCOL_VERSION: Version = (1, 3)
"""(major, minor) of the wire protocol; separate from the package version. A minor step only adds
(fields, message types, codes); anything else is a major step."""

# -- vocabularies shared with the pipeline (checked against ned_core by tests/protocol) -----------------
EMOTIONS: tuple[str, ...] = ("neutral", "angry", "disgusted", "fear", "happy", "sad", "surprised")
STAGES: tuple[str, ...] = ("track", "face3d", "manipulate", "render", "appearance", "composite")
INTERPOLATIONS: tuple[str, ...] = ("step", "linear", "smooth")
COMPRESSIONS: tuple[str, ...] = ("none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab")
PLATE_FORMATS: tuple[str, ...] = ("exr", "dpx", "tif", "png", "jpg")
OUTPUT_LAYERS: tuple[str, ...] = ("matte", "stmap")
JOB_STATES: tuple[str, ...] = ("queued", "running", "done", "failed", "cancelled")
PROGRESS_STAGES: tuple[str, ...] = ("queued", "load", "analyze", "render")
AUTH_MODES: tuple[str, ...] = ("none", "curve")

LIMITS: dict[str, int] = {
    "max_message_bytes": 1 << 20,
    "max_string": MAX_PATH,
    "max_array": 100_000,
    "max_map": 1024,
    "max_payloads": 1000,
    "max_payload_bytes": 256 << 20,
    "max_total_bytes": 1 << 30,
    "max_frames": 100_000,
    "max_keys": 10_000,
}
"""Hard bounds of protocol version 1: the decoder refuses anything larger before or while unpacking."""

LIMIT_DOCS: dict[str, str] = {
    "max_message_bytes": "bytes of the first frame (the msgpack map)",
    "max_string": "characters of any string inside the map",
    "max_array": "elements of any array inside the map",
    "max_map": "entries of any map inside the map",
    "max_payloads": "binary payload frames after the map",
    "max_payload_bytes": "bytes of one binary payload frame (a 4K half-float RGBA EXR is ~68 MiB)",
    "max_total_bytes": "bytes of all the payload frames of one message together",
    "max_frames": "frames of one job (`frame_range` span, `plate_frames`, `lost_frames`)",
    "max_keys": "emotion keyframes of one job",
}

# -- reusable field types -------------------------------------------------------------------------------
INT32 = 2**31 - 1
UINT63 = 2**63 - 1
ID = Str(64, pattern=r"[A-Za-z0-9_.:-]*")
JOB_ID = Str(64, min_len=1, pattern=r"[A-Za-z0-9_.:-]+")
NAME = Str(64, min_len=1, pattern=r"[a-z0-9][a-z0-9_.-]*")
PATH = Str(MAX_PATH, min_len=1, path=True)
LABEL = Str(256)
FRAME = Int(-INT32 - 1, INT32)
COUNT = Int(0, INT32)
SEQ = Int(1, UINT63)
COORD = Float(-1e6, 1e6)
SECONDS = Float(0, 1e9)
EPOCH = Float(0, 1e11)
CREDITS = Int(0, 1024)
VERSION = List(Int(0, 65535), min_len=2, max_len=2)


def _unique_key_frames(value: dict) -> Problem:
    keys = value.get("keys")
    if isinstance(keys, (list, tuple)):
        frames = [k.get("frame") for k in keys if isinstance(k, dict)]
        if len(set(frames)) != len(frames):
            return "keys", f"has two keys on the same frame ({short(sorted(frames))})"
    return None


def _span_within_limit(value: dict) -> Problem:
    span = value.get("frame_range")
    if isinstance(span, (list, tuple)) and len(span) == 2 and span[1] - span[0] + 1 > LIMITS["max_frames"]:
        return "frame_range", f"spans {span[1] - span[0] + 1} frames; at most {LIMITS['max_frames']}"
    return None


# -- structs ----------------------------------------------------------------------------------------------
FACE = Struct("Face", "Which face to follow (pixels of the first frame where a face is found); "
                      "with neither field, the largest face.", {
    "point": Field(List(COORD, min_len=2, max_len=2), "`[x, y]`: the face nearest this point"),
    "box": Field(List(COORD, min_len=4, max_len=4), "`[x0, y0, x1, y1]`: the face overlapping this box"),
}, (at_most_one("point", "box"), ordered("box", ((0, 2), (1, 3)), "needs x0 ≤ x1 and y0 ≤ y1")))

EMOTION_KEY = Struct("EmotionKey", "Target emotion weights at one frame (emotions left out weigh 0), and "
                                    "optionally the mouth preservation there.", {
    "frame": Field(FRAME, "frame number (the plate's numbering)", required=True),
    "weights": Field(Dict(Str(16, choices=EMOTIONS), Float(0, 10), min_len=1, max_len=len(EMOTIONS)),
                     "emotion → weight; the non-neutral sum is the edit's intensity", required=True),
    "mouth_preservation": Field(Float(0, 1), "the mouth preservation at this frame (below 1 frees the mouth: "
                                             "the lips may part and show teeth), interpolated between keys "
                                             "like the weights; default: the job's `mouth_preservation`",
                                since=(1, 2)),
})

BACKENDS = Struct("Backends", "Which registered backend runs each stage, by name, and its options; a "
                              "stage left out uses the preset's (or the engine's default) backend.", {
    "preset": Field(NAME, "a named backend set (the CLI's `--backend`)"),
    **{stage: Field(NAME, f"the `{stage}` backend") for stage in STAGES},
    "options": Field(Dict(Str(16, choices=STAGES),
                          Dict(Str(64, min_len=1, pattern=r"[A-Za-z_][A-Za-z0-9_]*"),
                               Option(max_str=MAX_PATH, max_len=256), max_len=64),
                          max_len=len(STAGES)),
                     "stage → {option: value}, passed to the backend's constructor"),
})

OUTPUT = Struct("Output", "Where the frames go: an EXR pattern on the engine's file system, inline "
                          "delivery in `frame_ready` payloads, or both.", {
    "pattern": Field(PATH, "EXR path pattern (`####` or `%04d`), inside the engine's allowed roots"),
    "inline": Field(Bool(), "send each EXR's bytes in its `frame_ready` (paced by credits)", default=False),
    "compression": Field(Str(8, choices=COMPRESSIONS), "EXR compression", default="zip"),
    "half": Field(Bool(), "half-float RGBA (false: 32-bit float); default: half unless the plate's values, "
                          "or their conversion to `colorspace`, need float to come back exactly"),
    "colorspace": Field(Str(256, min_len=1), "the OCIO colourspace the EXRs are written in (tagged in their "
                                             "header); default: the plate's own when scene-linear, else "
                                             "linearised (built-in config: Linear Rec.709 (sRGB); a site "
                                             "config: its `scene_linear` role)", since=(1, 1)),
    "layers": Field(List(Str(8, choices=OUTPUT_LAYERS), max_len=len(OUTPUT_LAYERS), unique=True),
                    "the layers written beside RGBA, each an EXR part: `matte` (`ned.matte`), `stmap` "
                    "(`stmap.u`, `stmap.v`); `[]` writes RGBA alone, in one part",
                    default=list(OUTPUT_LAYERS), since=(1, 3)),
}, (at_least_one("pattern", "inline"),))

JOB_SPEC = Struct("JobSpec", "One edit: the CLI's `ned edit` arguments as data.", {
    "plate": Field(PATH, "plate path: sequence pattern (`####`, `%04d`) or movie"),
    "plate_frames": Field(List(FRAME, min_len=1, max_len=LIMITS["max_payloads"], unique=True),
                          "inline plate: frame numbers, one binary payload per frame in this order"),
    "plate_format": Field(Str(4, choices=PLATE_FORMATS), "file format of the inline plate payloads",
                          default="exr"),
    "frame_range": Field(List(FRAME, min_len=2, max_len=2), "`[first, last]`, inclusive; default: the "
                                                            "whole plate"),
    "start": Field(FRAME, "number of a movie's first frame", default=1001),
    "colorspace": Field(Str(256, min_len=1), "the plate's OCIO colourspace; default: from the file"),
    "mask": Field(PATH, "user mask sequence pattern (alpha, else first channel), same frame numbers"),
    "face": Field(FACE, "which face to edit; default: the largest"),
    "emotion": Field(Str(16, choices=EMOTIONS), "a constant emotion for the whole shot"),
    "intensity": Field(Float(0, 10), "the constant emotion's intensity", default=1.0),
    "keys": Field(List(EMOTION_KEY, min_len=1, max_len=LIMITS["max_keys"]), "emotion keyframes"),
    "interpolation": Field(Str(8, choices=INTERPOLATIONS), "between keyframes", default="smooth"),
    "mouth_preservation": Field(Float(0, 1), "how much of the speech's mouth motion is kept (keys may set "
                                             "their own, frame by frame); default: 1 for footage, 0 for a "
                                             "single still (it has no speech to keep)"),
    "backends": Field(BACKENDS, "backends per stage; default: the embedded ones"),
    "output": Field(OUTPUT, "where the frames go", required=True),
    "priority": Field(Int(-100, 100), "higher runs first; equal priorities run in submission order",
                      default=0),
    "label": Field(LABEL, "a name for job lists (e.g. the host's node name)"),
}, (exactly_one("plate", "plate_frames"), only_with("plate_format", "plate_frames"),
    exactly_one("emotion", "keys"), only_with("intensity", "emotion"), only_with("interpolation", "keys"),
    Rule("keyframes on distinct frames", _unique_key_frames),
    ordered("frame_range", ((0, 1),), "needs first ≤ last"),
    Rule(f"`frame_range` spans at most {LIMITS['max_frames']} frames", _span_within_limit)))

MODEL_INFO = Struct("ModelInfo", "A model a backend needs and whether this engine has it.", {
    "name": Field(NAME, "model name", required=True),
    "stage": Field(Str(16, choices=STAGES), "the stage it serves", required=True),
    "available": Field(Bool(), "found and loadable", required=True),
    "detail": Field(Str(1024), "where it was looked for, or how to get it"),
})

JOB_INFO = Struct("JobInfo", "A job as `status` and `list` report it.", {
    "job": Field(JOB_ID, "job id", required=True),
    "state": Field(Str(16, choices=JOB_STATES), "lifecycle state", required=True),
    "last_seq": Field(Int(0, UINT63), "the newest event's `seq` (0: none yet)", required=True),
    "label": Field(LABEL, "the spec's label"),
    "priority": Field(Int(-100, 100), "the spec's priority"),
    "submitted": Field(EPOCH, "submission time, seconds since the Unix epoch"),
    "stage": Field(Str(16, choices=PROGRESS_STAGES), "the latest progress stage"),
    "done": Field(COUNT, "frames done in that stage; of an ended job, the frames it wrote"),
    "total": Field(COUNT, "frames in that stage"),
    "code": Field(Str(32, choices=CODES), "the error code of a failed job"),
    "plate": Field(PATH, "the spec's plate (absent for an inline plate)"),
    "output": Field(PATH, "the output pattern (absent for inline-only delivery)"),
})

ERROR_FIELDS: dict[str, Field] = {
    "code": Field(Str(32, choices=CODES), "stable error code (see Error codes)", required=True),
    "message": Field(Str(MAX_TEXT), "one line for a person", required=True),
    "retryable": Field(Bool(), "the same request may succeed later", required=True),
    "path": Field(PATH, "the file at fault"),
    "frame": Field(FRAME, "the frame at fault"),
    "field": Field(Str(MAX_NAME), "the field or option at fault, as a path (`spec.keys[2].frame`)"),
}
SEQ_FIELD = Field(SEQ, "per-job event number, increasing (gaps allowed)", required=True)


# -- message types ------------------------------------------------------------------------------------------
def _no_payloads(body: dict) -> int:
    return 0


def _plate_payloads(body: dict) -> int:
    spec = body.get("spec")
    frames = spec.get("plate_frames") if isinstance(spec, dict) else None
    return len(frames) if isinstance(frames, (list, tuple)) else 0


def _frame_payloads(body: dict) -> int:
    return 1 if body.get("inline") is True else 0


@dataclass(frozen=True)
class MessageType:
    """One message type: who sends it, its body fields, whether it names a job, what answers it."""

    name: str
    direction: str  # "request" (client → engine), "reply" or "event" (engine → client)
    doc: str
    body: Struct
    job: str = "none"  # "none": job is nil; "required": a job id; "optional": either
    reply: str | None = None  # a request's reply on success (any request may get `error` instead)
    payloads: Callable[[dict], int] = _no_payloads
    payloads_doc: str = "none"
    since: Version = (1, 0)

    @property
    def sender(self) -> str:
        return "client" if self.direction == "request" else "engine"


def _message(name: str, direction: str, doc: str, fields: dict[str, Field], **options: Any) -> MessageType:
    return MessageType(name, direction, doc, Struct(name, doc, fields), **options)


_MESSAGES: tuple[MessageType, ...] = (
    _message("hello", "request", "Opens a session; the engine answers `welcome`, or `error` "
             "`unsupported_version` when the majors differ. Sent again after every reconnect.", {
                 "client": Field(Str(128, min_len=1), "client name and version, e.g. `ned-nuke/0.1.0`",
                                 required=True),
                 "host": Field(Str(128), "host application, e.g. `Nuke 15.1v2`"),
                 "pid": Field(Int(0, INT32), "client process id (for the engine's log)"),
                 "heartbeat": Field(Float(0.01, 3600), "seconds between the client's pings when idle; the "
                                    "engine may drop the subscriptions of a connection silent for 3× this",
                                    default=2.0),
             }, reply="welcome"),
    _message("welcome", "reply", "The engine's versions and capabilities. Its envelope `v` is the "
             "session's version: the lower minor of the two sides.", {
                 "protocol": Field(VERSION, "the engine's own `[major, minor]`", required=True),
                 "engine_version": Field(Str(64, min_len=1), "ned-engine package version", required=True),
                 "session": Field(JOB_ID, "engine instance id; changes when the engine restarts",
                                  required=True),
                 "backends": Field(Dict(Str(16, choices=STAGES), List(NAME, max_len=64), max_len=len(STAGES)),
                                   "stage → registered backend names", required=True),
                 "presets": Field(List(NAME, max_len=64), "named backend sets"),
                 "models": Field(List(MODEL_INFO, max_len=256), "models the backends need"),
                 "devices": Field(List(Str(64, min_len=1), max_len=64), "compute devices, e.g. `cpu`, "
                                  "`cuda:0`", required=True),
                 "limits": Field(Dict(Str(32, choices=tuple(LIMITS)), Int(0, UINT63), max_len=len(LIMITS)),
                                 "this engine's limits where tighter than the protocol's", required=True),
                 "allowed_roots": Field(List(PATH, max_len=64), "directories job paths must lie in"),
                 "auth": Field(Str(8, choices=AUTH_MODES), "how this connection is authenticated",
                               default="none"),
             }),
    _message("submit", "request", "Queues a job and subscribes this connection to its events. The same "
             "`idempotency_key` again (e.g. a resend after a reconnect) returns the same job with "
             "`duplicate: true` and subscribes from the job's first kept event, as `resume` with "
             "`after_seq` 0 would; the same key with a different `spec` is refused (`invalid_option`, "
             "field `idempotency_key`).", {
                 "spec": Field(JOB_SPEC, "the job", required=True),
                 "idempotency_key": Field(Str(128, min_len=1, pattern=r"[\x21-\x7e]+"),
                                          "client-chosen key, unique per intended job"),
                 "credits": Field(CREDITS, "initial credit window for inline frames", default=2),
             }, reply="accepted", payloads=_plate_payloads,
             payloads_doc="one per `spec.plate_frames` entry (the plate's file bytes), else none"),
    _message("accepted", "reply", "The job's id (envelope `job`); its events follow on this connection.", {
        "state": Field(Str(16, choices=JOB_STATES), "the job's state now", required=True),
        "duplicate": Field(Bool(), "the idempotency key matched an existing job", required=True),
    }, job="required"),
    _message("progress", "event", "How far a job is.", {
        "seq": SEQ_FIELD,
        "stage": Field(Str(16, choices=PROGRESS_STAGES), "what the job is doing", required=True),
        "frame": Field(FRAME, "the frame just finished", nullable=True),
        "done": Field(COUNT, "frames done in this stage", required=True),
        "total": Field(COUNT, "frames in this stage", required=True),
        "eta": Field(SECONDS, "estimated seconds to the end of the job, from the rates of the frames done so "
                     "far; while analysing it includes a guessed render time (nil: no estimate yet)",
                     nullable=True),
        "message": Field(Str(1024), "a line for a person"),
    }, job="required"),
    _message("frame_ready", "event", "One output frame is written (and, inline, its EXR bytes follow).", {
        "seq": SEQ_FIELD,
        "frame": Field(FRAME, "frame number", required=True),
        "path": Field(PATH, "the EXR on the engine's file system (nil: inline only)", nullable=True),
        "inline": Field(Bool(), "the EXR's bytes are the message's payload", required=True),
        "size": Field(Int(0, UINT63), "byte size of the payload"),
    }, job="required", payloads=_frame_payloads, payloads_doc="one (the EXR file's bytes) when `inline`"),
    _message("done", "event", "Terminal: the job finished.", {
        "seq": SEQ_FIELD,
        "frames_written": Field(COUNT, "frames written", required=True),
        "lost_frames": Field(List(FRAME, max_len=LIMITS["max_frames"]), "frames where the face was lost "
                             "(written as the untouched plate)", default=[]),
        "output": Field(PATH, "the output pattern", nullable=True),
        "elapsed": Field(SECONDS, "seconds from start to end"),
        "analysis_cached": Field(Bool(), "the shot's analysis came from the cache"),
    }, job="required"),
    _message("failed", "event", "Terminal: the job stopped on an error.",
             {"seq": SEQ_FIELD, **ERROR_FIELDS}, job="required"),
    _message("cancelled", "event", "Terminal: the job was cancelled (frames already written stay).", {
        "seq": SEQ_FIELD,
        "frames_written": Field(COUNT, "frames written before the cancel", required=True),
        "message": Field(Str(1024), "who or what cancelled it"),
    }, job="required"),
    _message("cancel", "request", "Cancels a queued or running job; its terminal `cancelled` event "
             "follows. Cancelling a finished job is not an error.", {}, job="required", reply="ack"),
    _message("ack", "reply", "A request was carried out.", {
        "state": Field(Str(16, choices=JOB_STATES), "the job's state now (for a job request)"),
    }, job="optional"),
    _message("status", "request", "Asks for one job's state.", {}, job="required", reply="job_status"),
    _message("job_status", "reply", "One job's state.", {
        "info": Field(JOB_INFO, "the job", required=True),
    }, job="required"),
    _message("list", "request", "Asks for the engine's jobs, newest first.", {
        "states": Field(List(Str(16, choices=JOB_STATES), max_len=len(JOB_STATES), unique=True),
                        "only jobs in these states"),
        "limit": Field(Int(1, 1000), "at most this many", default=100),
    }, reply="jobs"),
    _message("jobs", "reply", "The engine's jobs.", {
        "jobs": Field(List(JOB_INFO, max_len=1000), "newest first", required=True),
        "more": Field(Bool(), "the limit cut the list", default=False),
    }),
    _message("watch", "request", "Subscribes this connection to a job's live events. The engine first "
             "sends the job's newest kept event (its latest `progress`, or its terminal event when it has "
             "ended), so a watcher learns where the job is and always sees its end.", {
        "inline": Field(Bool(), "receive inline EXR payloads (if the job delivers inline)", default=False),
        "credits": Field(CREDITS, "initial credit window for inline frames", default=2),
    }, job="required", reply="watching"),
    _message("resume", "request", "Subscribes this connection to a job's events after `after_seq`: the "
             "engine first replays the kept events with a larger `seq`, then continues live.", {
                 "after_seq": Field(Int(0, UINT63), "the last `seq` the client saw (0: from the start)",
                                    required=True),
                 "inline": Field(Bool(), "receive inline EXR payloads", default=False),
                 "credits": Field(CREDITS, "initial credit window for inline frames", default=2),
             }, job="required", reply="watching"),
    _message("watching", "reply", "The subscription is active.", {
        "state": Field(Str(16, choices=JOB_STATES), "the job's state now", required=True),
        "last_seq": Field(Int(0, UINT63), "the newest event's `seq` (0: none yet)", required=True),
    }, job="required"),
    _message("credit", "request", "Allows the engine to send `n` more inline frames of a job to this "
             "connection. No reply on success.", {
                 "n": Field(Int(1, 1024), "frames", required=True),
             }, job="required"),
    _message("ping", "request", "Liveness check; also the client's heartbeat.", {}, reply="pong"),
    _message("pong", "reply", "Answer to `ping`.", {
        "time": Field(EPOCH, "the engine's clock, seconds since the Unix epoch"),
    }),
    _message("shutdown", "request", "Stops the engine. Only from an authorised client (see Security).", {
        "token": Field(Str(256, min_len=1), "the engine's shutdown token, when it uses one"),
        "drain": Field(Bool(), "finish running jobs first (false: stop now; journaled jobs resume at "
                                "the next start)", default=False),
    }, reply="ack"),
    _message("error", "reply", "A request failed (its `id` is the request's; empty when the request's id "
             "could not be read).", dict(ERROR_FIELDS), job="optional"),
)

MESSAGES: dict[str, MessageType] = {m.name: m for m in _MESSAGES}
"""Every message type by name, in spec order."""
REQUESTS = tuple(m.name for m in _MESSAGES if m.direction == "request")
REPLIES = tuple(m.name for m in _MESSAGES if m.direction == "reply")
EVENTS = tuple(m.name for m in _MESSAGES if m.direction == "event")
TERMINAL_EVENTS: tuple[str, ...] = ("done", "failed", "cancelled")

ENVELOPE: dict[str, Field] = {
    "v": Field(VERSION, "protocol `[major, minor]` of this message", required=True),
    "type": Field(Str(32, choices=tuple(MESSAGES)), "message type", required=True),
    "id": Field(ID, "request: a fresh id chosen by the client (1..64 chars); reply: the request's id; "
                    "event: the id of the request that subscribed this connection", required=True),
    "job": Field(JOB_ID, "job id for job messages, else nil", required=True, nullable=True),
    "body": Field(Struct("Body", "", {}), "the type's fields (tables below)", required=True),
}
"""The five keys of every message (documentation; ``validate`` checks them)."""


# -- build and validate -------------------------------------------------------------------------------------
def new_id() -> str:
    """A fresh random message id (16 hex digits)."""
    return secrets.token_hex(8)


def session_version(peer: Sequence[int]) -> Version:
    """The version a session speaks: this side's major (majors must match) and the lower minor."""
    return (PROTOCOL_VERSION[0], min(PROTOCOL_VERSION[1], int(peer[1])))


def build(type: str, *, msg_id: str | None = None, job: str | None = None,
          version: Sequence[int] = PROTOCOL_VERSION, **body: Any) -> dict[str, Any]:
    """A validated message of ``type`` with ``body`` as its fields.

    A request gets a fresh ``msg_id`` when none is given; replies and events must pass the id of the
    request they answer. ``None`` for an optional field that is not nullable leaves the field out.

    Raises
    ------
    InvalidMessageError
        Unknown type or a body outside the schema (``field`` names the path at fault).
    """
    spec = MESSAGES.get(type)
    if spec is None:
        raise InvalidMessageError(f"unknown message type {short(type)}", field="type")
    if msg_id is None:
        if spec.direction != "request":
            raise InvalidMessageError(f"{type} answers a request: pass msg_id=<the request's id>", field="id")
        msg_id = new_id()
    fields = spec.body.fields
    body = {k: v for k, v in body.items() if v is not None or (k in fields and fields[k].nullable)}
    message = {"v": list(version), "type": type, "id": msg_id, "job": job, "body": body}
    validate(message)
    return message


def validate(message: Any, payloads: Sequence[Any] | None = None, *, sender: str | None = None) -> None:
    """Check a message (and its payloads' count and sizes, when given) against the schema.

    ``sender`` ("client" or "engine") also checks the direction: an engine accepts only requests, a
    client only replies and events.

    Raises
    ------
    UnsupportedVersionError
        ``v`` names another major version.
    InvalidMessageError
        Anything else outside the schema; ``field`` is the path at fault (``body`` paths are given
        without the ``body.`` prefix, e.g. ``spec.output.pattern``).
    """
    if not isinstance(message, dict):
        raise InvalidMessageError(f"a message must be a map, got {kind(message)}")
    version = _check_version(message.get("v"))
    for key in message:
        if key not in ENVELOPE:
            raise InvalidMessageError(f"unknown envelope key {short(key)} (known: {', '.join(ENVELOPE)})",
                                      field=key if isinstance(key, str) else None)
    for key in ENVELOPE:
        if key not in message:
            raise InvalidMessageError(f"the envelope has no {key!r}", field=key)
    name = message["type"]
    spec = MESSAGES.get(name) if isinstance(name, str) else None
    if spec is None:
        raise InvalidMessageError(f"unknown message type {short(name)}", field="type")
    if spec.since > version:
        raise InvalidMessageError(f"{name} is new in protocol {spec.since[0]}.{spec.since[1]}; the message "
                                  f"says {version[0]}.{version[1]}", field="type")
    if sender is not None and spec.sender != sender:
        raise InvalidMessageError(f"{name} is sent by the {spec.sender}, not the {sender}", field="type")
    try:
        ID.check(message["id"], "id", version)
        if spec.direction == "request" and not message["id"]:
            raise InvalidMessageError("id must not be empty in a request", field="id")
        _check_job(spec, message["job"])
        spec.body.check(message["body"], "", version)
    except InvalidMessageError as error:
        raise InvalidMessageError(f"{name}: {error.message}", field=error.field) from None
    if payloads is not None:
        _check_payloads(spec, message["body"], payloads)


def check_job_spec(spec: Any, version: Version = PROTOCOL_VERSION) -> dict[str, Any]:
    """``spec`` if it is a valid ``JobSpec`` (what the engine checks on submit): for the specs that are not
    in a message yet — a host plugin's, a farm's JOB.json.

    Raises
    ------
    InvalidOptionError
        The spec is outside the schema; ``field`` is the path at fault (``spec.keys[3].weights``).
    """
    try:
        JOB_SPEC.check(spec, "spec", version)
    except InvalidMessageError as error:
        raise InvalidOptionError(f"bad job spec: {error.message}", field=error.field) from None
    return spec


def spec_for_version(spec: dict[str, Any], version: Sequence[int]) -> tuple[dict[str, Any], list[str]]:
    """``spec`` (a ``JobSpec``) without the fields an engine of protocol ``version`` does not know, and
    their paths (``keys[].mouth_preservation``, ``output.layers``), one per field.

    An older engine refuses a newer field (``invalid_message``); a client leaves it out and says so.
    """
    dropped: list[str] = []

    def strip(value: dict[str, Any], struct: Struct, path: str) -> dict[str, Any]:
        kept = {}
        for key, item in value.items():
            spec_field = struct.fields.get(key)
            if spec_field is not None and tuple(spec_field.since) > tuple(version):
                dropped.append(f"{path}{key}")
                continue
            if spec_field is not None and isinstance(spec_field.type, Struct) and isinstance(item, dict):
                item = strip(item, spec_field.type, f"{path}{key}.")
            elif spec_field is not None and isinstance(spec_field.type, List) and isinstance(
                    spec_field.type.item, Struct) and isinstance(item, list):
                seen = len(dropped)
                item = [strip(entry, spec_field.type.item, f"{path}{key}[].") if isinstance(entry, dict)
                        else entry for entry in item]
                dropped[seen:] = sorted(set(dropped[seen:]))  # one name per field, not one per key
            kept[key] = item
        return kept

    return strip(spec, JOB_SPEC, ""), dropped


def with_defaults(message: dict[str, Any]) -> dict[str, Any]:
    """A copy of a valid message's body with every documented default filled in (nested ones too)."""
    return MESSAGES[message["type"]].body.with_defaults(message["body"])


def _check_version(value: Any) -> Version:
    if not (isinstance(value, list) and len(value) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 65535 for x in value)):
        raise InvalidMessageError(f"v must be [major, minor], got {short(value)}", field="v")
    if value[0] != PROTOCOL_VERSION[0]:
        raise UnsupportedVersionError(
            f"the peer speaks protocol {value[0]}.{value[1]} but this side speaks "
            f"{PROTOCOL_VERSION[0]}.{PROTOCOL_VERSION[1]}; the major versions must match (install a "
            f"plugin and an engine of the same protocol major version)", field="v")
    return (value[0], value[1])


def _check_job(spec: MessageType, job: Any) -> None:
    if job is None:
        if spec.job == "required":
            raise InvalidMessageError("job is required (a job id)", field="job")
    elif spec.job == "none":
        raise InvalidMessageError(f"job must be nil, got {short(job)}", field="job")
    else:
        JOB_ID.check(job, "job", PROTOCOL_VERSION)


def _check_payloads(spec: MessageType, body: dict, payloads: Sequence[Any]) -> None:
    expected = spec.payloads(body)
    if len(payloads) != expected:
        raise InvalidMessageError(f"{spec.name}: carries {len(payloads)} payload frames, expected {expected} "
                                  f"({spec.payloads_doc})", field="payloads")
    total = 0
    for index, payload in enumerate(payloads):
        try:
            size = memoryview(payload).nbytes
        except TypeError:
            raise InvalidMessageError(f"{spec.name}: payload {index} is {kind(payload)}, not bytes",
                                      field=f"payloads[{index}]") from None
        if size > LIMITS["max_payload_bytes"]:
            raise InvalidMessageError(f"{spec.name}: payload {index} is {size} bytes; at most "
                                      f"{LIMITS['max_payload_bytes']}", field=f"payloads[{index}]")
        total += size
    if total > LIMITS["max_total_bytes"]:
        raise InvalidMessageError(f"{spec.name}: payloads total {total} bytes; at most "
                                  f"{LIMITS['max_total_bytes']}", field="payloads")
