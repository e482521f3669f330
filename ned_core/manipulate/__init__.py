"""manipulate stage: backends by name (see base.py for the interface)."""

from __future__ import annotations

from typing import Any

from ned_core.manipulate.base import Manipulator
from ned_core.registry import load_backend

BACKENDS: dict[str, str] = {
    "facs": "ned_core.manipulate.facs:FacsRig",
    "ned": "ned_core.ned.manipulate_ned:NedManipulator",
}
DEFAULT = "facs"


def get(name: str = DEFAULT, **options: Any) -> Manipulator:
    return load_backend("manipulate", BACKENDS, name, **options)


__all__ = ["BACKENDS", "DEFAULT", "Manipulator", "get"]
