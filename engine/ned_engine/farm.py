"""Render-farm runs: the engine's pipeline on one node, without a server.

A farm job is a JobSpec in a JSON file (the same spec a host submits; ``plate`` and
``output.pattern`` are paths every node can read and write). ``analyze`` tracks and fits the whole
shot once and stores the result in the shared analysis cache; ``render`` writes a chunk of frames.
Every chunk loads the same cached analysis and computes the edit over the whole shot before writing
its own frames, so chunks rendered on different nodes are bit-identical to a single run of the range.

Imports ned_core and the engine's job conversion; no networking.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ned_core.cache import AnalysisCache, analysis_key
from ned_core.errors import InputNotFoundError, InvalidOptionError
from ned_core.pipeline import Pipeline, ProgressFn, RunResult, open_plate
from ned_engine import jobs


def load_job(path: str) -> dict[str, Any]:
    """The JobSpec in a JSON file, checked against the schema; it must name its plate and output by path.

    Raises
    ------
    InputNotFoundError, InvalidOptionError
        A missing or unreadable file, or a spec a farm node cannot run.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputNotFoundError(f"missing job file {path}", path=path) from None
    except OSError as error:
        raise InputNotFoundError(f"cannot read job file {path}: {error.strerror or error}", path=path) from None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidOptionError(f"{path} is not JSON ({error.msg} at line {error.lineno})", path=path) from None
    jobs.check_spec(spec)
    if "plate" not in spec:
        raise InvalidOptionError(f"{path}: a farm job reads its plate from a path (spec.plate), not inline",
                                 path=path, field="spec.plate")
    if not spec["output"].get("pattern"):
        raise InvalidOptionError(f"{path}: a farm job writes to a path (spec.output.pattern)", path=path,
                                 field="spec.output.pattern")
    return spec


def _pipeline(plan: jobs.JobPlan, cache_dir: str | None) -> Pipeline:
    return Pipeline(plan.backends, cache=AnalysisCache(cache_dir) if cache_dir else None)


def analyze(spec: dict[str, Any], cache_dir: str | None = None,
            progress: ProgressFn | None = None) -> tuple[Path, bool]:
    """Analyse the job's whole shot into the cache; returns ``(cache file, was already cached)``."""
    plan = jobs.plan(spec)
    pipeline = _pipeline(plan, cache_dir)
    with open_plate(plan.shot) as plate:
        _, cached = pipeline.analyze(plan.shot, plate, progress=progress)
        key = analysis_key(plate.content_key(), pipeline.analysis_settings(plan.shot))
    assert pipeline.cache is not None
    return pipeline.cache.directory / f"{key}.npz", cached


def render(spec: dict[str, Any], frames: tuple[int, int] | None = None, cache_dir: str | None = None,
           progress: ProgressFn | None = None) -> RunResult:
    """Write the job's frames ``first..last`` (default: the whole shot), each file atomically.

    Raises
    ------
    FrameRangeError
        The chunk reaches outside the job's shot.
    """
    plan = jobs.plan(spec)
    todo = None if frames is None else list(range(frames[0], frames[1] + 1))
    return _pipeline(plan, cache_dir).run(plan.shot, plan.curve, plan.output, frames=todo,
                                          mouth_preservation=plan.mouth_preservation, progress=progress)


__all__ = ["analyze", "load_job", "render"]
