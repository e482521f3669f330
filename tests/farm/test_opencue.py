"""OpenCue: the Cue job spec matches its golden file and what PyOutline itself serialises for the same
outline, and a real RQD, run as a non-root user against a small fake Cuebot on 127.0.0.1, runs the
analysis layer and a render chunk from it, with frames bit-identical to one ``ned edit`` run."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from xml.dom import minidom

import pytest
from ned_engine import farm_targets
from ned_engine.farm_targets import opencue

from .helpers import CHUNK, ENGINE, FIRST, HERE, assert_same_frames, check_golden, ned_engine, normalise, write_job
from .test_openjd import golden_env

CUE_ENV = {"SHOW": "abc", "SHOT": "sh010", "USER": "artist", "CUE_FACILITY": "local"}


def test_cue_spec_matches_golden(tmp_path):
    job = write_job(tmp_path)
    result = ned_engine("farm", str(job), "--target", "opencue", "--chunk", str(CHUNK),
                        env={**golden_env(), **CUE_ENV})
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "sh010.opencue" / "job.cuejob.xml").read_text()
    assert text.startswith('<?xml version="1.0"?><!DOCTYPE spec PUBLIC "SPI Cue  Specification Language"')
    pretty = minidom.parseString(normalise(text, tmp_path)).toprettyxml(indent="  ")
    check_golden("opencue/job.cuejob.xml", pretty)


def test_pyoutline_serialises_the_same_spec(tmp_path, farm_venv):
    job = farm_targets.farm_job(str(write_job(tmp_path)), chunk=CHUNK, environ={"OCIO": "/shows/abc/config.ocio"})
    ours = opencue.spec(job, show="abc", shot="sh010", user="artist", facility="local")
    request = {"name": job.name, "first": job.first, "last": job.last, "chunk": job.chunk,
               "analyze": [job.engine, *job.analyze_args()],
               "render": [job.engine, *job.render_args(opencue.FRAME_TOKEN)],
               "environment": job.environment, "show": "abc", "shot": "sh010", "user": "artist", "facility": "local"}
    built = subprocess.run([str(farm_venv / "bin" / "python"), str(HERE / "cue_outline.py")], input=json.dumps(request),
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    assert ours == built.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rqd_user() -> tuple[list[str], int, int]:
    """The command prefix that runs RQD as a non-root user, and that user's uid and gid.

    RQD will not run a frame as uid 0. As root, ``setpriv`` drops to ``nobody`` but keeps the two
    file-access capabilities, because this machine's Python and the test's folders live under /root and
    /tmp/pytest-of-root (owner-only): the frame still runs as uid 65534, never as root.
    """
    if os.getuid() != 0:
        return [], os.getuid(), os.getgid()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux) to drop RQD to a non-root user")
    nobody = pwd.getpwnam("nobody")
    caps = "+dac_override,+dac_read_search"
    return ([setpriv, f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
             f"--inh-caps={caps}", f"--ambient-caps={caps}"], nobody.pw_uid, nobody.pw_gid)


def test_rqd_runs_the_analysis_and_a_chunk(tmp_path, farm_venv, single_run):
    if not Path("/usr/bin/time").exists():
        pytest.skip("RQD runs every frame through /usr/bin/time (Debian package 'time')")
    prefix, uid, gid = _rqd_user()
    name = f"ned_rqd_{os.getpid()}"
    job = write_job(tmp_path, name=name, output=tmp_path / "out" / "sh010_ned.####.exr")
    written = ned_engine("farm", str(job), "--target", "opencue", "--chunk", str(CHUNK), "--out",
                         str(tmp_path / "cue"), "--engine-command", ENGINE)
    assert written.returncode == 0, written.stderr
    # RQD checks its log folder with access(2), which ignores capabilities: it must be reachable by
    # RQD's user itself, so it cannot lie under pytest's owner-only folders
    logs = Path(tempfile.mkdtemp(prefix="ned-rqd-logs-"))
    logs.chmod(0o777)
    rqd_port = _free_port()
    python = str(farm_venv / "bin" / "python")
    cuebot = subprocess.Popen([python, str(HERE / "fake_cuebot.py"), str(tmp_path / "cue" / "job.cuejob.xml"),
                               "--task", "analyze:0", "--task", "render:0", "--rqd-port", str(rqd_port),
                               "--log-dir", str(logs), "--uid", str(uid), "--gid", str(gid), "--timeout", "300"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rqd, rqd_log = None, open(tmp_path / "rqd.log", "w")  # noqa: SIM115 - closed in finally
    try:
        line = cuebot.stdout.readline()
        assert line.startswith("CUEBOT_PORT "), line + cuebot.stderr.read()
        config = tmp_path / "rqd.conf"
        config.write_text("[Override]\n"
                          f"OVERRIDE_CUEBOT=127.0.0.1\nCUEBOT_GRPC_PORT={line.split()[1]}\nRQD_GRPC_PORT={rqd_port}\n"
                          "RQD_BECOME_JOB_USER=False\nOVERRIDE_HOSTNAME=localhost\nOVERRIDE_NIMBY=False\n")
        home = tmp_path / "rqd-home"
        home.mkdir()
        rqd = subprocess.Popen([*prefix, str(farm_venv / "bin" / "rqd"), "-c", str(config), "--nimbyoff"],
                               stdout=rqd_log, stderr=subprocess.STDOUT, cwd=str(home),
                               env={**os.environ, "HOME": str(home)})
        stdout, stderr = cuebot.communicate(timeout=600)
        reports = [json.loads(text.partition(" ")[2]) for text in stdout.splitlines()
                   if text.startswith("FRAME_COMPLETE ")]
        detail = f"{stdout}\n{stderr}\n" + "".join(p.read_text() for p in logs.glob("*.rqlog"))
        assert cuebot.returncode == 0, detail[-6000:] + (tmp_path / "rqd.log").read_text()[-3000:]
    finally:
        for process in (cuebot, rqd):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        rqd_log.close()
        shutil.rmtree(f"/tmp/{name}", ignore_errors=True)  # RQD's per-job scratch folder
        render_log = logs / f"{name}.{FIRST}-render.rqlog"
        rqlog = render_log.read_text() if render_log.exists() else ""
        shutil.rmtree(logs, ignore_errors=True)
    assert [r["frame"] for r in reports] == [f"{FIRST}-analyze", f"{FIRST}-render"]
    assert all(r["exit_status"] == 0 and r["exit_signal"] == 0 for r in reports)
    assert reports[1]["command"].endswith(f"--frames '{FIRST}-{FIRST + CHUNK - 1}' --cache-dir "
                                          f"{tmp_path / 'out' / '.ned_cache'} --quiet")
    # the frames were written by RQD's user, not root
    made = sorted((tmp_path / "out").glob("sh010_ned.*.exr"))
    assert [p.name for p in made] == [f"sh010_ned.{f}.exr" for f in range(FIRST, FIRST + CHUNK)]
    assert {p.stat().st_uid for p in made} == {uid}
    assert_same_frames(tmp_path / "out", single_run, "sh010_ned", range(FIRST, FIRST + CHUNK))
    assert f"wrote {CHUNK} frames" in rqlog and "(analysis from cache)" in rqlog
