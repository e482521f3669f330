"""One worked example of every message type: shown in PROTOCOL.md and round-tripped by the tests.

Imports only ``ned_protocol.schema``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ned_protocol.schema import build


class Example(NamedTuple):
    """The arguments of ``schema.build`` for one message, and its payloads."""

    msg_id: str
    job: str | None
    body: dict[str, Any]
    payloads: tuple[bytes, ...] = ()


JOB = "j-7f3a9c2e"
EXR = b"v/1\x01" + bytes(60)  # stands in for an EXR file's bytes (the magic number, then the file)

_SPEC = {
    "plate": "/shows/abc/sh010/plate/sh010_plate.####.exr",
    "frame_range": [1001, 1096],
    "colorspace": "ACEScg",
    "mask": "/shows/abc/sh010/roto/sh010_face.####.exr",
    "face": {"point": [1210.0, 488.5]},
    "keys": [{"frame": 1001, "weights": {"neutral": 1.0}},
             {"frame": 1040, "weights": {"happy": 0.8}, "mouth_preservation": 0.0},
             {"frame": 1090, "weights": {"happy": 0.3, "surprised": 0.4}}],
    "interpolation": "smooth",
    "mouth_preservation": 1.0,
    "backends": {"preset": "default", "render": "warp", "options": {"track": {"min_confidence": 0.6}}},
    "output": {"pattern": "/shows/abc/sh010/comp/ned/sh010_ned.####.exr", "inline": False,
               "compression": "dwaa"},
    "priority": 10,
    "label": "sh010 NeuralEmotionDirector1",
}

EXAMPLES: dict[str, Example] = {
    "hello": Example("c1", None, {"client": "ned-nuke/0.1.0", "host": "Nuke 15.1v2", "pid": 41377,
                                  "heartbeat": 2.0}),
    "welcome": Example("c1", None, {
        "protocol": [1, 2], "engine_version": "0.1.0", "session": "e-5d21b0", "devices": ["cpu", "cuda:0"],
        "backends": {"track": ["mediapipe"], "face3d": ["landmarks"], "manipulate": ["facs"],
                     "render": ["warp"], "composite": ["matte"]},
        "presets": ["default"],
        "models": [{"name": "ned-manipulator", "stage": "manipulate", "available": False,
                    "detail": "set NED_MODELS to the folder holding manipulator checkpoints"}],
        "limits": {"max_frames": 20000}, "allowed_roots": ["/shows", "/tmp/ned"], "auth": "none"}),
    "submit": Example("c2", None, {"spec": _SPEC, "idempotency_key": "sh010-NED1-v3", "credits": 2}),
    "accepted": Example("c2", JOB, {"state": "queued", "duplicate": False}),
    "progress": Example("c2", JOB, {"seq": 7, "stage": "render", "frame": 1004, "done": 4, "total": 96,
                                    "eta": 41.5}),
    "frame_ready": Example("c2", JOB, {"seq": 8, "frame": 1004, "inline": True, "size": len(EXR),
                                       "path": "/shows/abc/sh010/comp/ned/sh010_ned.1004.exr"}, (EXR,)),
    "done": Example("c2", JOB, {"seq": 200, "frames_written": 96, "lost_frames": [1061, 1062],
                                "output": "/shows/abc/sh010/comp/ned/sh010_ned.####.exr", "elapsed": 83.2,
                                "analysis_cached": True}),
    "failed": Example("c2", JOB, {"seq": 3, "code": "corrupt_image", "message": "cannot decode frame 1017",
                                  "retryable": False, "frame": 1017,
                                  "path": "/shows/abc/sh010/plate/sh010_plate.1017.exr"}),
    "cancelled": Example("c2", JOB, {"seq": 40, "frames_written": 31, "message": "cancelled by the client"}),
    "cancel": Example("c3", JOB, {}),
    "ack": Example("c3", JOB, {"state": "running"}),
    "status": Example("c4", JOB, {}),
    "job_status": Example("c4", JOB, {"info": {
        "job": JOB, "state": "running", "last_seq": 8, "label": "sh010 NeuralEmotionDirector1",
        "priority": 10, "submitted": 1795600000.0, "stage": "render", "done": 4, "total": 96,
        "plate": "/shows/abc/sh010/plate/sh010_plate.####.exr"}}),
    "list": Example("c5", None, {"states": ["queued", "running"], "limit": 20}),
    "jobs": Example("c5", None, {"jobs": [{"job": JOB, "state": "running", "last_seq": 8}], "more": False}),
    "watch": Example("c6", JOB, {"inline": False}),
    "resume": Example("c7", JOB, {"after_seq": 8, "inline": True, "credits": 2}),
    "watching": Example("c7", JOB, {"state": "running", "last_seq": 12}),
    "credit": Example("c8", JOB, {"n": 1}),
    "ping": Example("c9", None, {}),
    "pong": Example("c9", None, {"time": 1795600042.25}),
    "shutdown": Example("c10", None, {"token": "s3cr3t-from-the-engine-token-file", "drain": True}),
    "error": Example("c11", JOB, {"code": "forbidden_path",
                                  "message": "/etc/passwd is outside the allowed roots (/shows, /tmp/ned)",
                                  "retryable": False, "field": "spec.plate", "path": "/etc/passwd"}),
}
"""Message type → example; every type in ``schema.MESSAGES`` has one."""


def example_message(name: str) -> tuple[dict[str, Any], list[bytes]]:
    """The built (validated) example message of type ``name`` and its payloads."""
    example = EXAMPLES[name]
    return build(name, msg_id=example.msg_id, job=example.job, **example.body), list(example.payloads)

