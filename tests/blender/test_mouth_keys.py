"""Keyed mouth preservation in real Blender (the PyPI ``bpy`` module, 4.5 LTS and 5.0): the strip's
animated ``ned_mouth_preservation`` fcurve is sampled per frame into the job's keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import VERSIONS, run_in_blender


@pytest.mark.parametrize("version", VERSIONS)
def test_an_animated_mouth_preservation_rides_in_the_keys(version, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    run = run_in_blender(version, "mouth_keys.py", "--report", str(report_path))
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(report_path.read_text())
    constant = report["constant"]
    assert constant["mouth_preservation"] == 1.0
    assert all("mouth_preservation" not in k for k in constant["keys"])
    keyed = report["keyed"]
    # timeline 3..10 is plate 1003..1010; constant keys: 1 on 3-4, 0 on 5-7, 1 from 8 (runs thinned to their ends)
    assert [(k["frame"], k["mouth_preservation"]) for k in keyed["keys"]] == [
        (1003, 1.0), (1004, 1.0), (1005, 0.0), (1007, 0.0), (1008, 1.0), (1010, 1.0)]
    assert keyed["interpolation"] == "linear" and keyed["mouth_preservation"] == 0.625
    assert report["dropped"] == ["keys[].mouth_preservation"]
    assert all("mouth_preservation" not in k for k in report["older"]["keys"])
    assert report["older"]["mouth_preservation"] == 0.625
