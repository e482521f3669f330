"""The thin Nuke layer (``ned_nuke.host``) against the nuke stub, and end to end against a real engine.

The node is built the way an artist gets it (the Nodes-toolbar command, ``createNode`` after a selected
Read), its emotion knobs are keyframed with Nuke's own curves, Process is pressed through its
PyScript knob, and the main-thread queue is pumped as Nuke's event loop would until the job ends.
"""

from __future__ import annotations

import os
import runpy
import time
from pathlib import Path

import nuke
import pytest
from ned_nuke import host
from ned_nuke.logic import colorspace as colour
from ned_nuke.logic import knobs
from ned_protocol.exr_header import channel_names, read_headers

FRAMES = list(range(1001, 1009))


def pump(node, timeout: float = 120.0) -> None:
    """Run Nuke's main-thread queue until the node's job has ended and every update is drawn."""
    deadline = time.monotonic() + timeout
    runner = host.runner(node)
    while time.monotonic() < deadline:
        nuke.stub_process_events(0.05)
        if runner is None or not runner.running:
            nuke.stub_process_events()
            return
    raise AssertionError(f"the job did not end within {timeout} s: {node['status'].value()}")


def save_script(shot: Path) -> str:
    path = str(shot / "shot.nk")
    nuke.scriptSaveAs(path)
    return path


def make_node(plate: str, address: str, source_class: str = "Read"):
    read = nuke.nodes.Read(file=plate, first=FRAMES[0], last=FRAMES[-1])
    upstream = read if source_class == "Read" else nuke.nodes.Grade(inputs=[read])
    upstream.setSelected(True)
    node = host.create_node()
    node["address"].setValue(address)
    return node, read


def inner(node, name):
    node.begin()
    try:
        return nuke.toNode(name)
    finally:
        node.end()


def test_the_node_has_every_knob_input_and_inner_node() -> None:
    group = nuke.nodes.Group()
    group.begin()
    nuke.nodes.Input()  # what a Group may come with: replaced by the node's own inputs
    group.end()
    host.build(group)
    assert [n.name() for n in group.nodes()] == ["Source", "Mask", "NEDResult", "NEDSwitch", "Output1"]
    nuke.delete(group)
    node = host.create_node()
    assert host.is_ned_node(node) and node.name() == "NeuralEmotionDirector1"
    assert [k.name() for k in node.knobs().values() if k.name() in {d.name for d in knobs.KNOBS}] == \
        [d.name for d in knobs.KNOBS]
    classes = {"string": "String_Knob", "file": "File_Knob", "button": "PyScript_Knob", "enum": "Enumeration_Knob",
               "bool": "Boolean_Knob", "xy": "XY_Knob", "double": "Double_Knob", "int": "Int_Knob",
               "text": "Text_Knob", "divider": "Text_Knob", "tab": "Tab_Knob", "hidden": "String_Knob"}
    for definition in knobs.KNOBS:
        assert node[definition.name].Class() == classes[definition.kind], definition.name
    emotions = [d.name for d in knobs.KNOBS if d.kind == "double"][:7]
    assert emotions == ["neutral", "angry", "disgusted", "fear", "happy", "sad", "surprised"]
    assert (node["happy"].min(), node["happy"].max(), node["neutral"].value()) == (0.0, 1.0, 1.0)
    assert node["ned_node"].getFlag(nuke.INVISIBLE) and not node["cancel"].getFlag(nuke.STARTLINE)
    assert node["backend"].values() == ["default", "ned"] and node["address"].value() == "tcp://127.0.0.1:7741"
    inputs = [n for n in node.nodes() if n.Class() == "Input"]
    assert [(n.name(), n["number"].value()) for n in inputs] == [("Source", 0), ("Mask", 1)]
    read = inner(node, knobs.RESULT_READ)
    assert read.Class() == "Read" and read["on_error"].value() == "black"
    assert nuke.stub_layers == {"ned": ["ned.matte"], "stmap": ["stmap.u", "stmap.v"]}
    assert host.create_node().name() == "NeuralEmotionDirector2"


def test_menus_put_the_node_in_a_ned_menu_and_the_nodes_toolbar() -> None:
    runpy.run_path(str(Path(host.__file__).parents[1] / "menu.py"))
    ned = nuke.menu("Nuke").findItem("NED")
    assert [i.name() for i in ned.items()] == [knobs.NODE_CLASS, "Write farm job for selected node",
                                               "Start local engine"]
    tool = nuke.toolbar("Nodes").findItem("NED").findItem(knobs.NODE_CLASS)
    tool.invoke()
    assert host.is_ned_node(nuke.toNode("NeuralEmotionDirector1"))


