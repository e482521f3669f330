"""composite stage: backends by name (see base.py for the interface)."""

from __future__ import annotations

from typing import Any

from ned_core.composite.base import Compositor
from ned_core.registry import load_backend

BACKENDS: dict[str, str] = {
    "matte": "ned_core.composite.matte_blend:MatteCompositor",
    "pyramid": "ned_core.composite.pyramid:PyramidCompositor",
}
DEFAULT = "matte"


def get(name: str = DEFAULT, **options: Any) -> Compositor:
    return load_backend("composite", BACKENDS, name, **options)


__all__ = ["BACKENDS", "DEFAULT", "Compositor", "get"]
