"""Deadline 10: the analysis and render jobs' job-info and plugin-info files match their golden files,
chunk with ``<STARTFRAME>``/``<ENDFRAME>`` and chain the render job after the analysis job."""

from __future__ import annotations

import os
import subprocess

from .helpers import CHUNK, check_golden, ned_engine, normalise, write_job
from .test_openjd import golden_env

FILES = ("analyze.job_info.txt", "analyze.plugin_info.txt", "render.job_info.txt", "render.plugin_info.txt",
         "submit.sh")


def read_info(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_deadline_files_match_golden(tmp_path):
    job = write_job(tmp_path)
    result = ned_engine("farm", str(job), "--target", "deadline", "--chunk", str(CHUNK), env=golden_env())
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "sh010.deadline"
    for name in FILES:
        check_golden(f"deadline/{name}", normalise((folder / name).read_text(), tmp_path))
    render = read_info((folder / "render.job_info.txt").read_text())
    assert render["Plugin"] == "CommandLine" and render["Frames"] == "1001-1007" and render["ChunkSize"] == "3"
    assert "--frames <STARTFRAME>-<ENDFRAME>" in read_info((folder / "render.plugin_info.txt").read_text())["Arguments"]
    assert read_info((folder / "analyze.job_info.txt").read_text())["ChunkSize"] == "1"


def test_submit_script_chains_the_render_job_on_the_analysis_job(tmp_path):
    """submit.sh against a stand-in deadlinecommand: the render job is submitted with the analysis job's id."""
    job = write_job(tmp_path)
    assert ned_engine("farm", str(job), "--target", "deadline", "--out", str(tmp_path / "dl")).returncode == 0
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "deadlinecommand"
    fake.write_text(f"""#!/bin/sh
echo "$@" >> {calls}
case "$1" in analyze*) id=5f0c1e2aa1b2c3d4e5f60718;; *) id=5f0c1e2aa1b2c3d4e5f60719;; esac
cat "$1" > {tmp_path}/submitted.$id
printf 'Result=Success\\r\\nJobID=%s\\r\\n' "$id"
""")
    fake.chmod(0o755)
    run = subprocess.run(["sh", str(tmp_path / "dl" / "submit.sh")], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "DEADLINE_COMMAND": str(fake)})
    assert run.returncode == 0, run.stderr
    assert calls.read_text().splitlines() == ["analyze.job_info.txt analyze.plugin_info.txt",
                                              "render.job_info.submitted.txt render.plugin_info.txt"]
    render = read_info((tmp_path / "submitted.5f0c1e2aa1b2c3d4e5f60719").read_text())
    assert render["JobDependencies"] == "5f0c1e2aa1b2c3d4e5f60718"
