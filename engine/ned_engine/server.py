"""The engine's socket loop: one ROUTER socket, owned by one thread, answering every request at once.

``Engine`` binds the socket (loopback, or CurveZMQ with a ZAP allow-list), recovers the journal,
starts the workers (each a thread of this process feeding one spawned worker process) and then runs
``serve_forever`` on the calling thread. Requests are decoded with
``ned_protocol.codec.decode(sender="client")``; anything malformed is answered with an ``error`` and
the loop goes on. Work never happens here: ``submit`` checks the job (paths, backends, limits),
journals it and queues it; workers run it and ``post`` each journaled event back through a pipe that
wakes this loop, which sends it to the connections subscribed to the job (the submitter, watchers and
resumers), in ``seq`` order, holding inline frames back until the subscriber grants credit.

``ROUTER_MANDATORY`` makes a send to a vanished connection an error (its subscriptions are dropped)
instead of a silent loss, and a full pipe queues the message for that peer only.

Imports zmq, ned_protocol, ned_core and the rest of the engine; this module is the only one that
touches the socket.
"""

from __future__ import annotations

import fcntl
import hmac
import json
import logging
import os
import queue
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import msgpack
import zmq
from ned_protocol.codec import decode, encode
from ned_protocol.errors import (
    BusyError,
    InvalidOptionError,
    LimitExceededError,
    NedError,
    ProtocolError,
    UnauthorizedError,
    UnknownJobError,
    UnsupportedVersionError,
    wire_fields,
)
from ned_protocol.schema import ID, JOB_ID, LIMITS, PROTOCOL_VERSION, build, session_version, with_defaults

from ned_core.errors import NedError as CoreError
from ned_core.io import check_colorspace, frame_path, is_sequence_pattern
from ned_core.pipeline import PRESETS
from ned_engine import __version__, jobs
from ned_engine.journal import ACTIVE_STATES, TERMINAL_STATES, JobRecord, Journal, JournalError, StoredEvent
from ned_engine.metrics import Metrics
from ned_engine.sandbox import PathPolicy
from ned_engine.security import CurveServer, write_token
from ned_engine.workers import Limits, Scheduler, StageFactory, Worker, WorkerContext, check_picklable

logger = logging.getLogger(__name__)

MAX_CREDITS = 1024
MAX_OUTBOX = 10_000  # messages queued for one slow peer before it is dropped
PEER_IDLE = 10.0  # seconds of silence after which a peer with nothing in flight is forgotten
LOOP_STALL = 10.0  # seconds without a loop turn that make the engine not live
_FIELD_NAMES = {"key": "spec.keys", "emotion": "spec.emotion", "interpolation": "spec.interpolation",
                "compression": "spec.output.compression", "backend": "spec.backends.preset",
                "colorspace": "spec.colorspace"}


@dataclass
class EngineConfig:
    """Everything ``ned-engine serve`` configures."""

    bind: str = "tcp://127.0.0.1:7741"
    journal: str = ":memory:"
    spool: str | None = None
    token_file: str | None = None
    workers: int = 1
    allow_roots: list[str] = field(default_factory=list)
    cache_dir: str | None = None
    curve: CurveServer | None = None
    admin_keys: set[bytes] = field(default_factory=set)
    limits: Limits = field(default_factory=Limits)
    stage_factory: StageFactory | None = None
    hang_timeout: float = 300.0
    retain_days: float = 7.0
    worker_threads: int | None = None
    """Numeric-library threads per worker process (None: cores ÷ workers)."""
    devices: list[str] = field(default_factory=list)
    """One device per worker process, round robin (``--device``)."""
    chunk: int | None = None
    """Frames per chunk of a job (None: the job's frames ÷ workers, at most ``workers.MAX_CHUNK``)."""
    pin_cpus: bool = False
    """Pin each worker process to its own cores (``--pin-cpus``)."""
    ray: str | None = None
    """``auto`` or a Ray cluster's address: workers are Ray actors (``ray_backend``); ``workers`` 0 is
    one actor per GPU of the cluster, else per CPU slot."""


@dataclass
class Subscription:
    """One connection following one job: where it is in the job's events and its inline credit."""

    request_id: str
    inline: bool
    credits: int
    last_seq: int = 0
    pending: deque[StoredEvent] = field(default_factory=deque)
    ended: bool = False


