"""errors: stable codes, wire round trip through from_code / wire_fields."""

from __future__ import annotations

import pytest
from ned_protocol import errors, schema


def test_codes_are_unique_and_stable() -> None:
    assert len(errors.CODES) == len(errors.ALL_ERRORS)
    assert errors.CODES[:12] == (
        "internal", "input_not_found", "frame_range", "corrupt_image", "invalid_option", "unknown_backend",
        "missing_model", "corrupt_model", "missing_dependency", "no_face", "output_error", "cancelled")
    assert set(errors.CODES[12:]) == {
        "invalid_message", "unsupported_version", "unknown_job", "forbidden_path", "limit_exceeded",
        "unauthorized", "busy", "timeout", "disconnected"}
    for cls in errors.ALL_ERRORS:
        assert issubclass(cls, errors.NedError)
        assert cls is errors.NedError or cls.__name__.endswith("Error")
        if cls.code in errors.CODES[12:]:
            assert issubclass(cls, errors.ProtocolError)


@pytest.mark.parametrize("cls", errors.ALL_ERRORS)
def test_from_code_gives_the_class_back(cls: type[errors.NedError]) -> None:
    error = errors.from_code(cls.code, "it broke", path="/a/b.exr", frame=1004, field="spec.plate")
    assert type(error) is cls and error.code == cls.code and error.retryable == cls.retryable
    where = (error.message, error.path, error.frame, error.field)
    assert where == ("it broke", "/a/b.exr", 1004, "spec.plate")


def test_builtin_families() -> None:
    assert isinstance(errors.RequestTimeoutError("x"), TimeoutError)
    assert isinstance(errors.DisconnectedError("x"), ConnectionError)


def test_unknown_codes_survive() -> None:
    error = errors.from_code("gpu_on_fire", "too hot", retryable=True)
    assert type(error) is errors.NedError and error.code == "gpu_on_fire" and error.retryable
    assert errors.NedError.code == "internal" and errors.NedError.retryable is False  # class untouched


def test_wire_fields_builds_a_valid_error_body() -> None:
    error = errors.ForbiddenPathError("/etc/passwd is outside the allowed roots", path="/etc/passwd",
                                      field="spec.plate")
    body = errors.wire_fields(error)
    assert body == {"code": "forbidden_path", "message": "/etc/passwd is outside the allowed roots",
                    "retryable": False, "path": "/etc/passwd", "field": "spec.plate"}
    schema.build("error", msg_id="r1", **body)
    back = errors.from_code(**body)
    assert isinstance(back, errors.ForbiddenPathError) and back.path == "/etc/passwd"


def test_wire_fields_of_foreign_and_oversized_errors() -> None:
    class Foreign(Exception):
        code = "no_face"
        retryable = False
        message = "no face in 96 frames"
        path, frame, field = "/p.####.exr", True, None  # a bool is not a frame number

    assert errors.wire_fields(Foreign()) == {"code": "no_face", "message": "no face in 96 frames",
                                             "retryable": False, "path": "/p.####.exr"}
    body = errors.wire_fields(ValueError("x" * 10_000))
    assert body["code"] == "internal" and len(body["message"]) == errors.MAX_TEXT
    schema.build("failed", msg_id="r", job="j1", seq=1, **body)


def test_one_line_names_what_is_at_fault() -> None:
    error = errors.CorruptImageError("cannot decode", path="/p.1017.exr", frame=1017)
    assert error.one_line() == "corrupt_image: cannot decode (file /p.1017.exr, frame 1017)"
    assert errors.InvalidMessageError("spec.plate is required", field="spec.plate").one_line() == \
        "invalid_message: spec.plate is required"
