"""Blender test fixtures: the bpy virtual environments (made by ``make_venvs.sh`` when missing), a real
``ned-engine`` on 127.0.0.1 running the default pipeline, and ``ned_blender`` importable for the
host-free tests of ``ned_blender.logic`` (which run in the project's own venv, without bpy)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PLUGIN = ROOT / "plugins" / "blender"
for folder in (ROOT, PLUGIN):  # tests.engine.helpers (EngineProcess), and ned_blender for the logic tests
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from tests.engine.helpers import EngineProcess  # noqa: E402

VERSIONS = ("4.5", "5.0")
"""The Blenders the add-on is tested in: the 4.5 LTS and 5.0."""


def bpy_cache() -> Path:
    return Path(os.environ.get("NED_BPY_CACHE", Path.home() / ".cache" / "ned" / "bpy"))


def bpy_python(version: str) -> Path:
    """The Python of the bpy venv for ``version``, made by ``make_venvs.sh`` if missing."""
    python = bpy_cache() / version / "bin" / "python"
    if not (bpy_cache() / version / ".ok").is_file() or not python.is_file():
        if os.environ.get("NED_SKIP_BLENDER") == "1":
            pytest.skip("NED_SKIP_BLENDER=1 and no bpy venv")
        result = subprocess.run(["bash", str(HERE / "make_venvs.sh"), version], capture_output=True, text=True,
                                timeout=1200)
        assert result.returncode == 0, f"make_venvs.sh {version} failed:\n{result.stdout}\n{result.stderr}"
    return python


def run_in_blender(version: str, script: str, *args: str, env: dict[str, str] | None = None,
                   timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``scripts/<script>`` with the bpy venv's Python; a hang at exit (a timer left behind) times out."""
    command = [str(bpy_python(version)), str(HERE / "scripts" / script), "--", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT),
                          env=env or dict(os.environ))


@pytest.fixture(scope="session")
def blender_root(tmp_path_factory) -> Path:
    """The engine's allowed root: the tests' output folders live here."""
    return tmp_path_factory.mktemp("blender-root")


@pytest.fixture(scope="session")
def real_engine(blender_root, tmp_path_factory) -> Iterator[EngineProcess]:
    """``ned-engine serve`` with the real default pipeline, allowed the demo folder and ``blender_root``."""
    process = EngineProcess(tmp_path_factory.mktemp("blender-engine"), standin=False,
                            roots=(str(blender_root), str(ROOT / "demo")))
    yield process
    process.stop()
