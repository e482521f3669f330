"""Native farm jobs for one shot: ``ned-engine farm JOB.json --target openjd|opencue|deadline``.

Each target is a module with ``write(job: FarmJob, out_dir: Path) -> list[Path]`` that turns the shared
``chunks.FarmJob`` (analysis once, then frame chunks that depend on it, each a ``ned-engine
analyze``/``render`` command reading the shared cache) into its farm's own files. Targets are chosen by
name through ``TARGETS`` and imported only when picked.

Imports ned_core and ned_engine.farm (through ``chunks``); never a farm's packages: the files are
written with the standard library, and the farms' tools only check them in the tests.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ned_core.errors import InvalidOptionError
from ned_engine.farm_targets.chunks import DEFAULT_CHUNK, FarmJob, farm_job

TARGETS = {"openjd": "ned_engine.farm_targets.openjd", "opencue": "ned_engine.farm_targets.opencue",
           "deadline": "ned_engine.farm_targets.deadline"}
"""Target name → the module that writes its files."""


def write(job: FarmJob, target: str, out_dir: str | Path) -> list[Path]:
    """Write ``job`` as ``target``'s native files into ``out_dir``; returns the files written.

    Raises
    ------
    InvalidOptionError
        An unknown target.
    OutputError
        A file that cannot be written (none is left half-written).
    """
    if target not in TARGETS:
        raise InvalidOptionError(f"unknown farm target {target!r}; one of {', '.join(TARGETS)}", field="target")
    module = importlib.import_module(TARGETS[target])
    return module.write(job, Path(out_dir))


__all__ = ["DEFAULT_CHUNK", "TARGETS", "FarmJob", "farm_job", "write"]
