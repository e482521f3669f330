"""``ned models``: list the NED backend's model files; ``ned models check FILE --kind ...``: load one strictly.

``ned models`` prints, for every file the NED backend can use (``ned_core.ned.models.MODELS``), whether
it is found, its path, what it is for, where to get it and its licence, and exits 1 when a required
file is missing. ``ned models check`` loads a checkpoint strictly into NED's full-size networks and
exits 0, or prints every missing, unexpected or mis-shaped tensor and exits 1.

Wired into ``ned_engine.cli`` by ``add_parser``; handlers return the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

CHECK_KINDS = ("manipulator", "renderer", "renderer_discriminator", "deca")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``models`` (and ``models check``) to the ``ned`` command's subparsers."""
    models = subparsers.add_parser("models", help="list the NED model files: found or missing, source, licence",
                                   description="List every model file the NED backend uses ($NED_MODELS).")
    models.add_argument("--json", action="store_true", help="print the list as JSON")
    models.set_defaults(handler=run_models)
    sub = models.add_subparsers(dest="models_command")
    check = sub.add_parser("check", help="load a checkpoint strictly into NED's networks",
                           description="Exit 0 when FILE loads strictly; else name every problem and exit 1.")
    check.add_argument("file", help="the checkpoint file")
    check.add_argument("--kind", required=True, choices=CHECK_KINDS,
                       help="manipulator (*_nets.pth), renderer (*_net_G.pth), renderer_discriminator "
                            "(*_net_D.pth, *_net_Dm.pth) or deca (deca_model.tar)")
    check.set_defaults(handler=run_models_check)


def run_models(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print the model table; 0 when every required file is found, else 1."""
    from ned_core.ned import models

    out = out or sys.stdout
    rows = models.status()
    if getattr(args, "json", False):
        data = {"models_dir": str(models.models_dir()), "models": [
            {"name": s.model.name, "found": [str(p) for p in s.found], "expected": s.model.pattern,
             "required": s.model.required, "what": s.model.what, "used_by": s.model.used_by,
             "source": s.model.source, "licence": s.model.licence} for s in rows]}
        out.write(json.dumps(data, indent=1) + "\n")
    else:
        out.write(f"NED model files in {models.models_dir()} (set ${models.ENV} to move them)\n")
        for s in rows:
            state = "found" if s.ok else ("MISSING" if s.model.required else "absent (optional)")
            out.write(f"\n{s.model.name}: {state}\n")
            for path in s.found:
                out.write(f"  path:     {path}\n")
            if not s.ok:
                out.write(f"  expected: {models.models_dir() / s.model.pattern}\n")
            out.write(f"  what:     {s.model.what}\n  used by:  {s.model.used_by}\n"
                      f"  get it:   {s.model.source}\n  licence:  {s.model.licence}\n")
    missing = [s.model.name for s in rows if s.model.required and not s.ok]
    if missing and not getattr(args, "json", False):
        out.write(f"\nmissing: {', '.join(missing)} (the ned backend needs them)\n")
    return 1 if missing else 0


def run_models_check(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Check ``args.file`` as ``args.kind``; 0 when it loads strictly, else 1 with every problem listed."""
    from ned_core.ned.checkpoints import check_checkpoint

    out = out or sys.stdout
    problems = check_checkpoint(args.file, args.kind)
    if not problems:
        out.write(f"{args.file}: loads strictly as a {args.kind} checkpoint\n")
        return 0
    out.write(f"{args.file}: does not load as a {args.kind} checkpoint ({len(problems)} problems)\n")
    for problem in problems:
        out.write(f"  {problem}\n")
    return 1
