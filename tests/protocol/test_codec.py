"""codec: framing round trips, and decoding is total — any input is a message or a ProtocolError."""

from __future__ import annotations

import copy
import os
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ned_protocol import schema
from ned_protocol.codec import decode, encode
from ned_protocol.errors import InvalidMessageError, ProtocolError
from ned_protocol.examples import example_message

OK_CODES = {"invalid_message", "unsupported_version"}
NAMES = list(schema.MESSAGES)
# NED_FUZZ_EXAMPLES=20000 for a long soak; the default keeps the file a few seconds long
FUZZ = settings(max_examples=int(os.environ.get("NED_FUZZ_EXAMPLES", "300")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def decode_or_refuse(frames: Any) -> None:
    """Decoding either yields a valid message or raises ProtocolError with an allowed code."""
    try:
        message, payloads = decode(frames)
    except ProtocolError as error:
        assert error.code in OK_CODES
        assert isinstance(error.message, str) and len(error.message) < 2000
        return
    schema.validate(message, payloads)


def packed_example(name: str) -> tuple[dict, list[bytes]]:
    message, payloads = example_message(name)
    return message, payloads


# -- framing ---------------------------------------------------------------------------------------------
def test_layout_is_the_map_then_the_payloads() -> None:
    message, payloads = packed_example("frame_ready")
    frames = encode(message, payloads)
    assert len(frames) == 2 and frames[1] is payloads[0]  # payloads are passed through, not copied
    assert msgpack.unpackb(frames[0]) == message


def test_payloads_may_be_any_bytes_like() -> None:
    message, _ = packed_example("frame_ready")
    frames = encode(message, [memoryview(b"EXR!")])
    decoded, payloads = decode([bytearray(frames[0]), memoryview(b"EXR!")])
    assert payloads == [b"EXR!"] and decoded == message


def test_encode_refuses_a_map_over_the_size_limit() -> None:
    spec = {"plate": "/p.####.exr", "output": {"pattern": "/o.####.exr"},
            "keys": [{"frame": f, "weights": {e: 0.5 for e in schema.EMOTIONS}} for f in range(10_000)],
            "label": "x"}
    message = schema.build("submit", spec=spec)
    with pytest.raises(InvalidMessageError, match="packed map is"):
        encode(message)


@pytest.mark.parametrize(("frames", "match"), [
    ([], "at least one frame"),
    ([b""], "not a msgpack map"),
    ([msgpack.packb([1, 2])], "not a msgpack map"),
    ([b"\x81\xa1v" + b"\x91" * 5000 + b"\xc0"], "undecodable"),
    ([b"\xdf\xff\xff\xff\xff"], "undecodable"),
    ([b"\x82\xa1a\x01\xa1a\x02"], "duplicate map key"),
    ([b"\x81\xa1a\xd4\x05\x00"], "undecodable|ext type"),
    ([b"\x81\xa1a\xc4\x01x"], "undecodable"),
    ([b"\x81\xa1a\xa2\xff\xfe"], "undecodable"),
    ([b"\x81\x01\x02"], "undecodable"),
    ([msgpack.packb({"a": 1}) + b"\x00"], "undecodable"),
    ([b"\x80"] + [b""] * 1001, "payload frames"),
    ([b"\x80" + b"\x00" * (1 << 20)], "map frame is"),
    ([b"\x81\xa1a\xdd\x00\x01\x86\xa1"], "undecodable"),
])
def test_hostile_frames_are_invalid_messages(frames: list[bytes], match: str) -> None:
    with pytest.raises(InvalidMessageError, match=match):
        decode(frames)


def test_unknown_fields_are_rejected_not_ignored() -> None:
    message, _ = packed_example("hello")
    message["body"]["colour"] = "red"
    with pytest.raises(InvalidMessageError, match="unknown field 'colour'") as caught:
        decode([msgpack.packb(message)])
    assert caught.value.field == "colour"


def test_a_refusal_from_another_major_version_is_readable() -> None:
    refusal = {"v": [3, 1], "type": "error", "id": "", "job": None,
               "body": {"code": "unsupported_version", "message": "this engine speaks 3.x", "new": 1}}
    said = "speaks protocol 3.1.*the peer said: this engine speaks 3.x"
    with pytest.raises(ProtocolError, match=said) as e:
        decode([msgpack.packb(refusal)])
    assert e.value.code == "unsupported_version"


def test_direction_filter() -> None:
    message, _ = packed_example("accepted")
    with pytest.raises(InvalidMessageError, match="sent by the engine"):
        decode(encode(message), sender="client")


# -- fuzzing ---------------------------------------------------------------------------------------------
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                    st.binary(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.one_of(st.text(max_size=10), st.binary(max_size=5)),
                                                 inner, max_size=5)), max_leaves=30)


