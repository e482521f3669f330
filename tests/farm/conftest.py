"""Shared fixtures: the farm tools' virtual environment, and one single-machine ``ned edit`` run to compare with."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .helpers import FIRST, GRID, LAST, NED, ensure_farm_venv


@pytest.fixture(scope="session")
def farm_venv() -> Path:
    """OpenJD's CLI and OpenCue's PyOutline and RQD, in their own virtual environment (made if missing)."""
    return ensure_farm_venv()


@pytest.fixture(scope="session")
def single_run(tmp_path_factory) -> Path:
    """Frames FIRST-LAST of the demo clip edited by one ``ned edit`` (its own fresh analysis cache)."""
    folder = tmp_path_factory.mktemp("single")
    result = subprocess.run([NED, "edit", str(GRID), "--frames", f"{FIRST}-{LAST}", "--key", "1001:neutral=1",
                             "--key", "1006:happy=1", "--output", str(folder / "sh010_ned.####.exr"),
                             "--cache-dir", str(folder / "cache"), "--quiet"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return folder
