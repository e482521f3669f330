"""The job queue and the worker threads that run jobs through their own warm ``Pipeline``.

``Scheduler`` holds the queued job ids (higher priority first, then submission order) and the cancel
token of each running job, under one lock, so a job is never both queued and running and a cancel
always finds it. Each ``Worker`` owns its pipelines (MediaPipe's face mesh is not thread-safe, so no
backend object is shared between workers), loads the default backends once at start, and then takes
jobs until the engine stops. A worker never touches the socket: every event it makes is journaled
first (which numbers it) and then handed to the socket loop through ``post``.

Liveness comes from the work loop itself: a worker stamps ``beat`` when idle and on every frame, so a
job stuck inside a backend shows up as a stale beat (``hung``) even though the socket still answers.

Imports ned_core, ned_protocol's errors and the engine's journal/jobs/sandbox; never touches a socket.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ned_protocol.errors import LimitExceededError, NedError, wire_fields

from ned_core.cache import AnalysisCache
from ned_core.errors import CancelledError
from ned_core.errors import NedError as CoreError
from ned_core.io import frame_path
from ned_core.pipeline import Backends, CancelToken, Pipeline, Progress, open_plate
from ned_engine import jobs
from ned_engine.journal import JobRecord, Journal, StoredEvent
from ned_engine.metrics import Metrics
from ned_engine.sandbox import PathPolicy

logger = logging.getLogger(__name__)
StageFactory = Callable[[Backends], dict[str, Any]]
"""Builds ready backend objects by stage name for a job's ``Backends`` (``ned-engine serve --stages``)."""
_PIPELINES_PER_WORKER = 3
_TEMP_NAME = re.compile(r"^\.(.+)\.[0-9a-f]{12}\.tmp$")  # ned_core.io.atomic.temp_path's names


class Scheduler:
    """Queued jobs by priority and the running jobs' cancel tokens (thread-safe)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[int, int, str]] = []
        self._queued: set[str] = set()
        self._running: dict[str, CancelToken] = {}
        self._order = itertools.count()
        self._paused = False

    def push(self, job_id: str, priority: int) -> None:
        with self._cond:
            if job_id in self._queued or job_id in self._running:
                return
            heapq.heappush(self._heap, (-priority, next(self._order), job_id))
            self._queued.add(job_id)
            self._cond.notify()

    def take(self, timeout: float) -> tuple[str, CancelToken] | None:
        """The next job to run (now marked running, with a fresh token), or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                while self._heap and self._heap[0][2] not in self._queued:
                    heapq.heappop(self._heap)  # cancelled while queued
                if self._heap and not self._paused:
                    job_id = heapq.heappop(self._heap)[2]
                    self._queued.discard(job_id)
                    token = self._running[job_id] = CancelToken()
                    return job_id, token
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def finish(self, job_id: str) -> None:
        with self._cond:
            self._running.pop(job_id, None)
            self._cond.notify_all()

    def cancel(self, job_id: str) -> str | None:
        """Cancel a job: "queued" (removed from the queue), "running" (its token is set) or None."""
        with self._cond:
            if job_id in self._queued:
                self._queued.discard(job_id)
                return "queued"
            token = self._running.get(job_id)
            if token is not None:
                token.cancel()
                return "running"
            return None

    def pause(self) -> None:
        """Stop handing out jobs (shutting down); queued jobs stay queued in the journal."""
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def stop_running(self) -> None:
        """Set every running job's token (a shutdown that does not drain)."""
        with self._cond:
            for token in self._running.values():
                token.cancel()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job runs; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._queued)

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._running)


@dataclass
class Limits:
    """Per-job and per-client bounds an engine enforces (``limit_exceeded`` beyond them)."""

    max_frames: int = 20_000
    max_pixels: int = 8192 * 8192
    max_queued: int = 1000
    max_queued_per_client: int = 100
    max_payload_bytes: int = 256 << 20


