"""Run inside real Blender (the PyPI ``bpy`` module): register ned_blender, build a scene with a movie strip
of the demo clip, keyframe two emotions, run ``ned.process`` against the engine at ``--address``, ``pump()``
until done, and write what came back to ``--report`` (JSON) for the pytest side to check.

    python process_demo.py --address tcp://127.0.0.1:PORT --output DIR --report OUT.json
        [--first 1 --last 6] [--bad-backend]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import bpy

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "plugins", "blender"))

import ned_blender  # noqa: E402
from ned_blender import compat  # noqa: E402


class RecordingLayout:
    """Stands in for ``UILayout`` headless (no window draws there): records what the panel draws and checks
    every property it shows exists on its data (``bl_rna``) and every operator is registered."""

    def __init__(self, drawn: list) -> None:
        self.drawn = drawn
        self.use_property_split = self.use_property_decorate = False

    def _sub(self, *args, **kwargs) -> RecordingLayout:
        return self

    column = row = box = split = _sub

    def prop(self, data, name: str, **kwargs) -> None:
        assert name in data.bl_rna.properties, (data, name)
        self.drawn.append(f"prop {name}")

    def operator(self, idname: str, **kwargs) -> None:
        module, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, module), name), idname
        self.drawn.append(f"operator {idname}")

    def label(self, text: str = "", **kwargs) -> None:
        self.drawn.append(f"label {text}")

    def progress(self, factor: float = 0.0, type: str = "BAR", text: str = "") -> None:
        self.drawn.append(f"progress {text}")


def draw_panel(scene) -> list:
    """What the NED panel draws in the Compositor for the scene's active strip."""
    from types import SimpleNamespace

    from ned_blender import panels

    drawn: list = []
    context = SimpleNamespace(scene=scene, space_data=SimpleNamespace(tree_type="CompositorNodeTree"))
    panels.draw_ned(RecordingLayout(drawn), context)
    return drawn


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--first", type=int, default=3)
    parser.add_argument("--last", type=int, default=8)
    parser.add_argument("--strip-start", type=int, default=1)
    parser.add_argument("--backend", default="default")
    parser.add_argument("--timeout", type=float, default=240.0)
    args = parser.parse_args(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:])

    ned_blender.register()
    report: dict = {"blender": bpy.app.version_string}
    try:
        scene = bpy.context.scene
        scene.ned.address = args.address
        scene.ned.output_folder = args.output
        source = compat.strips(scene).new_movie("plate", os.path.join(ROOT, "demo", "grid_bbaf2n.mpg"),
                                                channel=2, frame_start=args.strip_start)
        scene.sequence_editor.active_strip = source
        scene.render.fps, scene.render.fps_base = 25, 1.0  # the clip's rate (another one is warned about)
        source.ned.backend = args.backend
        source.ned.use_range = True
        source.ned.frame_start, source.ned.frame_end = args.first, args.last
        # two emotions keyframed with Blender's own keyframes: happy fades in, sad fades out
        for frame, happy, sad in ((args.first, 0.0, 1.0), (args.last, 1.0, 0.0)):
            source.ned_happy, source.ned_sad = happy, sad
            source.keyframe_insert("ned_happy", frame=frame)
            source.keyframe_insert("ned_sad", frame=frame)
        report["keyed"] = [c.data_path for c in compat.fcurves_of(scene)]
        report["panel"] = draw_panel(scene)
        report["colorspaces"] = ned_blender.sequencer.colorspace_choices(source)
        report["process"] = sorted(bpy.ops.ned.process())
        job = ned_blender.jobs.JOBS.get((scene.name, source.name))
        report["submitted"] = job is not None
        if job is not None:
            deadline = time.monotonic() + args.timeout
            while ned_blender.pump() and time.monotonic() < deadline:
                time.sleep(0.05)
        tracker = ned_blender.jobs.tracker_of(scene, source)
        if tracker is not None:
            report.update(outcome=tracker.outcome, code=tracker.code, message=tracker.message,
                          frames={str(k): v for k, v in tracker.frames.items()})
        result = compat.strips(scene, every=True).get(source.ned.result) if source.ned.result else None
        if result is not None:
            report["result"] = {
                "name": result.name, "type": result.type, "channel": result.channel,
                "source_channel": source.channel,
                "frame_start": int(result.frame_start), "frame_final_start": int(result.frame_final_start),
                "frame_final_end": int(result.frame_final_end), "directory": bpy.path.abspath(result.directory),
                "files": [e.filename for e in result.elements], "colorspace": result.colorspace_settings.name,
            }
            # what the sequencer shows: the source alone, then with the result strip over it
            scene.render.resolution_x, scene.render.resolution_y = 360, 288
            scene.render.resolution_percentage = 100
            scene.render.image_settings.file_format = "PNG"
            scene.render.image_settings.color_mode = "RGB"
            scene.view_settings.view_transform = "Standard"
            scene.frame_set((args.first + args.last) // 2)
            report["rendered_frame"] = scene.frame_current
            for name, mute in (("before", True), ("after", False)):
                result.mute = mute
                scene.render.filepath = os.path.join(args.output, f"render_{name}.png")
                bpy.ops.render.render(write_still=True)
                report[f"render_{name}"] = scene.render.filepath
            report["add_image_node"] = sorted(bpy.ops.ned.add_image_node())
            node = compat.compositor_tree(scene).nodes[result.name]
            image = node.image
            report["image_node"] = {"image": image.name, "source": image.source,
                                    "colorspace": image.colorspace_settings.name,
                                    "filepath": bpy.path.abspath(image.filepath), "frame_start": node.frame_start,
                                    "frame_duration": node.frame_duration, "frame_offset": node.frame_offset}
        report["outcome_report"] = None if job is None else getattr(job.context.get("outcome"), "message", None)
    finally:
        ned_blender.unregister()
    report["unregistered"] = not hasattr(compat.strip_type(), "ned_happy")
    with open(args.report, "w") as handle:
        json.dump(report, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
