"""Run inside real Blender: the error path and the local engine.

1. ``ned.process`` with a backend preset the engine does not know: the operator reports the engine's
   code (``unknown_backend``) and no job is left behind.
2. No engine answers on ``--local-address``: ``ned.process`` starts ``ned-engine serve`` there itself
   (from ``PATH``; the preference is empty), the job runs, and ``unregister`` stops that engine.
3. The modal path: ``ned.process`` registers its timer, ``pump()`` removes it at the job's end.
4. An image-sequence strip (its files keep their numbers; the strip sits elsewhere on the timeline).

    python errors_and_local.py -- --address ADDR --local-address ADDR --output DIR --report OUT.json
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
from ned_blender import compat, engine, operators  # noqa: E402


def movie_strip(scene, name: str, channel: int):
    strip = compat.strips(scene).new_movie(name, os.path.join(ROOT, "demo", "grid_bbaf2n.mpg"), channel=channel,
                                           frame_start=1)
    scene.sequence_editor.active_strip = strip
    strip.ned.use_range = True
    strip.ned.frame_start, strip.ned.frame_end = 1, 3
    strip.ned_surprised = 1.0
    return strip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--local-address", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--report", required=True)
    args = parser.parse_args(sys.argv[sys.argv.index("--") + 1:])

    ned_blender.register()
    report: dict = {}
    try:
        scene = bpy.context.scene
        scene.ned.output_folder = args.output
        scene.ned.address = args.address
        bad = movie_strip(scene, "bad", 1)
        bad.ned.backend = "no-such-preset"
        try:
            report["bad"] = sorted(bpy.ops.ned.process())
        except RuntimeError as error:  # bpy.ops raises what the operator reported as an error
            report["bad"] = str(error)
        report["bad_jobs"] = len(ned_blender.jobs.JOBS)

        scene.ned.address = args.local_address
        good = movie_strip(scene, "good", 3)
        report["good"] = sorted(bpy.ops.ned.process())
        proc = engine._local.get(args.local_address)
        report["started_local"] = proc is not None and proc.poll() is None
        deadline = time.monotonic() + 240
        while ned_blender.pump() and time.monotonic() < deadline:
            time.sleep(0.05)
        tracker = ned_blender.jobs.tracker_of(scene, good)
        report["outcome"], report["message"] = tracker.outcome, tracker.message
        report["result"] = good.ned.result
        result = compat.strips(scene, every=True).get(good.ned.result)
        report["result_frames"] = [int(result.frame_final_start), int(result.frame_final_end) - 1] if result else None

        # 4. an image-sequence strip (the frames just made, numbered 1001-1003) placed at frame 20
        folder = bpy.path.abspath(result.directory)
        names = [e.filename for e in result.elements]
        seq = compat.strips(scene).new_image("seq", os.path.join(folder, names[0]), channel=7, frame_start=20)
        for name in names[1:]:
            seq.elements.append(name)
        seq.colorspace_settings.name = "Linear Rec.709"
        scene.sequence_editor.active_strip = seq
        seq.ned_happy = 1.0
        report["seq"] = sorted(bpy.ops.ned.process())
        seq_job = ned_blender.jobs.JOBS[(scene.name, seq.name)]
        spec = seq_job.context["spec"]
        report["seq_spec"] = {k: spec.get(k) for k in ("plate", "frame_range", "colorspace", "start")}
        while ned_blender.pump() and time.monotonic() < deadline + 60:
            time.sleep(0.05)
        report["seq_outcome"] = seq_job.tracker.outcome
        seq_result = compat.strips(scene, every=True).get(seq.ned.result)
        report["seq_result"] = None if seq_result is None else {
            "frames": [int(seq_result.frame_final_start), int(seq_result.frame_final_end) - 1],
            "files": [e.filename for e in seq_result.elements], "channel": seq_result.channel}

        # 3. the modal path (what a Blender with a window runs): its window-manager timer is registered, never
        # fires headless, and pump() removes it when the job ends, so the interpreter still exits
        operators.FORCE_MODAL = True
        modal = movie_strip(scene, "modal", 5)
        report["modal"] = sorted(bpy.ops.ned.process())
        job = ned_blender.jobs.JOBS[(scene.name, modal.name)]
        report["modal_timer"] = job.context.get("timer") is not None
        while ned_blender.pump() and time.monotonic() < deadline + 120:
            time.sleep(0.05)
        report["modal_outcome"] = job.tracker.outcome
        report["modal_timer_left"] = "timer" in job.context
    finally:
        ned_blender.unregister()
    report["local_stopped"] = proc is not None and proc.poll() is not None
    with open(args.report, "w") as handle:
        json.dump(report, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
