"""What every farm target shares: the farm job (frames, chunks, commands, environment) and atomic writes.

A ``FarmJob`` is read from a farm JobSpec file (``ned_engine.farm.load_job``) once; each target module
turns it into its farm's native files and never re-reads the spec. Commands are argument lists for
``ned-engine analyze`` and ``ned-engine render``, with the chunk's frames left as a farm token.

Imports ned_core (errors, atomic writes, plate opening for a spec without ``frame_range``) and
``ned_engine.farm``; never a farm's own packages (OpenJD, PyOutline, Deadline): the files are plain
text written with the standard library.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ned_core.errors import InvalidOptionError, OutputError
from ned_core.io.atomic import commit, discard, make_parent, temp_path
from ned_engine import farm

DEFAULT_CHUNK = 10
"""Frames per render task when ``--chunk`` is not given."""

PASSED_ENVIRONMENT = ("OCIO", "NED_MODELS")
"""Variables copied from the submitting shell into the job: every node must read the same colour
config and model files as the submitter, or its frames would differ from a single run."""


@dataclass(frozen=True)
class FarmJob:
    """One shot as a farm job: analysis once, then ``chunks`` of frames that depend on it."""

    name: str
    """A job name every farm accepts (letters, digits, ``_``, ``-``, ``.``)."""
    job_file: str
    """The JobSpec file's absolute path; every node reads it."""
    output: str
    """The spec's output pattern (absolute), for the farm's own view of the frames."""
    cache_dir: str
    """The shared analysis cache every node reads (analysis writes it)."""
    engine: str
    """The ``ned-engine`` command as the nodes run it."""
    first: int
    last: int
    chunk: int
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def frames(self) -> str:
        """The shot as ``FIRST-LAST``."""
        return f"{self.first}-{self.last}"

    def chunks(self) -> list[tuple[int, int]]:
        """``(first, last)`` of each render task, in order; the last one may be shorter."""
        return [(start, min(start + self.chunk - 1, self.last)) for start in range(self.first, self.last + 1,
                                                                                   self.chunk)]

    def analyze_args(self, job_file: str | None = None, cache_dir: str | None = None) -> list[str]:
        """``ned-engine``'s arguments for the analysis task (a farm may name the paths by its own tokens)."""
        return ["analyze", job_file or self.job_file, "--cache-dir", cache_dir or self.cache_dir, "--quiet"]

    def render_args(self, frames: str, job_file: str | None = None, cache_dir: str | None = None) -> list[str]:
        """``ned-engine``'s arguments for one render task; ``frames`` is the farm's ``FIRST-LAST`` token."""
        return ["render", job_file or self.job_file, "--frames", frames, "--cache-dir", cache_dir or self.cache_dir,
                "--quiet"]


def farm_job(job_path: str, *, chunk: int = DEFAULT_CHUNK, cache_dir: str | None = None,
             engine: str = "ned-engine", name: str | None = None,
             environ: Mapping[str, str] | None = None) -> FarmJob:
    """Read and check a farm JobSpec file and plan its farm job.

    Parameters
    ----------
    job_path
        The JobSpec JSON (checked by ``farm.load_job``); its path is made absolute, as nodes see it.
    chunk
        Frames per render task (at least 1).
    cache_dir
        The shared analysis cache; default ``.ned_cache`` beside the output frames (a folder every
        node can already write).
    engine
        The ``ned-engine`` command on the nodes (a name on their PATH, or an absolute path).
    name
        The job's name; default the spec's ``label``, else the job file's stem.
    environ
        Where ``PASSED_ENVIRONMENT`` is read (default ``os.environ``).

    Raises
    ------
    InputNotFoundError, InvalidOptionError, FrameRangeError
        A bad job file, a relative path in it, a bad chunk size, or (for a spec without
        ``frame_range``) an unreadable plate.
    """
    if chunk < 1:
        raise InvalidOptionError(f"--chunk must be at least 1 (got {chunk})", field="chunk")
    spec = farm.load_job(job_path)
    for where, path in (("spec.plate", spec["plate"]), ("spec.mask", spec.get("mask")),
                        ("spec.output.pattern", spec["output"]["pattern"])):
        if path is not None and not os.path.isabs(path):
            # a node runs in the farm's own working folder: a relative path would point elsewhere there
            raise InvalidOptionError(f"{job_path}: a farm job needs absolute paths; {where} is {path!r}",
                                     path=job_path, field=where)
    if "frame_range" in spec:
        first, last = spec["frame_range"]
    else:
        # the spec means "the whole plate": the farm needs the numbers now, to cut the chunks
        from ned_core.pipeline import open_plate
        from ned_engine import jobs

        with open_plate(jobs.plan(spec).shot) as plate:
            first, last = plate.first, plate.last
    output = spec["output"]["pattern"]
    environ = os.environ if environ is None else environ
    return FarmJob(name=safe_name(name or spec.get("label") or Path(job_path).stem),
                   job_file=os.path.abspath(job_path), output=output,
                   cache_dir=os.path.abspath(cache_dir) if cache_dir else os.path.join(os.path.dirname(output),
                                                                                       ".ned_cache"),
                   engine=engine, first=int(first), last=int(last), chunk=chunk,
                   environment={key: environ[key] for key in PASSED_ENVIRONMENT if environ.get(key)})


def safe_name(text: str) -> str:
    """``text`` with every character a farm may refuse in a job name replaced by ``_``."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.-")
    return cleaned[:64] or "ned"


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary name, then rename); OutputError naming the path."""
    make_parent(str(path))
    temp = temp_path(str(path))
    try:
        with open(temp, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        commit(temp, str(path))
    except OSError as error:
        discard(temp)
        raise OutputError(f"cannot write {path}: {error.strerror or error}", path=str(path)) from None
    return path


__all__ = ["DEFAULT_CHUNK", "PASSED_ENVIRONMENT", "FarmJob", "farm_job", "safe_name", "write_text"]
