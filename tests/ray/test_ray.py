"""The Ray backend, tested in Ray's own virtual environment (``tests/ray/make_venv.sh``, made when
missing): runs ``tests/ray/inside_ray.py`` there with pytest and reports its outcome here.

``HOME`` is a fresh folder (a new local Ray cluster writes an auth token under ``~/.ray``),
``RAY_TMPDIR`` one of this run's own (so no other run's cluster on the machine is joined),
``NED_PROJECT_SITE`` this checkout's packages (the Ray venv may be shared by several checkouts) and
``RAY_AUTH_MODE=disabled`` (loopback-only test clusters; the engine's own protocol is what clients see).
The test is skipped, with the reason, only when Ray cannot be installed at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def ray_venv() -> Path:
    venv = Path(os.environ.get("NED_RAY_VENV") or Path.home() / ".cache" / "ned" / "ray-venv")
    made = subprocess.run(["bash", str(HERE / "make_venv.sh")], capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "NED_RAY_VENV": str(venv), "NED_PROJECT_VENV": sys.prefix})
    if made.returncode != 0:
        pytest.skip(f"Ray 2.60 cannot be installed here (tests/ray/make_venv.sh failed): {made.stderr[-500:]}")
    return venv


def test_ray_backend_in_its_own_venv(tmp_path):
    venv = ray_venv()
    home = tmp_path / "home"
    home.mkdir()
    # Ray's sessions (and its "current cluster" file, which ray.init() would join) go to a folder of
    # this run's own: another test run on the machine must not be joined; short, for Ray's unix sockets
    scratch = tempfile.mkdtemp(prefix="nedray-", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=scratch,
               PYTHONPATH=str(ROOT / "tests" / "engine"), NED_PROJECT_SITE=sysconfig.get_paths()["purelib"])
    try:
        result = _run_inside(venv, env, tmp_path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(result.stdout[-6000:], result.stderr[-3000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout


def _run_inside(venv: Path, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "python"), "-m", "pytest", str(HERE / "inside_ray.py"), "-q", "-x",
                             "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "inside")],
                          capture_output=True, text=True, timeout=1500, cwd=str(ROOT), env=env)