def test_init_py_puts_the_plugin_folder_on_the_path(monkeypatch) -> None:
    folder = str(Path(host.__file__).parents[1])
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p != folder])
    runpy.run_path(os.path.join(folder, "init.py"))
    assert folder in __import__("sys").path


def test_curves_are_sampled_at_every_frame_with_their_interpolation(plate, shot) -> None:
    save_script(shot)
    node, _ = make_node(plate, "tcp://127.0.0.1:9")
    happy, sad, intensity = node["happy"], node["sad"], node["intensity"]
    for frame, value in ((1001, 0.0), (1005, 1.0), (1008, 0.5)):
        happy.setValueAt(value, frame)          # SMOOTH keys, Nuke's default
    sad.setValueAt(0.2, 1001)
    sad.setValueAt(0.8, 1004)
    sad.animation(0).changeInterpolation(sad.animation(0).keys(), nuke.CONSTANT)  # step
    intensity.setValueAt(1.0, 1001)
    intensity.setValueAt(2.0, 1008)
    intensity.animation(0).changeInterpolation(intensity.animation(0).keys(), nuke.LINEAR)
    node["neutral"].setValue(0.0)
    values = host.node_values(node, render=False)
    assert values.frame_range == (1001, 1008) and values.plate.path == plate and values.plate.colorspace is None
    assert values.weights["happy"] == [happy.getValueAt(f) for f in FRAMES]
    assert values.weights["sad"] == [0.2, 0.2, 0.2, 0.8, 0.8, 0.8, 0.8, 0.8]
    assert values.intensity == pytest.approx([1 + i / 7 for i in range(8)])
    smooth = values.weights["happy"][:5]
    assert smooth == sorted(smooth) and 0 < smooth[1] < 0.25 < smooth[2] < 0.75 < smooth[3] < 1  # eases in
    assert all(0.5 <= v <= 1.0 for v in values.weights["happy"][4:])  # no overshoot past the keys
    from ned_nuke.logic import job as jobs

    spec = jobs.spec(values)
    assert [k["frame"] for k in spec["keys"]] == FRAMES
    assert spec["keys"][3]["weights"]["sad"] == pytest.approx(0.8 * values.intensity[3])
    assert spec["keys"][0]["weights"]["neutral"] == 0.0


def test_an_animated_mouth_preservation_is_sampled_per_frame_and_a_constant_one_sent_once(plate, shot) -> None:
    from ned_nuke.logic import job as jobs

    save_script(shot)
    node, _ = make_node(plate, "tcp://127.0.0.1:9")
    node["happy"].setValue(1.0)
    node["mouth_preservation"].setValue(0.7)
    values = host.node_values(node, render=False)
    spec = jobs.spec(values)
    assert values.mouth is None and spec["mouth_preservation"] == 0.7
    assert all("mouth_preservation" not in k for k in spec["keys"])
    mouth = node["mouth_preservation"]
    mouth.setValueAt(1.0, 1001)
    mouth.setValueAt(0.0, 1004)
    mouth.setValueAt(1.0, 1006)
    mouth.animation(0).changeInterpolation(mouth.animation(0).keys(), nuke.CONSTANT)  # step
    values = host.node_values(node, render=False)
    spec = jobs.spec(values)
    assert [k["mouth_preservation"] for k in spec["keys"]] == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert [k["frame"] for k in spec["keys"]] == FRAMES and spec["mouth_preservation"] == 0.75


def test_the_layer_knobs_choose_the_output_layers(plate, shot) -> None:
    from ned_nuke.logic import job as jobs

    save_script(shot)
    node, _ = make_node(plate, "tcp://127.0.0.1:9")
    assert node["write_matte"].value() and node["write_stmap"].value()
    assert "layers" not in jobs.spec(host.node_values(node, render=False))["output"]
    node["write_stmap"].setValue(False)
    assert jobs.spec(host.node_values(node, render=False))["output"]["layers"] == ["matte"]
    node["write_matte"].setValue(False)
    assert jobs.spec(host.node_values(node, render=False))["output"]["layers"] == []


