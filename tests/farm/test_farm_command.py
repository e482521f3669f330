"""``ned-engine farm``: chunking, defaults, and one-line errors that leave no file behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ned_engine import farm_targets
from ned_engine.farm_targets import chunks

from ned_core.errors import InvalidOptionError

from .helpers import ned_engine, write_job


def test_chunks_cover_the_shot_in_order(tmp_path):
    job = farm_targets.farm_job(str(write_job(tmp_path)), chunk=3, environ={})
    assert (job.first, job.last, job.frames) == (1001, 1007, "1001-1007")
    assert job.chunks() == [(1001, 1003), (1004, 1006), (1007, 1007)]
    whole = farm_targets.farm_job(str(write_job(tmp_path)), chunk=50, environ={})
    assert whole.chunks() == [(1001, 1007)]
    assert job.render_args("1004-1006") == ["render", job.job_file, "--frames", "1004-1006", "--cache-dir",
                                            job.cache_dir, "--quiet"]


def test_defaults_name_cache_and_environment(tmp_path):
    job = farm_targets.farm_job(str(write_job(tmp_path, label="sh010 comp/v2")), environ={"OCIO": "/c.ocio",
                                                                                          "HOME": "/home/x"})
    assert job.name == "sh010_comp_v2"  # the spec's label, made safe for every farm
    assert job.cache_dir == str(tmp_path / "out" / ".ned_cache")  # beside the frames: every node writes there
    assert job.environment == {"OCIO": "/c.ocio"} and job.chunk == chunks.DEFAULT_CHUNK


def test_a_spec_without_frame_range_is_chunked_over_the_whole_plate(tmp_path):
    job_path = write_job(tmp_path)
    spec = json.loads(job_path.read_text())
    del spec["frame_range"]
    job_path.write_text(json.dumps(spec))
    job = farm_targets.farm_job(str(job_path), chunk=25, environ={})
    assert (job.first, job.last) == (1001, 1075)  # the demo clip's 75 frames, numbered from 1001
    assert len(job.chunks()) == 3


@pytest.mark.parametrize("args, code, text", [
    (["--chunk", "0"], "invalid_option", "--chunk must be at least 1"),
    (["--out", "/proc/ned-farm-test"], "output_error", "/proc/ned-farm-test"),
])
def test_bad_options_are_one_line_errors(tmp_path, args, code, text):
    result = ned_engine("farm", str(write_job(tmp_path)), "--target", "openjd", *args)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"ned-engine: error: {code}:") and text in result.stderr
    assert not (tmp_path / "sh010.openjd").exists()


def test_bad_jobs_are_refused_before_anything_is_written(tmp_path):
    (tmp_path / "bad.json").write_text('{"plate": "/p.####.exr", "emotion": "joyful", "output": {"pattern": "/o"}}')
    result = ned_engine("farm", str(tmp_path / "bad.json"), "--target", "deadline")
    assert result.returncode == 1 and "invalid_option" in result.stderr and "spec.emotion" in result.stderr
    missing = ned_engine("farm", str(tmp_path / "none.json"), "--target", "opencue")
    assert missing.returncode == 1 and "input_not_found" in missing.stderr
    unknown = ned_engine("farm", str(write_job(tmp_path)), "--target", "tractor")
    assert unknown.returncode == 2 and "invalid choice: 'tractor'" in unknown.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "sh010.json"]


def test_unknown_target_from_python(tmp_path):
    job = farm_targets.farm_job(str(write_job(tmp_path)), environ={})
    with pytest.raises(InvalidOptionError, match="unknown farm target 'tractor'"):
        farm_targets.write(job, "tractor", tmp_path / "x")


def test_paths_with_spaces_stay_one_argument(tmp_path):
    from ned_engine.farm_targets import deadline, opencue

    job = farm_targets.farm_job(str(write_job(tmp_path / "my shots")), chunk=3, environ={})
    arguments = deadline.plugin_info(job, "render").splitlines()[1]
    assert f'render "{job.job_file}" --frames <STARTFRAME>-<ENDFRAME> --cache-dir "{job.cache_dir}"' in arguments
    assert f"render '{job.job_file}' --frames '#FRAME_START#-#FRAME_END#'" in opencue.spec(job)


def test_the_command_line_offers_every_target():
    from ned_engine.main import build_parser

    farm = build_parser()._subparsers._group_actions[0].choices["farm"]
    target = next(action for action in farm._actions if action.dest == "target")
    assert sorted(target.choices) == sorted(farm_targets.TARGETS)


def test_relative_paths_are_refused(tmp_path):
    job_path = write_job(tmp_path, output=Path("renders/sh010_ned.####.exr"))
    result = ned_engine("farm", str(job_path), "--target", "opencue")
    assert result.returncode == 1 and "invalid_option" in result.stderr
    assert "absolute paths" in result.stderr and "spec.output.pattern" in result.stderr
