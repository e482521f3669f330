"""face3d stage: backends by name (see base.py for the interface)."""

from __future__ import annotations

from typing import Any

from ned_core.face3d.base import FaceFit, FaceModeller
from ned_core.registry import load_backend

BACKENDS: dict[str, str] = {
    "landmarks": "ned_core.face3d.landmark_fit:LandmarkFaceModeller",
    "deca": "ned_core.ned.face3d_deca:DecaFaceModeller",
}
DEFAULT = "landmarks"


def get(name: str = DEFAULT, **options: Any) -> FaceModeller:
    return load_backend("face3d", BACKENDS, name, **options)


__all__ = ["BACKENDS", "DEFAULT", "FaceFit", "FaceModeller", "get"]
