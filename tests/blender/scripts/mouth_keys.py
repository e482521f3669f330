"""Run inside real Blender (the PyPI ``bpy`` module): register ned_blender, put a movie strip of the demo
clip on the timeline, keyframe ``ned_happy`` and ``ned_mouth_preservation`` (constant keys: the mouth is
freed on a few frames only), and write the JobSpec the add-on would submit to ``--report`` (JSON), with
what it would send an engine of protocol 1.1. No engine is needed.

    python mouth_keys.py --report OUT.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import bpy

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "plugins", "blender"))

import ned_blender  # noqa: E402
from ned_blender import compat, sequencer  # noqa: E402
from ned_blender.logic.job import for_version, job_spec  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--report", required=True)
    args = parser.parse_args(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:])
    ned_blender.register()
    try:
        scene = bpy.context.scene
        scene.ned.output_folder = os.path.join(os.path.dirname(os.path.abspath(args.report)), "out")
        source = compat.strips(scene).new_movie("plate", os.path.join(ROOT, "demo", "grid_bbaf2n.mpg"),
                                                channel=2, frame_start=1)
        source.ned.use_range = True
        source.ned.frame_start, source.ned.frame_end = 3, 10
        source.ned_happy = 1.0
        report: dict = {"constant": job_spec(sequencer.strip_job(scene, source))}
        for frame, value in ((3, 1.0), (5, 0.0), (8, 1.0)):
            source.ned_mouth_preservation = value
            source.keyframe_insert("ned_mouth_preservation", frame=frame)
        curve = compat.fcurve(scene, source.path_from_id("ned_mouth_preservation"))
        for point in curve.keyframe_points:
            point.interpolation = "CONSTANT"
        spec = job_spec(sequencer.strip_job(scene, source))
        older, dropped = for_version(spec, (1, 1))
        report.update(keyed=spec, older=older, dropped=dropped)
    finally:
        ned_blender.unregister()
    with open(args.report, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
