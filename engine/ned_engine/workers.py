"""The job queue, and the worker processes that run jobs and frame chunks with their own warm backends.

``Scheduler`` holds the queued job ids (higher priority first, then submission order), the frame chunks
of running jobs and the cancel token of each running job, under one lock, so a job is never both queued
and running and a cancel always finds it. Each ``Worker`` is a thread of the engine process paired with
one spawned worker *process* (``worker_process``) that owns the pipelines: the process does the pixel
work, the thread does the bookkeeping. A job runs in two steps:

1. **head** (one worker): journal the start, check paths and limits, adopt frames a crash left behind,
   then have the process analyse the whole shot once into the shared analysis cache;
2. **chunks** (any worker): the frames still to do, split into chunks that every worker takes from the
   scheduler; each chunk's process loads the cached analysis, edits the whole shot and writes only its
   frames, so the output equals a single run bit for bit.

When every other worker already has a task waiting (a queue of shots), the head runs the job whole
instead: one task that analyses and renders every frame, as a single run does, so no shot is opened,
decoded and edited once per chunk.

Every event is journaled first (which numbers it) by the engine process and then handed to the socket
loop through ``post``; the processes never touch the journal or the socket. A worker process that dies
(``kill -9``, a crash in a backend) is replaced and its task run again: frames the journal already marks
finished are skipped, and frames renamed into place after the task started but not yet reported are
adopted, so no frame is lost or written twice. A job's terminal event is sent once, after its last
chunk has returned.

Liveness comes from the work itself: a worker stamps ``beat`` when idle and on every message from its
process (one per frame), so a job stuck inside a backend shows up as a stale beat (``hung``).

Imports ned_core, ned_protocol's errors and the engine's journal/jobs/sandbox/worker_process; never
touches a socket.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import math
import multiprocessing
import os
import pickle
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ned_protocol.errors import LimitExceededError, NedError, wire_fields

from ned_core.errors import CancelledError
from ned_core.errors import NedError as CoreError
from ned_core.io import frame_path
from ned_core.pipeline import Backends, CancelToken, open_plate
from ned_engine import jobs
from ned_engine.journal import JobRecord, Journal, StoredEvent
from ned_engine.metrics import Metrics
from ned_engine.sandbox import PathPolicy
from ned_engine.worker_process import ProcessSettings, child_environment, environment, serve

logger = logging.getLogger(__name__)
StageFactory = Callable[[Backends], dict[str, Any]]
"""Builds ready backend objects by stage name for a job's ``Backends`` (``ned-engine serve --stages``)."""
_TEMP_NAME = re.compile(r"^\.(.+)\.[0-9a-f]{12}\.tmp$")  # ned_core.io.atomic.temp_path's names
MAX_CHUNK = 100
"""Frames per chunk at most: a dead worker's chunk is re-run from its first unfinished frame anyway,
but smaller chunks spread a shot over more workers and keep a cancel's reach short."""
MAX_ATTEMPTS = 3
"""Worker processes a task may kill before its job fails (a frame that crashes every process)."""
_SPAWN = multiprocessing.get_context("spawn")
_SPAWN_LOCK = threading.Lock()  # the environment is the process's: one child is spawned at a time


