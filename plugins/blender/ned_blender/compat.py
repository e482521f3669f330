"""What differs between the Blenders the add-on supports (4.2 ... 5.0), in one place.

- Strips: ``bpy.types.Strip`` and ``sequence_editor.strips``/``strips_all`` (4.4+) were
  ``bpy.types.Sequence`` and ``sequences``/``sequences_all`` before.
- Animation: 4.4+ actions are slotted (layers → strips → channelbag per slot) and 5.0 removed the
  legacy ``Action.fcurves``; ``fcurves_of`` reads either.
- The compositor's node tree: ``scene.compositing_node_group`` (5.0+) was ``scene.node_tree``.

Imports bpy; nothing else of the add-on.
"""

from __future__ import annotations

from typing import Any

import bpy


def strip_type() -> type:
    """The RNA type every sequencer strip derives from (``Strip``, or ``Sequence`` before 4.4)."""
    return getattr(bpy.types, "Strip", None) or bpy.types.Sequence


def strips(scene: bpy.types.Scene, every: bool = False) -> Any:
    """The scene's top-level strips (``every``: including those inside meta strips); created if needed."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    if every:
        return getattr(editor, "strips_all", None) or editor.sequences_all
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def active_strip(scene: bpy.types.Scene | None) -> Any:
    """The sequencer's active strip, if any."""
    editor = getattr(scene, "sequence_editor", None)
    return getattr(editor, "active_strip", None) if editor is not None else None


def fcurves_of(owner: Any) -> list[Any]:
    """The fcurves of the action animating ``owner`` (an ID such as a scene); empty when none."""
    animation = getattr(owner, "animation_data", None)
    action = getattr(animation, "action", None)
    if action is None:
        return []
    slot = getattr(animation, "action_slot", None)
    layers = getattr(action, "layers", None)
    if slot is not None and layers is not None:  # slotted actions (4.4+; the only kind from 5.0)
        for layer in layers:
            for action_strip in layer.strips:
                channelbag = action_strip.channelbag(slot)
                if channelbag is not None:
                    return list(channelbag.fcurves)
        if not hasattr(action, "fcurves"):
            return []
    return list(getattr(action, "fcurves", []))


def fcurve(owner: Any, data_path: str, index: int = 0) -> Any:
    """The fcurve animating ``data_path`` of ``owner`` (None when the property is not animated)."""
    for curve in fcurves_of(owner):
        if curve.data_path == data_path and curve.array_index == index:
            return curve
    return None


def compositor_tree(scene: bpy.types.Scene, create: bool = False) -> Any:
    """The scene's compositing node tree (None when there is none and ``create`` is false)."""
    if hasattr(scene, "compositing_node_group"):  # 5.0+: a node group the scene points at
        if scene.compositing_node_group is None and create:
            scene.compositing_node_group = bpy.data.node_groups.new(f"{scene.name} Compositor",
                                                                    "CompositorNodeTree")
        return scene.compositing_node_group
    if scene.node_tree is None and create:
        scene.use_nodes = True
    return scene.node_tree
