"""Hostile and broken input to a live engine: every message gets an ``error`` reply (or, for a frame over
ZeroMQ's size limit, a dropped connection), and the engine keeps serving everyone else."""

from __future__ import annotations

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ned_protocol.codec import decode, encode
from ned_protocol.schema import PROTOCOL_VERSION, build

from .helpers import EngineProcess

INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what msgpack can carry


class Raw:
    """A bare DEALER socket: sends any frames, reads one reply."""

    def __init__(self, address: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(address)

    def ask(self, frames: list[bytes], timeout: float = 5.0) -> dict | None:
        self.sock.send_multipart(frames)
        if not self.sock.poll(int(timeout * 1000)):
            return None
        message, _ = decode(self.sock.recv_multipart(), sender="engine")
        return message

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture(scope="module")
def raw(engine):
    socket = Raw(engine.address)
    yield socket
    socket.close()


def _ping(message_id: str = "p1") -> list[bytes]:
    return encode(build("ping", msg_id=message_id))


def _packed(message: dict) -> list[bytes]:
    return [msgpack.packb(message, use_bin_type=True)]


def _alive(engine) -> None:
    with engine.client(timeout=5.0) as client:
        assert client.ping() > 0


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_random_bytes_get_an_error(raw, frames):
    reply = raw.ask(frames)
    assert reply is not None and reply["type"] == "error"
    assert reply["body"]["code"] in ("invalid_message", "unsupported_version")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["v", "type", "id", "job", "body", "extra"]),
                       st.one_of(st.none(), INTS, st.text(max_size=20), st.lists(INTS, max_size=3),
                                 st.dictionaries(st.text(max_size=8), INTS, max_size=3)), max_size=6))
def test_random_maps_get_an_error(raw, message):
    reply = raw.ask(_packed(message))
    assert reply is not None and reply["type"] == "error"


def test_truncated_messages(raw, engine):
    whole = encode(build("submit", spec={"plate": "/x/p.####.exr", "emotion": "happy",
                                          "output": {"pattern": "/x/o.####.exr"}}))[0]
    for cut in range(1, len(whole), 7):
        reply = raw.ask([whole[:cut]])
        assert reply is not None and reply["body"]["code"] == "invalid_message"
    _alive(engine)


def test_wrong_version_is_refused_with_both_versions_named(raw):
    message = build("ping", msg_id="v2")
    message["v"] = [2, 0]
    reply = raw.ask(_packed(message))
    ours = PROTOCOL_VERSION  # the engine answers at its own version and names it
    assert reply["body"]["code"] == "unsupported_version" and reply["v"] == list(ours)
    assert "2.0" in reply["body"]["message"] and f"{ours[0]}.{ours[1]}" in reply["body"]["message"]
    assert reply["id"] == "v2"


def test_errors_name_the_request_and_the_field(raw):
    message = build("status", msg_id="s1", job="j-1")
    message["body"] = {"verbose": True}
    reply = raw.ask(_packed(message))
    assert reply["id"] == "s1" and reply["job"] == "j-1"
    assert reply["body"]["code"] == "invalid_message" and reply["body"]["field"] == "verbose"
    message = build("ping", msg_id="t1")
    message["type"] = "welcome"  # an engine's message, sent by a client
    assert raw.ask(_packed(message))["body"]["code"] == "invalid_message"
    assert raw.ask(_ping("x1") + [b"unexpected payload"])["body"]["field"] == "payloads"


def test_oversized_map_is_refused(raw, engine):
    message = build("ping", msg_id="big")
    message["body"] = {"pad": "x" * (1 << 20)}
    reply = raw.ask(_packed(message))
    assert reply["body"]["code"] == "invalid_message" and "bytes" in reply["body"]["message"]
    _alive(engine)


def test_a_frame_over_the_size_limit_drops_only_that_connection(tmp_path):
    process = EngineProcess(tmp_path, "--max-payload-mb", "1")
    try:
        hostile = Raw(process.address)
        assert hostile.ask(_ping())["type"] == "pong"
        assert hostile.ask(_ping("y") + [b"\0" * (2 << 20)], timeout=1.0) is None  # ZeroMQ cut it off
        _alive(process)
        hostile.close()
    finally:
        assert process.stop() == 0


def test_engine_still_answers_after_the_abuse(raw, engine):
    assert raw.ask(_ping("after"))["type"] == "pong"
    _alive(engine)
