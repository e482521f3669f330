"""Run inside real Blender: process frames of the demo clip with a keyframed smile, then render the
sequencer at one frame with the result strip muted (before) and shown (after), for docs/blender.md.

    python render_sequencer.py -- --address ADDR --output DIR --frame 1020 --before B.png --after A.png
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import bpy

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "plugins", "blender"))

import ned_blender  # noqa: E402
from ned_blender import compat  # noqa: E402


def render(scene, path: str) -> None:
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--frame", type=int, default=1020)
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", required=True)
    args = parser.parse_args(sys.argv[sys.argv.index("--") + 1:])
    ned_blender.register()
    try:
        scene = bpy.context.scene
        scene.ned.address, scene.ned.output_folder = args.address, args.output
        source = compat.strips(scene).new_movie("plate", os.path.join(ROOT, "demo", "grid_bbaf2n.mpg"),
                                                channel=1, frame_start=1001)  # timeline frames = plate numbers
        scene.sequence_editor.active_strip = source
        source.ned.use_range = True
        source.ned.frame_start, source.ned.frame_end = args.frame - 2, args.frame + 2
        for frame, happy in ((args.frame - 2, 0.6), (args.frame + 2, 1.0)):
            source.ned_happy = happy
            source.keyframe_insert("ned_happy", frame=frame)
        bpy.ops.ned.process()
        while ned_blender.pump():
            time.sleep(0.05)
        result = compat.strips(scene, every=True)[source.ned.result]
        scene.render.resolution_x, scene.render.resolution_y = 360, 288
        scene.render.resolution_percentage = 100
        scene.render.image_settings.file_format = "PNG"
        scene.view_settings.view_transform = "Standard"
        scene.frame_set(args.frame)
        result.mute = True
        render(scene, args.before)
        result.mute = False
        render(scene, args.after)
        print("result strip", result.name, result.channel, result.colorspace_settings.name)
    finally:
        ned_blender.unregister()
    return 0


if __name__ == "__main__":
    sys.exit(main())
