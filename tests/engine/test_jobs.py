"""Job spec → pipeline objects, and ``ned edit`` arguments → job spec (the conversion written once)."""

from __future__ import annotations

import numpy as np
import pytest
from ned_engine import cli, jobs

from ned_core.errors import FrameRangeError, InvalidOptionError, UnknownBackendError
from ned_core.keyframes import EmotionCurve


def _spec(**extra):
    spec = {"plate": "/shows/p.####.exr", "emotion": "happy", "output": {"pattern": "/shows/o.####.exr"}}
    spec.update(extra)
    return spec


def test_plan_of_a_full_spec():
    spec = _spec(emotion=None, keys=[{"frame": 1010, "weights": {"happy": 0.8}},
                                     {"frame": 1001, "weights": {"neutral": 1.0}}],
                 interpolation="linear", frame_range=[1001, 1020], colorspace="ACEScg", mask="/shows/m.####.exr",
                 face={"point": [120.5, 80]}, mouth_preservation=0.5, start=1,
                 backends={"preset": "default", "render": "warp", "options": {"render": {"falloff": 0.2}}},
                 output={"pattern": "/shows/o.####.exr", "compression": "piz", "half": False,
                         "colorspace": "lin_rec709_scene"})
    del spec["emotion"]
    plan = jobs.plan(spec)
    shot = plan.shot
    assert (shot.plate, shot.frame_range, shot.colorspace, shot.mask, shot.start) == (
        "/shows/p.####.exr", (1001, 1020), "ACEScg", "/shows/m.####.exr", 1)
    assert shot.face.point == (120.5, 80.0) and shot.face.box is None
    assert [k.frame for k in plan.curve.keys] == [1001, 1010] and plan.curve.interpolation == "linear"
    assert (plan.output.pattern, plan.output.compression, plan.output.half) == ("/shows/o.####.exr", "piz", False)
    assert plan.output.colorspace == "lin_rec709_scene"
    assert plan.backends.render == "warp" and plan.backends.options == {"render": {"falloff": 0.2}}
    assert plan.mouth_preservation == 0.5 and not plan.inline and plan.pattern == "/shows/o.####.exr"


def test_plan_defaults_and_inline():
    plan = jobs.plan({"plate_frames": [1, 2], "emotion": "sad", "intensity": 0.5, "output": {"inline": True}},
                     plate="/spool/j/plate.%d.exr", output="/spool/j/frame.%d.exr")
    assert plan.shot.plate == "/spool/j/plate.%d.exr" and plan.output.pattern == "/spool/j/frame.%d.exr"
    assert plan.inline and plan.pattern is None and plan.output.compression == "zip"
    # half/float and the colourspace are the pipeline's per-plate choice when the spec does not say
    assert plan.output.half is None and plan.output.colorspace is None
    assert np.allclose(plan.curve.weights([1])[0], EmotionCurve.constant("sad", 0.5).weights([1])[0])
    with pytest.raises(InvalidOptionError):
        jobs.plan({"plate_frames": [1], "emotion": "sad", "output": {"inline": True}})


def test_output_layers_from_the_spec_and_the_cli(tmp_path, monkeypatch):
    assert jobs.plan(_spec()).output.layers == ("matte", "stmap")
    plan = jobs.plan(_spec(output={"pattern": "/o.####.exr", "layers": ["stmap"]}))
    assert plan.output.layers == ("stmap",)
    assert jobs.plan(_spec(output={"pattern": "/o.####.exr", "layers": []})).output.layers == ()
    assert jobs.layers_option("matte, stmap") == ("matte", "stmap") and jobs.layers_option("none") == ()
    for bad in ("alpha", "matte,matte", ""):
        with pytest.raises(InvalidOptionError) as error:
            jobs.layers_option(bad)
        assert error.value.field == "layers"
    monkeypatch.chdir(tmp_path)
    parser = cli.build_parser()
    base = ["edit", "p.####.exr", "--output", "o.####.exr", "--emotion", "happy"]
    # left out unless given, so an engine older than protocol 1.3 still takes the job
    assert "layers" not in jobs.job_from_cli_args(parser.parse_args(base))["output"]
    spec = jobs.job_from_cli_args(parser.parse_args([*base, "--layers", "matte"]))
    assert spec["output"]["layers"] == ["matte"]