@dataclass
class WorkerContext:
    """What every worker shares with the engine."""

    journal: Journal
    scheduler: Scheduler
    post: Callable[[StoredEvent], None]
    metrics: Metrics
    policy: PathPolicy
    spool: str
    limits: Limits = field(default_factory=Limits)
    cache_dir: str | None = None
    stage_factory: StageFactory | None = None
    hang_timeout: float = 300.0
    stopping: threading.Event = field(default_factory=threading.Event)
    render_ratio: float = 1.0
    """Render seconds per frame ÷ analysis seconds per frame, learned from finished jobs: lets a job
    still in analysis estimate its render time (1.0 until a job has done both)."""


@dataclass
class Eta:
    """Seconds to the end of one pipeline run, from the rates of the frames done so far.

    The analysis clock starts when the run starts (``start``); the render clock starts when the
    analysis ends (or with the run, when the analysis came from the cache), so the first rendered frame
    counts the fit and edit it waited for. While analysing, the render still to come is estimated as
    ``render_frames`` × the analysis rate × ``render_ratio``.
    """

    start: float
    render_frames: int
    render_ratio: float = 1.0
    analysis_end: float | None = None
    analysis_rate: float | None = None
    render_rate: float | None = None

    def analyzed(self, done: int, total: int, now: float) -> float | None:
        """The ETA after ``done`` of ``total`` analysed frames (None before the first)."""
        if done <= 0:
            return None
        rate = max(now - self.start, 0.0) / done
        if done >= total:
            self.analysis_end, self.analysis_rate = now, rate
        return rate * (total - done) + rate * self.render_ratio * self.render_frames

    def rendered(self, done: int, total: int, now: float) -> float | None:
        """The ETA after ``done`` of ``total`` rendered frames (None before the first)."""
        if done <= 0:
            return None
        since = self.analysis_end if self.analysis_end is not None else self.start
        self.render_rate = max(now - since, 0.0) / done
        return self.render_rate * (total - done)

    def learned_ratio(self) -> float | None:
        """Render ÷ analysis seconds per frame of this run, when it measured both."""
        if self.analysis_rate and self.render_rate:
            return self.render_rate / self.analysis_rate
        return None


class Worker(threading.Thread):
    """One worker thread with its own pipelines (see the module docstring)."""

    def __init__(self, index: int, ctx: WorkerContext) -> None:
        super().__init__(name=f"ned-engine worker {index}", daemon=True)
        self.index = index
        self.ctx = ctx
        self.beat = time.monotonic()
        self.job: str | None = None
        self.ready = False
        self._pipelines: OrderedDict[str, Pipeline] = OrderedDict()

    @property
    def hung(self) -> bool:
        """True when the worker's loop has not reported for the hang timeout."""
        return time.monotonic() - self.beat > self.ctx.hang_timeout

    def run(self) -> None:
        self._warm()
        while not self.ctx.stopping.is_set():
            self.beat = time.monotonic()
            taken = self.ctx.scheduler.take(0.5)
            if taken is None:
                continue
            job_id, token = taken
            self.job = job_id
            try:
                self._run_job(job_id, token)
            except Exception:  # noqa: BLE001 - a bug must fail the job, not kill the worker
                logger.exception("worker %d: job %s crashed", self.index, job_id)
            finally:
                self.job = None
                self.ctx.scheduler.finish(job_id)

    # -- pipelines --------------------------------------------------------------------------------------
    def _warm(self) -> None:
        """Build the default backends now, so the first job does not pay for loading them."""
        try:
            self._pipeline(Backends()).load()
        except CoreError as error:
            logger.warning("worker %d: default backends not loaded: %s", self.index, error.one_line())
        self.ready = True
        self.beat = time.monotonic()

    def _pipeline(self, backends: Backends) -> Pipeline:
        key = json.dumps([backends.names(), backends.options], sort_keys=True, default=str)
        pipeline = self._pipelines.get(key)
        if pipeline is None:
            stages = self.ctx.stage_factory(backends) if self.ctx.stage_factory is not None else None
            cache = AnalysisCache(self.ctx.cache_dir) if self.ctx.cache_dir else AnalysisCache()
            pipeline = self._pipelines[key] = Pipeline(backends, cache=cache, stages=stages)
            while len(self._pipelines) > _PIPELINES_PER_WORKER:
                self._pipelines.popitem(last=False)
        self._pipelines.move_to_end(key)
        return pipeline

    # -- one job ----------------------------------------------------------------------------------------
    def _emit(self, job_id: str, type_: str, **body: Any) -> None:
        self.ctx.post(self.ctx.journal.record_event(job_id, type_, body))

    def _run_job(self, job_id: str, token: CancelToken) -> None:
        ctx = self.ctx
        started = ctx.journal.start(job_id)
        if started is None:  # cancelled or gone between queue and start
            return
        run = _JobRun(self, *started, token)
        logger.info("worker %d: %s job %s", self.index, "resuming" if started[1] else "starting", job_id)
        try:
            run.execute()
        except CancelledError:
            if ctx.stopping.is_set():
                logger.info("job %s interrupted by shutdown; it resumes at the next start", job_id)
                return
            written = len(ctx.journal.finished_frames(job_id))
            self._emit(job_id, "cancelled", frames_written=written, message="cancelled by a client")
            ctx.metrics.inc("jobs_finished_total", state="cancelled")
        except (CoreError, NedError) as error:
            self._fail(job_id, error)
        except Exception as error:  # noqa: BLE001 - anything unforeseen fails the job as internal
            logger.exception("job %s failed", job_id)
            self._fail(job_id, error)
        finally:
            run.close_stage()

    def _fail(self, job_id: str, error: BaseException) -> None:
        fields = wire_fields(error)
        self._emit(job_id, "failed", **fields)
        self.ctx.metrics.inc("jobs_finished_total", state="failed")
        self.ctx.metrics.inc("errors_total", code=fields["code"])


