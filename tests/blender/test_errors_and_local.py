"""ned_blender in real Blender: the engine's error code reaches the artist, a local engine is started when
none answers (and stopped with the add-on), and the modal operator's timer does not outlive its job."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from .conftest import ROOT, VERSIONS, run_in_blender


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("version", VERSIONS)
def test_engine_errors_are_reported_and_a_local_engine_starts(version, real_engine, blender_root: Path,
                                                              tmp_path: Path) -> None:
    out, report_path = blender_root / f"local-{version}", blender_root / f"local-{version}.json"
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(ROOT / ".venv" / "bin"), env.get("PATH", "")])
    env["NED_ENGINE_HOME"] = str(tmp_path / "engine-home")  # the local engine's journal stays in the test
    env["NED_CACHE_DIR"] = str(tmp_path / "cache")
    run = run_in_blender(version, "errors_and_local.py", "--address", real_engine.address,
                         "--local-address", f"tcp://127.0.0.1:{free_port()}", "--output", str(out),
                         "--report", str(report_path), env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(report_path.read_text())
    assert "NED: unknown_backend:" in report["bad"] and "no-such-preset" in report["bad"]
    assert report["bad_jobs"] == 0
    assert report["good"] == ["FINISHED"] and report["started_local"]
    assert report["outcome"] == "done", report
    assert report["result"] == "good.ned" and report["result_frames"] == [1, 3]
    assert sorted(p.name for p in (out / "good" / "v001").iterdir()) == [
        f"good_ned.{n}.exr" for n in (1001, 1002, 1003)]
    plate = str(out / "good" / "v001" / "good_ned.####.exr")
    assert report["seq_spec"] == {"plate": plate, "frame_range": [1001, 1003], "colorspace": "Linear Rec.709 (sRGB)",
                                  "start": None}
    assert report["seq_outcome"] == "done"
    assert report["seq_result"] == {"frames": [20, 22], "files": [f"seq_ned.{n}.exr" for n in (1001, 1002, 1003)],
                                    "channel": 8}
    assert report["modal"] == ["RUNNING_MODAL"] and report["modal_timer"]
    assert report["modal_outcome"] == "done" and not report["modal_timer_left"]
    assert report["local_stopped"]
