"""The node's host-free logic (``ned_nuke.logic``), tested directly: no nuke, no stub."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from ned_nuke.logic import colorspace as colour
from ned_nuke.logic import events, local_engine, paths
from ned_nuke.logic import job as jobs
from ned_nuke.logic.runner import JobRunner, ProgressSink
from ned_protocol.errors import InvalidOptionError, MissingDependencyError, RequestTimeoutError
from ned_protocol.schema import EMOTIONS

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "nuke"


# -- paths --------------------------------------------------------------------------------------------------
def test_frame_paths_and_patterns() -> None:
    assert paths.frame_path("/a/b.####.exr", 7) == "/a/b.0007.exr"
    assert paths.frame_path("/a/b.%04d.exr", 1001) == "/a/b.1001.exr"
    assert paths.frame_path("/a/b.%d.exr", 12) == "/a/b.12.exr"
    assert paths.frame_path("/a/still.exr", 3) == "/a/still.exr"
    assert paths.has_frame_number("x.##.exr") and not paths.has_frame_number("x.exr")
    assert paths.is_movie("/a/b.MOV") and not paths.is_movie("/a/b.####.exr")


def test_frame_range_defaults_to_the_input_and_checks_a_custom_one() -> None:
    assert paths.frame_range(True, (1001, 1096), 1, 1) == (1001, 1096)
    assert paths.frame_range(False, (1001, 1096), 1010, 1020) == (1010, 1020)
    with pytest.raises(InvalidOptionError) as error:
        paths.frame_range(False, (1001, 1096), 20, 10)
    assert error.value.field == "first"


def test_default_output_is_the_next_version_folder_beside_the_script(tmp_path) -> None:
    script = str(tmp_path / "sh010_comp_v003.nk")
    first = paths.default_output(script, "NeuralEmotionDirector1")
    assert first == str(tmp_path / "ned" / "sh010_comp_v003" / "NeuralEmotionDirector1" / "v001" /
                        "sh010_comp_v003_NeuralEmotionDirector1.####.exr")
    os.makedirs(os.path.dirname(first))
    os.makedirs(tmp_path / "ned" / "sh010_comp_v003" / "NeuralEmotionDirector1" / "v007")
    assert "/v008/" in paths.default_output(script, "NeuralEmotionDirector1")
    assert "/v002/" in paths.default_output(script, "NeuralEmotionDirector1", version=2)
    for unsaved in ("", "Root"):
        with pytest.raises(InvalidOptionError, match="save the script first"):
            paths.default_output(unsaved, "N1")


def test_output_checks_and_render_folders(tmp_path) -> None:
    assert paths.check_output(str(tmp_path / "o.####.exr")) == str(tmp_path / "o.####.exr")
    for bad in (str(tmp_path / "o.exr"), str(tmp_path / "o.####.png")):
        with pytest.raises(InvalidOptionError) as error:
            paths.check_output(bad)
        assert error.value.field == "output"
    assert paths.render_pattern("/s/ned/v001/x.####.exr", "source") == "/s/ned/v001/_ned_source/source.####.exr"


# -- colourspaces -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("knob, engine", [
    ("default (linear)", None), ("default", None), ("linear", "Linear Rec.709 (sRGB)"),
    ("sRGB", "sRGB Encoded Rec.709 (sRGB)"), ("rec709", "Camera Rec.709"), ("Cineon", "ADX10"),
    ("Utility/ACEScg", "ACEScg"), ("ACES - ACEScg", "ACEScg"), ("ARRI LogC4", "ARRI LogC4"),
    ("Input/ARRI/ARRI LogC3 (EI800)", "ARRI LogC3 (EI800)")])
def test_a_reads_colourspace_knob_becomes_the_engines_name(knob, engine) -> None:
    assert colour.engine_name(knob) == engine


def test_the_header_colourspace_picks_the_reads_menu_entry() -> None:
    nuke_default = ["default (linear)", "linear", "sRGB", "rec709", "Cineon", "raw"]
    ocio_v2 = ["default (scene_linear)", "Utility/Linear Rec.709 (sRGB)", "ACES/ACEScg", "Utility/Raw",
               "Input/sRGB Encoded Rec.709 (sRGB)"]
    assert colour.knob_value("Linear Rec.709 (sRGB)", nuke_default) == "linear"
    assert colour.knob_value("lin_rec709_scene", nuke_default) == "linear"
    assert colour.knob_value("sRGB Encoded Rec.709 (sRGB)", nuke_default) == "sRGB"
    assert colour.knob_value("ACEScg", ocio_v2) == "ACES/ACEScg"
    assert colour.knob_value("lin_ap1_scene", ocio_v2) == "ACES/ACEScg"
    assert colour.knob_value("Linear Rec.709 (sRGB)", ocio_v2) == "Utility/Linear Rec.709 (sRGB)"
    assert colour.knob_value("ACEScg", nuke_default) is None  # no such entry: never a guess


# -- the job spec ---------------------------------------------------------------------------------------------
def values(**extra) -> jobs.NodeValues:
    frames = (1001, 1004)
    weights, intensity = jobs.sample({"happy": lambda f: (f - 1001) / 3, "neutral": lambda f: 1 - (f - 1001) / 3},
                                     lambda f: 1.0, frames)
    base = dict(label="sh010 NeuralEmotionDirector1", plate=jobs.Plate("/s/plate.####.exr"), frame_range=frames,
                weights=weights, intensity=intensity, output="/s/ned/v001/sh010.####.exr")
    base.update(extra)
    return jobs.NodeValues(**base)


def test_sampling_gives_one_key_per_frame_in_label_order() -> None:
    spec = jobs.spec(values())
    assert [k["frame"] for k in spec["keys"]] == [1001, 1002, 1003, 1004]
    assert list(spec["keys"][0]["weights"]) == list(EMOTIONS)
    assert spec["keys"][1]["weights"]["happy"] == pytest.approx(1 / 3)
    assert spec["keys"][3]["weights"] == {**dict.fromkeys(EMOTIONS, 0.0), "happy": 1.0}
    assert spec["interpolation"] == "linear" and spec["frame_range"] == [1001, 1004]
    assert spec["backends"] == {"preset": "default"} and spec["output"] == {"pattern": "/s/ned/v001/sh010.####.exr"}
    assert "colorspace" not in spec and "start" not in spec and "face" not in spec and "mask" not in spec


def test_intensity_scales_non_neutral_weights_and_values_are_clamped() -> None:
    spec = jobs.spec(values(intensity=[2.0, 0.5, -1.0, 99.0], mouth_preservation=3.0))
    happy = [k["weights"]["happy"] for k in spec["keys"]]
    neutral = [k["weights"]["neutral"] for k in spec["keys"]]
    assert happy == pytest.approx([0.0, 1 / 6, 0.0, 10.0])
    assert neutral == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    assert spec["mouth_preservation"] == 1.0
    weird = values()
    weird.weights["sad"] = [float("nan"), 5.0, -2.0, 0.5]
    assert [k["weights"]["sad"] for k in jobs.spec(weird)["keys"]] == [0.0, 1.0, 0.0, 0.5]


def test_an_animated_mouth_preservation_is_keyed_per_frame() -> None:
    constant = jobs.spec(values(mouth_preservation=0.4))
    assert constant["mouth_preservation"] == 0.4 and all("mouth_preservation" not in k for k in constant["keys"])
    spec = jobs.spec(values(mouth=[1.0, 0.0, -3.0, float("nan")]))
    assert [k["mouth_preservation"] for k in spec["keys"]] == [1.0, 0.0, 0.0, 0.0]
    assert spec["mouth_preservation"] == 0.25  # the mean: what an engine older than 1.2 gets
    spec = jobs.spec(values(mouth=[1.0, 0.5, 0.5, 0.0]))
    assert jobs.for_version(spec, (1, 2)) == (spec, [])
    older, dropped = jobs.for_version(spec, (1, 1))
    assert dropped == ["keys[].mouth_preservation"] and older["mouth_preservation"] == 0.5
    assert all("mouth_preservation" not in k for k in older["keys"]) and older["keys"][1]["weights"] == \
        spec["keys"][1]["weights"]
    assert jobs.check_job_spec(older, (1, 1)) == older
    with pytest.raises(InvalidOptionError) as error:
        jobs.spec(values(mouth=[1.0]))
    assert error.value.field == "mouth_preservation"


def test_output_layers_are_sent_only_when_not_both() -> None:
    assert "layers" not in jobs.spec(values())["output"]
    spec = jobs.spec(values(layers=("matte",)))
    assert spec["output"] == {"pattern": "/s/ned/v001/sh010.####.exr", "layers": ["matte"]}
    assert jobs.spec(values(layers=()))["output"]["layers"] == []
    assert jobs.for_version(spec, (1, 3)) == (spec, [])
    older, dropped = jobs.for_version(spec, (1, 2))
    assert dropped == ["output.layers"] and older["output"] == {"pattern": "/s/ned/v001/sh010.####.exr"}
    assert jobs.check_job_spec(older, (1, 2)) == older
    both, dropped = jobs.for_version(jobs.spec(values(layers=(), mouth=[1.0, 0.5, 0.5, 0.0])), (1, 1))
    assert dropped == ["keys[].mouth_preservation", "output.layers"]
    assert jobs.check_job_spec(both, (1, 1)) == both


def test_plate_movie_face_and_mask_fields() -> None:
    spec = jobs.spec(values(plate=jobs.Plate("/s/take.mov", "Camera Rec.709", 1), face=(100.0, 50.0), height=1080,
                            mask="/s/roto.####.exr", options={"track": {"min_confidence": 0.5}}))
    assert (spec["plate"], spec["colorspace"], spec["start"]) == ("/s/take.mov", "Camera Rec.709", 1)
    assert spec["face"] == {"point": [100.0, 1030.0]} and spec["mask"] == "/s/roto.####.exr"
    assert spec["backends"]["options"] == {"track": {"min_confidence": 0.5}}


def test_a_spec_outside_the_schema_names_its_field() -> None:
    with pytest.raises(InvalidOptionError) as error:
        jobs.spec(values(backend="Not A Name"))
    assert error.value.field == "spec.backends.preset"
    with pytest.raises(InvalidOptionError) as error:
        jobs.keys({"happy": [1.0]}, [1.0, 1.0], (1, 2))
    assert error.value.field == "happy"
    with pytest.raises(InvalidOptionError, match="at most 10000"):
        jobs.keys({}, [], (1, 20_000))


# -- events ---------------------------------------------------------------------------------------------------
def test_events_make_the_status_line_and_progress() -> None:
    status = events.accepted("j-1")
    assert status.text() == "Queued"
    status = events.apply(status, "progress", {"stage": "analyze", "done": 4, "total": 8, "eta": 75.0})
    assert status.text() == "Analysing 4/8, about 1:15 left" and status.percent == 28
    status = events.apply(status, "progress", {"stage": "render", "done": 2, "total": 8, "eta": None})
    assert status.text() == "Rendering 2/8" and status.percent == 62
    status = events.apply(status, "frame_ready", {"frame": 1002, "path": "/o/x.1002.exr", "inline": False})
    status = events.apply(status, "frame_ready", {"frame": 1001, "path": "/o/x.1001.exr", "inline": False})
    assert status.frames == (1001, 1002) and status.first_path == "/o/x.1002.exr"
    status = events.apply(status, "something_new", {"x": 1})  # a newer engine's event: ignored
    assert status.frames == (1001, 1002)
    done = events.apply(status, "done", {"frames_written": 8, "lost_frames": [1003, 1004]})
    assert done.ended and done.percent == 100
    assert done.text() == "Done: 8 frames written; 2 without a face (left untouched): 1003, 1004"
    assert events.apply(done, "progress", {"stage": "render", "done": 1, "total": 8}) is done
    failed = events.apply(status, "failed", {"code": "no_face", "message": "no face in any frame", "frame": 1001,
                                             "retryable": False})
    assert failed.text() == "Failed: no_face: no face in any frame" and failed.detail == {"frame": 1001}
    cancelled = events.apply(status, "cancelled", {"frames_written": 3})
    assert cancelled.text() == "Cancelled: 3 frames written (kept)"
    assert events.JobStatus().text() == "idle" and events.submitting().text() == "Submitting..."
    assert events.apply(status, "progress", {"stage": "render", "done": 0, "total": 8, "eta": 4000}).text() == \
        "Rendering 0/8, about 1:06:40 left"


# -- the runner, with a scripted client -------------------------------------------------------------------
class FakeEvent:
    def __init__(self, type, body) -> None:
        self.type, self.body = type, body


class FakeClient:
    """Yields scripted events; ``cancel`` ends the job with ``cancelled``."""

    def __init__(self, script, fail=None) -> None:
        self.script, self.fail, self.cancelled, self.closed = list(script), fail, False, False
        self.options = None

    def __call__(self, address, **options):
        self.options = options
        return self

    def submit(self, spec, idempotency_key=None):
        if self.fail:
            raise self.fail
        self.key = idempotency_key
        return "j-1"

    def cancel(self, job):
        self.cancelled = True
        self.script = [FakeEvent("cancelled", {"frames_written": 1})]

    def events(self, job, timeout=None):
        if self.script:
            yield self.script.pop(0)

    def close(self):
        self.closed = True


class Sink(ProgressSink):
    def __init__(self) -> None:
        self.seen, self.stop, self.closed = [], False, False

    def update(self, message, percent):
        self.seen.append((message, percent))

    def cancelled(self):
        return self.stop

    def close(self):
        self.closed = True


def test_the_runner_reports_through_post_and_the_progress_sink() -> None:
    client = FakeClient([FakeEvent("progress", {"stage": "render", "done": 1, "total": 2}),
                         FakeEvent("done", {"frames_written": 2})])
    posted, seen, sink = [], [], Sink()
    runner = JobRunner("tcp://x:1", {"label": "n"}, on_status=seen.append, post=posted.append,
                       progress=lambda: sink, client_factory=client, key="k-1").start()
    assert runner.join(10)
    assert seen == []  # nothing ran outside the host's main thread
    for call in posted:
        call()
    assert [s.state for s in seen] == ["submitting", "queued", "running", "done"]
    assert sink.seen[-1] == ("Done: 2 frames written", 100) and sink.closed and client.closed
    assert client.key == "k-1" and client.options["client_name"] == "ned-nuke"


def _submitted_to(engine: tuple[int, int], spec: dict) -> dict:
    """What the runner submits of ``spec`` to an engine that speaks protocol ``engine``."""
    client = FakeClient([FakeEvent("done", {"frames_written": 4})])
    client.hello = lambda: {"protocol": list(engine)}
    submitted = []
    plain_submit = client.submit
    client.submit = lambda spec, idempotency_key=None: submitted.append(spec) or plain_submit(spec, idempotency_key)
    seen = []
    assert JobRunner("tcp://x:1", spec, on_status=seen.append, client_factory=client).start().join(10)
    assert seen[-1].state == "done"
    return submitted[0]


@pytest.mark.parametrize("engine, layers_sent", [((1, 2), False), ((1, 3), True)])
def test_the_runner_leaves_output_layers_out_for_an_older_engine(engine, layers_sent) -> None:
    submitted = _submitted_to(engine, jobs.spec(values(layers=("matte",))))
    assert ("layers" in submitted["output"]) == layers_sent


@pytest.mark.parametrize("engine, sent", [((1, 1), False), ((1, 2), True)])
def test_the_runner_leaves_keyed_mouth_preservation_out_for_an_older_engine(engine, sent) -> None:
    submitted = _submitted_to(engine, jobs.spec(values(mouth=[1.0, 0.0, 0.0, 1.0])))
    assert all(("mouth_preservation" in k) == sent for k in submitted["keys"])
    assert submitted["mouth_preservation"] == 0.5


def test_the_progress_cancel_button_cancels_the_job() -> None:
    client = FakeClient([FakeEvent("progress", {"stage": "render", "done": 1, "total": 9})] * 50)
    sink = Sink()
    sink.stop = True
    seen = []
    runner = JobRunner("tcp://x:1", {}, on_status=seen.append, progress=lambda: sink, client_factory=client).start()
    assert runner.join(10)
    assert client.cancelled and seen[-1].state == "cancelled"


def test_errors_end_the_runner_with_their_code() -> None:
    seen = []
    client = FakeClient([], fail=RequestTimeoutError("no reply from tcp://x:1 within 1 s"))
    JobRunner("tcp://x:1", {}, on_status=seen.append, client_factory=client).start().join(10)
    assert seen[-1].text() == "Failed: timeout: no reply from tcp://x:1 within 1 s" and client.closed
    client = FakeClient([], fail=KeyError("bug"))
    JobRunner("tcp://x:1", {}, on_status=seen.append, client_factory=client).start().join(10)
    assert seen[-1].code == "internal" and "KeyError" in seen[-1].message


def test_cancel_from_another_thread_returns_at_once() -> None:
    client = FakeClient([FakeEvent("progress", {"stage": "render", "done": 1, "total": 9})] * 1000)
    runner = JobRunner("tcp://x:1", {}, on_status=lambda s: None, client_factory=client).start()
    threading.Thread(target=runner.cancel).start()
    assert runner.join(10) and client.cancelled and runner.status.state == "cancelled"


# -- the local engine -------------------------------------------------------------------------------------
def test_local_engine_command_roots_and_loopback_only(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NED_ENGINE", "/opt/ned/bin/ned-engine")
    monkeypatch.setenv("NED_NUKE_ALLOW_ROOTS", str(tmp_path / "extra"))
    for name in ("home/inside", "tmp", "shots", "extra"):
        (tmp_path / name).mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    assert local_engine.find_engine() == "/opt/ned/bin/ned-engine"
    roots = local_engine.roots([str(tmp_path / "shots"), None, str(tmp_path / "home" / "inside"),
                                str(tmp_path / "not-made-yet")])
    assert roots == [str(tmp_path / name) for name in ("home", "tmp", "shots", "extra")]  # home/inside is in home
    argv = local_engine.command("tcp://127.0.0.1:7741", ["/a", "/b"])
    assert argv == ["/opt/ned/bin/ned-engine", "serve", "--bind", "tcp://127.0.0.1:7741", "--allow-root", "/a",
                    "--allow-root", "/b"]
    assert local_engine.is_loopback("tcp://localhost:1") and local_engine.is_loopback("ipc:///tmp/x")
    with pytest.raises(InvalidOptionError) as error:
        local_engine.command("tcp://10.0.0.5:7741", [])
    assert error.value.field == "address"
    monkeypatch.delenv("NED_ENGINE")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDependencyError, match="no ned-engine found"):
        local_engine.find_engine()


def test_start_local_engine_serves_the_address(tmp_path, monkeypatch) -> None:
    import socket

    from engine.helpers import engine_env

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    monkeypatch.setenv("NED_ENGINE", str(Path(sys.executable).parent / "ned-engine"))
    monkeypatch.setenv("NED_ENGINE_HOME", str(tmp_path / "home"))
    for name in ("PYTHONPATH", "NED_TEST_FRAME_DELAY"):
        monkeypatch.setenv(name, engine_env()[name])
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    for name in ("home", "tmp", "shots"):
        (tmp_path / name).mkdir()
    process = local_engine.start(address, [str(tmp_path / "shots")], log=str(tmp_path / "engine.log"))
    try:
        from ned_protocol import Client

        with Client(address, timeout=30, heartbeat=0.5) as client:
            assert client.ping(timeout=30) >= 0
            roots = client.hello()["allowed_roots"]
            assert roots == [str(tmp_path / name) for name in ("home", "tmp", "shots")]
    finally:
        process.terminate()
        process.wait(20)


# -- boundaries -------------------------------------------------------------------------------------------
def test_importing_the_plugin_loads_neither_nuke_nor_heavy_packages() -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "import ned_nuke, ned_nuke.farm, ned_nuke.logic.job, ned_nuke.logic.runner, ned_nuke.logic.events, "
            "ned_nuke.logic.colorspace, ned_nuke.logic.local_engine, ned_nuke.logic.knobs\n"
            "banned = {'nuke', 'torch', 'numpy', 'ned_core', 'ned_engine', 'cv2', 'OpenImageIO'}\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & banned))")
    result = subprocess.run([sys.executable, "-c", code, str(PLUGIN)], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_plugin_parses_as_python_3_9() -> None:
    import ast

    files = sorted(PLUGIN.rglob("*.py"))
    assert len(files) >= 12
    for path in files:
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))
