"""Nuke plugin tests: the stub ``nuke`` module (``stub/nuke``) and ``plugins/nuke`` on ``sys.path``, a fresh
stub session per test, and a real stand-in ``ned-engine serve`` on 127.0.0.1 (tests/engine/standin.py:
grid "landmarks" on every frame, the real mesh warp and matte compositor writing real EXR frames).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PLUGIN = ROOT / "plugins" / "nuke"
STUB = HERE / "stub"
for _path in (str(PLUGIN), str(STUB)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
if str(ROOT / "tests") not in sys.path:
    sys.path.append(str(ROOT / "tests"))

import nuke  # noqa: E402  - the stub

assert hasattr(nuke, "stub_reset"), f"the nuke stub must shadow any other nuke module (got {nuke.__file__})"

from engine.helpers import GRID, EngineProcess, make_plate  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_nuke() -> Iterator[None]:
    """An empty stub session, and no job left over in the plugin's registry."""
    nuke.stub_reset()
    from ned_nuke import host

    host._RUNNERS.clear()
    host._SHOWN.clear()
    yield
    for runner in list(host._RUNNERS.values()):
        runner.cancel()
        runner.join(20)


@pytest.fixture(scope="session")
def engine_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nuke-engine-root")


@pytest.fixture(scope="session")
def plate(engine_root) -> str:
    """Eight frames 1001-1008 of 160x120 noise EXR inside the engine's allowed root."""
    return make_plate(engine_root / "plate", range(1001, 1009))


@pytest.fixture(scope="session")
def engine(engine_root, tmp_path_factory) -> Iterator[EngineProcess]:
    process = EngineProcess(tmp_path_factory.mktemp("nuke-engine-state"), roots=(str(engine_root),))
    yield process
    process.stop()


@pytest.fixture(scope="session")
def slow_engine(engine_root, tmp_path_factory) -> Iterator[EngineProcess]:
    """The same engine, rendering each frame 0.4 s slower (so a test can cancel half way)."""
    process = EngineProcess(tmp_path_factory.mktemp("nuke-slow-engine-state"), delay=0.4,
                            roots=(str(engine_root),))
    yield process
    process.stop()


@pytest.fixture(scope="session")
def real_engine(engine_root, tmp_path_factory) -> Iterator[EngineProcess]:
    """An engine with NED's real default pipeline (MediaPipe face mesh ...), allowed to read the demo clip."""
    process = EngineProcess(tmp_path_factory.mktemp("nuke-real-engine-state"), standin=False,
                            roots=(str(engine_root), str(GRID.parent)))
    yield process
    process.stop()


@pytest.fixture
def shot(engine_root, request) -> Path:
    """A fresh folder for one test's script inside the engine's allowed root."""
    folder = engine_root / "shots" / request.node.name.replace("[", "_").replace("]", "")
    folder.mkdir(parents=True)
    return folder
