"""``Client``: talks to a NED engine from any thread of a host application without blocking it.

One background thread owns the DEALER socket (ZeroMQ sockets are not thread-safe); public methods put
requests on a locked outbox, wake that thread through an inproc pipe and wait for the reply at most
``timeout`` seconds. Job events (``progress``, ``frame_ready``, the terminal ``done``/``failed``/
``cancelled``) go to ``on_event`` callbacks, run on a separate dispatcher thread so slow user code never
stalls the socket, or, for jobs no callback takes, queue for the ``events()`` iterator.

The I/O thread pings when the engine has been silent for ``heartbeat`` seconds; after
``3 × heartbeat`` of silence it drops the socket, makes a new one, says ``hello`` again, sends
``resume`` for every unfinished job from the last ``seq`` it saw (duplicates are dropped by ``seq``) and
re-sends the requests still waiting for a reply (all are idempotent; ``submit`` always carries an
idempotency key). Only ``shutdown`` is not re-sent: it fails with ``DisconnectedError``.

A refused CurveZMQ handshake is final, not a reason to retry: the socket monitor's
``HANDSHAKE_FAILED_AUTH`` (the engine's allow-list said no), a security-mechanism mismatch (CurveZMQ on
one side only) or three handshake failures in a row with no detail (a wrong engine public key) fail
every waiting call and ``events()`` with ``UnauthorizedError`` and the client stops reconnecting.

Imports zmq and ``ned_protocol``; never torch, numpy or ned_core.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import zmq
from zmq.utils.monitor import recv_monitor_message

from ned_protocol.codec import decode, encode
from ned_protocol.errors import (
    DisconnectedError,
    InvalidMessageError,
    InvalidOptionError,
    NedError,
    ProtocolError,
    RequestTimeoutError,
    UnauthorizedError,
    UnknownJobError,
    UnsupportedVersionError,
    from_code,
)
from ned_protocol.schema import LIMITS, MESSAGES, PROTOCOL_VERSION, TERMINAL_EVENTS, build, new_id

logger = logging.getLogger(__name__)

EventCallback = Callable[["Event"], None]
_MAX_QUEUED = 10_000  # undelivered events kept for events(); beyond it the oldest progress is dropped
_RECV_BATCH = 256  # messages read per wake-up before the outbox and heartbeat get a turn
_HANDSHAKE_RETRIES = 3  # handshakes failing without detail in a row before the key is taken as refused
_MONITOR_EVENTS = (zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                   | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


@dataclass(frozen=True)
class Event:
    """One job event as the application sees it.

    ``payload`` holds the EXR bytes of an inline ``frame_ready``. ``local`` marks an event the client
    made itself: a ``failed`` with code ``unknown_job`` when, after a reconnect, the engine no longer
    knows a job this client was following.
    """

    type: str
    job: str
    seq: int
    body: dict[str, Any]
    payload: bytes | None = None
    local: bool = False

    @property
    def terminal(self) -> bool:
        """True for ``done``, ``failed`` and ``cancelled``: the job's last event."""
        return self.type in TERMINAL_EVENTS

    def error(self) -> NedError | None:
        """The error a ``failed`` event stands for (``from_code``), else None."""
        if self.type != "failed":
            return None
        b = self.body
        return from_code(b["code"], b["message"], retryable=b["retryable"], path=b.get("path"),
                         frame=b.get("frame"), field=b.get("field"))


@dataclass
class _Pending:
    """A request waiting for its reply."""

    message: dict[str, Any]
    frames: list[Any]
    internal: bool = False  # sent by the I/O thread itself; nobody waits on it
    sent: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    reply: dict[str, Any] | None = None
    error: NedError | None = None

    @property
    def type(self) -> str:
        return self.message["type"]

    def finish(self, reply: dict[str, Any] | None = None, error: NedError | None = None) -> None:
        self.reply, self.error = reply, error
        self.done.set()


