"""The operators: ``ned.process`` (submit the active strip, then follow it from a modal timer),
``ned.cancel`` and ``ned.start_engine``.

``ned.process`` does the work in ``jobs``: it submits and, with a window, adds a modal handler and a
window-manager timer whose ticks call ``jobs.pump``. The operator ends when its job ends, reporting the
engine's error code and message through ``self.report``. Headless (``bpy.app.background``) it submits
and returns at once: no timer is registered there (headless Blender never fires one, and one left
registered hangs the interpreter at exit); the caller drives ``ned_blender.pump()``.

Imports bpy, ``compat``, ``engine``, ``jobs`` and ``properties``.
"""

import os

import bpy
from ned_protocol.errors import NedError

from . import compat, engine, jobs, properties, sequencer
from .logic import engine_cmd

TIMER_STEP = 0.2
"""Seconds between two polls of the engine while a job runs."""
FORCE_MODAL = False
"""Tests only: take the modal path headless too (the timer never fires there; ``pump`` removes it)."""


def _source(context: bpy.types.Context):
    return compat.active_strip(context.scene)


class NED_OT_process(bpy.types.Operator):
    """Send the active strip to the NED engine and load the edited frames as a strip above it"""

    bl_idname = "ned.process"
    bl_label = "Process"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        strip = _source(context)
        return strip is not None and strip.type in {"MOVIE", "IMAGE"}

    def execute(self, context: bpy.types.Context) -> set:
        scene, strip = context.scene, _source(context)
        try:
            job = jobs.start(scene, strip)
        except NedError as error:
            self.report({"ERROR"}, f"NED: {error.code}: {error.message}")
            return {"CANCELLED"}
        if job.context.get("warning"):
            self.report({"WARNING"}, f"NED: {job.context['warning']}")
        if (bpy.app.background and not FORCE_MODAL) or context.window is None:
            self.report({"INFO"}, f"NED: job {job.job} submitted for {strip.name}")
            return {"FINISHED"}
        self._key = jobs.key_of(scene, strip)
        self._job = job
        wm = context.window_manager
        job.context["timer"] = wm.event_timer_add(TIMER_STEP, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 1000)
        return {"RUNNING_MODAL"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set:
        return self.execute(context)

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set:
        if event.type == "TIMER":
            jobs.pump()
        if self._job.tracker.finished:
            outcome = self._job.context.get("outcome")
            if outcome is not None:
                self.report({outcome.level}, outcome.message)
            return {"FINISHED"} if outcome is None or outcome.level != "ERROR" else {"CANCELLED"}
        return {"PASS_THROUGH"}


class NED_OT_cancel(bpy.types.Operator):
    """Cancel the active strip's NED job (the frames already written stay)"""

    bl_idname = "ned.cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    all: bpy.props.BoolProperty(name="All", description="Cancel every NED job of this Blender", default=False)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(jobs.JOBS)

    def execute(self, context: bpy.types.Context) -> set:
        count = jobs.cancel() if self.all else jobs.cancel(context.scene, _source(context))
        if count == 0:
            self.report({"WARNING"}, "NED: the active strip has no running job")
            return {"CANCELLED"}
        self.report({"INFO"}, f"NED: cancelling {count} job(s)")
        return {"FINISHED"}


class NED_OT_start_engine(bpy.types.Operator):
    """Start a local ned-engine on the scene's address (loopback), allowed the output and preference folders"""

    bl_idname = "ned.start_engine"
    bl_label = "Start Local Engine"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set:
        scene = context.scene
        address = scene.ned.address.strip() or engine_cmd.DEFAULT_ADDRESS
        if engine.answers(address, timeout=1.0):
            self.report({"INFO"}, f"NED: an engine already answers at {address}")
            return {"FINISHED"}
        prefs = properties.preferences(context)
        roots = [p.strip() for p in prefs.allow_roots.split(";") if p.strip()]
        strip = _source(context)
        try:
            if strip is not None and strip.type in {"MOVIE", "IMAGE"}:
                roots.append(os.path.dirname(sequencer.frame_map_of(strip)[0]))
            roots.append(sequencer.output_base(scene))
            for root in roots:
                os.makedirs(root, exist_ok=True)
            engine.start_local(address, engine_cmd.find_executable(prefs.engine_executable), roots)
        except NedError as error:
            self.report({"ERROR"}, f"NED: {error.code}: {error.message}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"NED: local engine serving {address}")
        return {"FINISHED"}


class NED_OT_add_image_node(bpy.types.Operator):
    """Add an Image node with the active strip's NED result to the compositor, on the strip's frames"""

    bl_idname = "ned.add_image_node"
    bl_label = "Result to Compositor"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        strip = _source(context)
        return strip is not None and hasattr(strip, "ned") and bool(strip.ned.result)

    def execute(self, context: bpy.types.Context) -> set:
        scene, strip = context.scene, _source(context)
        result = compat.strips(scene, every=True).get(strip.ned.result)
        if result is None:
            self.report({"ERROR"}, f"NED: invalid_option: the result strip {strip.ned.result} is gone")
            return {"CANCELLED"}
        try:
            node = sequencer.add_image_node(scene, result)
        except NedError as error:
            self.report({"ERROR"}, f"NED: {error.code}: {error.message}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"NED: Image node {node.name} added to the compositor")
        return {"FINISHED"}


CLASSES = (NED_OT_process, NED_OT_cancel, NED_OT_start_engine, NED_OT_add_image_node)