def test_unknown_output_colorspace_names_the_spec_field():
    with pytest.raises(InvalidOptionError) as error:
        jobs.plan(_spec(output={"pattern": "/o.####.exr", "colorspace": "no such space"}))
    assert error.value.field == "spec.output.colorspace" and "no such space" in str(error.value)


def test_unknown_backends_name_the_spec_field():
    with pytest.raises(UnknownBackendError) as error:
        jobs.plan(_spec(backends={"face3d": "deca9"}))
    assert error.value.field == "spec.backends.face3d"
    with pytest.raises(UnknownBackendError) as error:
        jobs.plan(_spec(backends={"preset": "magic"}))
    assert error.value.field == "spec.backends.preset"


def test_check_spec_wraps_schema_errors():
    with pytest.raises(InvalidOptionError) as error:
        jobs.check_spec(_spec(output={"pattern": "/o.####.exr", "colour": "red"}))
    assert error.value.field == "spec.output.colour"


def _args(*argv: str):
    return cli.build_parser().parse_args(["edit", *argv])


def test_cli_args_become_the_same_edit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = _args("plate.####.exr", "-o", "out/o.####.exr", "--frames", "1001-1010", "--key", "1001:neutral=1",
                 "--key", "1010:happy=0.8,surprised=0.2", "--interpolation", "step", "--face-box", "1,2,30,40",
                 "--mask", "m.####.exr", "--compression", "dwaa", "--float", "--mouth-preservation", "0.7",
                 "--option", "render.falloff=0.2", "--option", "track.mode=fast")
    spec = jobs.job_from_cli_args(args)
    assert spec["backends"] == {"preset": "default", "options": {"render": {"falloff": 0.2}, "track": {"mode": "fast"}}}
    assert jobs.plan(spec).backends == jobs.backends_from_args(args)
    assert spec["plate"] == str(tmp_path / "plate.####.exr") and spec["mask"] == str(tmp_path / "m.####.exr")
    assert spec["output"] == {"pattern": str(tmp_path / "out" / "o.####.exr"), "compression": "dwaa", "half": False}
    auto = jobs.job_from_cli_args(_args("p.####.exr", "-o", "o.####.exr", "--emotion", "sad",
                                        "--output-colorspace", "sRGB Encoded Rec.709 (sRGB)"))
    assert auto["output"] == {"pattern": str(tmp_path / "o.####.exr"), "compression": "zip",
                              "colorspace": "sRGB Encoded Rec.709 (sRGB)"}
    assert jobs.plan(auto).output.colorspace == "sRGB Encoded Rec.709 (sRGB)" and jobs.plan(auto).output.half is None
    assert spec["frame_range"] == [1001, 1010] and spec["face"] == {"box": [1.0, 2.0, 30.0, 40.0]}
    plan = jobs.plan(spec)
    local = cli.curve_from_args(args)
    frames = list(range(995, 1015))
    assert np.array_equal(plan.curve.weights(frames), local.weights(frames))
    local_shot = cli.shot_from_args(args)
    assert (plan.shot.frame_range, plan.shot.face, plan.shot.start, plan.shot.colorspace) == (
        local_shot.frame_range, local_shot.face, local_shot.start, local_shot.colorspace)
    constant = jobs.job_from_cli_args(_args("p.####.exr", "-o", "o.####.exr", "--emotion", "angry:0.4"))
    assert (constant["emotion"], constant["intensity"]) == ("angry", 0.4)
    assert np.array_equal(jobs.plan(constant).curve.weights(frames),
                          EmotionCurve.parse_emotion("angry:0.4").weights(frames))


