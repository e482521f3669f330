"""Farm jobs: the plain ``write_job`` (node values → the JOB.json ``ned-engine analyze/render`` read), and
the ``SCRIPT.nk NODE`` entry point run against the nuke stub (as inside ``nuke -t``) and without nuke."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nuke
import pytest
from ned_engine.farm import load_job
from ned_nuke import farm, host
from ned_nuke.logic import job as jobs
from ned_protocol.errors import InvalidOptionError, OutputError

HERE = Path(__file__).resolve().parent
PLUGIN = HERE.parents[1] / "plugins" / "nuke"


def node_values(tmp_path: Path, **extra) -> jobs.NodeValues:
    weights, intensity = jobs.sample({"happy": lambda f: 0.5}, lambda f: 1.0, (1001, 1003))
    base = dict(label="sh010 NED1", plate=jobs.Plate(str(tmp_path / "plate.####.exr"), "ACEScg"),
                frame_range=(1001, 1003), weights=weights, intensity=intensity,
                output=str(tmp_path / "ned" / "v001" / "sh010.####.exr"))
    base.update(extra)
    return jobs.NodeValues(**base)


def test_write_job_writes_the_spec_the_farm_runner_loads(tmp_path) -> None:
    values = node_values(tmp_path)
    path = farm.write_job(values, farm.default_job_path(values.output))
    assert path == str(tmp_path / "ned" / "v001" / "sh010.job.json")
    loaded = load_job(path)  # ned-engine analyze/render's own reader and checks
    assert loaded == jobs.spec(values) == json.loads(Path(path).read_text())
    assert loaded["plate"] == values.plate.path and loaded["output"]["pattern"] == values.output
    assert [k["weights"]["happy"] for k in loaded["keys"]] == [0.5, 0.5, 0.5]
    assert os.listdir(os.path.dirname(path)) == ["sh010.job.json"]  # no temporary file left


def test_write_job_refuses_bad_values_and_unwritable_places(tmp_path) -> None:
    with pytest.raises(InvalidOptionError):
        farm.write_job(node_values(tmp_path, backend="BAD NAME"), str(tmp_path / "x.json"))
    assert not (tmp_path / "x.json").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError) as error:
        farm.write_job(node_values(tmp_path), str(tmp_path / "file" / "x.json"))
    assert error.value.path == str(tmp_path / "file" / "x.json")


def test_commands_chunk_the_range() -> None:
    assert farm.commands("/s/j.json", (1001, 1045), chunk=20, cache_dir="/c") == [
        "ned-engine analyze /s/j.json --cache-dir /c",
        "ned-engine render /s/j.json --frames 1001-1020 --cache-dir /c",
        "ned-engine render /s/j.json --frames 1021-1040 --cache-dir /c",
        "ned-engine render /s/j.json --frames 1041-1045 --cache-dir /c"]


def scripted_node(tmp_path: Path, plate: str) -> tuple[str, str]:
    """A saved script with a keyframed NeuralEmotionDirector after a Read; returns (script, node name)."""
    read = nuke.nodes.Read(file=plate, first=1001, last=1008)
    read.setSelected(True)
    node = host.create_node()
    node["happy"].setValueAt(0.0, 1001)
    node["happy"].setValueAt(1.0, 1008)
    node["happy"].animation(0).changeInterpolation(node["happy"].animation(0).keys(), nuke.LINEAR)
    script = str(tmp_path / "sh010.nk")
    nuke.scriptSaveAs(script)
    return script, node.name()


def test_the_entry_point_reads_the_node_from_the_script(tmp_path, plate, capsys) -> None:
    script, name = scripted_node(tmp_path, plate)
    nuke.scriptClear()  # `nuke -t` starts with an empty session
    assert farm.main([script, name, "--chunk", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    job = str(tmp_path / "ned" / "sh010" / name / "v001" / f"sh010_{name}.job.json")
    assert lines == [job, f"ned-engine analyze {job} --cache-dir <shared cache folder>",
                     f"ned-engine render {job} --frames 1001-1005 --cache-dir <shared cache folder>",
                     f"ned-engine render {job} --frames 1006-1008 --cache-dir <shared cache folder>"]
    spec = load_job(job)
    assert spec["plate"] == plate and spec["frame_range"] == [1001, 1008]
    assert [round(k["weights"]["happy"], 6) for k in spec["keys"]] == [round(i / 7, 6) for i in range(8)]
    assert spec["output"]["pattern"] == job.replace(".job.json", ".####.exr")
    assert farm.main([script, "NoSuchNode"]) == 1
    assert "error: invalid_option: " in capsys.readouterr().err


def test_the_farm_button_writes_the_job_beside_the_output(tmp_path, plate) -> None:
    script, name = scripted_node(tmp_path, plate)
    node = nuke.toNode(name)
    node["output"].setValue(str(tmp_path / "out" / "sh010_ned.####.exr"))
    node["farm"].execute()
    job = tmp_path / "out" / "sh010_ned.job.json"
    assert node["status"].value() == f"Farm job written: {job}"
    assert load_job(str(job))["output"]["pattern"] == str(tmp_path / "out" / "sh010_ned.####.exr")


def test_run_as_a_file_like_nuke_t_does(tmp_path, plate) -> None:
    script, name = scripted_node(tmp_path, plate)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE / "stub"), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, str(PLUGIN / "ned_nuke" / "farm.py"), script, name,
                             "--out", str(tmp_path / "job.json")], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == str(tmp_path / "job.json")
    assert load_job(str(tmp_path / "job.json"))["plate"] == plate


def test_without_nuke_the_entry_point_says_how_to_run_it(tmp_path) -> None:
    env = dict(os.environ, PYTHONPATH=str(PLUGIN))
    result = subprocess.run([sys.executable, "-m", "ned_nuke.farm", "sh010.nk", "NED1"], capture_output=True,
                            text=True, env=env, cwd=str(tmp_path))
    assert result.returncode == 1 and result.stdout == ""
    assert "error: missing_dependency: cannot import nuke" in result.stderr and "nuke -t " in result.stderr
