"""The add-on's data: keyframable ``ned_<label>`` floats on every strip, per-strip settings, scene
settings and the add-on preferences.

The emotion weights, ``ned_intensity`` and ``ned_mouth_preservation`` are flat float properties of the
strip type itself, because Blender keyframes only those (``strip.keyframe_insert("ned_happy", frame=...)``;
a property inside a ``PointerProperty`` group on a strip cannot be animated). The settings nobody
animates (face, backend, range) live in the ``strip.ned`` group, the engine address and the output folder
in ``scene.ned``, the engine executable in the preferences.

No ``from __future__ import annotations`` here: Blender reads these class annotations as objects.
Imports bpy, ``compat`` and ``logic.keys`` (the property names).
"""

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import compat
from .logic.colour import SCENE_LINEAR
from .logic.engine_cmd import DEFAULT_ADDRESS
from .logic.keys import EMOTION_PROPERTIES, INTENSITY_PROPERTY, MOUTH_PROPERTY

FLOAT_PROPERTIES = (*EMOTION_PROPERTIES, INTENSITY_PROPERTY, MOUTH_PROPERTY)
"""Every keyframable property the add-on adds to strips, in panel order."""


def _flat_properties() -> dict:
    props = {}
    for name in EMOTION_PROPERTIES:
        label = name[len("ned_"):]
        props[name] = FloatProperty(name=label.title(), description=f"Weight of '{label}' (keyframe it to "
                                    f"change the emotion over time)", default=0.0, min=0.0, max=10.0,
                                    soft_max=1.0, options={"ANIMATABLE"})
    props[INTENSITY_PROPERTY] = FloatProperty(
        name="Intensity", description="Scales every non-neutral weight (0: no edit; above 1 exaggerates)",
        default=1.0, min=0.0, max=10.0, soft_max=2.0, options={"ANIMATABLE"})
    props[MOUTH_PROPERTY] = FloatProperty(
        name="Mouth Preservation", description="How much of the speech's mouth motion is kept (1: all; "
        "keyframe it below 1 to free the mouth, lips parted and teeth shown, on some frames)", default=1.0,
        min=0.0, max=1.0, options={"ANIMATABLE"})
    return props


class NED_PG_strip(bpy.types.PropertyGroup):
    """Per-strip settings that are not animated."""

    face_mode: EnumProperty(name="Face", items=(
        ("LARGEST", "Largest", "Edit the largest face"),
        ("POINT", "Point", "Edit the face nearest a point (pixels of the source, origin top left)")),
        default="LARGEST")
    face_x: FloatProperty(name="X", description="Face point, pixels from the left", default=0.0)
    face_y: FloatProperty(name="Y", description="Face point, pixels from the top", default=0.0)
    backend: StringProperty(name="Backend", description="Engine backend preset (e.g. default, ned)",
                            default="default")
    use_range: BoolProperty(name="Custom Range", description="Process only part of the strip",
                            default=False)
    frame_start: IntProperty(name="Start", description="First timeline frame to process", default=1)
    frame_end: IntProperty(name="End", description="Last timeline frame to process", default=1)
    result: StringProperty(name="Result", description="The strip holding this strip's latest result",
                           default="")


class NED_PG_scene(bpy.types.PropertyGroup):
    """Scene-wide settings."""

    address: StringProperty(name="Engine", description="Address of the ned-engine",
                            default=DEFAULT_ADDRESS)
    output_folder: StringProperty(name="Output", description="Folder for the edited frames (a versioned "
                                  "subfolder per strip and run)", default="//ned/", subtype="DIR_PATH")
    output_colorspace: StringProperty(
        name="Output Colourspace", description="The engine's OCIO colourspace for the edited EXRs (empty: the "
        "engine's default). Blender reads multi-layer EXRs as scene-linear whatever the strip says, so the "
        "default is the engine's name for Blender's scene-linear space", default=SCENE_LINEAR)
    write_matte: BoolProperty(name="Matte Layer", description="Write the face matte (ned.matte) beside RGBA",
                              default=True)
    write_stmap: BoolProperty(name="STMap Layer", description="Write the warp as an STMap (stmap.u, stmap.v) "
                              "beside RGBA; off saves 15–20% of a 1080p frame's CPU and nearly a third "
                              "of its bytes", default=True)


class NED_AP_preferences(bpy.types.AddonPreferences):
    """Where the local engine comes from."""

    bl_idname = __package__

    start_local: BoolProperty(name="Start a Local Engine", description="When no engine answers on a "
                              "loopback address, start one", default=True)
    engine_executable: StringProperty(name="ned-engine", description="Path of the ned-engine executable "
                                      "(empty: the one on PATH)", default="", subtype="FILE_PATH")
    allow_roots: StringProperty(name="Allowed Folders", description="Extra folders (separated by ';') a "
                                "local engine may read and write, besides the plate's and the output's",
                                default="")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "start_local")
        layout.prop(self, "engine_executable")
        layout.prop(self, "allow_roots")


class _Defaults:
    """The preferences' defaults, for a Blender that loaded the add-on without enabling it."""

    start_local = True
    engine_executable = ""
    allow_roots = ""


def preferences(context: "bpy.types.Context | None" = None) -> object:
    """The add-on's preferences (their defaults when the add-on was registered by hand)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None and addon.preferences is not None else _Defaults()


CLASSES = (NED_PG_strip, NED_PG_scene, NED_AP_preferences)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    strip = compat.strip_type()
    for name, prop in _flat_properties().items():
        setattr(strip, name, prop)
    strip.ned = PointerProperty(type=NED_PG_strip)
    bpy.types.Scene.ned = PointerProperty(type=NED_PG_scene)


def unregister() -> None:
    strip = compat.strip_type()
    del bpy.types.Scene.ned
    del strip.ned
    for name in FLOAT_PROPERTIES:
        delattr(strip, name)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
