"""ned_blender's host-free logic (``ned_blender.logic``), tested without Blender in the project's venv."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
from ned_blender.logic import colour, engine_cmd, paths
from ned_blender.logic.frames import FrameMap, result_run, sequence_pattern
from ned_blender.logic.job import StripJob, for_version, job_spec
from ned_blender.logic.keys import EMOTION_PROPERTIES, emotion_keys, mouth_animated, mouth_preservation, weights_at
from ned_blender.logic.tracker import JobTracker
from ned_protocol import exr_header
from ned_protocol.errors import FrameRangeError, InvalidOptionError, MissingDependencyError
from ned_protocol.schema import EMOTIONS

from .conftest import PLUGIN


# -- frames -----------------------------------------------------------------------------------------------
def test_movie_frames_are_numbered_from_1001_wherever_the_strip_sits() -> None:
    fmap = FrameMap.movie(frame_start=10, length=75)
    assert fmap.plate_frame(10) == 1001 and fmap.plate_frame(84) == 1075
    assert fmap.timeline_frame(1003) == 12
    assert fmap.clip(0, 200) == (10, 84)
    with pytest.raises(FrameRangeError):
        fmap.plate_frame(85)
    with pytest.raises(FrameRangeError):
        fmap.clip(90, 95)


def test_image_sequence_keeps_its_own_numbers() -> None:
    pattern, numbers = sequence_pattern("/shots/a", ["sh.0998.exr", "sh.0999.exr", "sh.1000.exr"])
    assert pattern == "/shots/a/sh.####.exr" and numbers == [998, 999, 1000]
    fmap = FrameMap.sequence(frame_start=1, numbers=numbers)
    assert [fmap.plate_frame(f) for f in (1, 2, 3)] == [998, 999, 1000]
    assert sequence_pattern("/s", ["a.9.png", "a.10.png"])[0] == "/s/a.#.png"
    with pytest.raises(InvalidOptionError):
        sequence_pattern("/s", ["a.1.exr", "b.2.exr"])
    with pytest.raises(InvalidOptionError):
        sequence_pattern("/s", ["still.exr"])


def test_result_run_lands_on_the_source_frames_and_stops_at_a_gap() -> None:
    fmap = FrameMap.movie(frame_start=5, length=20)
    start, files = result_run({1003: "c", 1001: "a", 1002: "b", 1005: "e"}, fmap)
    assert (start, files) == (5, ["a", "b", "c"])
    with pytest.raises(FrameRangeError):
        result_run({}, fmap)


# -- keys and the job spec ----------------------------------------------------------------------------------
def _samples(n: int, **values) -> dict[str, list[float]]:
    return {name: values.get(name, [0.0] * n) for name in (*EMOTION_PROPERTIES, "ned_intensity",
                                                           "ned_mouth_preservation")}


def test_weights_scale_non_neutral_labels_by_intensity() -> None:
    samples = _samples(1, ned_neutral=[0.5], ned_happy=[0.8], ned_intensity=[2.0])
    weights = weights_at(samples, 0)
    assert list(weights) == list(EMOTIONS)
    assert weights["neutral"] == 0.5 and weights["happy"] == 1.6 and weights["sad"] == 0.0


def test_sampled_curves_become_keys_in_plate_numbers_with_constant_runs_thinned() -> None:
    ramp = [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]
    samples = _samples(8, ned_happy=ramp, ned_intensity=[1.0] * 8)
    keys = emotion_keys(samples, list(range(1001, 1009)))
    assert [k["frame"] for k in keys] == [1001, 1002, 1003, 1004, 1005, 1008]
    assert [k["weights"]["happy"] for k in keys] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    flat = emotion_keys(_samples(50, ned_sad=[0.6] * 50), list(range(1, 51)))
    assert [k["frame"] for k in flat] == [1, 50]
    with pytest.raises(InvalidOptionError):
        emotion_keys({"ned_happy": [1.0]}, [1, 2])


def test_mouth_preservation_is_the_mean_of_the_range() -> None:
    assert mouth_preservation({"ned_mouth_preservation": [1.0, 0.5]}) == 0.75
    assert mouth_preservation({}) == 1.0


def test_an_animated_mouth_preservation_is_keyed_per_frame() -> None:
    constant = _samples(4, ned_happy=[1.0] * 4, ned_intensity=[1.0] * 4, ned_mouth_preservation=[0.6] * 4)
    assert not mouth_animated(constant)
    assert all("mouth_preservation" not in k for k in emotion_keys(constant, [1, 2, 3, 4]))
    mouth = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    samples = _samples(8, ned_happy=[1.0] * 8, ned_intensity=[1.0] * 8, ned_mouth_preservation=mouth)
    assert mouth_animated(samples)
    keys = emotion_keys(samples, list(range(1001, 1009)))
    # runs of identical keys are thinned to their ends; linear interpolation restores every frame
    assert [(k["frame"], k["mouth_preservation"]) for k in keys] == [
        (1001, 1.0), (1003, 1.0), (1004, 0.0), (1006, 0.0), (1007, 1.0), (1008, 1.0)]
    spec = job_spec(_job(first=3, last=10, samples=samples))
    assert spec["keys"][0]["mouth_preservation"] == 1.0 and spec["mouth_preservation"] == 0.625
    older, dropped = for_version(spec, (1, 1))
    assert dropped == ["keys[].mouth_preservation"] and older["mouth_preservation"] == 0.625
    assert all("mouth_preservation" not in k for k in older["keys"])
    assert [k["weights"] for k in older["keys"]] == [k["weights"] for k in spec["keys"]]
    assert for_version(spec, (1, 2)) == (spec, [])


def _job(**changes) -> StripJob:
    fields = dict(plate="/shots/demo.mpg", is_movie=True, frame_map=FrameMap.movie(1, 75), first=3, last=8,
                  samples=_samples(6, ned_happy=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
                  output_pattern="/out/plate/v001/plate_ned.####.exr", backend="default", label="demo plate")
    fields.update(changes)
    return StripJob(**fields)


def test_job_spec_is_a_valid_protocol_job() -> None:
    spec = job_spec(_job(face_point=(150.0, 180.0)))
    assert spec["plate"] == "/shots/demo.mpg" and spec["start"] == 1001
    assert spec["frame_range"] == [1003, 1008]
    assert spec["interpolation"] == "linear" and spec["keys"][0]["frame"] == 1003
    assert spec["face"] == {"point": [150.0, 180.0]} and spec["backends"] == {"preset": "default"}
    assert spec["output"] == {"pattern": "/out/plate/v001/plate_ned.####.exr"}
    sequence = job_spec(_job(is_movie=False, plate="/s/sh.####.exr", frame_map=FrameMap.sequence(1, range(990, 1065)),
                             colorspace="ACEScg"))
    assert "start" not in sequence and sequence["frame_range"] == [992, 997] and sequence["colorspace"] == "ACEScg"


def test_bad_values_are_refused_with_the_field_at_fault() -> None:
    with pytest.raises(InvalidOptionError) as caught:
        job_spec(_job(backend="Not A Preset!"))
    assert caught.value.field == "spec.backends.preset"


# -- output paths -------------------------------------------------------------------------------------------
def test_every_run_gets_a_new_version_folder(tmp_path: Path) -> None:
    first = paths.output_pattern(str(tmp_path), "my strip.001")
    assert first == str(tmp_path / "my_strip.001" / "v001" / "my_strip.001_ned.####.exr")
    (tmp_path / "my_strip.001" / "v001").mkdir(parents=True)
    (tmp_path / "my_strip.001" / "v007").mkdir()
    assert "/v008/" in paths.output_pattern(str(tmp_path), "my strip.001")
    assert paths.frame_file("/o/a.####.exr", 7) == "/o/a.0007.exr"
    assert paths.frame_file("/o/a.%04d.exr", 1001) == "/o/a.1001.exr"


# -- colour -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("header", "blender"), [
    ("Linear Rec.709 (sRGB)", "Linear Rec.709"), ("lin_rec709_scene", "Linear Rec.709"),
    ("sRGB Encoded Rec.709 (sRGB)", "sRGB"), ("srgb_rec709_scene", "sRGB"), ("ACEScg", "ACEScg"),
    ("lin_ap1_scene", "ACEScg"), ("ACES2065-1", "ACES2065-1"), ("Linear P3-D65", "Linear DCI-P3 D65"),
    ("Raw", "Non-Color"), ("Linear Rec.709", "Linear Rec.709"), ("no such space", None), (None, None)])
def test_header_colourspace_maps_to_blender_names(header, blender) -> None:
    assert colour.blender_colorspace(header) == blender


def test_a_name_this_blender_lacks_is_no_match() -> None:
    assert colour.blender_colorspace("ACEScct", ["sRGB", "ACEScg"]) is None
    assert colour.blender_colorspace("acescg", ["sRGB", "ACEScg"]) == "ACEScg"
    assert colour.engine_colorspace("Linear Rec.709") == "Linear Rec.709 (sRGB)"


# -- the EXR header reader, on real OpenImageIO files -------------------------------------------------------
def _write_exr(path: Path, attributes: dict[str, str], channels: int = 4) -> None:
    spec = oiio.ImageSpec(8, 4, channels, "half")
    for name, value in attributes.items():
        spec.attribute(name, value)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec)
    out.write_image(np.zeros((4, 8, channels), np.float32))
    out.close()


def test_result_colourspace_comes_from_the_shared_header_reader(tmp_path: Path) -> None:
    path = tmp_path / "a.exr"
    _write_exr(path, {"oiio:ColorSpace": "ACEScg", "ned:colorspace": "ACEScg", "compression": "zip"})
    assert colour.blender_colorspace(exr_header.colorspace(exr_header.read_header(str(path)))) == "ACEScg"
    plain = tmp_path / "plain.exr"
    _write_exr(plain, {}, channels=3)
    assert exr_header.colorspace(exr_header.read_header(str(plain))) is None


# -- events -------------------------------------------------------------------------------------------------
def test_tracker_follows_a_job_to_its_end() -> None:
    tracker = JobTracker("j-1")
    tracker.feed("progress", {"seq": 1, "stage": "analyze", "done": 5, "total": 10})
    assert tracker.stage == "analyze" and 0.05 < tracker.fraction < 0.55
    tracker.feed("frame_ready", {"seq": 2, "frame": 1001, "path": "/o/a.1001.exr", "inline": False})
    tracker.feed("frame_ready", {"seq": 2, "frame": 1002, "path": "/o/a.1002.exr", "inline": False})  # replay
    assert tracker.frames == {1001: "/o/a.1001.exr"} and not tracker.finished
    tracker.feed("done", {"seq": 3, "frames_written": 1, "lost_frames": [1002]})
    assert tracker.outcome == "done" and tracker.fraction == 1.0 and tracker.lost_frames == [1002]
    failed = JobTracker("j-2")
    failed.feed("failed", {"seq": 1, "code": "no_face", "message": "no face in any frame", "retryable": False})
    assert failed.finished and failed.code == "no_face" and failed.message == "no_face: no face in any frame"


# -- the local engine's command line -------------------------------------------------------------------------
def test_serve_command_binds_loopback_and_allows_only_existing_folders(tmp_path: Path) -> None:
    command = engine_cmd.serve_command("/bin/ned-engine", "tcp://127.0.0.1:7741", [str(tmp_path), "/nope", ""])
    assert command == ["/bin/ned-engine", "serve", "--bind", "tcp://127.0.0.1:7741", "--workers", "1",
                       "--allow-root", str(tmp_path)]
    with pytest.raises(InvalidOptionError):
        engine_cmd.serve_command("/bin/ned-engine", "tcp://0.0.0.0:7741", [])
    with pytest.raises(MissingDependencyError):
        engine_cmd.find_executable(str(tmp_path / "missing"))


# -- boundaries ---------------------------------------------------------------------------------------------
def test_the_add_on_imports_no_heavy_package_and_logic_needs_no_bpy() -> None:
    code = (f"import sys; sys.path.insert(0, {str(PLUGIN)!r})\n"
            "import ned_blender, ned_blender.engine, ned_blender.logic.job, ned_protocol.exr_header\n"
            "import ned_blender.logic.colour, ned_blender.logic.tracker, ned_blender.logic.paths\n"
            "banned = {'torch', 'numpy', 'ned_core', 'ned_engine', 'cv2', 'OpenImageIO', 'bpy'}\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & banned))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    logic = PLUGIN / "ned_blender" / "logic"
    for path in logic.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 9))
        imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not any(name.split(".")[0] in {"bpy", "ned_core", "ned_engine"} for name in imported), path
    for path in (PLUGIN / "ned_blender").glob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 9))


def test_fields_an_older_engine_lacks_are_left_out() -> None:
    spec = job_spec(_job(output_colorspace="Linear Rec.709 (sRGB)"))
    assert spec["output"]["colorspace"] == "Linear Rec.709 (sRGB)"
    old, dropped = for_version(spec, (1, 0))
    assert dropped == ["output.colorspace"] and "colorspace" not in old["output"]
    assert old["output"]["pattern"] == spec["output"]["pattern"] and old["keys"] == spec["keys"]
    assert for_version(spec, (1, 1)) == (spec, [])


def test_output_layers_are_sent_only_when_not_both_and_an_older_engine_writes_both() -> None:
    assert "layers" not in job_spec(_job())["output"]
    spec = job_spec(_job(layers=("matte",)))
    assert spec["output"]["layers"] == ["matte"]
    assert job_spec(_job(layers=()))["output"]["layers"] == []
    assert for_version(spec, (1, 3)) == (spec, [])
    old, dropped = for_version(spec, (1, 2))
    assert dropped == ["output.layers"] and "layers" not in old["output"]