class _JobRun:
    """The state of one job while a worker runs it: progress numbering, ETA and stage timing."""

    def __init__(self, worker: Worker, record: JobRecord, resumed: bool, token: CancelToken) -> None:
        self.worker, self.ctx, self.record, self.token = worker, worker.ctx, record, token
        self.resumed = resumed
        self.job_id = record.id
        self.stage: str | None = None
        self.stage_since = time.monotonic()
        self.eta: Eta | None = None
        self.already = 0
        self.total = 0
        self.plan: jobs.JobPlan | None = None

    def execute(self) -> None:
        ctx, spec = self.ctx, self.record.spec
        self.progress("load", 0, 0, None)
        plate_pattern, out_pattern = jobs.spool_paths(ctx.spool, self.job_id, spec.get("plate_format", "exr"))
        plan = self.plan = jobs.plan(spec, plate=plate_pattern if "plate_frames" in spec else None,
                                     output=out_pattern)
        self._recheck_paths(spec)
        pipeline = self.worker._pipeline(plan.backends)
        with open_plate(plan.shot) as plate:
            frames = list(plate.frames)
            if len(frames) > ctx.limits.max_frames:
                raise LimitExceededError(f"the shot has {len(frames)} frames; this engine takes at most "
                                         f"{ctx.limits.max_frames} per job", field="spec.frame_range")
            if plate.width * plate.height > ctx.limits.max_pixels:
                raise LimitExceededError(f"frames of {plate.width}x{plate.height} exceed this engine's "
                                         f"{ctx.limits.max_pixels} pixels per frame", path=plan.shot.plate)
        finished = ctx.journal.finished_frames(self.job_id)
        todo = [f for f in frames if f not in finished]
        if self.resumed and todo:
            todo = self._adopt_or_clean(plan, todo, frames)
        self.already, self.total = len(frames) - len(todo), len(frames)
        self.token.check()
        if todo:
            self.eta = Eta(time.monotonic(), len(todo), ctx.render_ratio)
            result = pipeline.run(plan.shot, plan.curve, plan.output, frames=todo,
                                  mouth_preservation=plan.mouth_preservation, progress=self.on_progress,
                                  cancel=self.token, on_frame=self.on_frame)
            cached = result.analysis_cached
            learned = self.eta.learned_ratio()
            if learned is not None:  # a running mean, so one odd shot does not swing the next estimate
                ctx.render_ratio = 0.5 * ctx.render_ratio + 0.5 * learned
            lost = result.lost_frames
            if self.already:  # frames finished before a restart: their lost state is in the analysis
                lost = self._lost_frames(pipeline, plan)
        else:
            lost, cached = self._lost_frames(pipeline, plan), True
        self.close_stage()
        elapsed = time.time() - (self.record.started or time.time())
        self.worker._emit(self.job_id, "done", frames_written=len(frames), lost_frames=lost,
                          output=plan.pattern, elapsed=min(max(elapsed, 0.0), 1e9), analysis_cached=cached)
        ctx.metrics.inc("jobs_finished_total", state="done")

    def _recheck_paths(self, spec: dict[str, Any]) -> None:
        """The queue-time path checks again: links may have changed while the job waited."""
        policy = self.ctx.policy
        span = tuple(spec["frame_range"]) if "frame_range" in spec else None
        if "plate" in spec:
            policy.check_input(spec["plate"], "spec.plate", span)
        if "mask" in spec:
            policy.check_input(spec["mask"], "spec.mask", span)
        pattern = spec["output"].get("pattern")
        if pattern is not None:
            policy.resolve(pattern, "spec.output.pattern")

    def _adopt_or_clean(self, plan: jobs.JobPlan, todo: list[int], frames: list[int]) -> list[int]:
        """After a crash: adopt frames this job wrote but did not journal; remove its stale temp files.

        The engine was killed between a frame's rename and its journal row: the file is complete
        (written atomically) and newer than the job's first start, so it is this job's own and is
        recorded rather than rendered again.
        """
        started = self.record.started or 0.0
        pattern = plan.output.pattern
        remaining = []
        for frame in todo:
            path = frame_path(pattern, frame)
            try:
                fresh = os.stat(path).st_mtime >= started
            except OSError:
                fresh = False
            if fresh:
                self.on_frame(frame, path)
            else:
                remaining.append(frame)
        folder = os.path.dirname(os.path.abspath(pattern))
        names = {os.path.basename(frame_path(pattern, f)) for f in frames}  # no write of the job is in flight
        try:
            entries = os.listdir(folder)
        except OSError:
            entries = []
        for entry in entries:
            match = _TEMP_NAME.match(entry)
            if match and match.group(1) in names:
                try:
                    os.remove(os.path.join(folder, entry))
                except OSError:
                    pass
        return remaining

    def _lost_frames(self, pipeline: Pipeline, plan: jobs.JobPlan) -> list[int]:
        analysis, _ = pipeline.analyze(plan.shot)  # from the cache: the run just saved it
        return [f for f, ok in zip(analysis.frames, analysis.fit.found, strict=True) if not ok]

    # -- callbacks from the pipeline ---------------------------------------------------------------------
    def on_progress(self, report: Progress) -> None:
        now, estimate = time.monotonic(), self.eta
        if report.stage == "render":
            done, total = self.already + report.done, self.total
            eta = None if estimate is None else estimate.rendered(report.done, report.total, now)
        else:
            done, total = report.done, report.total
            eta = None if estimate is None else estimate.analyzed(report.done, report.total, now)
        self.progress(report.stage, done, total, report.frame, eta)

    def progress(self, stage: str, done: int, total: int, frame: int | None, eta: float | None = None) -> None:
        self.worker.beat = time.monotonic()
        if stage != self.stage:
            self.close_stage()
            self.stage, self.stage_since = stage, time.monotonic()
        self.worker._emit(self.job_id, "progress", stage=stage, frame=frame, done=done, total=total,
                          eta=None if eta is None else min(max(eta, 0.0), 1e9))

    def close_stage(self) -> None:
        if self.stage is not None:
            self.ctx.metrics.inc("stage_seconds_total", time.monotonic() - self.stage_since, stage=self.stage)
            self.stage = None

    def on_frame(self, frame: int, path: str) -> None:
        self.worker.beat = time.monotonic()
        plan = self.plan
        assert plan is not None
        body: dict[str, Any] = {"frame": frame, "path": path if plan.pattern is not None else None,
                                "inline": plan.inline}
        if plan.inline:
            try:
                body["size"] = os.path.getsize(path)
            except OSError:
                pass
        event = self.ctx.journal.finish_frame(self.job_id, frame, path, body)
        if event is not None:
            self.ctx.post(event)
            self.ctx.metrics.inc("frames_written_total")


__all__ = ["Eta", "Limits", "Scheduler", "StageFactory", "Worker", "WorkerContext"]
