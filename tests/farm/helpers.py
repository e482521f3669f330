"""Farm-target test helpers: the farm tools' virtual environment, a short demo-clip job, EXR pixels, goldens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.helpers import exr_bytes  # tests/engine/helpers.py (pytest puts tests/ on the path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GRID = ROOT / "demo" / "grid_bbaf2n.mpg"
GOLDEN = HERE / "golden"
FIRST, LAST, CHUNK = 1001, 1007, 3
KEYS = [{"frame": 1001, "weights": {"neutral": 1.0}}, {"frame": 1006, "weights": {"happy": 1.0}}]
ENGINE = str(Path(sys.executable).with_name("ned-engine"))
NED = str(Path(sys.executable).with_name("ned"))


def farm_venv() -> Path:
    """The farm tools' virtual environment (``$NED_FARM_VENV``, default ``~/.cache/ned/farm-venv``)."""
    return Path(os.environ.get("NED_FARM_VENV") or Path.home() / ".cache" / "ned" / "farm-venv")


def ensure_farm_venv() -> Path:
    """Make the farm tools' virtual environment if it is missing (one pip install, a few minutes)."""
    venv = farm_venv()
    if not (venv / ".complete").exists():
        made = subprocess.run(["bash", str(HERE / "make_venv.sh")], capture_output=True, text=True, timeout=1200)
        assert made.returncode == 0, f"tests/farm/make_venv.sh failed:\n{made.stdout[-2000:]}\n{made.stderr[-4000:]}"
    return venv


def write_job(folder: Path, name: str = "sh010", output: Path | None = None, **extra: object) -> Path:
    """A farm JobSpec over frames FIRST-LAST of the demo clip, keyed neutral → happy."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"plate": str(GRID), "frame_range": [FIRST, LAST], "keys": KEYS,
            "output": {"pattern": str(output or folder / "out" / f"{name}_ned.####.exr")}, **extra}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(spec, indent=1))
    return path


def ned_engine(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ned_engine.main", *args], capture_output=True, text=True,
                          timeout=600, env=env, cwd=str(cwd or ROOT))


def assert_same_frames(produced: Path, reference: Path, name: str, frames: range) -> None:
    """Each frame in ``produced`` has the reference's channels, formats and pixel bytes."""
    for frame in frames:
        ours = exr_bytes(produced / f"{name}.{frame}.exr")
        theirs = exr_bytes(reference / f"{name}.{frame}.exr")
        assert ours[:2] == theirs[:2], f"frame {frame}: channels or formats differ"
        assert ours[2] == theirs[2], f"frame {frame}: pixels differ from the single run"


def normalise(text: str, tmp: Path) -> str:
    """``text`` with this run's folders and ids replaced by stable names, for golden files."""
    text = text.replace(str(tmp), "$TMP").replace(str(ROOT), "$ROOT")
    return text.replace(f"<uid>{os.getuid()}</uid>", "<uid>$UID</uid>")


def check_golden(name: str, text: str) -> None:
    """``text`` equals ``golden/NAME``; ``NED_UPDATE_GOLDEN=1`` rewrites the file instead."""
    path = GOLDEN / name
    if os.environ.get("NED_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run with NED_UPDATE_GOLDEN=1 once and review it"
    assert text == path.read_text(), f"{name} differs from its golden file (NED_UPDATE_GOLDEN=1 rewrites it)"