@dataclass
class _Stream:
    """What the client follows of one job: the last ``seq`` seen and how it subscribed."""

    last_seq: int = 0
    inline: bool = False
    terminal: bool = False


class Client:
    """A connection to a NED engine; every public method is thread-safe.

    Parameters
    ----------
    address
        The engine's endpoint, e.g. ``tcp://127.0.0.1:7745``.
    curve_server_key
        The engine's Z85 public key: turns on CurveZMQ (required for any non-loopback engine).
    curve_keypair
        This client's ``(public, secret)`` Z85 keys (``keys.load_keypair``); an ephemeral pair when
        omitted (encrypts, but an engine with an allow-list refuses it).
    timeout
        Default seconds a call waits for its reply before ``RequestTimeoutError``.
    heartbeat
        Seconds of engine silence before a ping; ``3 × heartbeat`` of silence means reconnect.
    client_name, host
        How this client introduces itself in ``hello``.
    credit_window
        Inline frames the engine may send ahead of what the application has taken.
    auto_credit
        Grant one credit each time an inline frame is handed to the application.
    linger
        Seconds ``close`` lets unsent messages drain.
    """

    def __init__(self, address: str, *, curve_server_key: bytes | str | None = None,
                 curve_keypair: tuple[bytes, bytes] | None = None, timeout: float = 10.0,
                 heartbeat: float = 2.0, client_name: str = "ned-protocol", host: str | None = None,
                 credit_window: int = 2, auto_credit: bool = True, linger: float = 1.0) -> None:
        if timeout <= 0 or heartbeat <= 0:
            raise InvalidOptionError("timeout and heartbeat must be positive seconds", field="timeout")
        if curve_keypair is not None and curve_server_key is None:
            raise InvalidOptionError("curve_keypair needs curve_server_key (the engine's public key)",
                                     field="curve_server_key")
        self.address = address
        self.timeout = float(timeout)
        self.heartbeat = float(heartbeat)
        self.credit_window = int(credit_window)
        self.auto_credit = auto_credit
        self.linger = float(linger)
        self.invalid_messages = 0
        """Messages from the engine that failed to decode (dropped and logged)."""
        self._hello_body = {"client": client_name, "host": host, "pid": os.getpid(), "heartbeat": heartbeat}
        build("hello", **self._hello_body)  # a bad name or heartbeat fails here, before any socket exists
        self._curve = None if curve_server_key is None else tuple(
            _z85(key) for key in (curve_server_key, *(curve_keypair or zmq.curve_keypair())))

        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending: dict[str, _Pending] = {}
        self._outbox: deque[tuple[list[Any], _Pending | None]] = deque()
        self._inbox: deque[Event] = deque()
        self._streams: dict[str, _Stream] = {}
        self._callbacks: list[tuple[EventCallback, str | None]] = []
        self._closed = False
        self._fatal: NedError | None = None  # why nothing more can work (version or key refused)
        self._handshake_failures = 0
        self._welcome: dict[str, Any] | None = None
        self._version: tuple[int, int] = PROTOCOL_VERSION
        self._connected = False
        self._dispatch: queue.Queue[Any] = queue.Queue()
        self._dispatcher: threading.Thread | None = None

        self._ctx = zmq.Context()
        wake_address = f"inproc://ned-client-wake-{new_id()}"
        self._wake_in = self._ctx.socket(zmq.PAIR)
        self._wake_in.bind(wake_address)
        self._wake_out = self._ctx.socket(zmq.PAIR)
        self._wake_out.connect(wake_address)
        try:
            self._sock = self._new_socket()
        except InvalidOptionError:
            self._wake_in.close(0)
            self._wake_out.close(0)
            self._ctx.term()
            raise
        self._queue_hello()
        self._thread = threading.Thread(target=self._run, name=f"ned-protocol-client {address}", daemon=True)
        self._thread.start()

    # -- public requests ----------------------------------------------------------------------------------
    def hello(self, timeout: float | None = None) -> dict[str, Any]:
        """Say hello; returns the ``welcome`` body (versions, backends, models, devices, limits)."""
        return self._request("hello", timeout=timeout, **self._hello_body)["body"]

    def submit(self, spec: dict[str, Any], idempotency_key: str | None = None, *,
               payloads: Sequence[bytes] = (), credits: int | None = None,
               timeout: float | None = None) -> str:
        """Queue a job (a ``JobSpec`` dict); returns its id. Its events then arrive on this client.

        ``payloads`` are the inline plate's file bytes, one per ``spec["plate_frames"]`` entry. Without
        an ``idempotency_key`` one is made up, so a resend after a reconnect never makes a second job.
        """
        reply = self._request("submit", payloads=payloads, timeout=timeout, spec=spec,
                              idempotency_key=idempotency_key or new_id(),
                              credits=self.credit_window if credits is None else credits)
        return reply["job"]

    def cancel(self, job: str, timeout: float | None = None) -> str | None:
        """Cancel a job; returns its state now (its ``cancelled`` event follows unless it had ended)."""
        return self._request("cancel", job=job, timeout=timeout)["body"].get("state")

    def status(self, job: str, timeout: float | None = None) -> dict[str, Any]:
        """One job's ``JobInfo`` (state, progress, last ``seq``...)."""
        return self._request("status", job=job, timeout=timeout)["body"]["info"]

    def list_jobs(self, states: Sequence[str] | None = None, limit: int | None = None,
                  timeout: float | None = None) -> list[dict[str, Any]]:
        """The engine's jobs (``JobInfo`` dicts), newest first, optionally only in ``states``."""
        reply = self._request("list", timeout=timeout, states=None if states is None else list(states),
                              limit=limit)
        return reply["body"]["jobs"]

    def ping(self, timeout: float | None = None) -> float:
        """Round-trip time to the engine, in seconds."""
        start = time.monotonic()
        self._request("ping", timeout=timeout)
        return time.monotonic() - start

    def watch(self, job: str, *, inline: bool = False, credits: int | None = None,
              timeout: float | None = None) -> dict[str, Any]:
        """Follow another client's job from now on; returns ``{"state", "last_seq"}``."""
        return self._request("watch", job=job, timeout=timeout, inline=inline,
                             credits=self.credit_window if credits is None else credits)["body"]

    def resume(self, job: str, after_seq: int = 0, *, inline: bool = False, credits: int | None = None,
               timeout: float | None = None) -> dict[str, Any]:
        """Follow a job from just after event ``after_seq`` (replayed first); returns its state."""
        return self._request("resume", job=job, timeout=timeout, after_seq=after_seq, inline=inline,
                             credits=self.credit_window if credits is None else credits)["body"]

    def grant_credit(self, job: str, n: int = 1) -> None:
        """Let the engine send ``n`` more inline frames of ``job`` (returns at once; no reply)."""
        message = build("credit", job=job, version=self._version, n=n)
        with self._lock:
            self._usable()
            self._outbox.append((encode(message), None))
            self._wake()

    def shutdown(self, token: str | None = None, *, drain: bool = False,
                 timeout: float | None = None) -> None:
        """Ask the engine to stop (only an authorised client may); ``drain`` finishes running jobs first."""
        self._request("shutdown", timeout=timeout, token=token, drain=drain)

    # -- events -------------------------------------------------------------------------------------------
    def events(self, job: str | None = None, timeout: float | None = None) -> Iterator[Event]:
        """Iterate over queued and arriving events of ``job`` (or of every job, in arrival order).

        The iteration ends after the job's terminal event, when no event arrives within ``timeout``
        seconds (``timeout=0`` drains what is queued without waiting: the call for a UI timer), or when
        the client is closed. Events taken by an ``on_event`` callback never reach this iterator.

        Raises
        ------
        UnknownJobError
            ``job`` was not submitted, watched or resumed through this client (or its end was taken).
        """
        with self._lock:
            self._usable()
            if job is not None and job not in self._streams:
                raise UnknownJobError(f"job {job} is not followed by this client: submit, watch or resume it "
                                      f"first", field="job")
        return _EventIterator(self, job, timeout)

    def on_event(self, callback: EventCallback, job: str | None = None) -> Callable[[], None]:
        """Call ``callback(event)`` for every event of ``job`` (or of every job) from now on.

        Callbacks run one at a time on the client's dispatcher thread (a host hands work to its UI
        thread from there, e.g. ``nuke.executeInMainThread``); an exception in one is logged, not
        raised. Returns a function that removes the callback.
        """
        entry = (callback, job)
        with self._lock:
            self._usable()
            self._callbacks.append(entry)
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(target=self._run_callbacks, daemon=True,
                                                    name=f"ned-protocol-events {self.address}")
                self._dispatcher.start()

        def remove() -> None:
            with self._lock:
                if entry in self._callbacks:
                    self._callbacks.remove(entry)

        return remove

    # -- state and lifetime -------------------------------------------------------------------------------
    @property
    def welcome(self) -> dict[str, Any] | None:
        """The engine's latest ``welcome`` body (None before the first handshake completes)."""
        with self._lock:
            return self._welcome

    @property
    def connected(self) -> bool:
        """True once the current socket's handshake succeeded (False while reconnecting)."""
        with self._lock:
            return self._connected

    def close(self) -> None:
        """Stop the threads and close the sockets, letting unsent messages drain for ``linger`` seconds.

        Waiting calls fail with ``DisconnectedError``; running iterators end. Safe to call twice.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake()
            self._fail_pending(lambda p: True, "the client was closed")
            self._cond.notify_all()
        self._thread.join(self.linger + 5.0)
        dispatcher = self._dispatcher
        if dispatcher is not None:
            self._dispatch.put(None)
            if dispatcher is not threading.current_thread():
                dispatcher.join(5.0)
        self._wake_out.close(0)
        if self._thread.is_alive():
            logger.error("ned_protocol client thread for %s did not stop; leaving its context", self.address)
        else:
            self._ctx.term()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self._connected else "connecting")
        return f"<ned_protocol.Client {self.address} {state}>"

    # -- caller-thread helpers ------------------------------------------------------------------------------
    def _usable(self) -> None:
        """Raise why the client cannot be used (call with the lock held)."""
        if self._fatal is not None:
            raise _again(self._fatal)
        if self._closed:
            raise DisconnectedError(f"the client for {self.address} is closed")

    def _wake(self) -> None:
        """Wake the I/O thread (call with the lock held)."""
        try:
            self._wake_out.send(b"", zmq.NOBLOCK)
        except zmq.Again:
            pass  # the pipe is full of wake-ups already, so the thread will look at the outbox anyway

    def _request(self, type: str, *, job: str | None = None, payloads: Sequence[bytes] = (),
                 timeout: float | None = None, **body: Any) -> dict[str, Any]:
        message = build(type, job=job, version=self._version, **body)
        pending = _Pending(message, encode(message, payloads))
        wait = self.timeout if timeout is None else timeout
        with self._lock:
            self._usable()
            self._pending[message["id"]] = pending
            self._outbox.append((pending.frames, pending))
            self._wake()
        if not pending.done.wait(max(wait, 0.0)):
            with self._lock:
                self._pending.pop(message["id"], None)
            raise RequestTimeoutError(
                f"no reply to {type} from the engine at {self.address} within {wait:g} s", field=type)
        if pending.error is not None:
            raise pending.error
        assert pending.reply is not None
        return pending.reply

    def _take(self, job: str | None) -> Event | None:
        """The oldest queued event of ``job`` (any job for None), removed from the queue (lock held)."""
        for index, event in enumerate(self._inbox):
            if job is None or event.job == job:
                del self._inbox[index]
                return event
        return None

    def _handed_over(self, event: Event) -> None:
        """An event reached the application: grant its credit back, forget a finished job."""
        if event.terminal:
            with self._lock:
                stream = self._streams.get(event.job)
                queued = any(e.job == event.job for e in self._inbox)
                if stream is not None and stream.terminal and not queued:
                    del self._streams[event.job]
        elif event.payload is not None:
            self._credit_back(event.job)

    def _credit_back(self, job: str) -> None:
        if self.auto_credit:
            try:
                self.grant_credit(job, 1)
            except NedError:
                pass  # closed meanwhile: nothing to pace any more

    def _run_callbacks(self) -> None:
        while True:
            item = self._dispatch.get()
            if item is None:
                return
            callbacks, event = item
            for callback in callbacks:
                try:
                    callback(event)
                except Exception:  # noqa: BLE001 - user code must not stop event delivery
                    logger.exception("ned_protocol event callback %r failed on %s", callback, event.type)
            self._handed_over(event)

    # -- I/O thread ---------------------------------------------------------------------------------------
    def _new_socket(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, LIMITS["max_payload_bytes"] + LIMITS["max_message_bytes"])
        interval = max(int(self.heartbeat * 1000), 1)
        sock.setsockopt(zmq.HEARTBEAT_IVL, interval)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * interval)
        if self._curve is not None:
            server, public, secret = self._curve
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = server, public, secret
        # the monitor tells a dropped TCP connection at once; silence alone would take 3 heartbeats,
        # and an engine restarted within them would otherwise never hear our hello and resumes. It is
        # attached before connecting: libzmq does not retry a refused key, so a missed event is lost
        monitor = sock.get_monitor_socket(_MONITOR_EVENTS)
        try:
            sock.connect(self.address)
        except zmq.ZMQError as error:
            sock.disable_monitor()
            monitor.close(0)
            sock.close(0)
            raise InvalidOptionError(f"cannot connect to {self.address!r}: {error}",
                                     field="address") from None
        self._monitor = monitor
        return sock

    def _queue_hello(self) -> None:
        message = build("hello", version=PROTOCOL_VERSION, **self._hello_body)
        pending = _Pending(message, encode(message), internal=True)
        with self._lock:
            self._pending[message["id"]] = pending
            self._outbox.appendleft((pending.frames, pending))

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # noqa: BLE001 - log it; waiting callers must hear, not hang
            logger.exception("ned_protocol client I/O thread for %s failed", self.address)
            with self._lock:
                self._closed = True
                self._fail_pending(lambda p: True, "the client's I/O thread failed (see the log)")
                self._cond.notify_all()
            self._close_socket(0)
            self._wake_in.close(0)

    def _loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self._wake_in, zmq.POLLIN)
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        last_recv = last_ping = time.monotonic()
        last_reconnect = -float("inf")
        dropped = False  # ZeroMQ saw the TCP connection end: the engine forgot us even if it is back
        parked = False  # the engine refused us: the socket is out of the poller for good
        while True:
            with self._lock:
                closing, fatal = self._closed, self._fatal is not None
            if closing:
                break
            if fatal:  # refused for good: no pings, no reconnects; only close() wakes this thread now
                if not parked:
                    poller.unregister(self._sock)
                    poller.unregister(self._monitor)
                    parked = True
                poller.poll()
                while self._drain_wake():
                    pass
                continue
            now = time.monotonic()
            next_check = min(max(last_recv, last_ping) + self.heartbeat, last_recv + 3 * self.heartbeat)
            if dropped:
                next_check = min(next_check, last_reconnect + self.heartbeat)
            ready = dict(poller.poll(max(0, int((next_check - now) * 1000)) + 1))
            if self._wake_in in ready:
                while self._drain_wake():
                    pass
            if self._monitor in ready:
                dropped = self._read_monitor() or dropped
                if self._fatal is not None:
                    continue
            if self._sock in ready:
                for _ in range(_RECV_BATCH):
                    try:
                        frames = self._sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    last_recv = time.monotonic()
                    self._receive(frames)
            self._flush()
            now = time.monotonic()
            silent = now - last_recv > 3 * self.heartbeat
            # at most one new socket per heartbeat, so a peer that keeps dropping us is not hammered
            if silent or (dropped and now - last_reconnect >= self.heartbeat):
                poller.unregister(self._sock)
                poller.unregister(self._monitor)
                self._reconnect(f"no message for {now - last_recv:.1f} s" if silent else "connection dropped")
                poller.register(self._sock, zmq.POLLIN)
                poller.register(self._monitor, zmq.POLLIN)
                last_recv = last_ping = last_reconnect = time.monotonic()
                dropped = False
            elif now - last_recv >= self.heartbeat and now - last_ping >= self.heartbeat:
                self._send_internal("ping")
                last_ping = now
        self._flush()
        with self._lock:  # lingering only helps a peer that is there to receive
            linger = self.linger if self._connected else 0.0
        self._close_socket(linger)
        self._wake_in.close(0)

    def _read_monitor(self) -> bool:
        """Drain the socket monitor; True when it reports a dropped connection.

        A refused handshake ends the client (``_refused`` with ``UnauthorizedError``) instead.
        """
        dropped = False
        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return dropped
            kind, value = event["event"], event["value"]
            dropped = dropped or kind == zmq.EVENT_DISCONNECTED
            why = None
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._handshake_failures = 0
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                why = f"the engine at {self.address} refused this client's CurveZMQ key (ZAP status {value})"
            elif (kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                  and value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH):
                side = "this client uses CurveZMQ, the engine does not" if self._curve else \
                    "the engine requires CurveZMQ: pass curve_server_key (and curve_keypair)"
                why = f"security mismatch with the engine at {self.address}: {side}"
            elif kind in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
                self._handshake_failures += 1
                if self._handshake_failures >= _HANDSHAKE_RETRIES:
                    hint = (": is curve_server_key the engine's public key?" if self._curve else
                            ": does the engine require CurveZMQ (curve_server_key)?")
                    why = (f"{self._handshake_failures} handshakes with the engine at {self.address} failed "
                           f"in a row{hint}")
            if why is not None and self._fatal is None:
                # libzmq would reconnect and be refused again forever; stop it at the source
                self._sock.disconnect(self.address)
                self._refused(why, UnauthorizedError(why, field="curve_keypair"))
                return False

    def _close_socket(self, linger: float) -> None:
        self._sock.disable_monitor()
        self._monitor.close(0)
        self._sock.close(int(linger * 1000))

    def _drain_wake(self) -> bool:
        try:
            self._wake_in.recv(zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def _flush(self) -> None:
        while True:
            with self._lock:
                if not self._outbox:
                    return
                frames, pending = self._outbox.popleft()
            try:
                self._sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
            except zmq.Again:  # the send queue is full: try again on the next turn
                with self._lock:
                    self._outbox.appendleft((frames, pending))
                return
            if pending is not None:
                pending.sent = True

    def _send_internal(self, type: str, job: str | None = None, **body: Any) -> None:
        message = build(type, job=job, version=self._version, **body)
        pending = _Pending(message, encode(message), internal=True)
        with self._lock:
            self._pending[message["id"]] = pending
            self._outbox.append((pending.frames, pending))

    def _reconnect(self, why: str) -> None:
        """A new socket, then hello, resumes and the unanswered requests, in that order."""
        logger.warning("lost the engine at %s (%s): reconnecting", self.address, why)
        self._close_socket(0)
        self._sock = self._new_socket()
        with self._lock:
            self._connected = False
            for key in [k for k, p in self._pending.items() if p.internal]:
                del self._pending[key]
            self._fail_pending(lambda p: p.sent and p.type == "shutdown",
                               f"lost the connection to {self.address} before shutdown was answered")
            resend = [(p.frames, p) for p in self._pending.values() if p.sent]
            unsent = [(f, p) for f, p in self._outbox if p is not None and not p.internal]
            self._outbox.clear()
            self._outbox.extend(resend + unsent)
            streams = [(job, s.last_seq, s.inline) for job, s in self._streams.items() if not s.terminal]
            queued = {}
            for event in self._inbox:
                if event.payload is not None:
                    queued[event.job] = queued.get(event.job, 0) + 1
        # hello, then the resumes, then what was waiting: a fresh engine must know us before the rest
        for job, after_seq, inline in reversed(streams):
            message = build("resume", job=job, version=self._version, after_seq=after_seq, inline=inline,
                            credits=max(self.credit_window - queued.get(job, 0), 0))
            pending = _Pending(message, encode(message), internal=True)
            with self._lock:
                self._pending[message["id"]] = pending
                self._outbox.appendleft((pending.frames, pending))
        self._queue_hello()

    def _fail_pending(self, which: Callable[[_Pending], bool], why: str,
                      error: type[NedError] = DisconnectedError) -> None:
        """Fail the waiting requests ``which`` selects with ``error(why)`` (lock held)."""
        for key in [k for k, p in self._pending.items() if which(p)]:
            self._pending.pop(key).finish(error=error(why))

    def _refused(self, why: str, error: NedError | None = None) -> None:
        """The engine refused this client (another major version, by default, or its key): nothing more
        can work, so every waiting and later call raises ``error``."""
        logger.error("the engine at %s refused this client: %s", self.address, why)
        fatal = error if error is not None else UnsupportedVersionError(why, field="v")
        with self._lock:
            self._fatal = fatal
            for key in list(self._pending):
                self._pending.pop(key).finish(error=_again(fatal))
            self._cond.notify_all()

    def _receive(self, frames: list[bytes]) -> None:
        try:
            message, payloads = decode(frames, sender="engine")
        except UnsupportedVersionError as error:
            self._refused(error.message)
            return
        except ProtocolError as error:
            self.invalid_messages += 1
            logger.warning("dropped an invalid message from the engine at %s: %s", self.address,
                           error.message)
            return
        try:
            if MESSAGES[message["type"]].direction == "reply":
                self._on_reply(message)
            else:
                self._on_event(message, payloads)
        except Exception:  # noqa: BLE001 - a bug here must not end the connection
            logger.exception("ned_protocol client failed to handle a %s message", message["type"])

    def _on_reply(self, message: dict[str, Any]) -> None:
        with self._lock:
            pending = self._pending.pop(message["id"], None)
        kind, body = message["type"], message["body"]
        if pending is None:
            if kind == "error":
                logger.warning("engine error for a request no one waits on: %s: %s", body["code"],
                               body["message"])
            return
        if kind == "error":
            error = from_code(body["code"], body["message"], retryable=body["retryable"],
                              path=body.get("path"), frame=body.get("frame"), field=body.get("field"))
            if pending.type == "hello" and error.code == "unsupported_version":
                self._refused(error.message)
            elif pending.type == "resume" and pending.internal and error.code == "unknown_job":
                self._lost_job(pending.message["job"], error.message)
            pending.finish(error=error)
            return
        expected = MESSAGES[pending.type].reply
        if kind != expected:
            pending.finish(error=InvalidMessageError(f"the engine answered {pending.type} with {kind}, "
                                                     f"not {expected}", field="type"))
            return
        self._track(pending.message, message)
        pending.finish(reply=message)

    def _track(self, request: dict[str, Any], reply: dict[str, Any]) -> None:
        """Bookkeeping a reply implies: the session's version, and which jobs this client follows."""
        kind, body, job = reply["type"], reply["body"], reply["job"]
        with self._lock:
            if kind == "welcome":
                self._welcome, self._version, self._connected = body, (reply["v"][0], reply["v"][1]), True
            elif kind == "accepted":
                stream = self._streams.setdefault(job, _Stream())
                stream.inline = bool(request["body"]["spec"]["output"].get("inline", False))
            elif kind == "watching":
                stream = self._streams.setdefault(job, _Stream())
                stream.inline = bool(request["body"].get("inline", False))
                if request["type"] == "resume":  # the replay starts after after_seq, terminal event included
                    stream.last_seq, stream.terminal = request["body"]["after_seq"], False

    def _lost_job(self, job: str, why: str) -> None:
        """End a job the engine forgot with a local ``failed`` event, so its iterators finish."""
        with self._lock:
            stream = self._streams.get(job)
            seq = (stream.last_seq if stream else 0) + 1
        body = {"seq": seq, "code": "unknown_job", "message": f"the engine no longer knows job {job}: {why}",
                "retryable": False}
        self._deliver(Event("failed", job, seq, body, None, local=True))

    def _on_event(self, message: dict[str, Any], payloads: list[bytes]) -> None:
        body = message["body"]
        event = Event(message["type"], message["job"], body["seq"], body, payloads[0] if payloads else None)
        with self._lock:
            stream = self._streams.setdefault(event.job, _Stream())
            duplicate = event.seq <= stream.last_seq
            if not duplicate:
                stream.last_seq = event.seq
                stream.terminal = stream.terminal or event.terminal
        if duplicate:
            if event.payload is not None:
                self._credit_back(event.job)  # the engine spent a credit on a frame we already have
            return
        self._deliver(event)

    def _deliver(self, event: Event) -> None:
        with self._lock:
            callbacks = [cb for cb, job in self._callbacks if job is None or job == event.job]
            if callbacks:
                self._dispatch.put((callbacks, event))
                return
            self._inbox.append(event)
            if len(self._inbox) > _MAX_QUEUED:
                self._drop_oldest()
            self._cond.notify_all()

    def _drop_oldest(self) -> None:
        """Keep the queue bounded when nobody reads it: a newer progress supersedes an older one."""
        for index, event in enumerate(self._inbox):
            if event.type == "progress":
                del self._inbox[index]
                return
        dropped = self._inbox.popleft()
        logger.warning("event queue full: dropped %s of job %s", dropped.type, dropped.job)


