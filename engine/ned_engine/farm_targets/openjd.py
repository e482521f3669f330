"""Open Job Description: a job template (``jobtemplate-2023-09``) for one shot.

The template is JSON (a valid OpenJD template syntax, written with the standard library) and the
folder it is written to is a job bundle: ``openjd check template.json`` validates it, ``openjd run
template.json -p file://parameters.json`` runs it on this machine, and ``deadline bundle submit
FOLDER`` sends it to AWS Deadline Cloud (which reads ``parameter_values.json``). Two steps:
``Analyze`` (one task) and ``Render``, which depends on it and cuts the shot into chunks with OpenJD's
own ``CHUNK[INT]`` task parameter (the ``TASK_CHUNKING`` extension), so a farm may re-chunk it.

The job file and the cache are ``PATH`` job parameters, so a farm maps them between platforms; OpenJD
allows only relative defaults for those, so their values travel in the two parameter files. Frames,
chunk size and the ``ned-engine`` command are parameters with this job's values as defaults.

Must not import openjd-model (it is a test tool here) or anything of a farm's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ned_engine.farm_targets.chunks import FarmJob, write_text

SPECIFICATION = "jobtemplate-2023-09"
MAX_CHUNK = 150
"""OpenJD's limit on ``chunks.defaultTaskCount``."""


def _run(args: list[str]) -> dict[str, Any]:
    return {"actions": {"onRun": {"command": "{{Param.NedEngine}}", "args": args}}}


def template(job: FarmJob) -> dict[str, Any]:
    """The job template of ``job`` as a JSON-ready dict."""
    paths = {"job_file": "{{Param.JobFile}}", "cache_dir": "{{Param.CacheDir}}"}
    analyze = job.analyze_args(**paths)
    render = job.render_args("{{Task.Param.Frames}}", **paths)
    result: dict[str, Any] = {
        "specificationVersion": SPECIFICATION,
        "extensions": ["TASK_CHUNKING"],
        "name": f"NED {job.name}",
        "description": f"NED emotion edit of {job.job_file}: analyse the shot once, then render frame "
                       "chunks that read the shared analysis cache.",
        "parameterDefinitions": [
            {"name": "JobFile", "type": "PATH", "objectType": "FILE", "dataFlow": "IN",
             "description": "The NED JobSpec (JSON) every node reads."},
            {"name": "CacheDir", "type": "PATH", "objectType": "DIRECTORY", "dataFlow": "INOUT",
             "description": "The shared analysis cache."},
            {"name": "NedEngine", "type": "STRING", "default": job.engine, "minLength": 1,
             "description": "The ned-engine command on the workers."},
            {"name": "Frames", "type": "STRING", "default": job.frames, "minLength": 1,
             "description": "Frames to render (FIRST-LAST), inside the job's shot."},
            {"name": "ChunkSize", "type": "INT", "default": min(job.chunk, MAX_CHUNK), "minValue": 1,
             "maxValue": MAX_CHUNK, "description": "Frames per render task."},
        ],
    }
    if job.environment:
        result["jobEnvironments"] = [{"name": "NedEnvironment", "description": "What the submitter's "
                                      "shell set for NED (colour config, model files).",
                                      "variables": dict(sorted(job.environment.items()))}]
    result["steps"] = [
        {"name": "Analyze", "script": _run(analyze)},
        {"name": "Render", "dependencies": [{"dependsOn": "Analyze"}],
         "parameterSpace": {"taskParameterDefinitions": [
             {"name": "Frames", "type": "CHUNK[INT]", "range": "{{Param.Frames}}",
              "chunks": {"defaultTaskCount": "{{Param.ChunkSize}}", "rangeConstraint": "CONTIGUOUS"}}]},
         "script": _run(render)},
    ]
    return result


def parameters(job: FarmJob) -> dict[str, str]:
    """The values of the job parameters that have no default (``openjd run -p file://...``)."""
    return {"JobFile": job.job_file, "CacheDir": job.cache_dir}


def write(job: FarmJob, out_dir: Path) -> list[Path]:
    """Write the job bundle ``template.json``, ``parameters.json`` (openjd-cli) and
    ``parameter_values.json`` (Deadline Cloud) into ``out_dir``; returns the files written."""
    values = parameters(job)
    bundle = {"parameterValues": [{"name": name, "value": value} for name, value in values.items()]}
    return [write_text(out_dir / "template.json", json.dumps(template(job), indent=2) + "\n"),
            write_text(out_dir / "parameters.json", json.dumps(values, indent=2) + "\n"),
            write_text(out_dir / "parameter_values.json", json.dumps(bundle, indent=2) + "\n")]


__all__ = ["SPECIFICATION", "parameters", "template", "write"]
