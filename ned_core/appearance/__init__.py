"""appearance stage: backends by name (see base.py for the interface)."""

from __future__ import annotations

from typing import Any

from ned_core.appearance.base import Appearance
from ned_core.registry import load_backend

BACKENDS: dict[str, str] = {
    "ratio": "ned_core.appearance.ratio:ExpressionAppearance",
    "none": "ned_core.appearance.base:NoAppearance",
}
DEFAULT = "ratio"


def get(name: str = DEFAULT, **options: Any) -> Appearance:
    return load_backend("appearance", BACKENDS, name, **options)


__all__ = ["BACKENDS", "DEFAULT", "Appearance", "get"]