class _EventIterator:
    """The iterator ``Client.events`` returns: takes events from the client's queue as they arrive."""

    def __init__(self, client: Client, job: str | None, timeout: float | None) -> None:
        self._client, self._job, self._timeout = client, job, timeout
        self._finished = False

    def __iter__(self) -> _EventIterator:
        return self

    def __next__(self) -> Event:
        if self._finished:
            raise StopIteration
        client = self._client
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        with client._cond:
            while True:
                event = client._take(self._job)
                if event is not None:
                    break
                if client._fatal is not None:
                    self._finished = True
                    raise _again(client._fatal)
                remaining = None if deadline is None else deadline - time.monotonic()
                if client._closed or (remaining is not None and remaining <= 0):
                    self._finished = True
                    raise StopIteration
                client._cond.wait(remaining)
        if event.terminal and self._job is not None:
            self._finished = True
        client._handed_over(event)
        return event


def _again(error: NedError) -> NedError:
    """A fresh copy of a stored error, so each raise gets its own traceback."""
    return type(error)(error.message, path=error.path, frame=error.frame, field=error.field)


def _z85(key: bytes | str) -> bytes:
    key = key.encode("ascii") if isinstance(key, str) else bytes(key)
    if len(key) != 40:
        raise InvalidOptionError("a CurveZMQ key is 40 Z85 characters (see ned_protocol.keys)",
                                 field="curve_keypair")
    return key


__all__ = ["Client", "Event", "EventCallback"]