@pytest.mark.parametrize("argv, error", [
    (["--emotion", "joyful"], InvalidOptionError),
    (["--emotion", "happy", "--key", "1:happy=1"], InvalidOptionError),
    ([], InvalidOptionError),
    (["--emotion", "happy", "--backend", "magic"], UnknownBackendError),
    (["--emotion", "happy", "--compression", "zip:9"], InvalidOptionError),
    (["--emotion", "happy", "--frames", "b-a"], FrameRangeError),
    (["--emotion", "happy", "--face", "1,2", "--face-box", "1,2,3,4"], InvalidOptionError),
    (["--emotion", "happy:20"], InvalidOptionError),
    (["--emotion", "happy", "--option", "render"], InvalidOptionError),
    (["--emotion", "happy", "--option", "render.x={\"a\": 1}"], InvalidOptionError),
])
def test_bad_cli_args(argv, error):
    with pytest.raises(error):
        jobs.job_from_cli_args(_args("p.####.exr", "-o", "o.####.exr", *argv))


def test_needs_frame_token():
    assert jobs.needs_frame_token({"plate": "/a/p.####.exr"})
    assert jobs.needs_frame_token({"plate": "/a/clip.mov"})
    assert not jobs.needs_frame_token({"plate": "/a/still.exr"})
    assert not jobs.needs_frame_token({"plate": "/a/clip.mov", "frame_range": [7, 7]})
    assert not jobs.needs_frame_token({"plate_frames": [3]})


def test_mouth_preservation_left_out_is_decided_by_the_plate():
    # None: the pipeline keeps footage's speech (1) and frees a still's mouth (0)
    assert jobs.plan(_spec()).mouth_preservation is None


def test_the_appearance_stage_is_named_like_any_other():
    assert jobs.plan(_spec(backends={"appearance": "none"})).backends.appearance == "none"
    assert jobs.plan(_spec(backends={"preset": "ned"})).backends.appearance == "none"
    with pytest.raises(UnknownBackendError):
        jobs.plan(_spec(backends={"appearance": "paint"}))


def test_key_mouth_preservation_reaches_the_curve_from_the_spec_and_the_cli(tmp_path, monkeypatch):
    spec = _spec(emotion=None, keys=[{"frame": 1001, "weights": {"happy": 1.0}, "mouth_preservation": 0.0},
                                     {"frame": 1011, "weights": {"happy": 1.0}}],
                 interpolation="linear", mouth_preservation=0.5)
    del spec["emotion"]
    plan = jobs.plan(spec)
    assert [k.mouth_preservation for k in plan.curve.keys] == [0.0, None] and plan.mouth_preservation == 0.5
    assert np.allclose(plan.curve.mouth_preservation([1001, 1006, 1011], plan.mouth_preservation), [0.0, 0.25, 0.5])
    monkeypatch.chdir(tmp_path)
    args = _args("p.####.exr", "-o", "o.####.exr", "--key", "1001:happy=1,mouth=0", "--key", "1011:happy=1",
                 "--interpolation", "linear", "--mouth-preservation", "0.5")
    from_cli = jobs.job_from_cli_args(args)
    assert from_cli["keys"] == spec["keys"] and from_cli["mouth_preservation"] == 0.5
    jobs.check_spec(from_cli)
    local = cli.curve_from_args(args)
    frames = list(range(995, 1015))
    assert np.array_equal(jobs.plan(from_cli).curve.mouth_preservation(frames, 0.5),
                          local.mouth_preservation(frames, 0.5))
    with pytest.raises(InvalidOptionError) as error:
        jobs.job_from_cli_args(_args("p.####.exr", "-o", "o.####.exr", "--key", "1001:happy=1,mouth=1.5"))
    assert error.value.field == "mouth_preservation"
