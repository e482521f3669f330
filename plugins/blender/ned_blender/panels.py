"""The "NED" sidebar panels, in the Video Sequencer and in the Compositor: one drawing of the active strip's
settings, its keyframable weights (Blender's own keyframe buttons beside each), the range, output folder,
engine address, Process/Cancel and the job's state.

Imports bpy, ``compat``, ``jobs`` and ``properties``; draws only, changes nothing.
"""

import bpy

from . import compat, jobs
from .properties import FLOAT_PROPERTIES


def draw_ned(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The panel's content, shared by both editors."""
    scene = context.scene
    strip = compat.active_strip(scene)
    layout.use_property_split = True
    layout.use_property_decorate = True  # the keyframe dots: the weights are animated like any property
    if strip is None or strip.type not in {"MOVIE", "IMAGE"}:
        layout.label(text="Select a movie or image-sequence strip", icon="INFO")
    else:
        layout.label(text=strip.name, icon="FILE_MOVIE" if strip.type == "MOVIE" else "IMAGE_DATA")
        col = layout.column(heading="Emotion", align=True)
        for name in FLOAT_PROPERTIES[:7]:
            col.prop(strip, name)
        col = layout.column(align=True)
        for name in FLOAT_PROPERTIES[7:]:
            col.prop(strip, name)
        settings = strip.ned
        layout.prop(settings, "face_mode")
        if settings.face_mode == "POINT":
            row = layout.row(align=True)
            row.prop(settings, "face_x")
            row.prop(settings, "face_y")
        layout.prop(settings, "backend")
        layout.prop(settings, "use_range")
        if settings.use_range:
            row = layout.row(align=True)
            row.prop(settings, "frame_start")
            row.prop(settings, "frame_end")
        else:
            layout.label(text=f"Frames {int(strip.frame_final_start)}-{int(strip.frame_final_end) - 1}")
    layout.prop(scene.ned, "output_folder")
    layout.prop(scene.ned, "output_colorspace")
    row = layout.row(align=True)
    row.prop(scene.ned, "write_matte")
    row.prop(scene.ned, "write_stmap")
    layout.prop(scene.ned, "address")
    row = layout.row(align=True)
    row.operator("ned.process", icon="PLAY")
    row.operator("ned.cancel", icon="CANCEL")
    if getattr(context.space_data, "tree_type", "") == "CompositorNodeTree":
        layout.operator("ned.add_image_node", icon="NODE_COMPOSITING")
    tracker = jobs.tracker_of(scene, strip)
    if tracker is not None:
        if hasattr(layout, "progress") and not tracker.finished:
            layout.progress(factor=tracker.fraction, type="BAR", text=tracker.message)
        else:
            icon = "ERROR" if tracker.outcome == "failed" else "INFO"
            layout.label(text=tracker.message, icon=icon)


class SEQUENCER_PT_ned(bpy.types.Panel):
    bl_label = "Neural Emotion Director"
    bl_idname = "SEQUENCER_PT_ned"
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "NED"

    def draw(self, context: bpy.types.Context) -> None:
        draw_ned(self.layout, context)


class NODE_PT_ned(bpy.types.Panel):
    bl_label = "Neural Emotion Director"
    bl_idname = "NODE_PT_ned"
    bl_space_type = "NODE_EDITOR"
    bl_region_type = "UI"
    bl_category = "NED"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return getattr(context.space_data, "tree_type", "") == "CompositorNodeTree"

    def draw(self, context: bpy.types.Context) -> None:
        draw_ned(self.layout, context)


CLASSES = (SEQUENCER_PT_ned, NODE_PT_ned)
