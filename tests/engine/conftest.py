"""Shared fixtures: one stand-in engine for the whole session, and plates inside its allowed root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import EngineProcess, make_plate


@pytest.fixture(scope="session")
def engine_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("engine-root")


@pytest.fixture(scope="session")
def plate(engine_root) -> str:
    """Eight frames 1001-1008 of 160x120 noise, inside the shared engine's allowed root."""
    return make_plate(engine_root / "plate", range(1001, 1009))


@pytest.fixture(scope="session")
def engine(engine_root, tmp_path_factory) -> Iterator[EngineProcess]:
    """A stand-in engine with two workers (see standin.py), shared by the tests that only submit."""
    process = EngineProcess(tmp_path_factory.mktemp("engine-state"), "--workers", "2",
                            roots=(str(engine_root),))
    yield process
    process.stop()


@pytest.fixture
def out(engine_root, request) -> Path:
    """A fresh output folder inside the shared engine's allowed root."""
    folder = engine_root / "out" / request.node.name.replace("[", "_").replace("]", "")
    folder.mkdir(parents=True)
    return folder
