"""schema: every message round-trips; bodies outside the schema are refused with the field path."""

from __future__ import annotations

import copy

import pytest
from ned_protocol import schema
from ned_protocol.codec import decode, encode
from ned_protocol.errors import CODES, InvalidMessageError, InvalidOptionError, UnsupportedVersionError
from ned_protocol.examples import EXAMPLES, example_message
from ned_protocol.fields import Field, Int, Struct

from .conftest import SPEC


def test_every_message_type_has_an_example() -> None:
    assert set(EXAMPLES) == set(schema.MESSAGES)


@pytest.mark.parametrize("name", list(schema.MESSAGES))
def test_round_trip(name: str) -> None:
    message, payloads = example_message(name)
    frames = encode(message, payloads)
    decoded, decoded_payloads = decode(frames, sender=schema.MESSAGES[name].sender)
    assert decoded == message and decoded_payloads == payloads
    schema.validate(decoded, decoded_payloads)


def test_requests_get_ids_and_replies_need_them() -> None:
    a, b = schema.build("ping"), schema.build("ping")
    assert a["id"] != b["id"] and a["job"] is None and a["v"] == list(schema.PROTOCOL_VERSION)
    with pytest.raises(InvalidMessageError, match="pass msg_id"):
        schema.build("pong")
    with pytest.raises(InvalidMessageError, match="unknown message type"):
        schema.build("explode")


def test_direction_is_checked() -> None:
    message, _ = example_message("welcome")
    with pytest.raises(InvalidMessageError, match="sent by the engine"):
        schema.validate(message, sender="client")
    request, _ = example_message("submit")
    with pytest.raises(InvalidMessageError, match="sent by the client"):
        schema.validate(request, sender="engine")


@pytest.mark.parametrize(("change", "field"), [
    ({"emotion": "glee"}, "spec.emotion"),
    ({"intensity": 11}, "spec.intensity"),
    ({"emotion": None, "keys": []}, "spec.keys"),
    ({"mouth_preservation": float("nan")}, "spec.mouth_preservation"),
    ({"frame_range": [1010, 1001]}, "spec.frame_range"),
    ({"frame_range": [1, 200_001]}, "spec.frame_range"),
    ({"frame_range": [1001]}, "spec.frame_range"),
    ({"face": {"point": [1, 2], "box": [0, 0, 5, 5]}}, "spec.face.box"),
    ({"face": {"box": [5, 0, 1, 5]}}, "spec.face.box"),
    ({"output": {}}, "spec.output.pattern"),
    ({"output": {"pattern": "/o.####.exr", "compression": "zipp"}}, "spec.output.compression"),
    ({"plate": "/a\x00b"}, "spec.plate"),
    ({"plate": "x" * 4097}, "spec.plate"),
    ({"plate_frames": [1001]}, "spec.plate"),
    ({"plate_format": "exr"}, "spec.plate_format"),
    ({"interpolation": "linear"}, "spec.interpolation"),
    ({"backends": {"render": "Warp!"}}, "spec.backends.render"),
    ({"backends": {"options": {"render": {"feather": {"deep": 1}}}}}, "spec.backends.options.render.feather"),
    ({"priority": True}, "spec.priority"),
    ({"colour": "ACEScg"}, "spec.colour"),
])
def test_bad_job_specs_name_the_field(change: dict, field: str) -> None:
    spec = {k: v for k, v in {**SPEC, **change}.items() if v is not None}
    with pytest.raises(InvalidMessageError) as caught:
        schema.build("submit", spec=spec)
    assert caught.value.field == field
    assert caught.value.message.startswith("submit: ")


def test_keyframes_are_checked_one_by_one() -> None:
    keys = [{"frame": 1001, "weights": {"happy": 1.0}}, {"frame": 1001, "weights": {"sad": 0.5}}]
    spec = {**SPEC, "keys": keys}
    del spec["emotion"], spec["intensity"]
    with pytest.raises(InvalidMessageError, match="same frame"):
        schema.build("submit", spec=spec)
    keys[1] = {"frame": 1020, "weights": {"smug": 1.0}}
    with pytest.raises(InvalidMessageError) as caught:
        schema.build("submit", spec=spec)
    assert caught.value.field == "spec.keys[1].weights.smug"
    keys[1] = {"frame": 1020, "weights": {"sad": 0.5}}
    assert schema.build("submit", spec=spec)["body"]["spec"]["keys"] == keys


