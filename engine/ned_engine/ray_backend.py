"""The Ray backend (``ned-engine serve --ray auto|ADDRESS``, extra ``ned-engine[ray]``): workers as Ray actors.

The engine stays what it is — its socket, protocol, journal and scheduler run in the engine process,
which is Ray's driver; plugins never see Ray. Each engine worker feeds one ``NedActor`` instead of a
local worker process: the actor holds a warm ``worker_process.TaskRunner`` (its own backends), takes
the same tasks (a job's analysis, then chunks of frames) and keeps the reports (frames renamed into
place, analysis progress, the result) for the engine to collect; every event is still journaled by
the engine first. One actor per GPU of the cluster (``num_gpus=1``; Ray sets its
``CUDA_VISIBLE_DEVICES``), else one per CPU slot.

A chunk runs as a retried task: actors restart (``max_restarts=-1``) on any node with room, and a task
whose actor died — its process or its whole node — is queued again by the engine for any worker and
re-run from its first frame the journal does not mark finished (frames the dead actor renamed into
place without reporting are adopted), so no frame is lost or written twice. The engine retries, not
Ray (``max_task_retries=0``), because only the engine knows from its journal which frames are done.

Imports ray (only when an engine is started with ``--ray``), the engine's workers and worker_process;
never touches the journal or a socket.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ned_engine.worker_process import EventToken, ProcessSettings, TaskRunner, child_environment, local_device
from ned_engine.workers import Died, Executor, ExecutorFactory, Worker

logger = logging.getLogger(__name__)
_POLL_GAP = 0.05  # seconds between two report collections when the last one was empty


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        from ned_protocol.errors import InvalidOptionError

        raise InvalidOptionError("--ray needs Ray: pip install 'ned-engine[ray]' (or bash tests/ray/make_venv.sh "
                                 "and run the engine with that venv's python)", field="ray") from None
    return ray


class NedActor:
    """Runs in a Ray worker process: one warm ``TaskRunner`` whose reports wait here to be collected.

    Threaded (``max_concurrency`` > 1), so ``reports`` and ``cancel`` are answered while ``run`` works.
    """

    def __init__(self, settings: ProcessSettings) -> None:
        gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
        if gpus and not settings.device:  # Ray gave this actor a GPU: its only one
            settings = ProcessSettings(index=settings.index, threads=settings.threads, device="cuda:0",
                                       cache_dir=settings.cache_dir, stage_factory=settings.stage_factory)
        for name, value in child_environment(settings).items():
            if name != "CUDA_VISIBLE_DEVICES":  # Ray's own assignment stands
                os.environ[name] = value
        self._lock = threading.Lock()
        self._reports: list[tuple[int, tuple[Any, ...]]] = []
        self._events: dict[int, threading.Event] = {}
        self._cancelled: set[int] = set()
        self._task = 0
        self._warmed: tuple[int, str | None, str] | None = None
        self._runner = _ActorRunner(settings, self)
        self._runner.device = local_device(settings.device)

    def report(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            self._reports.append((self._task, message))

    def warm(self) -> tuple[int, str | None, str]:
        """Load the default backends (once); returns (process id, warning or None, Ray node id)."""
        if self._warmed is None:
            self._runner.warm()
            with self._lock:
                ready = [m for _, m in self._reports if m[0] == "ready"]
                self._reports = [r for r in self._reports if r[1][0] != "ready"]
            import ray

            self._warmed = (os.getpid(), ready[-1][2] if ready else None, ray.get_runtime_context().get_node_id())
        return self._warmed

    def run(self, task: int, message: tuple[Any, ...]) -> bool:
        """Run one task; its reports, the last one ``result`` or ``error``, are collected by ``reports``."""
        event = threading.Event()
        with self._lock:
            self._task = task
            self._events = {task: event}
            if task in self._cancelled:
                event.set()
        self._runner.token = EventToken(event)
        self._runner.run_task(message)
        return True

    def reports(self, task: int) -> list[tuple[Any, ...]]:
        """Reports of ``task`` since the last call (older tasks' leftovers are dropped)."""
        with self._lock:
            mine = [m for t, m in self._reports if t == task]
            self._reports = []
        return mine

    def cancel(self, task: int) -> None:
        with self._lock:
            event = self._events.get(task)
            self._cancelled = {t for t in self._cancelled if t >= task - 8}
            self._cancelled.add(task)
        if event is not None:
            event.set()


class _ActorRunner(TaskRunner):
    def __init__(self, settings: ProcessSettings, actor: NedActor) -> None:
        super().__init__(settings, None, threading.Event())
        self._actor = actor

    def send(self, message: tuple[Any, ...]) -> None:
        self._actor.report(message)


class RayExecutor(Executor):
    """One ``NedActor``, fed by one engine worker (see ``Executor``)."""

    description = "Ray actor"

    def __init__(self, worker: Worker, options: dict[str, Any]) -> None:
        self.settings = worker.settings
        self.options = options
        self.node: str | None = None
        self._actor: Any = None
        self._ids = itertools.count(1)
        self._task = 0
        self._run_ref: Any = None
        self._poll_ref: Any = None
        self._pending: deque[tuple[Any, ...]] = deque()

    def start(self, beat: Callable[[], None]) -> str | None:
        ray = _ray()
        if self._actor is None:
            actor_class = ray.remote(NedActor)
            self._actor = actor_class.options(**self.options).remote(self.settings)
        ref = self._actor.warm.remote()
        while True:
            beat()
            ready, _ = ray.wait([ref], timeout=0.5)
            if ready:
                self.pid, warning, self.node = ray.get(ref)
                return warning

    def send(self, message: tuple[Any, ...]) -> None:
        self._task = next(self._ids)
        self._pending.clear()
        self._poll_ref = None
        self._run_ref = self._actor.run.remote(self._task, message)

    def poll(self, timeout: float) -> tuple[Any, ...] | None:
        if self._pending:
            return self._pending.popleft()
        ray = _ray()
        if self._poll_ref is None:
            self._poll_ref = self._actor.reports.remote(self._task)
        ready, _ = ray.wait([self._poll_ref], timeout=timeout)
        if not ready:
            return None
        ref, self._poll_ref = self._poll_ref, None
        try:
            self._pending.extend(ray.get(ref))
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as error:
            raise Died(f"Ray actor {self.pid} on {self.node} died ({type(error).__name__})") from None
        if not self._pending:
            time.sleep(_POLL_GAP)
            return None
        return self._pending.popleft()

    def cancel(self) -> None:
        if self._actor is not None and self._task:
            self._actor.cancel.remote(self._task)

    def done(self) -> None:
        self._run_ref = self._poll_ref = None

    def replace(self, beat: Callable[[], None], stopping: threading.Event) -> bool:
        """Wait for Ray to restart the actor (on this node, or on another with room)."""
        ray = _ray()
        self._run_ref = self._poll_ref = None
        while not stopping.is_set():
            ref = self._actor.warm.remote()
            while not stopping.is_set():
                beat()
                ready, _ = ray.wait([ref], timeout=0.5)
                if ready:
                    break
            if stopping.is_set():
                return False
            try:
                self.pid, _, self.node = ray.get(ref)
                return True
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                time.sleep(0.5)  # still restarting
        return False

    def close(self) -> None:
        if self._actor is not None:
            try:
                _ray().kill(self._actor, no_restart=True)
            except Exception:  # noqa: BLE001 - the cluster may be gone already
                pass
            self._actor = None


def connect(address: str) -> dict[str, float]:
    """Join a Ray cluster; returns its resources. ``auto``: the one ``RAY_ADDRESS`` names, else one
    running on this machine (found through Ray's temp folder, ``RAY_TMPDIR``), else a new local one."""
    ray = _ray()
    if not ray.is_initialized():
        if address == "auto":
            ray.init(address=os.environ.get("RAY_ADDRESS") or None, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    return {k: float(v) for k, v in ray.cluster_resources().items()}


def plan(resources: dict[str, float], workers: int, threads: int | None) -> tuple[int, ExecutorFactory]:
    """How many actors (``workers``, or one per GPU, else one per CPU slot) and how each is placed."""
    gpus = int(resources.get("GPU", 0))
    cpus = int(resources.get("CPU", 1))
    per_actor = max(1, threads or 1)
    if workers <= 0:
        workers = gpus if gpus else max(1, cpus // per_actor)
    options: dict[str, Any] = {"max_restarts": -1, "max_task_retries": 0, "max_concurrency": 4,
                               "num_cpus": per_actor}
    if gpus:
        options["num_gpus"] = 1
    return workers, lambda worker: RayExecutor(worker, dict(options))


__all__ = ["NedActor", "RayExecutor", "connect", "plan"]
