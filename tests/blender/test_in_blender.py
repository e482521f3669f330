"""ned_blender in real Blender (the PyPI ``bpy`` module, 4.5 LTS and 5.0) against a real engine.

Each run registers the add-on, puts a movie strip of the demo clip on the timeline, keyframes two
emotions on the strip's ``ned_*`` properties, runs ``ned.process``, ``pump()``s until the job ends and
reports the result strip; the checks here read the EXR frames it points at with OpenImageIO.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
from ned_blender.logic import colour
from ned_protocol import exr_header

from ned_core.io import read_exr_channels

from .conftest import VERSIONS, run_in_blender

FIRST, LAST = 3, 8  # timeline frames; the movie strip starts at frame 1, so plate frames 1003-1008


@pytest.mark.parametrize("version", VERSIONS)
def test_process_demo_strip_against_a_real_engine(version, real_engine, blender_root: Path) -> None:
    out, report_path = blender_root / f"out-{version}", blender_root / f"report-{version}.json"
    run = run_in_blender(version, "process_demo.py", "--address", real_engine.address, "--output", str(out),
                         "--report", str(report_path), "--first", str(FIRST), "--last", str(LAST))
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(report_path.read_text())
    assert report["blender"].startswith(version)
    assert report["keyed"] == [f'sequence_editor.strips_all["plate"].ned_{name}' for name in ("happy", "sad")]
    assert report["process"] == ["FINISHED"] and report["submitted"]
    drawn = report["panel"]  # the panel's content, drawn into a recording layout (no window headless)
    assert [d for d in drawn if d.startswith("prop ned_")] == [
        f"prop ned_{n}" for n in ("neutral", "angry", "disgusted", "fear", "happy", "sad", "surprised", "intensity",
                                  "mouth_preservation")]
    for item in ("prop face_mode", "prop backend", "prop use_range", "prop frame_start", "prop output_folder",
                 "prop write_matte", "prop write_stmap", "prop address", "operator ned.process", "operator ned.cancel",
                 "operator ned.add_image_node"):
        assert item in drawn
    assert report["outcome"] == "done", report
    assert report["unregistered"]

    result = report["result"]
    assert result["type"] == "IMAGE" and result["channel"] == result["source_channel"] + 1
    # aligned to the source: the strip covers exactly the processed timeline frames
    assert (result["frame_final_start"], result["frame_final_end"] - 1) == (FIRST, LAST)
    assert result["files"] == [f"plate_ned.{1000 + f}.exr" for f in range(FIRST, LAST + 1)]
    folder = Path(result["directory"])
    assert folder == out / "plate" / "v001"
    for name in result["files"]:
        image = oiio.ImageInput.open(str(folder / name))
        assert image is not None, oiio.geterror()
        spec = image.spec()
        assert (spec.width, spec.height) == (360, 288)
        assert spec.channelnames == ("R", "G", "B", "A")  # RGBA alone in the first part
        image.close()
        # the matte and STMap layers travel in the same file, in parts of their own
        assert {"ned.matte", "stmap.u", "stmap.v"} <= set(read_exr_channels(str(folder / name)))
    # the colourspace comes from the EXR header (the engine wrote what the add-on asked: Blender's scene
    # linear), mapped to Blender's name for it
    named = exr_header.colorspace(exr_header.read_header(str(folder / result["files"][0])))
    assert colour.blender_colorspace(named) == result["colorspace"] == "Linear Rec.709"
    assert report["outcome_report"].startswith("NED: done: 6 frames") and "colourspace" not in report["outcome_report"]

    # every Blender name the colour table produces is one this Blender offers (5.0 added ACEScc, ACEScct and
    # the Rec.2100 spaces; 4.5 lacks them and blender_colorspace(name, choices) says no match there)
    targets = set(colour.STUDIO_TO_BLENDER.values()) | set(colour.ALIASES.values()) | colour.BLENDER_NAMES
    newer = {"ACEScc", "ACEScct", "Rec.2100-HLG", "Rec.2100-PQ"}
    assert targets - set(report["colorspaces"]) == (newer if version == "4.5" else set())

    # the compositor gets the same frames through an Image node: file number = plate number on each frame
    node = report["image_node"]
    assert report["add_image_node"] == ["FINISHED"]
    assert (node["image"], node["source"], node["colorspace"]) == ("plate.ned", "SEQUENCE", "Linear Rec.709")
    assert node["filepath"] == str(folder / result["files"][0])
    assert (node["frame_start"], node["frame_duration"]) == (FIRST, LAST - FIRST + 1)
    assert FIRST - node["frame_start"] + 1 + node["frame_offset"] == 1000 + FIRST

    # the right colours in Blender: the sequencer shows the result strip as the EXR's pixels encoded for the
    # display (8-bit render, Standard view), on the frame it was made from (its neighbours match worse)
    frame = report["rendered_frame"]
    shown = oiio.ImageBuf(report["render_after"]).get_pixels(oiio.FLOAT)[..., :3]
    error = {f: np.abs(shown - srgb_display(folder / f"plate_ned.{1000 + f}.exr")) * 255 for f in (frame - 1, frame,
                                                                                                  frame + 1)}
    assert error[frame].mean() < 0.5 and np.percentile(error[frame], 99.9) <= 1.5, error[frame].max()
    assert error[frame].mean() < min(error[frame - 1].mean(), error[frame + 1].mean())
    # outside the face matte it looks like the source strip; Blender's ffmpeg decodes the movie's YUV a few
    # code values differently from the engine's PyAV, so this bound is looser
    outside = read_exr_channels(str(folder / f"plate_ned.{1000 + frame}.exr"))["ned.matte"] == 0
    before = oiio.ImageBuf(report["render_before"]).get_pixels(oiio.FLOAT)[..., :3]
    assert outside.mean() > 0.5 and (~outside).any()
    assert np.abs(shown - before)[outside].mean() * 255 < 4.0


def srgb_display(path: Path) -> np.ndarray:
    """An EXR's scene-linear Rec.709 RGB encoded with the sRGB transfer function (Blender's Standard view)."""
    rgb = np.clip(oiio.ImageBuf(str(path)).get_pixels(oiio.FLOAT)[..., :3], 0.0, 1.0)
    return np.where(rgb <= 0.0031308, 12.92 * rgb, 1.055 * np.power(rgb, 1 / 2.4) - 0.055)
