"""The worker *process*: one spawned child per engine worker, with its own warm backends.

The engine's parent process owns the socket, the journal and the scheduler; each child only runs
pipeline work it is handed over a ``multiprocessing`` pipe and reports back on the same pipe:

- ``("analyze", spec, plate, output)``: track and fit the job's whole shot into the shared analysis
  cache; answers ``("result", {"lost": [...], "cached": bool})``.
- ``("render", spec, plate, output, frames)``: ``Pipeline.run`` over those frames only (the run loads
  the cached analysis, or makes it when the task is a whole shot, and edits the whole shot, so any chunk
  equals a single run bit for bit); one ``("frame", frame, path)`` per frame renamed into place, then
  ``("result", {"lost": [...], "cached": bool})``.
- while either runs: ``("progress", stage, frame, done, total)``; a failure answers
  ``("error", wire_fields, cancelled)``.

Cancelling crosses the process boundary through one ``multiprocessing.Event`` per worker (set by the
parent when the job of the task in hand is cancelled), checked by the pipeline before every frame.
The child limits its numeric libraries to ``threads`` threads (OpenMP, MKL, OpenBLAS, OpenCV,
OpenImageIO/OpenEXR, FFmpeg's decoders, torch) and, given a ``cuda:N`` device, sees only that GPU. It
exits when the parent closes the pipe or dies.

This module's top level imports only the standard library, so the thread limits are set before
numpy, OpenCV or torch are first imported in the child; ``serve`` imports ned_core and the engine's
job conversion. Never touches the journal or a socket.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import signal
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS")
_CUDA = re.compile(r"^cuda:(\d+)$")
_PIPELINES = 3


@dataclass(frozen=True)
class ProcessSettings:
    """What one worker process is started with (pickled into the spawned child)."""

    index: int
    threads: int = 1
    device: str | None = None
    """``cpu``, ``cuda`` or ``cuda:N`` (the child then sees only GPU N, as ``cuda:0``)."""
    cache_dir: str | None = None
    stage_factory: Any = None
    """``FUNCTION(backends)`` returning stage objects (``ned-engine serve --stages``); must pickle."""
    cpus: tuple[int, ...] = ()
    """CPU cores the process is pinned to (``--pin-cpus``); empty: wherever the system schedules it."""


def child_environment(settings: ProcessSettings) -> dict[str, str]:
    """The environment variables a worker process must have before anything numeric is imported."""
    env = {name: str(max(1, settings.threads)) for name in THREAD_VARIABLES}
    match = _CUDA.match(settings.device or "")
    if match:
        env["CUDA_VISIBLE_DEVICES"] = match.group(1)
    return env


def local_device(device: str | None) -> str | None:
    """The device name inside the child (``cuda:3`` becomes ``cuda:0``: the only GPU it sees)."""
    return "cuda:0" if device and _CUDA.match(device) else device


class EventToken:
    """A ``CancelToken`` look-alike over a ``multiprocessing.Event`` the parent sets."""

    def __init__(self, event: Any) -> None:
        self._event = event

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return bool(self._event.is_set())

    def check(self) -> None:
        if self._event.is_set():
            from ned_core.errors import CancelledError

            raise CancelledError("cancelled")


def serve(settings: ProcessSettings, conn: Any, cancel_event: Any) -> None:
    """The child's main function: warm the default backends, then run tasks until the pipe closes."""
    os.environ.update(child_environment(settings))
    if settings.cpus:
        os.sched_setaffinity(0, settings.cpus)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    _watch_parent()
    child = TaskRunner(settings, conn, cancel_event)
    child.warm()
    child.loop()


