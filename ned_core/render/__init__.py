"""render stage: backends by name (see base.py for the interface)."""

from __future__ import annotations

from typing import Any

from ned_core.registry import load_backend
from ned_core.render.base import FrameFace, Renderer, RenderOutput

BACKENDS: dict[str, str] = {
    "warp": "ned_core.render.warp:MeshWarpRenderer",
    "ned": "ned_core.ned.render_ned:NedRenderer",
}
DEFAULT = "warp"


def get(name: str = DEFAULT, **options: Any) -> Renderer:
    return load_backend("render", BACKENDS, name, **options)


__all__ = ["BACKENDS", "DEFAULT", "FrameFace", "RenderOutput", "Renderer", "get"]