def test_inline_plate_payload_count() -> None:
    spec = {**SPEC, "plate_frames": [1001, 1002], "plate_format": "exr"}
    del spec["plate"]
    message = schema.build("submit", spec=spec)
    schema.validate(message, [b"a", b"b"])
    with pytest.raises(InvalidMessageError, match="carries 1 payload frames, expected 2"):
        schema.validate(message, [b"a"])
    ready, _ = example_message("frame_ready")
    with pytest.raises(InvalidMessageError, match="expected 1"):
        schema.validate(ready, [])


def test_nil_handling() -> None:
    # None leaves out an optional field; a nullable field keeps an explicit nil
    message = schema.build("progress", msg_id="r", job="j1", seq=1, stage="render", frame=None, done=0,
                           total=10, eta=None, message=None)
    assert message["body"] == {"seq": 1, "stage": "render", "frame": None, "done": 0, "total": 10,
                               "eta": None}
    with pytest.raises(InvalidMessageError, match="must not be nil"):
        schema.validate({**message, "body": {**message["body"], "stage": None}})


def test_envelope_rules() -> None:
    message, _ = example_message("cancel")
    for broken, field in [({"job": None}, "job"), ({"id": ""}, "id"), ({"id": "a b"}, "id"),
                          ({"v": [1]}, "v"), ({"v": [True, 0]}, "v"), ({"extra": 1}, "extra")]:
        with pytest.raises(InvalidMessageError) as caught:
            schema.validate({**message, **broken})
        assert caught.value.field == field, broken
    missing = dict(message)
    del missing["body"]
    with pytest.raises(InvalidMessageError, match="no 'body'"):
        schema.validate(missing)
    ping, _ = example_message("ping")
    with pytest.raises(InvalidMessageError, match="job must be nil"):
        schema.validate({**ping, "job": "j1"})


def test_version_rules() -> None:
    message, _ = example_message("ping")
    with pytest.raises(UnsupportedVersionError, match="major versions must match"):
        schema.validate({**message, "v": [2, 0]})
    schema.validate({**message, "v": [1, 7]})  # a newer minor with nothing new in it is fine
    assert schema.session_version([1, 7]) == schema.PROTOCOL_VERSION
    assert schema.session_version([1, 0]) == (1, 0)


def test_fields_newer_than_the_message_version_are_refused() -> None:
    struct = Struct("T", "", {"old": Field(Int(0, 9), "", required=True),
                              "new": Field(Int(0, 9), "", since=(1, 2))})
    struct.check({"old": 1, "new": 2}, "", (1, 2))
    with pytest.raises(InvalidMessageError, match="new in protocol 1.2; the message says 1.1"):
        struct.check({"old": 1, "new": 2}, "", (1, 1))


def test_with_defaults_fills_documented_defaults_only_where_they_apply() -> None:
    message = schema.build("submit", spec=SPEC)
    spec = schema.with_defaults(message)["spec"]
    assert spec["priority"] == 0 and spec["start"] == 1001
    # no default for mouth preservation: 1 for footage, 0 for a still, decided by the pipeline
    assert "mouth_preservation" not in spec
    # no default for half (the engine picks half or float per plate) nor for the output colourspace
    assert spec["output"] == {"pattern": SPEC["output"]["pattern"], "inline": False, "compression": "zip",
                              "layers": ["matte", "stmap"]}
    assert "interpolation" not in spec and "plate_format" not in spec  # they need keys / plate_frames
    schema.validate({**message, "body": {**message["body"], "spec": spec}})
    assert message["body"]["spec"] == SPEC  # the message itself is untouched


def test_error_code_choices_are_the_error_classes() -> None:
    failed = schema.MESSAGES["failed"].body.fields["code"].type
    assert failed.choices == CODES
    message, _ = example_message("failed")
    broken = copy.deepcopy(message)
    broken["body"]["code"] = "oops"
    with pytest.raises(InvalidMessageError):
        schema.validate(broken)


def test_vocabularies_match_ned_core() -> None:
    ned_core = pytest.importorskip("ned_core")
    assert schema.EMOTIONS == ned_core.EMOTIONS
    keyframes = pytest.importorskip("ned_core.keyframes")
    assert schema.INTERPOLATIONS == keyframes.INTERPOLATIONS
    try:
        from ned_core.pipeline import STAGES
    except ImportError:  # the pipeline needs I/O modules another part of the project provides
        STAGES = schema.STAGES
    assert schema.STAGES == STAGES


