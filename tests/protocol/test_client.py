"""Client against a real ZeroMQ ROUTER (the fake engine in conftest) on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
from ned_protocol import Client, Event, keys
from ned_protocol.errors import (
    DisconnectedError,
    InvalidMessageError,
    InvalidOptionError,
    RequestTimeoutError,
    UnauthorizedError,
    UnknownJobError,
    UnsupportedVersionError,
)

from .conftest import SPEC, FakeEngine

WAIT = 5.0  # generous upper bound for anything that should happen "soon"


def eventually(predicate: Callable[[], bool], within: float = WAIT) -> bool:
    """Poll ``predicate`` until it holds or ``within`` seconds pass (for effects of other threads)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def client_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ned-protocol")]


def test_hello_returns_the_welcome(engine: FakeEngine) -> None:
    with Client(engine.address, timeout=WAIT, client_name="test/1") as client:
        welcome = client.hello()
        assert welcome["session"] == "s1"
        assert welcome["devices"] == ["cpu"]
        assert client.welcome is not None and client.connected
        hellos = engine.requests("hello")
        assert hellos and hellos[-1]["body"]["client"] == "test/1"
        assert client.ping() >= 0


def test_job_events_arrive_in_order_through_the_iterator(engine: FakeEngine) -> None:
    with Client(engine.address, timeout=WAIT) as client:
        job = client.submit(SPEC, idempotency_key="sh010-v1")
        events = list(client.events(job, timeout=WAIT))
    assert [e.type for e in events] == ["progress", "frame_ready", "done"]
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[-1].terminal and all(e.job == job for e in events)
    assert events[1].body["path"] == "/tmp/out.1001.exr" and events[1].payload is None


def test_events_reach_a_callback_on_another_thread(engine: FakeEngine) -> None:
    seen: list[tuple[Event, str]] = []
    finished = threading.Event()

    def callback(event: Event) -> None:
        seen.append((event, threading.current_thread().name))
        if event.terminal:
            finished.set()

    with Client(engine.address, timeout=WAIT) as client:
        client.on_event(callback)
        job = client.submit(SPEC)
        assert finished.wait(WAIT)
        assert list(client.events(timeout=0)) == []  # callbacks took them all
    assert [e.type for e, _ in seen] == ["progress", "frame_ready", "done"]
    assert all(e.job == job for e, _ in seen)
    assert all(name.startswith("ned-protocol-events") for _, name in seen)


def test_a_failing_callback_does_not_stop_delivery(engine: FakeEngine) -> None:
    finished = threading.Event()

    def broken(event: Event) -> None:
        raise RuntimeError("user bug")

    with Client(engine.address, timeout=WAIT) as client:
        client.on_event(broken)
        client.on_event(lambda e: finished.set() if e.terminal else None)
        client.submit(SPEC)
        assert finished.wait(WAIT)


def test_inline_frames_are_paced_by_credits(engines: list[FakeEngine]) -> None:
    frames = [1001, 1002, 1003, 1004]
    script = [("frame_ready", {"frame": f, "path": None, "inline": True}) for f in frames]
    engine = FakeEngine(on_submit=[*script, ("done", {"frames_written": 4})])
    engines.append(engine)
    spec = dict(SPEC, output={"inline": True})
    with Client(engine.address, timeout=WAIT) as client:
        job = client.submit(spec, credits=1)
        events = list(client.events(job, timeout=WAIT))
    inline = [e for e in events if e.type == "frame_ready"]
    assert [e.body["frame"] for e in inline] == frames
    assert [e.payload for e in inline] == [f"EXR{f}".encode() for f in frames]
    assert len(engine.requests("credit")) >= len(frames) - 1  # each frame taken gave one credit back


def test_a_request_without_reply_times_out(engines: list[FakeEngine]) -> None:
    engine = FakeEngine(silent=("status",))
    engines.append(engine)
    with Client(engine.address, timeout=WAIT) as client:
        job = client.submit(SPEC)
        with pytest.raises(RequestTimeoutError) as caught:
            client.status(job, timeout=0.2)
        assert isinstance(caught.value, TimeoutError) and caught.value.retryable
        assert client.ping() >= 0  # the connection is still fine


def test_no_engine_at_all_times_out() -> None:
    with Client("tcp://127.0.0.1:9", timeout=0.2, heartbeat=0.05) as client:
        with pytest.raises(RequestTimeoutError):
            client.hello()


def test_engine_errors_come_back_as_exceptions(engine: FakeEngine) -> None:
    with Client(engine.address, timeout=WAIT) as client:
        with pytest.raises(UnknownJobError, match="no job nope"):
            client.status("nope")
        with pytest.raises(UnknownJobError):
            client.events("never-submitted")
        with pytest.raises(InvalidMessageError) as caught:  # checked before anything is sent
            client.submit(dict(SPEC, emotion="glee"))
        assert caught.value.field == "spec.emotion"


