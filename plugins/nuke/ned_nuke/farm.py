"""Farm jobs from a NeuralEmotionDirector node: the node's JobSpec as the JSON file ``ned-engine analyze``
and ``ned-engine render`` run (``engine/ned_engine/farm.py`` reads exactly this: a JobSpec with a plate
path and an output pattern).

The core is plain: ``write_job(values, path)`` turns a node's values (``logic.job.NodeValues``) into the
schema-checked JSON, written atomically. Reading a ``.nk`` needs Nuke, so the command line

    nuke -t <plugins>/nuke/ned_nuke/farm.py SCRIPT.nk NODE [--out JOB.json]
    python -m ned_nuke.farm SCRIPT.nk NODE          (a Python where ``import nuke`` works)

opens the script through ``ned_nuke.host`` (imported only then), renders a non-Read Source or Mask to
EXR with Nuke's own Write as the Process button would, and prints the job file and the farm commands.

Imports ``ned_protocol`` and the node's logic; ``nuke`` only inside ``main``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence

if __package__ in (None, ""):  # run as a file by `nuke -t .../farm.py`: make `ned_nuke` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ned_protocol.errors import NedError, OutputError  # noqa: E402

from ned_nuke.logic import job as jobs  # noqa: E402

CHUNK = 20
"""Frames per render task in the printed commands."""


def job_json(values: jobs.NodeValues) -> str:
    """The farm job's JSON text (a schema-checked JobSpec)."""
    return json.dumps(jobs.spec(values), indent=2, sort_keys=True) + "\n"


def default_job_path(output: str) -> str:
    """Where a node's farm job goes by default: beside its output frames, named after them."""
    folder, name = os.path.split(output)
    stem = name.split(".")[0] or "ned"
    return os.path.join(folder, f"{stem}.job.json")


def write_job(values: jobs.NodeValues, path: str) -> str:
    """Write the node's farm job to ``path`` atomically (temporary name, then rename); returns the path.

    Raises
    ------
    InvalidOptionError
        The node's values do not make a valid job.
    OutputError
        The file cannot be written.
    """
    text = job_json(values)
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".ned-job-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
    except OSError as error:
        raise OutputError(f"cannot write farm job {path}: {error.strerror or error}", path=path) from None
    return path


def commands(path: str, frame_range: tuple[int, int], chunk: int = CHUNK,
             cache_dir: str = "<shared cache folder>") -> list[str]:
    """The farm's command lines for a job file: one ``analyze``, then one ``render`` per chunk."""
    out = [f"ned-engine analyze {path} --cache-dir {cache_dir}"]
    for first in range(frame_range[0], frame_range[1] + 1, chunk):
        last = min(first + chunk - 1, frame_range[1])
        out.append(f"ned-engine render {path} --frames {first}-{last} --cache-dir {cache_dir}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``SCRIPT.nk NODE [--out JOB.json]``: write the node's farm job; 0 on success, 1 with one error line."""
    parser = argparse.ArgumentParser(prog="ned_nuke.farm", description="Write a NeuralEmotionDirector node's "
                                     "job for `ned-engine analyze/render` (run inside `nuke -t`).")
    parser.add_argument("script", help="the Nuke script (.nk)")
    parser.add_argument("node", help="the NeuralEmotionDirector node's name")
    parser.add_argument("--out", help="the job file (default: beside the node's output frames)")
    parser.add_argument("--chunk", type=int, default=CHUNK, help=f"frames per render task printed ({CHUNK})")
    args = parser.parse_args(argv)
    try:
        from ned_nuke import host  # needs `nuke`: only inside Nuke's Python
    except ImportError as error:
        print(f"ned_nuke.farm: error: missing_dependency: cannot import nuke ({error}); run it inside Nuke: "
              f"nuke -t {os.path.abspath(__file__)} {args.script} {args.node}", file=sys.stderr)
        return 1
    try:
        values = host.farm_values(args.script, args.node)
        path = write_job(values, args.out or default_job_path(values.output))
    except NedError as error:
        print(f"ned_nuke.farm: error: {error.one_line()}", file=sys.stderr)
        return 1
    print(path)
    for line in commands(path, values.frame_range, args.chunk):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
