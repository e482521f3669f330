"""Track stage: backends by name (see base.py for the interface)."""

from __future__ import annotations

from typing import Any

from ned_core.registry import load_backend
from ned_core.track.base import FaceHint, FaceTrack, Tracker

BACKENDS: dict[str, str] = {
    "mediapipe": "ned_core.track.mediapipe_mesh:MediaPipeTracker",
}
DEFAULT = "mediapipe"


def get(name: str = DEFAULT, **options: Any) -> Tracker:
    return load_backend("track", BACKENDS, name, **options)


__all__ = ["BACKENDS", "DEFAULT", "FaceHint", "FaceTrack", "Tracker", "get"]
