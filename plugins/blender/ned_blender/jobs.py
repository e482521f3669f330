"""The jobs this Blender follows, and ``pump()``: the one place their events are taken and acted on.

A job is keyed by (scene, strip). ``start`` builds the spec from the strip, reaches the engine (starting a
local one when the preferences allow) and submits. ``pump`` drains every job's queued events without
waiting, moves the window manager's progress bar and status text, and when a job ends loads its frames as
a strip and removes the job (and its UI timer). The modal ``ned.process`` operator calls ``pump`` from its
timer; headless Blender never fires timers, so scripts and tests call ``ned_blender.pump()`` themselves.

Imports bpy, ``engine``, ``sequencer``, ``properties`` and ``logic``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import bpy
from ned_protocol.errors import DisconnectedError, InvalidOptionError, NedError

from . import engine, properties, sequencer
from .logic import engine_cmd
from .logic.job import for_version, job_spec
from .logic.tracker import JobTracker

JOBS: dict[tuple[str, str], engine.RunningJob] = {}
"""Running jobs by (scene name, strip name)."""
LAST: dict[tuple[str, str], JobTracker] = {}
"""The latest ended job of each strip (what the panel shows after the end)."""


@dataclass
class Outcome:
    """How a job ended, for the operator to report."""

    level: str  # "INFO", "WARNING" or "ERROR"
    message: str


def key_of(scene: Any, strip: Any) -> tuple[str, str]:
    return (scene.name, strip.name)


def tracker_of(scene: Any, strip: Any) -> JobTracker | None:
    """The running or latest job of ``strip`` (None: never processed in this session)."""
    if scene is None or strip is None:
        return None
    key = key_of(scene, strip)
    job = JOBS.get(key)
    return job.tracker if job is not None else LAST.get(key)


def _roots(scene: Any, plate: str, pattern: str) -> list[str]:
    prefs = properties.preferences()
    extra = [p.strip() for p in prefs.allow_roots.split(";") if p.strip()]
    return [os.path.dirname(plate), os.path.dirname(os.path.dirname(os.path.dirname(pattern))), *extra]


def reach_engine(scene: Any, roots: list[str]) -> str:
    """The scene's engine address, after starting a local engine there if none answers and prefs allow.

    Raises
    ------
    DisconnectedError
        Nothing answers and no local engine may be started.
    """
    address = scene.ned.address.strip() or engine_cmd.DEFAULT_ADDRESS
    if engine.answers(address, timeout=1.0):
        return address
    prefs = properties.preferences()
    if not prefs.start_local:
        raise DisconnectedError(f"no ned-engine answers at {address}: start one (ned-engine serve) or turn on "
                                f"'Start a Local Engine' in the NED preferences", field="address")
    for root in roots:
        os.makedirs(root, exist_ok=True)
    engine.start_local(address, engine_cmd.find_executable(prefs.engine_executable), roots)
    return address


def start(scene: Any, strip: Any) -> engine.RunningJob:
    """Submit ``strip``'s edit; the job is then followed by ``pump``.

    Raises
    ------
    NedError
        A bad setting, no engine, or the engine refused the job (code and message as the engine says).
    """
    key = key_of(scene, strip)
    if key in JOBS:
        raise InvalidOptionError(f"{strip.name} is already being processed (cancel it first)", field="strip")
    strip_job = sequencer.strip_job(scene, strip)
    spec = job_spec(strip_job)
    os.makedirs(os.path.dirname(strip_job.output_pattern), exist_ok=True)
    address = reach_engine(scene, _roots(scene, strip_job.plate, strip_job.output_pattern))
    spec, dropped = for_version(spec, engine.engine_version(address))
    job = engine.submit(address, spec, label=strip.name, host=engine.host_name(),
                        context={"scene": scene.name, "strip": strip.name, "frame_map": strip_job.frame_map,
                                 "pattern": strip_job.output_pattern, "range": (strip_job.first, strip_job.last),
                                 "spec": spec})
    warnings = []
    if dropped:
        warnings.append(f"the engine at {address} is older and does not take {', '.join(dropped)}: the result "
                        f"is written in its default colourspace")
    fps = scene.render.fps / (scene.render.fps_base or 1.0)
    if strip.type == "MOVIE" and abs(float(getattr(strip, "fps", fps)) - fps) > 1e-3:
        warnings.append(f"{strip.name} runs at {strip.fps:g} fps, the scene at {fps:g}: NED numbers the movie's "
                        f"own frames one per timeline frame")
    if warnings:
        job.context["warning"] = "; ".join(warnings)
    JOBS[key] = job
    LAST.pop(key, None)
    return job


def cancel(scene: Any | None = None, strip: Any | None = None) -> int:
    """Cancel the job of ``strip`` (or every job); returns how many were asked to stop."""
    targets = [JOBS[key_of(scene, strip)]] if strip is not None and key_of(scene, strip) in JOBS else (
        [] if strip is not None else list(JOBS.values()))
    for job in targets:
        try:
            job.cancel()
        except NedError as error:
            job.tracker.fail(error.code, error.message)
    return len(targets)


def _finish(job: engine.RunningJob) -> Outcome:
    """Load what the ended job wrote; the outcome to report."""
    tracker, ctx = job.tracker, job.context
    scene = bpy.data.scenes.get(ctx["scene"])
    source = sequencer.compat.strips(scene, every=True).get(ctx["strip"]) if scene is not None else None
    if tracker.outcome == "failed" and not tracker.frames:
        return Outcome("ERROR", f"NED: {tracker.code}: {tracker.error}")
    if source is None:
        return Outcome("WARNING", f"NED: {ctx['strip']} is gone; frames are in {os.path.dirname(ctx['pattern'])}")
    try:
        result, warning = sequencer.load_result(scene, source, tracker.frames, ctx["frame_map"])
    except NedError as error:
        tracker.fail(error.code, error.message)
        return Outcome("ERROR", f"NED: {error.code}: {error.message}")
    except (OSError, ValueError) as error:
        tracker.fail("corrupt_image", str(error))
        return Outcome("ERROR", f"NED: corrupt_image: {error}")
    job.context["result"] = result.name
    if tracker.outcome == "failed":
        return Outcome("ERROR", f"NED: {tracker.code}: {tracker.error} (frames written so far: {result.name})")
    text = f"NED: {tracker.message} → {result.name}"
    return Outcome("WARNING", f"{text}; {warning}") if warning else Outcome("INFO", text)


def _progress(fraction: float | None, text: str | None) -> None:
    """The window manager's progress and the status bar (nothing headless, where there is no window)."""
    wm = getattr(bpy.context, "window_manager", None)
    if wm is None or bpy.app.background:
        return
    try:
        if fraction is None:
            wm.progress_end()
        else:
            wm.progress_update(int(fraction * 1000))
        workspace = getattr(bpy.context, "workspace", None)
        if workspace is not None:
            workspace.status_text_set(text)
        for window in wm.windows:
            for area in window.screen.areas:
                if area.type in {"SEQUENCE_EDITOR", "NODE_EDITOR"}:
                    area.tag_redraw()
    except (AttributeError, RuntimeError, ReferenceError):
        pass  # a window closed under us: the next pump draws again


def pump() -> int:
    """Take every job's events, update the UI, load the results of jobs that ended; jobs still running.

    Never waits and never raises: an error ends its job with the error's code.
    """
    for key, job in list(JOBS.items()):
        try:
            job.poll()
        except NedError as error:
            job.tracker.fail(error.code, error.message)
        tracker = job.tracker
        if not tracker.finished:
            _progress(tracker.fraction, f"NED {key[1]}: {tracker.message}")
            continue
        job.context["outcome"] = _finish(job)
        del JOBS[key]
        LAST[key] = tracker
        timer = job.context.pop("timer", None)
        if timer is not None:  # a timer left registered keeps Blender from exiting
            bpy.context.window_manager.event_timer_remove(timer)
        _progress(None, None)
    return len(JOBS)


def clear() -> None:
    """Forget every job and close the connections (``unregister``); running jobs go on in the engine."""
    wm = getattr(bpy.context, "window_manager", None)
    for job in JOBS.values():
        timer = job.context.pop("timer", None)
        if timer is not None and wm is not None:
            wm.event_timer_remove(timer)
    JOBS.clear()
    LAST.clear()
    engine.close_all()