def _watch_parent() -> None:
    """Exit when the parent dies (kill -9): an orphan must not go on writing a job's frames."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="ned-worker parent watch", daemon=True).start()


class TaskRunner:
    """A worker's pipelines and the tasks it runs on them; every report goes through ``send``
    (the pipe here; ``ray_backend`` keeps them for the engine to collect)."""

    def __init__(self, settings: ProcessSettings, conn: Any, cancel_event: Any) -> None:
        self.settings = settings
        self.conn = conn
        self.token = EventToken(cancel_event)
        self._send_lock = threading.Lock()  # frames may be reported from the pipeline's writer thread
        self._pipelines: OrderedDict[str, Any] = OrderedDict()
        self.device = local_device(settings.device)

    def send(self, message: tuple[Any, ...]) -> None:
        try:
            with self._send_lock:
                self.conn.send(message)
        except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
            os._exit(3)  # the parent is gone

    def warm(self) -> None:
        import cv2
        import OpenImageIO as oiio

        threads = max(1, self.settings.threads)
        cv2.setNumThreads(threads)
        oiio.attribute("threads", threads)  # its own pool (and OpenEXR's) would take every core
        oiio.attribute("exr_threads", threads)
        from ned_core.io.plate import set_decode_threads

        set_decode_threads(threads)  # FFmpeg's movie decoders
        from ned_core.errors import NedError as CoreError
        from ned_core.pipeline import Backends

        error = None
        try:
            pipeline = self.pipeline(Backends())
            pipeline.load()
            self._warm_stages(pipeline)
        except CoreError as failure:
            error = failure.one_line()
        self._limit_torch()
        self.send(("ready", os.getpid(), error))

    @staticmethod
    def _warm_stages(pipeline: Any) -> None:
        """Let each stage pay its one-time start-up now (a backend's ``warm()``: imports, graph set-up)
        and load the colour configuration, so the first job is as fast as the next ones."""
        from ned_core.io.colour import scene_linear
        from ned_core.pipeline import STAGES

        scene_linear()
        with contextlib.suppress(ImportError):
            import av  # noqa: F401 - PyAV (movies) takes ~70 ms to import
        for name in STAGES:
            warm = getattr(pipeline.stage(name), "warm", None)
            if callable(warm):
                warm()

    def _limit_torch(self) -> None:
        torch = sys.modules.get("torch")  # only where a backend imported it: importing costs seconds
        if torch is not None:
            torch.set_num_threads(max(1, self.settings.threads))

    def pipeline(self, backends: Any) -> Any:
        """This process's pipeline for ``backends`` (the last few kept warm)."""
        from ned_core.cache import AnalysisCache
        from ned_core.pipeline import Pipeline

        key = json.dumps([backends.names(), backends.options], sort_keys=True, default=str)
        pipeline = self._pipelines.get(key)
        if pipeline is None:
            factory = self.settings.stage_factory
            stages = factory(backends) if factory is not None else self._device_stages(backends)
            cache = AnalysisCache(self.settings.cache_dir) if self.settings.cache_dir else AnalysisCache()
            pipeline = self._pipelines[key] = Pipeline(backends, cache=cache, stages=stages)
            while len(self._pipelines) > _PIPELINES:
                self._pipelines.popitem(last=False)
        self._pipelines.move_to_end(key)
        return pipeline

    def _device_stages(self, backends: Any) -> dict[str, Any] | None:
        """Stages built on this worker's device, for the backends that take a ``device`` (and were not
        given one by the job); the others are built by the pipeline as usual. The device is not part
        of ``backends.options``, so the analysis cache key is the same on every worker."""
        if not self.device:
            return None
        import importlib

        from ned_engine.jobs import REGISTRIES

        stages: dict[str, Any] = {}
        for stage, registry in REGISTRIES.items():
            name = getattr(backends, stage)
            options = dict(backends.options.get(stage, {}))
            target = registry.get(name)
            if "device" in options or not isinstance(target, str) or ":" not in target:
                continue
            module_name, _, attribute = target.partition(":")
            try:
                factory = getattr(importlib.import_module(module_name), attribute)
                takes = "device" in inspect.signature(factory).parameters
            except (ImportError, AttributeError, TypeError, ValueError):
                continue  # the pipeline builds it and reports a clear error
            if takes:
                module = importlib.import_module(f"ned_core.{stage}")
                stages[stage] = module.get(name, **options, device=self.device)
        return stages or None

    def loop(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                return
            if message[0] == "stop":
                return
            self._limit_torch()
            self.run_task(message)

    def run_task(self, message: tuple[Any, ...]) -> None:
        from ned_protocol.errors import wire_fields

        from ned_core.errors import CancelledError

        try:
            if message[0] == "analyze":
                result = self.analyze(*message[1:])
            else:
                result = self.render(*message[1:])
        except CancelledError as error:
            self.send(("error", wire_fields(error), True))
        except Exception as error:  # noqa: BLE001 - every failure goes back to the parent as a job error
            import traceback

            fields = wire_fields(error)
            if fields["code"] == "internal":
                traceback.print_exc()
            self.send(("error", fields, False))
        else:
            self.send(("result", result))

    def _plan(self, spec: dict[str, Any], plate: str | None, output: str | None) -> Any:
        from ned_engine import jobs

        return jobs.plan(spec, plate=plate, output=output)

    def progress(self, report: Any) -> None:
        if report.stage == "analyze":  # the parent counts rendered frames itself, from "frame"
            self.send(("progress", report.stage, report.frame, report.done, report.total))

    def analyze(self, spec: dict[str, Any], plate: str | None, output: str | None) -> dict[str, Any]:
        plan = self._plan(spec, plate, output)
        analysis, cached = self.pipeline(plan.backends).analyze(plan.shot, progress=self.progress,
                                                                cancel=self.token)
        lost = [int(f) for f, ok in zip(analysis.frames, analysis.fit.found, strict=True) if not ok]
        return {"lost": lost, "cached": bool(cached)}

    def render(self, spec: dict[str, Any], plate: str | None, output: str | None,
               frames: list[int]) -> dict[str, Any]:
        plan = self._plan(spec, plate, output)
        result = self.pipeline(plan.backends).run(
            plan.shot, plan.curve, plan.output, frames=list(frames), mouth_preservation=plan.mouth_preservation,
            progress=self.progress, cancel=self.token,
            on_frame=lambda frame, path: self.send(("frame", int(frame), path)))
        # Lost frames and the cache flag let a task that analysed the shot itself (a whole shot in one
        # task) stand for the job's analysis task.
        return {"lost": result.shot_lost_frames, "cached": bool(result.analysis_cached)}


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Any:
    """``os.environ`` with ``values`` while a child is spawned (it inherits them before any import)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


__all__ = ["THREAD_VARIABLES", "EventToken", "ProcessSettings", "TaskRunner", "child_environment", "environment",
           "local_device", "serve"]
