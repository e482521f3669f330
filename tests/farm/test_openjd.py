"""OpenJD: the job bundle matches its golden files, passes ``openjd check``, and ``openjd run`` executes it
on this machine end to end with frames bit-identical to one ``ned edit`` run."""

from __future__ import annotations

import json
import os
import subprocess

from .helpers import CHUNK, ENGINE, FIRST, LAST, assert_same_frames, check_golden, ned_engine, normalise, write_job

BUNDLE = ("template.json", "parameters.json", "parameter_values.json")


def golden_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NED_MODELS", "OCIO")}
    return {**env, "OCIO": "/shows/abc/config.ocio"}


def test_bundle_matches_golden(tmp_path):
    job = write_job(tmp_path)
    result = ned_engine("farm", str(job), "--target", "openjd", "--chunk", str(CHUNK), env=golden_env())
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "sh010.openjd"  # the default --out: JOB.TARGET beside the job file
    assert result.stdout.split() == [str(folder / name) for name in BUNDLE]
    for name in BUNDLE:
        check_golden(f"openjd/{name}", normalise((folder / name).read_text(), tmp_path))
    template = json.loads((folder / "template.json").read_text())
    assert template["steps"][1]["dependencies"] == [{"dependsOn": "Analyze"}]
    assert template["jobEnvironments"][0]["variables"] == {"OCIO": "/shows/abc/config.ocio"}


def test_openjd_runs_the_job_locally_like_one_ned_edit(tmp_path, farm_venv, single_run):
    job = write_job(tmp_path)
    bundle = tmp_path / "bundle"
    written = ned_engine("farm", str(job), "--target", "openjd", "--chunk", str(CHUNK), "--out", str(bundle),
                         "--engine-command", ENGINE)
    assert written.returncode == 0, written.stderr
    openjd = str(farm_venv / "bin" / "openjd")
    check = subprocess.run([openjd, "check", str(bundle / "template.json")], capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 0 and "passes validation checks" in check.stdout, check.stdout + check.stderr
    run = subprocess.run([openjd, "run", str(bundle / "template.json"), "-p", f"file://{bundle / 'parameters.json'}"],
                         capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    assert "Session ended successfully" in log
    # the analysis ran once, then OpenJD cut the render step into chunks of at most CHUNK frames
    assert log.count("analysis written to") == 1 and "analysis already in" not in log
    chunks = [line.rpartition("= ")[2].strip() for line in log.splitlines() if "Frames(CHUNK[INT]) =" in line]
    covered = [frame for chunk in chunks for frame in range(int(chunk.split("-")[0]), int(chunk.split("-")[-1]) + 1)]
    assert covered == list(range(FIRST, LAST + 1)) and len(chunks) == 3, chunks
    assert log.count("(analysis from cache)") == len(chunks)
    assert_same_frames(tmp_path / "out", single_run, "sh010_ned", range(FIRST, LAST + 1))
