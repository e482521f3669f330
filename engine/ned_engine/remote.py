"""``ned edit --engine ADDR``: the same edit, sent to a running engine instead of run in-process.

``run_remote`` builds the job with ``jobs.job_from_cli_args`` (the spec the in-process run would
execute), submits it, shows the engine's progress through the same ``Progress`` reports the local
pipeline makes, and prints the same summary. With ``inline`` the plate's files travel in the
``submit`` and the EXR frames come back in ``frame_ready`` payloads, written locally (atomically);
otherwise the engine reads and writes the paths itself (shared storage). Either way the frames are
byte-identical to an in-process run. Ctrl-C cancels the job on the engine.

Imports ned_protocol's client and ned_core's I/O helpers.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from ned_protocol import Client
from ned_protocol.errors import NedError
from ned_protocol.keys import load_keypair, load_public_key

from ned_core import errors as core_errors
from ned_core.io import Plate, frame_path, is_sequence_pattern
from ned_core.io.atomic import commit, discard, make_parent, temp_path
from ned_core.pipeline import Progress, ProgressFn
from ned_engine import __version__, jobs
from ned_engine.progress import print_summary

_CORE_CLASSES = {cls.code: cls for cls in core_errors.ALL_ERRORS}


def run_remote(job: argparse.Namespace | dict[str, Any], address: str, progress: ProgressFn | None = None, *,
               inline: bool | None = None, output: str | None = None, curve_server_key: str | None = None,
               curve_key: str | None = None, timeout: float = 30.0, stream: TextIO | None = None) -> int:
    """Run an edit on the engine at ``address``; returns the exit status (0) or raises.

    Parameters
    ----------
    job
        ``ned edit``'s parsed arguments, or a JobSpec dict.
    address
        The engine, e.g. ``tcp://127.0.0.1:7741``.
    progress
        Called with ``ned_core.pipeline.Progress`` reports (``ned_engine.progress.ProgressBar``).
    inline
        Send the plate's files and get the frames back over the connection (default: the
        arguments' ``inline``, else False); the output pattern is then local.
    output
        Local output pattern for inline frames (default: the arguments' ``--output``).
    curve_server_key, curve_key
        The engine's public key file and this client's ``.key_secret`` file, for a CurveZMQ engine
        (default: the arguments' ``curve_server_key`` / ``curve_key``).
    timeout
        Seconds each request waits for its reply (the job itself may take as long as it takes).

    Raises
    ------
    ned_core.errors.NedError
        Anything the engine or the connection reports, as the in-process CLI's error class with the
        engine's code (``forbidden_path``, ``timeout``... keep their wire code).
    """
    out = stream or sys.stdout
    try:
        if isinstance(job, argparse.Namespace):
            _refuse_local_only(job)
            spec = jobs.job_from_cli_args(job)
            inline = bool(getattr(job, "inline", False)) if inline is None else inline
            output = output or job.output
            curve_server_key = curve_server_key or getattr(job, "curve_server_key", None)
            curve_key = curve_key or getattr(job, "curve_key", None)
        else:
            spec = dict(job)
            jobs.check_spec(spec)
            inline = bool(inline)
        shown = output or spec["output"].get("pattern") or ""
        local = os.path.abspath(output) if output else spec["output"].get("pattern")
        payloads: list[bytes] = []
        if inline:
            spec, payloads = inline_plate(spec)
            spec["output"] = {k: v for k, v in spec["output"].items() if k != "pattern"} | {"inline": True}
            if not local:
                raise core_errors.InvalidOptionError("inline delivery needs a local output pattern", field="output")
            if jobs.needs_frame_token(spec) and not is_sequence_pattern(local):
                raise core_errors.InvalidOptionError(
                    f"--output {local!r} has no frame number token (####, %04d or @) for a "
                    f"{len(spec['plate_frames'])}-frame shot", field="output")
        return _run(spec, payloads, address, progress, local if inline else None, shown,
                    _curve(curve_server_key, curve_key), timeout, out)
    except NedError as error:
        raise core_error(error) from None


def inline_plate(spec: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    """The spec with its plate sent inline (``plate_frames`` + ``plate_format``) and the files' bytes.

    Raises
    ------
    InvalidOptionError
        The plate is not an image sequence of a format the protocol carries (a movie's frames would
        have to be re-encoded, which would change them).
    """
    plate = spec["plate"]
    extension = os.path.splitext(plate)[1].lower()
    span = tuple(spec["frame_range"]) if "frame_range" in spec else None
    if not is_sequence_pattern(plate) or extension not in jobs.PLATE_EXTENSIONS:
        raise core_errors.InvalidOptionError(
            f"--inline sends an image sequence ({', '.join(sorted(set(jobs.PLATE_EXTENSIONS.values())))}); "
            f"{plate} is not one: give the engine a path it can read instead", path=plate, field="inline")
    with Plate.open(plate, frame_range=span, colorspace=spec.get("colorspace")) as opened:
        frames = list(opened.frames)
    if len(frames) > 1000:
        raise core_errors.InvalidOptionError(f"--inline sends at most 1000 frames in one job; {plate} has "
                                             f"{len(frames)} in the range", field="frames")
    payloads = []
    for frame in frames:
        with open(frame_path(plate, frame), "rb") as handle:
            payloads.append(handle.read())
    inline = {k: v for k, v in spec.items() if k not in ("plate", "start")}
    inline.update(plate_frames=frames, plate_format=jobs.PLATE_EXTENSIONS[extension])
    return inline, payloads


def core_error(error: NedError) -> core_errors.NedError:
    """A protocol error as the pipeline's error class of the same code (the CLI prints those)."""
    cls = _CORE_CLASSES.get(error.code, core_errors.NedError)
    converted = cls(error.message, path=error.path, frame=error.frame, field=error.field)
    if converted.code != error.code:
        converted.code = error.code  # a protocol-only code (forbidden_path, timeout...) keeps its name
    converted.retryable = error.retryable
    return converted


def _refuse_local_only(args: argparse.Namespace) -> None:
    for option, name in (("preview", "--preview"), ("cache_dir", "--cache-dir"), ("no_cache", "--no-cache")):
        if getattr(args, option, None):
            raise core_errors.InvalidOptionError(
                f"{name} works in-process only; the engine keeps its own analysis cache "
                f"(ned-engine serve --cache-dir)", field=option)


def _curve(server_key: str | None, client_key: str | None) -> dict[str, Any]:
    if server_key is None:
        if client_key is not None:
            raise core_errors.InvalidOptionError("--curve-key needs --curve-server-key (the engine's public key)",
                                                 field="curve_server_key")
        return {}
    return {"curve_server_key": load_public_key(server_key),
            "curve_keypair": load_keypair(client_key) if client_key else None}


def _run(spec: dict[str, Any], payloads: list[bytes], address: str, progress: ProgressFn | None,
         local: str | None, shown: str, curve: dict[str, Any], timeout: float, out: TextIO) -> int:
    with Client(address, timeout=timeout, client_name=f"ned/{__version__}", **curve) as client:
        job = client.submit(spec, payloads=payloads)
        written: set[int] = set()
        try:
            for event in client.events(job):
                body = event.body
                if event.type == "progress" and body["stage"] in ("analyze", "render") and progress is not None:
                    progress(Progress(body["stage"], body.get("frame"), body["done"], body["total"]))
                elif event.type == "frame_ready":
                    written.add(body["frame"])
                    if local is not None and event.payload is not None:
                        _write(frame_path(local, body["frame"]), event.payload)
                elif event.type == "done":
                    print_summary(sorted(written), shown, body.get("lost_frames") or [],
                                  bool(body.get("analysis_cached")), out)
                    return 0
                elif event.type == "failed":
                    error = event.error()
                    assert error is not None
                    raise error
                elif event.type == "cancelled":
                    raise core_errors.CancelledError(f"job {job} was cancelled on the engine: "
                                                     f"{body.get('message', 'no reason given')}")
        except KeyboardInterrupt:
            try:
                client.cancel(job, timeout=5.0)
            except NedError:
                pass
            raise
    raise core_errors.NedError(f"the connection to {address} closed before job {job} ended")


def _write(path: str, data: bytes) -> None:
    make_parent(path)
    temp = temp_path(path)
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
        commit(temp, path)
    except OSError as error:
        raise core_errors.OutputError(f"cannot write {path}: {error.strerror or error}", path=path) from error
    finally:
        discard(temp)


__all__ = ["core_error", "inline_plate", "run_remote"]
