"""Thinkbox Deadline 10: job-info and plugin-info files for two CommandLine-plugin jobs.

``analyze.job_info.txt``/``analyze.plugin_info.txt`` is one task (``ned-engine analyze``);
``render.job_info.txt``/``render.plugin_info.txt`` covers the shot's frames with ``ChunkSize`` frames
per task, each task running ``ned-engine render --frames <STARTFRAME>-<ENDFRAME>``. The render job
depends on the analysis job by ``JobDependencies``; Deadline only knows that id once the analysis job
is submitted, so ``submit.sh`` submits the analysis, reads its ``JobID=`` line and fills the id in
before submitting the render job (both under one ``BatchName``). Deadline's path mapping applies to the
CommandLine plugin's executable and arguments on each Worker.

Must not import Deadline's scripting API or anything of a farm's.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from ned_core.errors import InvalidOptionError
from ned_engine.farm_targets.chunks import FarmJob, write_text

FILES = ("analyze.job_info.txt", "analyze.plugin_info.txt", "render.job_info.txt", "render.plugin_info.txt",
         "submit.sh")


def _quote(arg: str) -> str:
    """One argument as Deadline's CommandLine plugin passes it to the shell-less process."""
    return f'"{arg}"' if not arg or re.search(r'[\s"]', arg) else arg


def _arguments(args: list[str]) -> str:
    return " ".join(_quote(arg) for arg in args)


def _info(lines: dict[str, str | int]) -> str:
    for key, value in lines.items():
        if "\n" in str(value) or "\r" in str(value):  # one key per line: the format has no escapes
            raise InvalidOptionError(f"Deadline's {key} cannot hold a line break: {value!r}", field=key)
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def job_info(job: FarmJob, step: str) -> str:
    """The job-info file of ``step`` (``analyze`` or ``render``)."""
    lines: dict[str, str | int] = {"Plugin": "CommandLine", "Name": f"NED {job.name} {step}",
                                   "BatchName": f"NED {job.name}",
                                   "Comment": f"NED emotion edit: {job.job_file}"}
    if step == "analyze":
        lines.update({"Frames": job.first, "ChunkSize": 1})
    else:
        lines.update({"Frames": job.frames, "ChunkSize": job.chunk,
                      "JobDependencies": "",  # the analysis job's id: submit.sh fills it in
                      "ResumeOnCompleteDependencies": "true"})
        # lets the Monitor open the frames; Deadline reads #### padding in an output name
        lines.update({"OutputDirectory0": os.path.dirname(job.output),
                      "OutputFilename0": os.path.basename(job.output)})
    for index, (key, value) in enumerate(sorted(job.environment.items())):
        lines[f"EnvironmentKeyValue{index}"] = f"{key}={value}"
    return _info(lines)


def plugin_info(job: FarmJob, step: str) -> str:
    """The CommandLine plugin-info file of ``step``."""
    args = job.analyze_args() if step == "analyze" else job.render_args("<STARTFRAME>-<ENDFRAME>")
    return _info({"Executable": job.engine, "Arguments": _arguments(args), "Shell": "default",
                  "ShellExecute": "False", "StartupDirectory": ""})


SUBMIT = """#!/bin/sh
# Submit {name} to Deadline: the analysis job, then the render job depending on it.
# DEADLINE_COMMAND names deadlinecommand when it is not on PATH.
set -eu
cd "$(dirname "$0")"
deadline="${{DEADLINE_COMMAND:-deadlinecommand}}"
analysis=$("$deadline" analyze.job_info.txt analyze.plugin_info.txt)
printf '%s\\n' "$analysis"
id=$(printf '%s\\n' "$analysis" | sed -n 's/^JobID=//p' | tr -d '\\r')
[ -n "$id" ] || {{ echo "submit.sh: no JobID from the analysis job's submission" >&2; exit 1; }}
sed "s/^JobDependencies=.*/JobDependencies=$id/" render.job_info.txt > render.job_info.submitted.txt
"$deadline" render.job_info.submitted.txt render.plugin_info.txt
"""


def write(job: FarmJob, out_dir: Path) -> list[Path]:
    """Write the two jobs' info files and ``submit.sh`` into ``out_dir``; returns the files written."""
    texts = [job_info(job, "analyze"), plugin_info(job, "analyze"), job_info(job, "render"),
             plugin_info(job, "render"), SUBMIT.format(name=shlex.quote(job.name))]
    written = [write_text(out_dir / name, text) for name, text in zip(FILES, texts, strict=True)]
    written[-1].chmod(0o755)
    return written


__all__ = ["FILES", "job_info", "plugin_info", "write"]