def test_a_custom_range_face_point_and_mask_read(plate, shot, engine_root) -> None:
    save_script(shot)
    node, _ = make_node(plate, "tcp://127.0.0.1:9")
    node["use_input_range"].setValue(False)
    node["first"].setValue(1003)
    node["last"].setValue(1006)
    node["use_face"].setValue(True)
    node["face"].setValue([80.0, 20.0])
    mask = nuke.nodes.Read(file=plate, first=1001, last=1008)
    node.setInput(1, mask)
    node["backend"].setValue("ned")
    values = host.node_values(node, render=False)
    from ned_nuke.logic import job as jobs

    spec = jobs.spec(values)
    assert spec["frame_range"] == [1003, 1006] and len(spec["keys"]) == 4
    assert spec["face"] == {"point": [80.0, 100.0]}  # 120 px high: y flips to the image's top-down rows
    assert spec["mask"] == plate and spec["backends"] == {"preset": "ned"}
    assert spec["output"]["pattern"] == str(shot / "ned" / "shot" / "NeuralEmotionDirector1" / "v001" /
                                            "shot_NeuralEmotionDirector1.####.exr")
    node["mask_channel"].setValue("red")  # another channel: rendered through Nuke's Write first
    values = host.node_values(node, render=True)
    assert values.mask.endswith(os.path.join("_ned_mask", "mask.####.exr"))
    assert nuke.stub_executed == [("Write1", 1003, 1006)]
    assert sorted(os.listdir(os.path.dirname(values.mask))) == [f"mask.{f}.exr" for f in range(1003, 1007)]
    assert [n.Class() for n in node.nodes()].count("Write") == 0  # the temporary Write is gone


def test_bad_knobs_show_a_node_error_with_its_code(plate, shot) -> None:
    node = host.create_node()
    assert host.process(node) is None
    assert node["status"].value().startswith("Failed: invalid_option: NeuralEmotionDirector1: connect the Source")
    assert node["status"].stub_errors and node["status"].stub_errors[-1].startswith("invalid_option:")
    assert node["tile_color"].value() == host.ERROR_COLOUR
    node.setInput(0, nuke.nodes.Read(file=plate, first=1001, last=1008))
    assert host.process(node) is None  # the script was never saved and the output is empty
    assert "save the script first" in node["status"].value()
    node["output"].setValue(str(shot / "out.exr"))
    assert host.process(node) is None
    assert "must be an EXR sequence pattern" in node["status"].value()


def test_process_end_to_end_against_a_real_engine(plate, shot, engine) -> None:
    save_script(shot)
    node, _ = make_node(plate, engine.address)
    node["happy"].setValueAt(0.0, 1001)
    node["happy"].setValueAt(1.0, 1008)
    node["process"].execute()  # the button, as the artist presses it
    runner = host.runner(node)
    assert runner is not None
    pump(node)
    assert node["status"].value() == "Done: 8 frames written", node["status"].value()
    read = inner(node, knobs.RESULT_READ)
    output = str(shot / "ned" / "shot" / "NeuralEmotionDirector1" / "v001" / "shot_NeuralEmotionDirector1.####.exr")
    assert read["file"].value() == output and node["ned_result"].value() == output
    assert (read.firstFrame(), read.lastFrame()) == (1001, 1008)
    assert read.stub_frames_on_disk() == FRAMES
    assert read.stub_reloads >= 1 and inner(node, "NEDSwitch")["which"].value() == 1
    headers = read_headers(read.stub_frame_file(1001))
    assert {"ned.matte", "stmap.u", "stmap.v", "R", "G", "B", "A"} <= set(channel_names(headers))
    expected = colour.knob_value(headers[0]["ned:colorspace"], read["colorspace"].values())
    assert expected is not None and read["colorspace"].value() == expected
    assert (read.width(), read.height()) == (160, 120)
    task = nuke.stub_progress[-1]
    assert task.stub_values[-1] == 100 and task.stub_values == sorted(task.stub_values)
    assert task.stub_messages[-1] == "Done: 8 frames written"
    assert node["ned_job"].value() == runner.status.job
    assert not node["status"].stub_errors
    # A second Process with the output left empty keeps the first take and writes the next version.
    node["process"].execute()
    pump(node)
    assert read["file"].value().replace("v002", "v001") == output and "v002" in read["file"].value()
    assert read.stub_frames_on_disk() == FRAMES


def test_the_real_pipeline_on_a_movie_read_of_the_demo_clip(shot, real_engine) -> None:
    from engine.helpers import GRID

    save_script(shot)
    read = nuke.nodes.Read(file=str(GRID), first=1, last=5)  # Nuke numbers a movie's frames from 1
    read.setSelected(True)
    node = host.create_node()
    node["address"].setValue(real_engine.address)
    node["happy"].setValueAt(0.0, 1)
    node["happy"].setValueAt(1.0, 5)
    runner = host.process(node)
    assert runner is not None and runner.spec["start"] == 1 and runner.spec["frame_range"] == [1, 5]
    pump(node, timeout=300)
    assert node["status"].value() == "Done: 5 frames written", node["status"].value()
    result = inner(node, knobs.RESULT_READ)
    assert (result.firstFrame(), result.lastFrame()) == (1, 5) and result.stub_frames_on_disk() == [1, 2, 3, 4, 5]
    headers = read_headers(result.stub_frame_file(3))
    assert {"ned.matte", "stmap.u", "stmap.v"} <= set(channel_names(headers))
    named = headers[0]["ned:colorspace"]
    assert result["colorspace"].value() == colour.knob_value(named, result["colorspace"].values())
    assert result["colorspace"].value() is not None


