"""The add-on as a Blender extension: Blender's own ``extension build`` accepts the manifest and folder,
and its extension system installs the zip, puts the bundled wheel on the path and enables the add-on."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PLUGIN, ROOT, VERSIONS, bpy_python, run_in_blender


def blender_ext(version: str) -> Path:
    """Blender's extension command line (``blender --command extension``) inside the bpy wheel."""
    python = bpy_python(version)
    found = sorted(python.parents[1].glob("lib/python3.*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/"
                                          "blender_ext.py"))
    assert found, "bl_pkg/cli/blender_ext.py not found in the bpy wheel"
    return found[0]


@pytest.fixture(scope="module")
def protocol_wheel(tmp_path_factory) -> Path:
    """A wheel of protocol/ (``ned_protocol``), built offline with the venv's setuptools."""
    folder = tmp_path_factory.mktemp("protocol-wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT / "protocol"), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(folder)], check=True, capture_output=True)
    (wheel,) = folder.glob("ned_protocol-*.whl")
    return wheel


def build_zip(version: str, folder: Path, protocol_wheel: Path) -> Path:
    """The extension zip, with the ``ned_protocol`` wheel built from protocol/ (offline).

    msgpack and pyzmq are already in the bpy venv, so this test zip lists only the protocol wheel and one
    platform; the installer's zip lists the three wheels per platform (see test_manifest.py).
    """
    source = folder / "ned_blender"
    shutil.copytree(PLUGIN / "ned_blender", source, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = source / "wheels"
    wheels.mkdir()
    shutil.copy(protocol_wheel, wheels)
    wheel = protocol_wheel.name
    manifest = (source / "blender_manifest.toml").read_text()
    manifest = re.sub(r"wheels = \[.*?\]", f'wheels = ["./wheels/{wheel}"]', manifest, flags=re.S)
    manifest = re.sub(r"platforms = \[.*?\]", 'platforms = ["linux-x64"]', manifest)
    (source / "blender_manifest.toml").write_text(manifest)
    out = folder / "dist"
    out.mkdir()
    python = str(bpy_python(version))
    for command in (["validate", str(source)], ["build", "--source-dir", str(source), "--output-dir", str(out)]):
        run = subprocess.run([python, str(blender_ext(version)), *command], capture_output=True, text=True)
        assert run.returncode == 0 and "FATAL" not in run.stdout, run.stdout + run.stderr
    (built,) = out.glob("ned_blender-*.zip")
    return built


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.uname().machine != "x86_64",
                    reason="the test zip is built for linux-x64")
@pytest.mark.parametrize("version", VERSIONS)
def test_extension_installs_and_enables_with_blenders_own_tools(version, tmp_path: Path, protocol_wheel) -> None:
    built = build_zip(version, tmp_path, protocol_wheel)
    env = dict(os.environ, HOME=str(tmp_path / "home"), BLENDER_USER_RESOURCES=str(tmp_path / "user"),
               NED_PROTOCOL_PATH="")
    report_path = tmp_path / "report.json"
    run = run_in_blender(version, "install_extension.py", str(built), str(report_path), env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(report_path.read_text())
    assert report["install"] == ["FINISHED"] and report["enabled"]
    user = str(tmp_path / "user")
    assert report["module_file"].startswith(user)
    assert report["protocol_file"].startswith(user)  # from the bundled wheel, not the checkout
    assert report["preferences"] == "NED_AP_preferences"
    assert report["properties"] == ["ned_happy", "ned_intensity", "ned_mouth_preservation", "ned"]
    assert report["operators"] == ["process", "cancel", "start_engine", "add_image_node"]
    assert report["panels"] == ["SEQUENCER_PT_ned", "NODE_PT_ned"]
    assert report["disabled_properties"] is False