@FUZZ
@given(st.binary(max_size=512))
def test_fuzz_random_bytes(data: bytes) -> None:
    decode_or_refuse([data])


@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=6))
def test_fuzz_random_frames(frames: list[bytes]) -> None:
    decode_or_refuse(frames)


@FUZZ
@given(values)
def test_fuzz_random_msgpack_values(value: Any) -> None:
    decode_or_refuse([msgpack.packb(value, use_bin_type=True)])


@FUZZ
@given(st.sampled_from(NAMES), st.data())
def test_fuzz_truncated_and_corrupted_messages(name: str, data: st.DataObject) -> None:
    message, payloads = packed_example(name)
    frames = encode(message, payloads)
    head = bytearray(frames[0])
    cut = data.draw(st.integers(min_value=0, max_value=len(head)))
    decode_or_refuse([bytes(head[:cut]), *frames[1:]])
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        head[data.draw(st.integers(min_value=0, max_value=len(head) - 1))] = data.draw(st.integers(0, 255))
    decode_or_refuse([bytes(head), *frames[1:]])
    extra = data.draw(st.lists(st.binary(max_size=16), max_size=3))
    decode_or_refuse([frames[0], *extra])


def _paths(value: Any, path: tuple = ()) -> list[tuple]:
    """Every (key/index path) inside a decoded message."""
    out = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*path, index))
    return out


@FUZZ
@given(st.sampled_from(NAMES), st.data())
def test_fuzz_structural_mutations(name: str, data: st.DataObject) -> None:
    """Replace any value, add an unknown field, or drop a key: always a clean refusal or a valid message."""
    message, payloads = packed_example(name)
    mutated = copy.deepcopy(message)
    path = data.draw(st.sampled_from(_paths(mutated)[1:]))
    parent = mutated
    for step in path[:-1]:
        parent = parent[step]
    action = data.draw(st.sampled_from(["replace", "add", "drop"]))
    if action == "replace":
        parent[path[-1]] = data.draw(values)
    elif action == "add" and isinstance(parent, dict):
        parent[data.draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in parent))] = 1
    elif isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent.pop(path[-1])
    decode_or_refuse([msgpack.packb(mutated, use_bin_type=True), *payloads])


@FUZZ
@given(st.sampled_from(NAMES), st.integers(0, 65535), st.integers(0, 65535))
def test_fuzz_versions(name: str, major: int, minor: int) -> None:
    message, payloads = packed_example(name)
    message["v"] = [major, minor]
    frames = [msgpack.packb(message), *payloads]
    if major != schema.PROTOCOL_VERSION[0]:
        with pytest.raises(ProtocolError) as caught:
            decode(frames)
        assert caught.value.code == "unsupported_version"
    elif minor >= schema.PROTOCOL_VERSION[1]:
        assert decode(frames)[0]["v"] == [major, minor]
    else:
        # An older minor is accepted unless the example uses what came after it (e.g. a 1.2 field).
        try:
            assert decode(frames)[0]["v"] == [major, minor]
        except ProtocolError as error:
            assert error.code == "invalid_message" and "is new in protocol" in str(error)


@FUZZ
@given(st.sampled_from(NAMES), st.text(min_size=1, max_size=12))
def test_fuzz_unknown_body_fields(name: str, key: str) -> None:
    message, payloads = packed_example(name)
    if key in schema.MESSAGES[name].body.fields:
        return
    message["body"][key] = 0
    with pytest.raises(ProtocolError) as caught:
        decode([msgpack.packb(message), *payloads])
    assert caught.value.code == "invalid_message"