def test_a_source_that_is_not_a_read_is_rendered_with_a_write_first(plate, shot, engine) -> None:
    save_script(shot)
    node, _ = make_node(plate, engine.address, source_class="Grade")
    runner = host.process(node)
    assert runner is not None
    rendered = str(shot / "ned" / "shot" / "NeuralEmotionDirector1" / "v001" / "_ned_source" / "source.####.exr")
    assert runner.spec["plate"] == rendered and runner.spec["colorspace"] == "Linear Rec.709 (sRGB)"
    assert nuke.stub_executed == [("Write1", 1001, 1008)]
    pump(node)
    assert node["status"].value() == "Done: 8 frames written", node["status"].value()
    assert inner(node, knobs.RESULT_READ).stub_frames_on_disk() == FRAMES


def test_engine_errors_reach_the_node_with_their_code(plate, shot, engine, tmp_path) -> None:
    save_script(shot)
    node, _ = make_node(plate, engine.address)
    node["output"].setValue(str(tmp_path / "elsewhere" / "out.####.exr"))  # outside the engine's roots
    host.process(node)
    pump(node)
    status = node["status"].value()
    assert status.startswith("Failed: forbidden_path: "), status
    assert node["status"].stub_errors[-1].startswith("forbidden_path: ")
    assert nuke.stub_progress[-1].stub_messages[-1] == status


def test_an_engine_that_does_not_answer_times_out(plate, shot) -> None:
    save_script(shot)
    node, _ = make_node(plate, "tcp://127.0.0.1:9")
    host.process(node, timeout=1.0)
    pump(node, timeout=30)
    assert node["status"].value().startswith("Failed: timeout: "), node["status"].value()


@pytest.mark.parametrize("how", ["button", "progress", "reopened"])
def test_cancel_stops_the_job_and_keeps_the_frames_written(plate, shot, slow_engine, how) -> None:
    save_script(shot)
    node, _ = make_node(plate, slow_engine.address)
    node["happy"].setValue(1.0)
    host.process(node)
    read = inner(node, knobs.RESULT_READ)
    deadline = time.monotonic() + 60
    while not read.stub_frames_on_disk() and time.monotonic() < deadline:
        nuke.stub_process_events(0.05)
    assert read.stub_frames_on_disk(), node["status"].value()
    if how == "button":
        node["cancel"].execute()
        assert node["status"].value() == "Cancelling..."
    elif how == "progress":
        nuke.stub_progress[-1].stub_cancel()
    else:  # a session that did not start the job (the script was reopened): cancelled by the job's id
        runner = host._RUNNERS.pop(node.fullName())
        thread = host.cancel(node)
        assert node["status"].value() == f"Cancelling job {runner.status.job}..."
        thread.join(30)
        nuke.stub_process_events(0.5)
        host._RUNNERS[node.fullName()] = runner  # let pump() wait for the old session's runner to end
    pump(node)
    status = node["status"].value()
    kept = read.stub_frames_on_disk()
    assert status.startswith("Cancelled: ") and status.endswith("frames written (kept)"), status
    assert 1 <= len(kept) < 8 and status == f"Cancelled: {len(kept)} frames written (kept)"
    time.sleep(1.0)
    assert read.stub_frames_on_disk() == kept  # nothing more is written after the cancel
    host.cancel(node)
    assert node["status"].value() == "Nothing to cancel"


@pytest.mark.skipif(not os.environ.get("NED_NUKE_PYTHON"), reason="set NED_NUKE_PYTHON to a Python (e.g. 3.9, as "
                    "in Nuke 14) that has only msgpack and pyzmq installed")
def test_the_plugin_runs_in_nukes_python(plate, shot, engine) -> None:
    import subprocess

    result = subprocess.run([os.environ["NED_NUKE_PYTHON"], str(Path(__file__).parent / "host_smoke.py"), plate,
                             "1001", "1008", engine.address, str(shot)], capture_output=True, text=True, timeout=180,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Done: 8 frames written" in result.stdout