def test_compressions_match_the_exr_writer() -> None:
    exr = pytest.importorskip("ned_core.io.exr", reason="ned_core.io.exr is not there yet")
    assert set(schema.COMPRESSIONS) == set(exr.COMPRESSIONS)


def test_pipeline_error_codes_match_ned_core() -> None:
    core = pytest.importorskip("ned_core.errors")
    from ned_protocol import errors
    for cls in core.ALL_ERRORS:
        assert cls.code in errors.CLASSES, cls
        assert errors.CLASSES[cls.code].retryable == cls.retryable, cls


def test_output_layers_are_named_once_each_and_new_in_1_3() -> None:
    for layers in ([], ["matte"], ["stmap"], ["stmap", "matte"]):
        spec = {**SPEC, "output": {**SPEC["output"], "layers": layers}}
        assert schema.check_job_spec(spec) == spec
    message = schema.build("submit", spec={**SPEC, "output": {**SPEC["output"], "layers": ["matte"]}})
    schema.validate(message)
    with pytest.raises(InvalidMessageError, match="new in protocol 1.3; the message says 1.2") as caught:
        schema.validate({**message, "v": [1, 2]})
    assert caught.value.field == "spec.output.layers"
    for bad in (["matte", "matte"], ["alpha"], ["matte", "stmap", "matte"], "matte"):
        with pytest.raises(InvalidOptionError) as caught:
            schema.check_job_spec({**SPEC, "output": {**SPEC["output"], "layers": bad}})
        assert caught.value.field.startswith("spec.output.layers")


def test_output_layers_match_the_pipeline() -> None:
    pipeline = pytest.importorskip("ned_core.pipeline")
    assert schema.OUTPUT_LAYERS == pipeline.OUTPUT_LAYERS


def test_a_key_may_carry_its_mouth_preservation_since_1_2() -> None:
    keys = [{"frame": 1001, "weights": {"happy": 1.0}, "mouth_preservation": 0.0},
            {"frame": 1010, "weights": {"happy": 1.0}}]
    spec = {**SPEC, "keys": keys, "interpolation": "linear"}
    spec.pop("emotion", None)
    spec.pop("intensity", None)
    assert schema.check_job_spec(spec) == spec
    assert schema.check_job_spec(spec, (1, 2)) == spec
    message = schema.build("submit", spec=spec)
    schema.validate(message)
    # A 1.1 session (an older engine or client) does not know the field: a message that says 1.1 and
    # carries it is refused, with the key's path.
    with pytest.raises(InvalidMessageError, match="new in protocol 1.2; the message says 1.1") as caught:
        schema.validate({**message, "v": [1, 1]})
    assert caught.value.field == "spec.keys[0].mouth_preservation"
    older = copy.deepcopy(message)
    del older["body"]["spec"]["keys"][0]["mouth_preservation"]
    schema.validate({**older, "v": [1, 1]})
    for bad in (1.5, -0.1, float("nan"), "0"):
        broken = copy.deepcopy(spec)
        broken["keys"][0]["mouth_preservation"] = bad
        with pytest.raises(InvalidOptionError) as refused:
            schema.check_job_spec(broken)
        assert refused.value.field == "spec.keys[0].mouth_preservation", bad


def test_spec_for_version_leaves_out_what_an_older_engine_lacks_once_per_field() -> None:
    keys = [{"frame": 1001, "weights": {"happy": 1.0}, "mouth_preservation": 0.0},
            {"frame": 1002, "weights": {"happy": 1.0}, "mouth_preservation": 1.0}]
    spec = {**SPEC, "keys": keys, "interpolation": "linear",
            "output": {**SPEC["output"], "colorspace": "ACEScg", "layers": ["matte"]}}
    spec.pop("emotion", None)
    spec.pop("intensity", None)
    assert schema.spec_for_version(spec, schema.PROTOCOL_VERSION) == (spec, [])
    older, dropped = schema.spec_for_version(spec, (1, 0))
    assert sorted(dropped) == ["keys[].mouth_preservation", "output.colorspace", "output.layers"]
    assert schema.check_job_spec(older, (1, 0)) == older and older["keys"][1]["weights"] == {"happy": 1.0}
    assert spec["output"]["layers"] == ["matte"]  # the caller's spec is left as it was