@dataclass
class Peer:
    """A connection, by ROUTER routing id."""

    routing_id: bytes
    principal: str
    last_seen: float
    client: str = ""
    heartbeat: float = 2.0
    version: tuple[int, int] = PROTOCOL_VERSION
    subs: dict[str, Subscription] = field(default_factory=dict)
    outbox: deque[list[Any]] = field(default_factory=deque)

    @property
    def client_id(self) -> str:
        """Who the per-client limits count: the CurveZMQ key, else the hello name, else the connection."""
        return self.principal or self.client or self.routing_id.hex()


class Engine:
    """The engine process's state: socket, journal, scheduler, workers (see the module docstring)."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.session = "e-" + secrets.token_hex(4)
        self.metrics = Metrics()
        self.metrics.gauges = self._gauges
        self.policy = PathPolicy(config.allow_roots)
        self.limits = config.limits
        # a throwaway engine (journal ":memory:") keeps its spool and token in a folder removed at exit
        self._scratch = tempfile.mkdtemp(prefix="ned-engine-") if config.journal == ":memory:" else None
        base = config.journal if self._scratch is None else os.path.join(self._scratch, "engine")
        self.spool = config.spool or base + ".spool"
        self.token_file = config.token_file or base + ".token"
        self._lock_handle: Any = None
        self.journal: Journal | None = None
        self.scheduler = Scheduler()
        self.workers: list[Worker] = []
        self._worker_context: WorkerContext | None = None
        self.address = ""
        self.token = ""
        self._peers: dict[bytes, Peer] = {}
        self._followers: dict[str, set[bytes]] = defaultdict(set)
        self._outputs: dict[str, str] = {}  # active job → its resolved output pattern
        self._posts: queue.SimpleQueue[StoredEvent] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._ctx = zmq.Context()
        self._router: zmq.Socket | None = None
        self._stop = False
        self._draining = False
        self._loop_beat = time.monotonic()
        self._last_sweep = 0.0
        self._last_prune = 0.0

    # -- lifetime ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Lock and recover the journal, bind the socket and start the workers."""
        check_picklable(self.config.stage_factory)
        try:
            if self.config.journal != ":memory:":
                self._lock_journal(self.config.journal)
            self.journal = Journal(self.config.journal)
            os.makedirs(self.spool, exist_ok=True)
            self.token = write_token(self.token_file)
        except (JournalError, sqlite3.Error, OSError) as error:
            raise InvalidOptionError(f"cannot use the journal {self.config.journal}: {error}",
                                     path=self.config.journal, field="journal") from None
        router = self._router = self._ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.setsockopt(zmq.LINGER, 1000)
        router.setsockopt(zmq.RCVHWM, 100)
        router.setsockopt(zmq.MAXMSGSIZE, max(self.limits.max_payload_bytes, LIMITS["max_message_bytes"]))
        router.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        router.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        if self.config.curve is not None:
            self.config.curve.apply(self._ctx, router)
        try:
            router.bind(self.config.bind)
        except zmq.ZMQError as error:
            raise InvalidOptionError(f"cannot bind {self.config.bind}: {error}", field="bind") from None
        self.address = router.getsockopt_string(zmq.LAST_ENDPOINT)
        self._recover()
        workers, threads, executor = self.config.workers, self.config.worker_threads, None
        if self.config.ray:
            from ned_engine import ray_backend  # Ray is an optional extra

            try:
                resources = ray_backend.connect(self.config.ray)
            except NedError:
                raise
            except Exception as error:  # noqa: BLE001 - Ray's own errors name no stable code
                raise InvalidOptionError(f"cannot join the Ray cluster {self.config.ray}: {error}",
                                         field="ray") from None
            workers, executor = ray_backend.plan(resources, workers, threads)
            threads = threads or 1
            logger.info("Ray cluster %s: %s; %d actors", self.config.ray, resources, workers)
        context = WorkerContext(journal=self.journal, scheduler=self.scheduler, post=self.post,
                                metrics=self.metrics, policy=self.policy, spool=self.spool, limits=self.limits,
                                cache_dir=self.config.cache_dir, stage_factory=self.config.stage_factory,
                                hang_timeout=self.config.hang_timeout, workers=max(1, workers),
                                threads=threads, devices=list(self.config.devices), chunk=self.config.chunk,
                                pin_cpus=self.config.pin_cpus and not self.config.ray)
        self._worker_context = context
        self.workers = [Worker(i, context, executor) for i in range(max(1, workers))]
        for worker in self.workers:
            worker.start()

    def _lock_journal(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        handle = open(path + ".lock", "a+")  # noqa: SIM115 - held open for the process's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise InvalidOptionError(f"another engine is using the journal {path}", path=path,
                                     field="journal") from None
        self._lock_handle = handle

    def _recover(self) -> None:
        assert self.journal is not None
        self._prune()
        resumed = self.journal.requeue_interrupted()
        for record in resumed:
            pattern = record.spec["output"].get("pattern")
            if pattern is not None:
                self._outputs[record.id] = os.path.realpath(pattern)
            self.scheduler.push(record.id, record.priority)
        if resumed:
            logger.info("resuming %d unfinished jobs from %s", len(resumed), self.config.journal)

    def _prune(self) -> None:
        """Forget terminal jobs older than the retention, and spool folders of jobs no longer known."""
        assert self.journal is not None
        self._last_prune = time.monotonic()
        self.journal.prune(time.time() - self.config.retain_days * 86400)
        known = self.journal.known_ids()
        for entry in os.listdir(self.spool):
            if entry not in known:
                shutil.rmtree(os.path.join(self.spool, entry), ignore_errors=True)

    def request_stop(self, drain: bool = False) -> None:
        """Stop the loop: at once (running jobs resume at the next start) or after running jobs end."""
        self.scheduler.pause()
        if drain:
            self._draining = True
        else:
            self._stop = True

    def serve_forever(self) -> None:
        """Run the socket loop until ``request_stop``; then stop the workers and close everything."""
        assert self._router is not None
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        try:
            while not self._stop:
                self._loop_beat = time.monotonic()
                waiting = any(p.outbox for p in self._peers.values())
                ready = dict(poller.poll(20 if waiting else 200))
                if self._wake_r in ready:
                    self._drain_wake()
                self._deliver_posts()
                if self._router in ready:
                    for _ in range(256):
                        try:
                            frames = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._handle(frames)
                self._flush_outboxes()
                self._housekeeping()
                if self._draining and self.scheduler.running == 0 and self._posts.empty():
                    self._stop = True
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        if self._worker_context is not None:
            self._worker_context.stopping.set()
        self.scheduler.pause()
        self.scheduler.stop_running()
        for worker in self.workers:
            worker.join(10.0)
        if self.config.ray:
            import ray

            ray.shutdown()
        self._deliver_posts()
        self._flush_outboxes()
        if self._router is not None:
            self._router.close(1000)
        if self.config.curve is not None:
            self.config.curve.stop()
        self._ctx.term()
        if self.journal is not None:
            self.journal.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        logger.info("engine %s stopped", self.session)

    # -- from workers -----------------------------------------------------------------------------------
    def post(self, event: StoredEvent) -> None:
        """Hand a journaled event to the socket loop (any thread)."""
        self._posts.put(event)
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups: the loop is awake anyway

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _deliver_posts(self) -> None:
        while True:
            try:
                event = self._posts.get_nowait()
            except queue.Empty:
                return
            self._publish(event)

    def _publish(self, event: StoredEvent) -> None:
        if event.terminal:
            self._outputs.pop(event.job, None)
            detail = event.body.get("message") if event.type != "done" else f"{event.body['frames_written']} frames"
            logger.info("job %s %s: %s", event.job, event.type, detail)
        for routing_id in list(self._followers.get(event.job, ())):
            peer = self._peers.get(routing_id)
            sub = peer.subs.get(event.job) if peer is not None else None
            if sub is not None:
                self._offer(peer, event.job, sub, event)

    # -- delivery ---------------------------------------------------------------------------------------
    def _offer(self, peer: Peer, job: str, sub: Subscription, event: StoredEvent) -> None:
        if event.seq <= sub.last_seq:
            return
        sub.last_seq = event.seq
        sub.pending.append(event)
        self._pump(peer, job, sub)

    def _pump(self, peer: Peer, job: str, sub: Subscription) -> None:
        """Send the subscriber's pending events in order, stopping at an inline frame without credit."""
        while sub.pending and peer.routing_id in self._peers:
            event = sub.pending[0]
            body = dict(event.body)
            payloads: tuple[bytes, ...] = ()
            if event.type == "frame_ready" and body.get("inline"):
                data = None
                if sub.inline:
                    if sub.credits <= 0:
                        return
                    data = _read(event.file)
                if data is None:  # a watcher without inline, or the file has gone: the event only
                    body["inline"] = False
                    body.pop("size", None)
                else:
                    sub.credits -= 1
                    body["size"] = len(data)
                    payloads = (data,)
            sub.pending.popleft()
            sub.ended = sub.ended or event.terminal
            self._send(peer, build(event.type, msg_id=sub.request_id, job=job, version=peer.version, **body),
                       payloads)

    def _send(self, peer: Peer, message: dict[str, Any], payloads: tuple[bytes, ...] = ()) -> None:
        frames = [peer.routing_id, *encode(message, payloads)]
        if peer.outbox:
            self._queue(peer, frames)
            return
        self._try_send(peer, frames)

    def _try_send(self, peer: Peer, frames: list[Any], retry: bool = False) -> bool:
        assert self._router is not None
        try:
            self._router.send_multipart(frames, zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            if not retry:
                self._queue(peer, frames)
            return False
        except zmq.ZMQError as error:
            if error.errno == zmq.EHOSTUNREACH:
                self._drop_peer(peer, "the connection has gone")
                return False
            raise

    def _queue(self, peer: Peer, frames: list[Any]) -> None:
        peer.outbox.append(frames)
        if len(peer.outbox) > MAX_OUTBOX:
            self._drop_peer(peer, f"it left {MAX_OUTBOX} messages unread")

    def _flush_outboxes(self) -> None:
        for peer in [p for p in self._peers.values() if p.outbox]:
            while peer.outbox and peer.routing_id in self._peers:
                if not self._try_send(peer, peer.outbox[0], retry=True):
                    break
                peer.outbox.popleft()

    def _drop_peer(self, peer: Peer, why: str) -> None:
        if self._peers.pop(peer.routing_id, None) is None:
            return
        logger.info("dropped connection %s (%s): %s", peer.routing_id.hex(), peer.client or "no hello", why)
        for job in peer.subs:
            followers = self._followers.get(job)
            if followers is not None:
                followers.discard(peer.routing_id)
                if not followers:
                    del self._followers[job]
        peer.subs.clear()
        peer.outbox.clear()

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= 1.0:
            self._last_sweep = now
            for peer in list(self._peers.values()):
                quiet = now - peer.last_seen > max(3 * peer.heartbeat, PEER_IDLE)
                settled = not peer.outbox and all(s.ended and not s.pending for s in peer.subs.values())
                if quiet and settled:  # an active job's peer stays: a failed send tells when it is gone
                    self._drop_peer(peer, "silent, with nothing in flight")
        if now - self._last_prune >= 3600:
            self._prune()

    # -- requests ---------------------------------------------------------------------------------------
    def _handle(self, frames: list[zmq.Frame]) -> None:
        routing_id = frames[0].bytes
        parts = frames[1:]
        principal = ""
        if self.config.curve is not None and parts:
            try:
                principal = parts[0].get("User-Id") or ""
            except zmq.ZMQError:
                principal = ""
        peer = self._peers.get(routing_id)
        if peer is None:
            peer = self._peers[routing_id] = Peer(routing_id, principal, time.monotonic())
        peer.last_seen = time.monotonic()
        raw = [part.buffer for part in parts]
        try:
            message, payloads = decode(raw, sender="client")
        except ProtocolError as error:
            self.metrics.inc("invalid_messages_total")
            msg_id, job = _salvage(raw)
            version = PROTOCOL_VERSION if isinstance(error, UnsupportedVersionError) else peer.version
            self._refuse(peer, error, msg_id, job, version)
            return
        kind = message["type"]
        self.metrics.inc("requests_total", type=kind)
        peer.version = session_version(message["v"])
        try:
            getattr(self, f"_on_{kind}")(peer, message, payloads)
        except (NedError, CoreError) as error:
            self._refuse(peer, error, message["id"], message["job"], peer.version)
        except Exception as error:  # noqa: BLE001 - a bug answers `internal`; the loop goes on
            logger.exception("handling %s failed", kind)
            self._refuse(peer, error, message["id"], message["job"], peer.version)

    def _refuse(self, peer: Peer, error: BaseException, msg_id: str, job: str | None,
                version: tuple[int, int]) -> None:
        fields = wire_fields(error)
        if fields.get("field") and isinstance(error, CoreError):
            fields["field"] = _FIELD_NAMES.get(fields["field"], fields["field"])
        self.metrics.inc("errors_total", code=fields["code"])
        try:
            reply = build("error", msg_id=msg_id, job=job, version=version, **fields)
        except NedError:
            reply = build("error", msg_id="", job=None, version=version, code=fields["code"],
                          message=fields["message"], retryable=fields["retryable"])
        self._send(peer, reply)

    def _reply(self, peer: Peer, request: dict[str, Any], kind: str, job: str | None = None, **body: Any) -> None:
        self._send(peer, build(kind, msg_id=request["id"], job=job, version=peer.version, **body))

    def _on_hello(self, peer: Peer, message: dict[str, Any], payloads: list[bytes]) -> None:
        body = with_defaults(message)
        peer.client = body["client"] + (f" pid {body['pid']}" if "pid" in body else "")
        peer.heartbeat = float(body["heartbeat"])
        limits = {"max_frames": min(self.limits.max_frames, LIMITS["max_frames"]),
                  "max_payload_bytes": min(self.limits.max_payload_bytes, LIMITS["max_payload_bytes"])}
        self._reply(peer, message, "welcome", protocol=list(PROTOCOL_VERSION), engine_version=__version__,
                    session=self.session, backends={s: sorted(n) for s, n in jobs.REGISTRIES.items()},
                    presets=sorted(PRESETS), devices=["cpu"], limits=limits,
                    allowed_roots=list(self.policy.roots[:64]),
                    auth="curve" if self.config.curve is not None else "none")

    def _on_ping(self, peer: Peer, message: dict[str, Any], payloads: list[bytes]) -> None:
        self._reply(peer, message, "pong", time=time.time())

    def _on_submit(self, peer: Peer, message: dict[str, Any], payloads: list[bytes]) -> None:
        assert self.journal is not None
        if self._draining or self._stop:
            raise BusyError("the engine is shutting down; submit to it again after it restarts")
        body = with_defaults(message)
        spec = message["body"]["spec"]
        key = body.get("idempotency_key")
        existing = self.journal.find_key(peer.principal, key) if key is not None else None
        if existing is not None:
            if not _same_spec(existing.spec, spec):  # a reused key must not silently stand for the old job
                raise InvalidOptionError(f"idempotency key {key!r} belongs to job {existing.id}, submitted with "
                                         f"another spec; use a new key for a new job", field="idempotency_key")
            self._reply(peer, message, "accepted", job=existing.id, state=existing.state, duplicate=True)
            self._subscribe(peer, existing.id, message["id"], inline=bool(existing.spec["output"].get("inline")),
                            credits=body["credits"], after_seq=0)
            return
        output, total = self._check_submit(peer, spec, payloads)
        job_id = "j-" + secrets.token_hex(6)
        if "plate_frames" in spec:
            self._write_plate(job_id, spec, payloads)
        record, duplicate = self.journal.add_job(job_id, spec, owner=peer.principal, client=peer.client_id,
                                                 priority=int(spec.get("priority", 0)), idempotency_key=key)
        if output is not None:
            self._outputs[job_id] = output
        self.journal.record_event(job_id, "progress", {"stage": "queued", "frame": None, "done": 0,
                                                       "total": total, "eta": None})
        self.scheduler.push(job_id, record.priority)
        self.metrics.inc("jobs_submitted_total")
        logger.info("job %s queued for %s (%s -> %s)", job_id, peer.client_id, spec.get("plate", "inline plate"),
                    pattern_or_inline(spec))
        self._reply(peer, message, "accepted", job=job_id, state="queued", duplicate=duplicate)
        self._subscribe(peer, job_id, message["id"], inline=bool(spec["output"].get("inline", False)),
                        credits=body["credits"], after_seq=0)

    def _check_submit(self, peer: Peer, spec: dict[str, Any], payloads: list[bytes]) -> tuple[str | None, int]:
        """Everything a job can be refused for before it is queued; returns (resolved output, frames)."""
        assert self.journal is not None
        inline_plate = "plate_frames" in spec
        jobs.plan(spec, plate="inline.%d.exr" if inline_plate else None, output="inline.%d.exr")
        span = spec.get("frame_range")
        total = span[1] - span[0] + 1 if span else len(spec["plate_frames"]) if inline_plate else 0
        if total > self.limits.max_frames:
            raise LimitExceededError(f"the job has {total} frames; this engine takes at most "
                                     f"{self.limits.max_frames} per job",
                                     field="spec.frame_range" if span else "spec.plate_frames")
        for index, payload in enumerate(payloads):
            if len(payload) > self.limits.max_payload_bytes:
                raise LimitExceededError(f"inline plate frame {index} is {len(payload)} bytes; this engine "
                                         f"takes at most {self.limits.max_payload_bytes}", field=f"payloads[{index}]")
        plate = None
        if "plate" in spec:
            plate = self.policy.check_input(spec["plate"], "spec.plate", tuple(span) if span else None)
        if "mask" in spec:
            self.policy.check_input(spec["mask"], "spec.mask", tuple(span) if span else None)
        if "colorspace" in spec:
            check_colorspace(spec["colorspace"])
        output = None
        pattern = spec["output"].get("pattern")
        if pattern is not None:
            output = self.policy.resolve(pattern, "spec.output.pattern")
            if jobs.needs_frame_token(spec) and not is_sequence_pattern(pattern):
                raise InvalidOptionError(f"output pattern {pattern} has no frame number token (####, %04d or @) "
                                         f"for a shot of several frames", path=pattern, field="spec.output.pattern")
            if plate is not None and output == plate:
                raise InvalidOptionError(f"output pattern {pattern} would overwrite the plate", path=pattern,
                                         field="spec.output.pattern")
            for other, other_output in self._outputs.items():
                if other_output == output:
                    raise BusyError(f"job {other} is writing to {pattern}; submit again when it has ended",
                                    path=pattern, field="spec.output.pattern")
        if self.journal.count_active() >= self.limits.max_queued:
            raise LimitExceededError(f"the engine has {self.limits.max_queued} jobs queued or running (its limit)")
        if self.journal.count_active(peer.client_id) >= self.limits.max_queued_per_client:
            raise LimitExceededError(f"this client has {self.limits.max_queued_per_client} jobs queued or "
                                     f"running (the limit per client)")
        return output, total

    def _write_plate(self, job_id: str, spec: dict[str, Any], payloads: list[bytes]) -> None:
        pattern, _ = jobs.spool_paths(self.spool, job_id, spec.get("plate_format", "exr"))
        os.makedirs(os.path.dirname(pattern), exist_ok=True)
        for frame, data in zip(spec["plate_frames"], payloads, strict=True):
            with open(frame_path(pattern, frame), "wb") as stream:
                stream.write(data)

    def _job(self, message: dict[str, Any]) -> JobRecord:
        assert self.journal is not None
        record = self.journal.job(message["job"])
        if record is None:
            raise UnknownJobError(f"no job {message['job']} on this engine (session {self.session})",
                                  field="job")
        return record

    def _on_cancel(self, peer: Peer, message: dict[str, Any], payloads: list[bytes]) -> None:
        assert self.journal is not None
        record = self._job(message)
        state = record.state
        if state in ACTIVE_STATES:
            where = self.scheduler.cancel(record.id)
            if where == "running":
                state = "running"  # the worker stops at the next frame and sends `cancelled`
            else:
                record = self._job(message)
                state = record.state
                if state in ACTIVE_STATES:  # still queued: it ends here
                    written = len(self.journal.finished_frames(record.id))
                    event = self.journal.record_event(record.id, "cancelled", {
                        "frames_written": written, "message": "cancelled by a client before it started"})
                    self.metrics.inc("jobs_finished_total", state="cancelled")
                    self._reply(peer, message, "ack", job=record.id, state="cancelled")
                    self._publish(event)
                    return
        self._reply(peer, message, "ack", job=record.id, state=state)

    def _on_status(self, peer: Peer, message: dict[str, Any], payloads: list[bytes]) -> None:
        record = self._job(message)
        assert self.journal is not None
        written = self.journal.frames_written([record.id])
        self._reply(peer, message, "job_status", job=record.id, info=_info(record, written[record.id]))

    def _on_list(self, peer: Peer, message: dict[str, Any], payloads: list[bytes]) -> None:
        assert self.journal is not None
        body = with_defaults(message)
        limit = int(body["limit"])
        records = self.journal.jobs(tuple(body["states"]) if body.get("states") else None, limit + 1)
        shown = records[:limit]
        written = self.journal.frames_written([r.id for r in shown])
        self._reply(peer, message, "jobs", jobs=[_info(r, written[r.id]) for r in shown], more=len(records) > limit)

    def _on_watch(self, peer: Peer, message: dict[str, Any], payloads: list[bytes]) -> None:
        record = self._job(message)
        body = with_defaults(message)
        self._reply(peer, message, "watching", job=record.id, state=record.state, last_seq=record.last_seq)
        self._subscribe(peer, record.id, message["id"], inline=bool(body["inline"]), credits=body["credits"],
                        after_seq=None)

    def _on_resume(self, peer: Peer, message: dict[str, Any], payloads: list[bytes]) -> None:
        record = self._job(message)
        body = with_defaults(message)
        self._reply(peer, message, "watching", job=record.id, state=record.state, last_seq=record.last_seq)
        self._subscribe(peer, record.id, message["id"], inline=bool(body["inline"]), credits=body["credits"],
                        after_seq=int(body["after_seq"]))

    def _subscribe(self, peer: Peer, job: str, request_id: str, *, inline: bool, credits: int,
                   after_seq: int | None) -> None:
        """Follow ``job`` from ``after_seq`` (its kept events are replayed), or from its newest event."""
        assert self.journal is not None
        sub = Subscription(request_id, inline, int(credits))
        peer.subs[job] = sub
        self._followers[job].add(peer.routing_id)
        if after_seq is None:
            newest = self.journal.last_event(job)
            replay = [newest] if newest is not None else []
            sub.last_seq = newest.seq - 1 if newest is not None else 0
        else:
            sub.last_seq = after_seq
            replay = self.journal.events(job, after_seq)
        for event in replay:
            self._offer(peer, job, sub, event)

    def _on_credit(self, peer: Peer, message: dict[str, Any], payloads: list[bytes]) -> None:
        job = message["job"]
        sub = peer.subs.get(job)
        if sub is None:
            raise UnknownJobError(f"this connection does not follow job {job}: submit, watch or resume it",
                                  field="job")
        n = int(message["body"]["n"])
        if sub.credits + n > MAX_CREDITS:
            sub.credits = MAX_CREDITS
            self._pump(peer, job, sub)
            raise LimitExceededError(f"a credit window of {sub.credits} is this engine's maximum", field="n")
        sub.credits += n
        self._pump(peer, job, sub)

    def _on_shutdown(self, peer: Peer, message: dict[str, Any], payloads: list[bytes]) -> None:
        body = with_defaults(message)
        token = body.get("token")
        by_token = isinstance(token, str) and hmac.compare_digest(token.encode(), self.token.encode())
        by_key = bool(peer.principal) and peer.principal.encode() in self.config.admin_keys
        if not (by_token or by_key):
            raise UnauthorizedError(f"shutdown needs the engine's token (in {self.token_file}) or an "
                                    f"administrator's CurveZMQ key")
        logger.info("shutdown requested by %s (%s)", peer.client or peer.routing_id.hex(),
                    "drain" if body["drain"] else "now")
        self._reply(peer, message, "ack")
        self.request_stop(drain=bool(body["drain"]))

    # -- health -----------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Liveness and readiness from the work loops themselves (safe from any thread)."""
        now = time.monotonic()
        workers = [{"index": w.index, "job": w.job, "ready": w.ready, "alive": w.is_alive(), "hung": w.hung,
                    "heartbeat_age": round(now - w.beat, 3), "pid": w.pid, "restarts": w.restarts,
                    "threads": w.threads, "device": w.device, "cpus": list(w.settings.cpus),
                    "node": getattr(w.executor, "node", None)}
                   for w in self.workers]
        loop_age = now - self._loop_beat
        problems = []
        if loop_age > LOOP_STALL:
            problems.append(f"the socket loop has not turned for {loop_age:.0f} s")
        for w in workers:
            if not w["alive"]:
                problems.append(f"worker {w['index']} has died")
            elif w["hung"]:
                problems.append(f"worker {w['index']} silent for {w['heartbeat_age']:.0f} s"
                                + (f" on job {w['job']}" if w["job"] else ""))
        live = not problems
        ready = live and all(w["ready"] for w in workers) and not (self._draining or self._stop)
        return {"live": live, "ready": ready, "problems": problems, "engine_version": __version__,
                "session": self.session, "address": self.address, "workers": workers,
                "queued": self.scheduler.queued, "running": self.scheduler.running, "peers": len(self._peers),
                "loop_heartbeat_age": round(loop_age, 3)}

    def _gauges(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        health = self.health()
        workers = health["workers"]
        return {
            "up": {(): 1.0},
            "ready": {(): float(health["ready"])},
            "jobs": {(("state", "queued"),): float(health["queued"]),
                     (("state", "running"),): float(health["running"])},
            "workers": {(): float(len(workers))},
            "workers_busy": {(): float(sum(1 for w in workers if w["job"]))},
            "workers_hung": {(): float(sum(1 for w in workers if w["hung"] or not w["alive"]))},
            "worker_heartbeat_age_seconds": {(("worker", str(w["index"])),): w["heartbeat_age"] for w in workers},
            "loop_heartbeat_age_seconds": {(): health["loop_heartbeat_age"]},
            "peers": {(): float(health["peers"])},
        }


def _info(record: JobRecord, written: int = 0) -> dict[str, Any]:
    """A job's ``JobInfo`` (optional fields left out when unknown).

    An ended job's ``done`` is the frames it wrote (``written``), not how far its last stage got: a job
    cancelled during the analysis wrote nothing, whatever its analysis progress was.
    """
    spec = record.spec
    info: dict[str, Any] = {"job": record.id, "state": record.state, "last_seq": record.last_seq,
                            "priority": record.priority, "submitted": record.submitted}
    if spec.get("label"):
        info["label"] = spec["label"]
    if record.stage is not None:
        done = written if record.state in TERMINAL_STATES else int(record.done or 0)
        info.update(stage=record.stage, done=done, total=int(record.total or 0))
    if record.state == "failed" and record.error:
        info["code"] = record.error.get("code", "internal")
    if "plate" in spec:
        info["plate"] = spec["plate"]
    if spec["output"].get("pattern"):
        info["output"] = spec["output"]["pattern"]
    return info


def pattern_or_inline(spec: dict[str, Any]) -> str:
    return spec["output"].get("pattern") or "inline"


def _same_spec(stored: dict[str, Any], submitted: dict[str, Any]) -> bool:
    """True when a submitted spec is the one the journal keeps (compared as the journal stores it, JSON)."""
    return json.dumps(stored, sort_keys=True) == json.dumps(submitted, sort_keys=True, default=str)


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError:
        return None


def _salvage(frames: list[Any]) -> tuple[str, str | None]:
    """The ``id`` and ``job`` of a message that failed to decode, when they can still be read safely."""
    msg_id, job = "", None
    try:
        head = bytes(frames[0])
        if len(head) > LIMITS["max_message_bytes"]:
            return msg_id, job
        data = msgpack.unpackb(head, raw=False, max_str_len=LIMITS["max_string"] * 4, max_bin_len=0, max_ext_len=0,
                               max_array_len=LIMITS["max_array"], max_map_len=LIMITS["max_map"], strict_map_key=False)
    except Exception:  # noqa: BLE001 - anything unreadable just has no id
        return msg_id, job
    if isinstance(data, dict):
        try:
            ID.check(data.get("id"), "id", PROTOCOL_VERSION)
            msg_id = data["id"]
        except NedError:
            pass
        try:
            if data.get("job") is not None:
                JOB_ID.check(data["job"], "job", PROTOCOL_VERSION)
                job = data["job"]
        except NedError:
            pass
    return msg_id, job


__all__ = ["Engine", "EngineConfig", "Peer", "Subscription"]