def test_status_list_cancel_watch_and_shutdown(engine: FakeEngine) -> None:
    with Client(engine.address, timeout=WAIT) as client:
        job = client.submit(SPEC)
        assert client.status(job)["job"] == job
        assert [info["job"] for info in client.list_jobs(states=["running"])] == [job]
        assert list(client.events(job, timeout=WAIT))[-1].type == "done"
        other = Client(engine.address, timeout=WAIT)
        try:
            watching = other.watch(job)
            assert watching["last_seq"] == 3
            assert [e.type for e in other.events(job, timeout=WAIT)] == ["done"]  # newest kept event
        finally:
            other.close()
        assert client.cancel(job) == "running"
        client.shutdown(token="t0k3n", drain=True)
    assert engine.requests("shutdown")[0]["body"] == {"token": "t0k3n", "drain": True}


def test_the_same_idempotency_key_gives_the_same_job(engine: FakeEngine) -> None:
    with Client(engine.address, timeout=WAIT) as client:
        first = client.submit(SPEC, idempotency_key="node1-v7")
        second = client.submit(SPEC, idempotency_key="node1-v7")
        assert first == second
        events = list(client.events(first, timeout=WAIT))
    assert [e.seq for e in events] == [1, 2, 3]  # the duplicate's replay was dropped by seq


def test_reconnect_after_engine_restart_resumes_jobs(engines: list[FakeEngine]) -> None:
    first = FakeEngine(on_submit=[("progress", {"stage": "analyze", "frame": 1001, "done": 1, "total": 2})])
    engines.append(first)
    with Client(first.address, timeout=WAIT, heartbeat=0.1) as client:
        job = client.submit(SPEC)
        assert next(client.events(job, timeout=WAIT)).seq == 1
        port = first.port
        first.stop()

        # a request made while the engine is down is re-sent once it is back
        answer: dict = {}
        waiting = threading.Thread(target=lambda: answer.update(client.status(job, timeout=WAIT)))
        waiting.start()

        journal = {job: [("progress", {"stage": "analyze", "frame": 1001, "done": 1, "total": 2}),
                         ("progress", {"stage": "render", "frame": 1001, "done": 1, "total": 2}),
                         ("done", {"frames_written": 2})]}
        second = FakeEngine(port, journal=journal, session="s2")
        engines.append(second)
        events = list(client.events(job, timeout=WAIT))
        waiting.join(WAIT)
        assert [(e.type, e.seq) for e in events] == [("progress", 2), ("done", 3)]
        assert answer["job"] == job
        assert client.welcome["session"] == "s2"
        resumes = second.requests("resume")
        assert resumes and resumes[0]["job"] == job and resumes[0]["body"]["after_seq"] == 1
        assert second.received[0]["type"] == "hello"  # a fresh engine hears hello first


def test_a_job_the_restarted_engine_lost_ends_with_a_local_failure(engines: list[FakeEngine]) -> None:
    first = FakeEngine(on_submit=[("progress", {"stage": "queued", "done": 0, "total": 2})])
    engines.append(first)
    with Client(first.address, timeout=WAIT, heartbeat=0.1) as client:
        job = client.submit(SPEC)
        next(client.events(job, timeout=WAIT))
        port = first.port
        first.stop()
        engines.append(FakeEngine(port))  # knows no jobs
        events = list(client.events(job, timeout=WAIT))
    assert [(e.type, e.local, e.body["code"]) for e in events] == [("failed", True, "unknown_job")]
    assert isinstance(events[0].error(), UnknownJobError)


def test_another_major_version_is_refused_clearly(engine: FakeEngine) -> None:
    with Client(engine.address, timeout=WAIT) as client:
        client.hello()
        refusal = {"v": [2, 0], "type": "error", "id": "", "job": None,
                   "body": {"code": "unsupported_version", "message": "engine speaks 2.0 only"}}
        engine.send_raw([msgpack.packb(refusal)])
        with pytest.raises(UnsupportedVersionError, match="engine speaks 2.0 only"):
            for _ in client.events(timeout=WAIT):
                pass
        with pytest.raises(UnsupportedVersionError, match="major versions must match"):
            client.ping()


def test_garbage_from_the_engine_is_dropped_not_fatal(engine: FakeEngine) -> None:
    with Client(engine.address, timeout=WAIT) as client:
        client.hello()
        engine.send_raw([b"\xc1 not msgpack"])
        engine.send_raw([msgpack.packb({"v": [1, 0], "type": "pong", "id": "x", "job": None,
                                        "body": {"surprise": 1}})])
        assert eventually(lambda: client.invalid_messages == 2)
        assert client.ping() >= 0


