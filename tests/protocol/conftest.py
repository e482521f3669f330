"""A tiny stand-in engine for the client tests: a real ZeroMQ ROUTER on 127.0.0.1 in a thread.

It answers from the schema (so it also exercises ``build``/``encode``/``decode`` on the engine side),
keeps each job's events for ``resume``, and honours inline credits. Tests script it: which request
types to leave unanswered, which events a submit produces, events pushed later with ``emit``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from ned_protocol import schema
from ned_protocol.codec import decode, encode
from ned_protocol.errors import ProtocolError, wire_fields


class FakeEngine:
    """A scripted engine on ``tcp://127.0.0.1:<port>``.

    Parameters
    ----------
    port
        Bind this port (to restart "the same" engine); a random free one when None.
    on_submit
        ``[(type, body), ...]`` events each new job emits right after ``accepted`` (``seq`` is added;
        a ``frame_ready`` with ``inline`` gets ``payload`` bytes ``b"EXR<frame>"``).
    silent
        Request types this engine never answers.
    journal
        ``{job: [(type, body), ...]}`` events this engine already "has" (as if replayed from its journal).
    curve
        ``(public, secret, allowed_public_keys_folder)`` to run CurveZMQ with a ZAP allow-list.
    """

    def __init__(self, port: int | None = None, *, on_submit: list[tuple[str, dict]] | None = None,
                 silent: tuple[str, ...] = (), journal: dict[str, list[tuple[str, dict]]] | None = None,
                 curve: tuple[bytes, bytes, str] | None = None, session: str = "s1") -> None:
        self.ctx = zmq.Context()
        self.auth = None
        self._denied = 0
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        if curve is not None:
            from zmq.auth.thread import ThreadAuthenticator

            self.auth = ThreadAuthenticator(self.ctx, log=self._zap_log())
            self.auth.start()
            self.auth.configure_curve(domain="ned", location=curve[2])
            self.sock.zap_domain = b"ned"
            self.sock.curve_server = True
            self.sock.curve_publickey, self.sock.curve_secretkey = curve[0], curve[1]
        if port is None:
            self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        else:
            self.sock.bind(f"tcp://127.0.0.1:{port}")
            self.port = port
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.on_submit = on_submit if on_submit is not None else [
            ("progress", {"stage": "render", "frame": 1001, "done": 1, "total": 2}),
            ("frame_ready", {"frame": 1001, "path": "/tmp/out.1001.exr", "inline": False}),
            ("done", {"frames_written": 2}),
        ]
        self.silent = silent
        self.session = session
        self.received: list[dict[str, Any]] = []
        self.jobs: dict[str, list[dict[str, Any]]] = {}  # job → its events (built messages' bodies + type)
        self.keys: dict[str, str] = {}
        self.subs: dict[tuple[bytes, str], dict[str, Any]] = {}  # (peer, job) → {"inline", "credits", "held"}
        for job, events in (journal or {}).items():
            self.jobs[job] = []
            for kind, body in events:
                self._record(job, kind, body)
        self._commands: queue.Queue[tuple[str, dict]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-engine", daemon=True)
        self._thread.start()

    # -- test-facing ----------------------------------------------------------------------------------------
    def emit(self, job: str, kind: str, **body: Any) -> None:
        """Record a new event of ``job`` and send it to its subscribers (from any thread)."""
        self._commands.put((job, {"type": kind, **body}))

    def send_raw(self, frames: list[bytes]) -> None:
        """Send raw frames to every peer that said hello (to test a client's decoding)."""
        self._commands.put(("", {"raw": frames}))

    def requests(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in list(self.received) if m["type"] == kind]

    def zap_refusals(self) -> int:
        """How many CurveZMQ handshakes the ZAP allow-list refused so far."""
        return self._denied

    def _zap_log(self) -> logging.Logger:
        """A private logger for the ZAP handler that counts its ``DENIED`` lines."""
        self._denied = 0
        engine = self

        class Counter(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.getMessage().startswith("DENIED"):
                    engine._denied += 1

        log = logging.getLogger(f"fake-engine.zap.{id(self)}")
        log.setLevel(logging.DEBUG)
        log.propagate = False
        log.handlers = [Counter()]
        return log

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close(0)
        if self.auth is not None:
            self.auth.stop()
        self.ctx.term()

    # -- engine thread --------------------------------------------------------------------------------------
    def _run(self) -> None:
        peers: set[bytes] = set()
        while not self._stop.is_set():
            if self.sock.poll(20):
                peer, *frames = self.sock.recv_multipart()
                peers.add(peer)
                self._handle(peer, frames)
            while not self._commands.empty():
                job, command = self._commands.get()
                if "raw" in command:
                    for p in peers:
                        self.sock.send_multipart([p, *command["raw"]])
                else:
                    kind = command.pop("type")
                    self._record(job, kind, command)
                    self._publish(job, self.jobs[job][-1])

    def _record(self, job: str, kind: str, body: dict) -> None:
        events = self.jobs.setdefault(job, [])
        events.append({"type": kind, "body": {"seq": len(events) + 1, **body}})

    def _send(self, peer: bytes, kind: str, request_id: str, job: str | None = None,
              payloads: tuple[bytes, ...] = (), **body: Any) -> None:
        message = schema.build(kind, msg_id=request_id, job=job, **body)
        self.sock.send_multipart([peer, *encode(message, payloads)])

    def _publish(self, job: str, event: dict, only: bytes | None = None) -> None:
        for (peer, sub_job), sub in list(self.subs.items()):
            if sub_job == job and (only is None or peer == only):
                self._deliver(peer, job, sub, event)

    def _deliver(self, peer: bytes, job: str, sub: dict, event: dict) -> None:
        body = dict(event["body"])
        if sub["held"]:  # events reach a subscriber in seq order: nothing overtakes a held frame
            sub["held"].append(event)
            return
        if event["type"] == "frame_ready" and body.get("inline"):
            if not sub["inline"]:
                body["inline"] = False
            elif sub["credits"] <= 0:
                sub["held"].append(event)
                return
            else:
                sub["credits"] -= 1
        payloads = (f"EXR{body['frame']}".encode(),) if body.get("inline") else ()
        self._send(peer, event["type"], sub["id"], job, payloads, **body)

    def _handle(self, peer: bytes, frames: list[bytes]) -> None:
        try:
            message, payloads = decode(frames, sender="client")
        except ProtocolError as error:
            self._send(peer, "error", "", None, **wire_fields(error))
            return
        self.received.append(message)
        kind, body, job, rid = message["type"], message["body"], message["job"], message["id"]
        if kind in self.silent:
            return
        if kind == "hello":
            self._send(peer, "welcome", rid, protocol=list(schema.PROTOCOL_VERSION),
                       engine_version="0.0-test", session=self.session, backends={"track": ["mediapipe"]},
                       devices=["cpu"], limits={})
        elif kind == "ping":
            self._send(peer, "pong", rid, time=1.0)
        elif kind == "submit":
            key = body.get("idempotency_key") or rid
            duplicate = key in self.keys
            job = self.keys.setdefault(key, f"j{len(self.keys) + 1}")
            inline = bool(body["spec"]["output"].get("inline"))
            self.subs[(peer, job)] = {"id": rid, "inline": inline, "credits": body.get("credits", 2),
                                      "held": []}
            self._send(peer, "accepted", rid, job, state="queued", duplicate=duplicate)
            if duplicate:
                for event in self.jobs[job]:
                    self._publish(job, event, only=peer)
            else:
                self.jobs[job] = []
                for event_kind, event_body in self.on_submit:
                    self._record(job, event_kind, dict(event_body))
                    self._publish(job, self.jobs[job][-1])
        elif kind in ("watch", "resume", "status", "cancel", "credit") and job not in self.jobs:
            self._send(peer, "error", rid, job, code="unknown_job", message=f"no job {job}", retryable=False)
        elif kind in ("watch", "resume"):
            self.subs[(peer, job)] = {"id": rid, "inline": body.get("inline", False),
                                      "credits": body.get("credits", 2), "held": []}
            events = self.jobs[job]
            self._send(peer, "watching", rid, job, state="running", last_seq=len(events))
            after = body.get("after_seq", len(events) - 1)
            for event in events[after:]:
                self._publish(job, event, only=peer)
        elif kind == "credit":
            sub = self.subs.get((peer, job))
            if sub is not None:
                sub["credits"] += body["n"]
                held, sub["held"] = sub["held"], []
                for index, event in enumerate(held):
                    self._deliver(peer, job, sub, event)
                    if sub["held"]:  # out of credit again: the rest waits behind it
                        sub["held"].extend(held[index + 1:])
                        break
        elif kind == "status":
            events = self.jobs[job]
            self._send(peer, "job_status", rid, job, info={"job": job, "state": "running",
                                                           "last_seq": len(events)})
        elif kind == "list":
            infos = [{"job": j, "state": "running", "last_seq": len(e)} for j, e in self.jobs.items()]
            self._send(peer, "jobs", rid, jobs=infos)
        elif kind == "cancel":
            self._send(peer, "ack", rid, job, state="running")
            self._record(job, "cancelled", {"frames_written": 0})
            self._publish(job, self.jobs[job][-1])
        elif kind == "shutdown":
            self._send(peer, "ack", rid)


@pytest.fixture
def engines() -> Iterator[list[FakeEngine]]:
    """Start fake engines with ``engines.append(FakeEngine(...))``; all are stopped at the end."""
    started: list[FakeEngine] = []
    yield started
    for engine in started:
        if engine._thread.is_alive():
            engine.stop()


@pytest.fixture
def engine(engines: list[FakeEngine]) -> FakeEngine:
    engines.append(FakeEngine())
    return engines[0]


SPEC = {"plate": "/shows/abc/sh010/plate.####.exr", "emotion": "happy", "intensity": 0.8,
        "output": {"pattern": "/shows/abc/sh010/out/ned.####.exr"}}
"""A minimal valid JobSpec."""
