"""OpenCue: a Cue job spec (the XML ``cuebot`` accepts) for one shot.

Two layers, as PyOutline would build them from ``Shell`` layers and serialise them without its
``pycuerun`` wrapper (``outline.backend.cue.serialize_simple``): ``analyze`` (one frame, the shot's
first) and ``render`` (the shot's range, ``chunk`` frames per task, each task running ``ned-engine
render --frames #FRAME_START#-#FRAME_END#``; Cuebot replaces the tokens when it dispatches), and a
``LAYER_ON_LAYER`` dependency of ``render`` on ``analyze``. Show, shot and user come from ``$SHOW``,
``$SHOT`` and ``$USER`` as OpenCue's own tools read them; the facility from ``$CUE_FACILITY``.
Submit the file with PyCue: ``opencue.api.launchSpec(open(PATH).read())``.

Written with the standard library's ElementTree; must not import PyOutline, PyCue or gRPC.
"""

from __future__ import annotations

import getpass
import os
import shlex
from pathlib import Path
from xml.etree import ElementTree as Et

from ned_engine.farm_targets.chunks import FarmJob, safe_name, write_text

SPEC_VERSION = "1.15"
"""The Cue job spec DTD version written (``cjsl-1.15.dtd``), as PyOutline 1.37 writes it."""
FRAME_TOKEN = "#FRAME_START#-#FRAME_END#"
"""What Cuebot replaces by a render task's first and last frame."""
SERVICE = "shell"


def _sub(parent: Et.Element, tag: str, text: str | None) -> Et.Element:
    element = Et.SubElement(parent, tag)
    element.text = text
    return element


def _layer(layers: Et.Element, job: FarmJob, name: str, args: list[str], frames: str, chunk: int) -> None:
    layer = Et.SubElement(layers, "layer", {"name": name, "type": "Render"})
    _sub(layer, "cmd", shlex.join([job.engine, *args]))  # RQD runs it through a shell
    _sub(layer, "range", frames)
    _sub(layer, "chunk", str(chunk))
    env = Et.SubElement(layer, "env")
    for key, value in sorted(job.environment.items()):
        _sub(env, "key", value).set("name", key)
    _sub(Et.SubElement(layer, "services"), "service", SERVICE)
    Et.SubElement(layer, "outputs")


def spec(job: FarmJob, *, show: str | None = None, shot: str | None = None, user: str | None = None,
         facility: str | None = None, uid: int | None = None) -> str:
    """The Cue job spec of ``job`` as XML text (defaults from the environment, as OpenCue's tools do)."""
    user = user or os.environ.get("USER") or getpass.getuser()
    root = Et.Element("spec")
    _sub(root, "facility", facility or os.environ.get("CUE_FACILITY") or "local")
    _sub(root, "show", safe_name(show or os.environ.get("SHOW") or "testing"))
    _sub(root, "shot", safe_name(shot or os.environ.get("SHOT") or job.name))
    _sub(root, "user", user)
    _sub(root, "uid", str(os.getuid() if uid is None else uid))
    element = Et.SubElement(root, "job", {"name": job.name})
    _sub(element, "paused", "False")
    _sub(element, "priority", "1")
    _sub(element, "maxretries", "2")
    _sub(element, "autoeat", "False")
    Et.SubElement(element, "env")
    layers = Et.SubElement(element, "layers")
    _layer(layers, job, "analyze", job.analyze_args(), str(job.first), 1)
    _layer(layers, job, "render", job.render_args(FRAME_TOKEN), job.frames, job.chunk)
    depends = Et.SubElement(root, "depends")
    depend = Et.SubElement(depends, "depend", {"type": "LAYER_ON_LAYER", "anyframe": "False"})
    for tag, text in (("depjob", job.name), ("deplayer", "render"), ("onjob", job.name), ("onlayer", "analyze")):
        _sub(depend, tag, text)
    return ('<?xml version="1.0"?>'
            '<!DOCTYPE spec PUBLIC "SPI Cue  Specification Language" '
            f'"http://localhost:8080/spcue/dtd/cjsl-{SPEC_VERSION}.dtd">'
            + Et.tostring(root, encoding="unicode"))


def write(job: FarmJob, out_dir: Path) -> list[Path]:
    """Write ``out_dir/job.cuejob.xml``; returns the files written."""
    return [write_text(out_dir / "job.cuejob.xml", spec(job) + "\n")]


__all__ = ["FRAME_TOKEN", "SPEC_VERSION", "spec", "write"]