class JobToken(CancelToken):
    """A job's cancel token that also tells the worker processes running the job's tasks."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def cancel(self) -> None:
        with self._lock:
            super().cancel()
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def listen(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` on cancel (at once when the token is already cancelled)."""
        with self._lock:
            self._listeners.append(listener)
            now = self.cancelled
        if now:
            listener()

    def forget(self, listener: Callable[[], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)


@dataclass
class Chunk:
    """One task of a running job for any worker: its analysis (``frames`` None) or a chunk of frames.

    ``run`` is the job's shared state. A task whose worker died is queued again with ``attempts``
    counted and ``since`` (when the dead attempt started), so the next worker adopts the frames the
    dead one renamed into place without reporting."""

    run: _JobRun
    frames: list[int] | None
    attempts: int = 0
    since: float | None = None
    whole: bool = False
    """The job's analysis and all its frames in one task (the pipeline analyses, then renders): what a
    worker does with a job when the other workers have work of their own."""


class Scheduler:
    """Queued jobs by priority, running jobs' chunks and cancel tokens (thread-safe)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[int, int, str]] = []
        self._chunks: list[tuple[int, int, Chunk]] = []
        self._queued: set[str] = set()
        self._running: dict[str, JobToken] = {}
        self._order = itertools.count()
        self._paused = False

    def push(self, job_id: str, priority: int) -> None:
        with self._cond:
            if job_id in self._queued or job_id in self._running:
                return
            heapq.heappush(self._heap, (-priority, next(self._order), job_id))
            self._queued.add(job_id)
            self._cond.notify()

    def take(self, timeout: float) -> tuple[str, JobToken] | None:
        """The next job to run (now marked running, with a fresh token), or None after ``timeout``."""
        task = self.take_task(timeout, chunks=False)
        assert not isinstance(task, Chunk)
        return task

    def add_chunks(self, priority: int, chunks: list[Chunk], first: bool = False) -> None:
        """Queue a running job's tasks; they go before any new job (finish what has started first),
        and with ``first`` (a dead worker's task) before the other tasks of the same priority."""
        with self._cond:
            for chunk in chunks:
                heapq.heappush(self._chunks, (-priority, -next(self._order) if first else next(self._order), chunk))
            self._cond.notify_all()

    def take_task(self, timeout: float, chunks: bool = True) -> Chunk | tuple[str, JobToken] | None:
        """The next chunk of a running job, else the next job (marked running, with a fresh token), or
        None after ``timeout``. Chunks are still handed out while paused, so a draining stop ends."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if chunks and self._chunks:
                    return heapq.heappop(self._chunks)[2]
                while self._heap and self._heap[0][2] not in self._queued:
                    heapq.heappop(self._heap)  # cancelled while queued
                if self._heap and not self._paused:
                    job_id = heapq.heappop(self._heap)[2]
                    self._queued.discard(job_id)
                    token = self._running[job_id] = JobToken()
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
    def backlog(self) -> int:
        """Tasks waiting for a worker: queued jobs (not paused) and running jobs' chunks."""
        with self._cond:
            return len(self._chunks) + (0 if self._paused else len(self._queued))

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
    workers: int = 1
    threads: int | None = None
    """Threads of each worker process's numeric libraries (None: the cores this process may use ÷ workers)."""
    devices: list[str] = field(default_factory=list)
    """One device per worker, round robin (``--device``); none: the backends' own default."""
    chunk: int | None = None
    """Frames per chunk (None: a job's frames ÷ workers, at most ``MAX_CHUNK``)."""
    pin_cpus: bool = False
    """Pin worker process i to its own ``threads`` cores (``--pin-cpus``)."""
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


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpus(index: int, threads: int) -> tuple[int, ...]:
    """The cores worker ``index`` is pinned to: its own ``threads`` of the cores this engine may use."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return ()
    return tuple(allowed[(index * threads + i) % len(allowed)] for i in range(threads))


def check_picklable(factory: StageFactory | None) -> None:
    """A stage factory must reach the spawned worker processes (a module-level function does).

    Raises
    ------
    InvalidOptionError
        It does not pickle (a lambda, a closure).
    """
    if factory is None:
        return
    try:
        pickle.dumps(factory)
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        from ned_protocol.errors import InvalidOptionError

        raise InvalidOptionError(f"the stage factory {factory!r} cannot be sent to a worker process: {error}",
                                 field="stages") from None


class Died(Exception):
    """The worker process (or Ray actor) died while it ran a task."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _TaskFailed(Exception):
    """The worker process answered a task with an error (its wire fields)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__(fields.get("message", ""))
        self.fields = fields


class Executor(ABC):
    """Where a worker's tasks run: a spawned process here; a Ray actor in ``ray_backend``.

    ``start`` blocks until the backends are warm; ``send`` hands over one task; ``poll`` returns the
    next report (``("frame", f, path)``, ``("progress", stage, frame, done, total)``, ``("result",
    dict)``, ``("error", fields, cancelled)``) or None, and raises ``Died`` when the executor died
    (after every report it sent before dying); ``cancel`` makes the task in hand stop at its next
    frame; ``replace`` brings a dead executor back (blocking; False when the engine stops first).
    """

    pid: int | None = None
    description = "process"

    @abstractmethod
    def start(self, beat: Callable[[], None]) -> str | None: ...

    @abstractmethod
    def send(self, message: tuple[Any, ...]) -> None: ...

    @abstractmethod
    def poll(self, timeout: float) -> tuple[Any, ...] | None: ...

    @abstractmethod
    def cancel(self) -> None: ...

    def done(self) -> None:  # noqa: B027 - a hook most executors need not fill
        """The task has ended (its answer was read)."""

    def replace(self, beat: Callable[[], None], stopping: threading.Event) -> bool:
        self.close()
        self.start(beat)
        return True

    @abstractmethod
    def close(self) -> None: ...


class ProcessExecutor(Executor):
    """One spawned worker process (``worker_process.serve``), fed through a pipe."""

    def __init__(self, settings: ProcessSettings) -> None:
        self.settings = settings
        self._process: Any = None
        self._conn: Any = None
        self._cancel = _SPAWN.Event()

    def start(self, beat: Callable[[], None]) -> str | None:
        parent, child = _SPAWN.Pipe()
        process = _SPAWN.Process(target=serve, args=(self.settings, child, self._cancel),
                                 name=f"ned-engine worker {self.settings.index}", daemon=True)
        with _SPAWN_LOCK, environment(child_environment(self.settings)):
            process.start()
        child.close()
        self._process, self._conn = process, parent
        while True:
            beat()
            if parent.poll(0.5):
                try:
                    message = parent.recv()
                except (EOFError, OSError):
                    message = None
                if message is not None and message[0] == "ready":
                    self.pid = message[1]
                    return message[2]
            if not process.is_alive() and not parent.poll(0):
                raise RuntimeError(f"worker process {self.settings.index} exited at start "
                                   f"(exit code {process.exitcode})")

    def send(self, message: tuple[Any, ...]) -> None:
        self._cancel.clear()
        assert self._conn is not None
        try:
            self._conn.send(message)
        except OSError:
            pass  # it died: poll says so

    def poll(self, timeout: float) -> tuple[Any, ...] | None:
        conn, process = self._conn, self._process
        try:
            if conn.poll(timeout):
                return conn.recv()
        except (EOFError, OSError):
            process.join(5.0)
            raise Died(f"process {self.pid} died (exit code {process.exitcode})") from None
        if not process.is_alive() and not conn.poll(0):
            raise Died(f"process {self.pid} died (exit code {process.exitcode})")
        return None

    def cancel(self) -> None:
        self._cancel.set()

    def done(self) -> None:
        self._cancel.clear()

    def close(self) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            try:
                conn.send(("stop",))
            except OSError:
                pass
            conn.close()
        if process is not None:
            process.join(5.0)
            if process.is_alive():
                process.kill()
                process.join(5.0)


ExecutorFactory = Callable[["Worker"], Executor]
"""Builds a worker's executor (``ned-engine serve --ray`` passes ``ray_backend``'s)."""


class Worker(threading.Thread):
    """One engine thread and the worker process (or Ray actor) it feeds (see the module docstring)."""

    def __init__(self, index: int, ctx: WorkerContext, executor: ExecutorFactory | None = None) -> None:
        super().__init__(name=f"ned-engine worker {index}", daemon=True)
        self.index = index
        self.ctx = ctx
        self.beat = time.monotonic()
        self.job: str | None = None
        self.ready = False
        self.restarts = 0
        self.device = ctx.devices[index % len(ctx.devices)] if ctx.devices else None
        self.threads = ctx.threads or max(1, cores() // max(1, ctx.workers))
        self.settings = ProcessSettings(index=index, threads=self.threads, device=self.device,
                                        cache_dir=ctx.cache_dir, stage_factory=ctx.stage_factory,
                                        cpus=_cpus(index, self.threads) if ctx.pin_cpus else ())
        self.executor = executor(self) if executor is not None else ProcessExecutor(self.settings)

    @property
    def pid(self) -> int | None:
        return self.executor.pid

    @property
    def hung(self) -> bool:
        """True when the worker's loop has not reported for the hang timeout."""
        return time.monotonic() - self.beat > self.ctx.hang_timeout

    def _beat(self) -> None:
        self.beat = time.monotonic()

    def run(self) -> None:
        try:
            self._start()
            while not self.ctx.stopping.is_set():
                self.beat = time.monotonic()
                task = self.ctx.scheduler.take_task(0.5)
                if task is None:
                    continue
                try:
                    if isinstance(task, Chunk):
                        self.job = task.run.job_id
                        self._run_task(task)
                    else:
                        self.job = task[0]
                        self._run_head(*task)
                except Exception:  # noqa: BLE001 - a bug must end the job, not kill the worker
                    logger.exception("worker %d: task crashed", self.index)
                finally:
                    self.job = None
        finally:
            self.executor.close()

    def _start(self) -> None:
        warning = self.executor.start(self._beat)
        if warning:
            logger.warning("worker %d: default backends not loaded: %s", self.index, warning)
        self.ready = True
        self.beat = time.monotonic()
        logger.debug("worker %d: %s %s ready (%d threads%s)", self.index, self.executor.description, self.pid,
                     self.threads, f", device {self.device}" if self.device else "")

    def _replace(self, died: Died) -> bool:
        """Bring the dead executor back; False when the engine stopped while waiting for it."""
        logger.warning("worker %d: %s; starting another", self.index, died.detail)
        self.ready = False
        self.restarts += 1
        if not self.executor.replace(self._beat, self.ctx.stopping):
            return False
        self.ready = True
        self.beat = time.monotonic()
        logger.info("worker %d: %s %s ready again", self.index, self.executor.description, self.pid)
        return True

    def _call(self, message: tuple[Any, ...], run: _JobRun) -> dict[str, Any]:
        """Have the executor run one task, relaying its reports to ``run``; returns its result.

        Raises
        ------
        CancelledError
            The job was cancelled (the task stopped at a frame boundary).
        _TaskFailed
            The task failed.
        Died
            The executor died (every report it sent before dying has been relayed).
        """
        executor = self.executor
        listener = executor.cancel
        executor.send(message)
        run.token.listen(listener)  # at once when the job is already cancelled
        try:
            while True:
                reply = executor.poll(0.2)
                if reply is None:
                    continue
                self.beat = time.monotonic()
                kind = reply[0]
                if kind == "frame":
                    run.on_frame(reply[1], reply[2])
                elif kind == "progress":
                    run.on_analysis(reply[2], reply[3], reply[4])
                elif kind == "result":
                    return reply[1]
                elif kind == "error":
                    if reply[2]:
                        raise CancelledError("cancelled")
                    raise _TaskFailed(reply[1])
        finally:
            run.token.forget(listener)
            executor.done()

    # -- a job's head: checks, then its analysis as the job's first task --------------------------------
    def _run_head(self, job_id: str, token: JobToken) -> None:
        ctx = self.ctx
        started = ctx.journal.start(job_id)
        if started is None:  # cancelled or gone between queue and start
            ctx.scheduler.finish(job_id)
            return
        record, resumed = started
        run = _JobRun(self.ctx, record, resumed, token)
        logger.info("worker %d: %s job %s", self.index, "resuming" if resumed else "starting", job_id)
        try:
            run.todo_frames = run.prepare()
            run.eta = Eta(time.monotonic(), len(run.todo_frames), ctx.render_ratio)
        except BaseException as error:  # noqa: BLE001 - recorded; the job's last task reports it
            run.task_done(error)
            return
        # When every other worker has a task waiting for it, splitting this shot gains nothing: each
        # chunk would open and decode the plate again and load the analysis and edit the shot again.
        # The job then runs whole here (one task: analysis, then every frame; at most a chunk's worth,
        # so no worker is left alone with a long shot at the end of a queue); otherwise its analysis
        # runs first and its frames are split into chunks that idle workers take.
        if (ctx.chunk is None and 0 < len(run.todo_frames) <= MAX_CHUNK
                and ctx.scheduler.backlog >= ctx.workers - 1):
            self._run_task(Chunk(run, list(run.todo_frames), whole=True))
        else:
            self._run_task(Chunk(run, None))  # the analysis, here unless this worker dies on it

    # -- one task: the analysis (frames None) or a chunk of frames ----------------------------------------
    def _run_task(self, task: Chunk) -> None:
        run = task.run
        started = time.time()
        try:
            run.token.check()
            if task.frames is None:
                self._analyze(run)
            else:
                frames = run.unfinished(task.frames, task.since)
                if frames:
                    logger.debug("worker %d (%s %s): job %s frames %d-%d%s", self.index, self.executor.description,
                                  self.pid, run.job_id, frames[0], frames[-1], " (whole job)" if task.whole else "")
                    result = self._call(("render", *run.task_args(), frames), run)
                    if task.whole:
                        run.lost, run.cached = result.get("lost", []), bool(result.get("cached"))
                elif task.whole:  # a re-run that found every frame in place: the analysis still reports
                    self._analyze(run, split=False)
        except Died as died:
            task.attempts += 1
            task.since = started if task.since is None else min(task.since, started)
            if self.ctx.stopping.is_set():
                run.task_done(CancelledError("the engine is stopping"))
            elif task.attempts >= MAX_ATTEMPTS:
                run.task_done(_TaskFailed({"code": "internal", "retryable": True,
                                           "message": f"worker processes died {task.attempts} times on job "
                                                      f"{run.job_id} ({died.detail})"}))
            else:  # any worker takes it again, from its first unfinished frame
                self.ctx.scheduler.add_chunks(run.record.priority, [task], first=True)
            self._replace(died)
        except BaseException as error:  # noqa: BLE001 - recorded; the job's last task reports it
            run.task_done(error)
        else:
            run.task_done(None)

    def _analyze(self, run: _JobRun, split: bool = True) -> None:
        """The job's one analysis (into the shared cache), then its chunks for every worker."""
        ctx = self.ctx
        analysis = self._call(("analyze", *run.task_args()), run)
        run.lost, run.cached = analysis["lost"], analysis["cached"]
        run.token.check()
        todo = run.todo_frames
        if todo and split:
            size = ctx.chunk or min(MAX_CHUNK, math.ceil(len(todo) / max(1, ctx.workers)))
            if ctx.chunk is None and ctx.scheduler.backlog >= ctx.workers - 1:
                size = min(MAX_CHUNK, len(todo))  # the others have work (jobs queued meanwhile): big chunks
            chunks = [Chunk(run, todo[i:i + size]) for i in range(0, len(todo), size)]
            run.add_tasks(len(chunks))
            ctx.scheduler.add_chunks(run.record.priority, chunks)


class _JobRun:
    """One job's state while its head and chunks run, shared by the workers running them (under ``lock``):
    progress numbering, ETA, stage timing, and the count of tasks still out."""

    def __init__(self, ctx: WorkerContext, record: JobRecord, resumed: bool, token: JobToken) -> None:
        self.ctx, self.record, self.token, self.resumed = ctx, record, token, resumed
        self.job_id = record.id
        self.lock = threading.RLock()
        self.stage: str | None = None
        self.stage_since = time.monotonic()
        self.eta: Eta | None = None
        self.already = 0
        self.total = 0
        self.todo = 0
        self.rendered = 0
        self.frames: list[int] = []
        self.plan: jobs.JobPlan | None = None
        self.paths: tuple[str, str] = ("", "")
        self.lost: list[int] = []
        self.cached = False
        self.outstanding = 1  # the analysis
        self.error: BaseException | None = None
        self.todo_frames: list[int] = []

    def task_args(self) -> tuple[Any, ...]:
        """(spec, inline plate pattern or None, output pattern) as a worker process plans the job."""
        spec = self.record.spec
        plate_pattern, out_pattern = self.paths
        return spec, plate_pattern if "plate_frames" in spec else None, out_pattern

    def prepare(self) -> list[int]:
        """The head's checks; returns the frames still to render."""
        ctx, spec = self.ctx, self.record.spec
        self.progress("load", 0, 0, None)
        self.paths = jobs.spool_paths(ctx.spool, self.job_id, spec.get("plate_format", "exr"))
        plate_pattern, out_pattern = self.paths
        plan = self.plan = jobs.plan(spec, plate=plate_pattern if "plate_frames" in spec else None,
                                     output=out_pattern)
        self._recheck_paths(spec)
        with open_plate(plan.shot) as plate:
            frames = list(plate.frames)
            if len(frames) > ctx.limits.max_frames:
                raise LimitExceededError(f"the shot has {len(frames)} frames; this engine takes at most "
                                         f"{ctx.limits.max_frames} per job", field="spec.frame_range")
            if plate.width * plate.height > ctx.limits.max_pixels:
                raise LimitExceededError(f"frames of {plate.width}x{plate.height} exceed this engine's "
                                         f"{ctx.limits.max_pixels} pixels per frame", path=plan.shot.plate)
        self.frames = frames
        finished = ctx.journal.finished_frames(self.job_id)
        todo = [f for f in frames if f not in finished]
        if self.resumed and todo:
            todo = self._adopt_or_clean(todo, self.record.started or 0.0, frames, progress=False)
        self.already, self.total, self.todo = len(frames) - len(todo), len(frames), len(todo)
        self.token.check()
        return todo

    def unfinished(self, frames: list[int], since: float | None) -> list[int]:
        """A chunk's frames not yet journaled; on a re-run (``since``: when the dead attempt started),
        after adopting those its process renamed into place without reporting them, and removing its
        temporary files."""
        finished = self.ctx.journal.finished_frames(self.job_id)
        todo = [f for f in frames if f not in finished]
        if since is None or not todo:
            return todo
        return self._adopt_or_clean(todo, since, frames, progress=True)

    def add_tasks(self, n: int) -> None:
        with self.lock:
            self.outstanding += n

    def task_done(self, error: BaseException | None) -> None:
        """One task (the head or a chunk) has returned; the last one ends the job."""
        with self.lock:
            if error is not None and self.error is None:
                self.error = error
                if not isinstance(error, CancelledError):
                    self.token.cancel()  # stop the job's other chunks: the job has failed
            self.outstanding -= 1
            if self.outstanding > 0:
                return
        try:
            self._end()
        finally:
            self.close_stage()
            self.ctx.scheduler.finish(self.job_id)

    def _end(self) -> None:
        ctx, error = self.ctx, self.error
        if error is None and self.token.cancelled:
            error = CancelledError("cancelled")
        if isinstance(error, CancelledError):
            if ctx.stopping.is_set():
                logger.info("job %s interrupted by shutdown; it resumes at the next start", self.job_id)
                return
            written = len(ctx.journal.finished_frames(self.job_id))
            self.emit("cancelled", frames_written=written, message="cancelled by a client")
            ctx.metrics.inc("jobs_finished_total", state="cancelled")
            return
        if error is not None:
            if isinstance(error, _TaskFailed):
                fields = error.fields
            else:
                if not isinstance(error, (CoreError, NedError)):
                    logger.error("job %s failed", self.job_id, exc_info=error)
                fields = wire_fields(error)
            self.emit("failed", **fields)
            ctx.metrics.inc("jobs_finished_total", state="failed")
            ctx.metrics.inc("errors_total", code=fields["code"])
            return
        assert self.plan is not None
        if self.eta is not None and (learned := self.eta.learned_ratio()) is not None:
            ctx.render_ratio = 0.5 * ctx.render_ratio + 0.5 * learned  # a running mean: one odd shot
        self.close_stage()
        elapsed = time.time() - (self.record.started or time.time())
        self.emit("done", frames_written=len(self.frames), lost_frames=self.lost, output=self.plan.pattern,
                  elapsed=min(max(elapsed, 0.0), 1e9), analysis_cached=self.cached)
        ctx.metrics.inc("jobs_finished_total", state="done")

    def emit(self, type_: str, **body: Any) -> None:
        self.ctx.post(self.ctx.journal.record_event(self.job_id, type_, body))

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

    def _adopt_or_clean(self, todo: list[int], since: float, frames: list[int], progress: bool) -> list[int]:
        """After a crash: adopt frames of ``todo`` written but not journaled; remove their stale temp files.

        The engine (or a worker process) was killed between a frame's rename and its journal row: the
        file is complete (written atomically) and newer than ``since`` (the job's first start, or the
        dead task's start), so it is this job's own and is recorded rather than rendered again. No write
        of ``frames`` is in flight while this runs (their only worker is the one calling).
        """
        assert self.plan is not None
        pattern = self.plan.output.pattern
        remaining = []
        for frame in todo:
            path = frame_path(pattern, frame)
            try:
                fresh = os.stat(path).st_mtime >= since
            except OSError:
                fresh = False
            if fresh:
                self.on_frame(frame, path, progress=progress)
            else:
                remaining.append(frame)
        folder = os.path.dirname(os.path.abspath(pattern))
        names = {os.path.basename(frame_path(pattern, f)) for f in frames}
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

    # -- reports from the worker processes --------------------------------------------------------------
    def on_analysis(self, frame: int | None, done: int, total: int) -> None:
        with self.lock:
            estimate = self.eta
            eta = None if estimate is None else estimate.analyzed(done, total, time.monotonic())
            self.progress("analyze", done, total, frame, eta)

    def progress(self, stage: str, done: int, total: int, frame: int | None, eta: float | None = None) -> None:
        with self.lock:
            if stage != self.stage:
                self.close_stage()
                self.stage, self.stage_since = stage, time.monotonic()
            self.emit("progress", stage=stage, frame=frame, done=done, total=total,
                      eta=None if eta is None else min(max(eta, 0.0), 1e9))

    def close_stage(self) -> None:
        with self.lock:
            if self.stage is not None:
                self.ctx.metrics.inc("stage_seconds_total", time.monotonic() - self.stage_since, stage=self.stage)
                self.stage = None

    def on_frame(self, frame: int, path: str, progress: bool = True) -> None:
        """A frame is in place: journal it (once) with its ``frame_ready``, then the job's render progress."""
        plan = self.plan
        assert plan is not None
        body: dict[str, Any] = {"frame": frame, "path": path if plan.pattern is not None else None,
                                "inline": plan.inline}
        if plan.inline:
            try:
                body["size"] = os.path.getsize(path)
            except OSError:
                pass
        with self.lock:  # numbered in the order frames finish, whichever worker wrote them
            event = self.ctx.journal.finish_frame(self.job_id, frame, path, body)
            if event is None:
                return
            self.ctx.post(event)
            self.ctx.metrics.inc("frames_written_total")
            if not progress:
                return
            self.rendered += 1
            estimate = self.eta
            eta = None if estimate is None else estimate.rendered(self.rendered, self.todo, time.monotonic())
            self.progress("render", self.already + self.rendered, self.total, frame, eta)


__all__ = ["MAX_ATTEMPTS", "MAX_CHUNK", "Chunk", "Died", "Eta", "Executor", "ExecutorFactory", "JobToken", "Limits",
           "ProcessExecutor", "Scheduler", "StageFactory", "Worker", "WorkerContext", "check_picklable", "cores"]
