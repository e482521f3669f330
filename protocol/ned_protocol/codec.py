"""Framing: a message and its binary payloads ⇄ the frames of one ZeroMQ multipart message.

Layout (what a DEALER sends and receives; a ROUTER sees the peer's routing id as an extra first frame,
which the engine strips before ``decode`` and puts back before sending)::

    frame 0      msgpack map {"v": [1, 0], "type": ..., "id": ..., "job": ..., "body": {...}}
    frame 1..n   binary payloads (EXR file bytes), as many as the message type says, never inside the map

``decode`` is bounded and total: frame count and sizes are checked before unpacking, msgpack's own
limits cap every string, array and map, bin and ext types are refused, duplicate map keys are refused,
and the result is validated against the schema. Whatever the input, it returns or raises a
``ProtocolError`` (``invalid_message`` or ``unsupported_version``); nothing else escapes to kill a
socket loop. No pickle, ever.

Imports msgpack and ``ned_protocol``'s schema and errors; not zmq (frames are plain bytes here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack

from ned_protocol.errors import InvalidMessageError, ProtocolError, UnsupportedVersionError
from ned_protocol.fields import short
from ned_protocol.schema import LIMITS, validate

_MAP_MARKERS = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF}  # fixmap, map16, map32
_UTF8_MAX = 4  # bytes per character: msgpack limits strings in bytes, the schema in characters


def encode(message: dict[str, Any], payloads: Sequence[Any] = ()) -> list[Any]:
    """The frames of ``message`` (from ``schema.build``) followed by its ``payloads``.

    Payloads are passed through untouched (any bytes-like object) so large EXRs are not copied.

    Raises
    ------
    InvalidMessageError
        The message or its payloads are outside the schema, or the packed map is too large.
    """
    validate(message, payloads)
    packed = msgpack.packb(message, use_bin_type=True)
    if len(packed) > LIMITS["max_message_bytes"]:
        raise InvalidMessageError(f"{message['type']}: the packed map is {len(packed)} bytes; at most "
                                  f"{LIMITS['max_message_bytes']}")
    return [packed, *payloads]


def decode(frames: Sequence[Any], *, sender: str | None = None) -> tuple[dict[str, Any], list[bytes]]:
    """The message and payloads of one multipart message, validated.

    Parameters
    ----------
    frames
        The frames as received (bytes-like objects), without the ROUTER's routing id.
    sender
        "client" on the engine (accept requests only), "engine" on a client (replies and events only),
        or None for either.

    Raises
    ------
    UnsupportedVersionError
        The message is from another major protocol version (its text includes the peer's error
        message when the peer sent a refusal).
    InvalidMessageError
        Anything else that is not a valid message.
    """
    try:
        return _decode(frames, sender)
    except ProtocolError:
        raise
    except Exception as error:  # noqa: BLE001 - msgpack raises many types on hostile input; none may escape
        raise InvalidMessageError(f"undecodable message ({type(error).__name__}: {short(str(error), 80)})"
                                  ) from None


def _decode(frames: Sequence[Any], sender: str | None) -> tuple[dict[str, Any], list[bytes]]:
    if not isinstance(frames, (list, tuple)) or not frames:
        raise InvalidMessageError("a message needs at least one frame (the msgpack map)")
    if len(frames) - 1 > LIMITS["max_payloads"]:
        raise InvalidMessageError(f"{len(frames) - 1} payload frames; at most {LIMITS['max_payloads']}")
    head = bytes(memoryview(frames[0]))
    if len(head) > LIMITS["max_message_bytes"]:
        raise InvalidMessageError(
            f"the map frame is {len(head)} bytes; at most {LIMITS['max_message_bytes']}")
    if not head or head[0] not in _MAP_MARKERS:
        raise InvalidMessageError("the first frame is not a msgpack map")
    message = msgpack.unpackb(
        head, raw=False, strict_map_key=True, use_list=True, object_pairs_hook=_unique_keys,
        ext_hook=_no_ext, max_str_len=LIMITS["max_string"] * _UTF8_MAX, max_bin_len=0, max_ext_len=0,
        max_array_len=LIMITS["max_array"], max_map_len=LIMITS["max_map"])
    payloads = [p if isinstance(p, bytes) else bytes(memoryview(p)) for p in frames[1:]]
    try:
        validate(message, payloads, sender=sender)
    except UnsupportedVersionError as error:
        raise UnsupportedVersionError(error.message + _refusal(message), field="v") from None
    return message, payloads


def _unique_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    # msgpack keeps the last of duplicate keys; a validator and a handler could then see different
    # values, so duplicates are refused outright.
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[Any] = set()
        repeat = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise InvalidMessageError(f"duplicate map key {short(repeat)}")
    return out


def _no_ext(code: int, data: bytes) -> Any:
    raise InvalidMessageError(f"msgpack ext type {code} is not allowed")


def _refusal(message: dict[str, Any]) -> str:
    """The peer's own words when its other-version message is an ``error`` (the envelope's ``type`` and
    the error's ``message`` are frozen across major versions so that refusals stay readable)."""
    body = message.get("body")
    if message.get("type") == "error" and isinstance(body, dict) and isinstance(body.get("message"), str):
        return f"; the peer said: {body['message'][:300]}"
    return ""


__all__ = ["decode", "encode"]
