"""The nuke stub itself: its knobs and curves behave as Nuke documents them, so tests against it mean
something; and docs/nuke.md's knob table stays the node's knob table."""

from __future__ import annotations

import re
from pathlib import Path

import nuke
import pytest
from ned_nuke.logic import knobs


def curve(values, interpolation):
    knob = nuke.Double_Knob("k")
    for frame, value in values:
        knob.setValueAt(value, frame)
    if interpolation is not None:
        knob.animation(0).changeInterpolation(knob.animation(0).keys(), interpolation)
    return knob


def test_a_knob_is_constant_until_animated() -> None:
    knob = nuke.Double_Knob("happy", "happy")
    knob.setValue(0.25)
    assert not knob.isAnimated() and knob.animation(0) is None
    assert knob.getValueAt(1) == knob.getValueAt(1000) == knob.value() == 0.25
    knob.setAnimated()
    assert knob.isAnimated() and [(k.x, k.y) for k in knob.animation(0).keys()] == [(1.0, 0.25)]
    nuke.stub_set_frame(10)
    knob.setValue(0.75)  # on an animated knob: a key at the current frame
    assert [(k.x, k.y) for k in knob.animation(0).keys()] == [(1.0, 0.25), (10.0, 0.75)]
    xy = nuke.XY_Knob("face")
    xy.setValue([3.0, 4.0])
    assert xy.getValueAt(5) == [3.0, 4.0] and xy.getValueAt(5, 1) == 4.0
    xy.setValueAt(8.0, 20, 1)
    assert xy.isAnimated(1) and not xy.isAnimated(0) and xy.getValueAt(20, 1) == 8.0
    with pytest.raises(ValueError):
        nuke.Enumeration_Knob("e", "e", ["a", "b"]).setValue("c")
    with pytest.raises(NameError):
        nuke.nodes.Blur()["no_such_knob"]


def test_step_linear_and_smooth_keys() -> None:
    keys = [(1, 0.0), (5, 1.0), (9, 0.0)]
    step = curve(keys, nuke.CONSTANT)
    assert [step.getValueAt(f) for f in (0, 1, 4, 5, 8, 9, 12)] == [0, 0, 0, 1, 1, 0, 0]
    linear = curve(keys, nuke.LINEAR)
    assert [linear.getValueAt(f) for f in (1, 2, 3, 5, 7, 9)] == pytest.approx([0, .25, .5, 1, .5, 0])
    smooth = curve(keys, None)  # new keys are SMOOTH, as in Nuke
    values = [smooth.getValueAt(f) for f in range(1, 6)]
    assert values == sorted(values) and values[1] < 0.25 and values[3] > 0.75  # eases in and out
    assert smooth.getValueAt(3) == pytest.approx(0.5)
    ramp = curve([(1, 0.0), (5, 0.5), (9, 1.0)], None)
    assert all(0.0 <= ramp.getValueAt(f) <= 1.0 for f in range(1, 10))  # never leaves the keys' hull


def test_groups_inputs_and_contexts() -> None:
    read = nuke.nodes.Read(file="/x/a.####.exr", first=5, last=9)
    group = nuke.nodes.Group()
    group.begin()
    first = nuke.nodes.Input()
    second = nuke.nodes.Input()
    nuke.nodes.Output(inputs=[first])
    group.end()
    group.setInput(0, read)
    assert (first["number"].value(), second["number"].value()) == (0, 1)
    assert (group.firstFrame(), group.lastFrame()) == (5, 9) and nuke.toNode(first.name()) is None
    assert nuke.toNode(f"{group.name()}.{first.name()}") is first
    nuke.executeInMainThread(lambda: nuke.message("later"))
    assert nuke.stub_messages == [] and nuke.stub_process_events() == 1 and nuke.stub_messages == ["later"]


def test_docs_list_every_knob() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "nuke.md").read_text()
    table = text.split("## Knobs", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_]+)`", table))
    shown = {d.name for d in knobs.KNOBS if d.kind not in ("tab", "divider")}
    assert shown <= documented, shown - documented