def test_close_stops_every_thread_and_fails_later_calls(engine: FakeEngine) -> None:
    before = set(client_threads())
    client = Client(engine.address, timeout=WAIT)
    client.on_event(lambda event: None)
    client.hello()
    assert len(set(client_threads()) - before) == 2  # the socket thread and the callback thread
    client.close()
    client.close()  # twice is fine
    assert set(client_threads()) - before == set()
    with pytest.raises(DisconnectedError):
        client.ping()
    with pytest.raises(DisconnectedError):
        client.events()


def test_close_ends_a_waiting_iterator(engine: FakeEngine) -> None:
    client = Client(engine.address, timeout=WAIT)
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(client.events(timeout=None)))
    reader.start()
    client.hello()
    client.close()
    reader.join(WAIT)
    assert not reader.is_alive() and got == []


def test_bad_client_settings_are_refused_at_once() -> None:
    with pytest.raises(InvalidOptionError, match="cannot connect"):
        Client("not-an-endpoint")
    with pytest.raises(InvalidOptionError, match="40 Z85"):
        Client("tcp://127.0.0.1:9", curve_server_key=b"short")
    with pytest.raises(InvalidOptionError, match="positive"):
        Client("tcp://127.0.0.1:9", timeout=0)
    with pytest.raises(InvalidMessageError) as caught:
        Client("tcp://127.0.0.1:9", client_name="")
    assert caught.value.field == "client"
    assert client_threads() == []


def test_curve_allow_list(engines: list[FakeEngine], tmp_path: Path) -> None:
    server_public, _ = keys.create_keypair(tmp_path / "server", "engine")
    allowed_public, allowed_secret = keys.create_keypair(tmp_path / "clients", "nuke-ws01")
    keys.create_keypair(tmp_path / "stranger", "other")
    server_pair = keys.load_keypair(tmp_path / "server" / "engine.key_secret")
    engine = FakeEngine(curve=(*server_pair, str(tmp_path / "clients")))
    engines.append(engine)
    server_key = keys.load_public_key(server_public)
    with Client(engine.address, timeout=WAIT, curve_server_key=server_key,
                curve_keypair=keys.load_keypair(allowed_secret)) as client:
        assert client.hello()["session"] == "s1"
    stranger = keys.load_keypair(tmp_path / "stranger" / "other.key_secret")
    # a refused key is final: it says so at once (well within the timeout), never as a timeout
    with Client(engine.address, timeout=WAIT, heartbeat=0.1, curve_server_key=server_key,
                curve_keypair=stranger) as client:
        with pytest.raises(UnauthorizedError, match="refused this client's CurveZMQ key") as caught:
            client.hello()
        assert caught.value.code == "unauthorized"
        with pytest.raises(UnauthorizedError):
            client.ping()  # later calls too, without another round of handshakes
        with pytest.raises(UnauthorizedError):
            client.events()
        refusals = engine.zap_refusals()
        time.sleep(1.0)  # several heartbeats: a client that reconnected would be refused again
        assert engine.zap_refusals() == refusals == 1


def test_a_refused_key_ends_a_waiting_iterator(engines: list[FakeEngine], tmp_path: Path) -> None:
    server_public, _ = keys.create_keypair(tmp_path / "server", "engine")
    keys.create_keypair(tmp_path / "clients", "allowed")
    engine = FakeEngine(curve=(*keys.load_keypair(tmp_path / "server" / "engine.key_secret"),
                               str(tmp_path / "clients")))
    engines.append(engine)
    with Client(engine.address, timeout=WAIT, heartbeat=0.1,
                curve_server_key=keys.load_public_key(server_public)) as client:  # ephemeral: not allowed
        with pytest.raises(UnauthorizedError):
            for _ in client.events(timeout=WAIT):
                pass


def test_a_plain_client_of_a_curve_engine_is_told_why(engines: list[FakeEngine], tmp_path: Path) -> None:
    keys.create_keypair(tmp_path / "server", "engine")
    engine = FakeEngine(curve=(*keys.load_keypair(tmp_path / "server" / "engine.key_secret"),
                               str(tmp_path / "server")))
    engines.append(engine)
    with Client(engine.address, timeout=WAIT) as client:
        with pytest.raises(UnauthorizedError, match="CurveZMQ"):  # "requires", or after 3 hang-ups "require"
            client.ping()


def test_a_wrong_engine_key_is_refused_after_a_few_handshakes(engines: list[FakeEngine], tmp_path: Path) -> None:
    keys.create_keypair(tmp_path / "server", "engine")
    impostor, _ = keys.create_keypair(tmp_path / "other", "impostor")
    engine = FakeEngine(curve=(*keys.load_keypair(tmp_path / "server" / "engine.key_secret"),
                               str(tmp_path / "server")))
    engines.append(engine)
    with Client(engine.address, timeout=WAIT, curve_server_key=keys.load_public_key(impostor)) as client:
        with pytest.raises(UnauthorizedError, match="engine's public key"):
            client.ping()
