"""``install.py blender``: the extension zip (wheels for the chosen platforms) and Blender's own installer."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from .helpers import ROOT, bpy_python, make_blender_extension, run_install, snapshot, without_times

# A stand-in for the blender executable: it answers `--command extension install-file|list|remove`
# the way Blender does, keeping its repository outside HOME and logging every call.
FAKE_BLENDER = '''#!{python}
import json, shutil, sys, zipfile
from pathlib import Path
state = Path({state!r})
state.mkdir(exist_ok=True)
with open(state / "calls.jsonl", "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
assert args[:2] == ["--command", "extension"], args
repo = state / "user_default"
if args[2] == "install-file":
    assert args[3:6] == ["-r", "user_default", "-e"], args
    with zipfile.ZipFile(args[6]) as archive:
        archive.extractall(repo / "ned_blender")
    print('STATUS Installed "ned_blender"')
elif args[2] == "list":
    print('Repository: "User Default" (id=user_default)')
    for ext in sorted(repo.glob("*")) if repo.exists() else []:
        print("  " + ext.name + ' [installed]: "NED", Neural Emotion Director')
elif args[2] == "remove":
    assert args[3] == "user_default.ned_blender", args
    shutil.rmtree(repo / "ned_blender")
'''


def zip_args(source: Path, wheels: Path, out: Path, platforms: str = "linux-x64") -> list[str]:
    return ["blender", "--source", str(source), "--wheels", str(wheels), "--platform", platforms, "--zip", str(out)]


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_zip_lists_exactly_its_wheels(home, tmp_path, wheels):
    source = make_blender_extension(tmp_path / "src")
    out = tmp_path / "dist" / "ned_blender.zip"
    result = run_install(home, *zip_args(source, wheels, out, "linux-x64,windows-x64"))
    assert f"new {out}" in result.stdout
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
        protocol = [n for n in names if n.startswith("wheels/ned_protocol-")]
        assert len(protocol) == 1
        wheel = zipfile.ZipFile(io.BytesIO(archive.read(protocol[0])))
    wheel_files = sorted(n for n in names if n.startswith("wheels/"))
    assert manifest["wheels"] == [f"./{n}" for n in wheel_files]
    assert manifest["platforms"] == ["linux-x64", "windows-x64"]
    assert manifest["id"] == "ned_blender" and manifest["permissions"] == {"network": "Talks to a local ned-engine"}
    assert names - set(wheel_files) == {"blender_manifest.toml", "__init__.py", "ops.py"}  # no cache, no stale
    projects = sorted(n.split("/")[1].split("-")[0] for n in wheel_files)
    assert projects == ["msgpack", "msgpack", "ned_protocol", "pyzmq", "pyzmq"]
    assert any("win_amd64" in n for n in wheel_files) and any("manylinux" in n for n in wheel_files)
    assert all("cp311" in n or "py3-none-any" in n for n in wheel_files)
    # The protocol wheel carries the repository's sources, and its RECORD is right.
    for path in (ROOT / "protocol" / "ned_protocol").glob("*.py"):
        assert wheel.read(f"ned_protocol/{path.name}") == path.read_bytes()
    info = next(n for n in wheel.namelist() if n.endswith(".dist-info/RECORD"))
    for name, hashed, size in csv.reader(io.StringIO(wheel.read(info).decode())):
        if name != info:
            assert hashed == record_hash(wheel.read(name)) and int(size) == len(wheel.read(name))
    assert "Requires-Dist: pyzmq>=25" in wheel.read(info.replace("RECORD", "METADATA")).decode()

    first = out.read_bytes()
    assert f"unchanged {out}" in run_install(home, *zip_args(source, wheels, out, "linux-x64,windows-x64")).stdout
    assert out.read_bytes() == first
    assert snapshot(home) == {}  # building a zip installs nothing


@pytest.mark.skipif(bpy_python() is None, reason="no Python with bpy on this machine (tests/blender makes one)")
def test_zip_passes_blenders_validation(home, tmp_path, wheels):
    import subprocess

    out = tmp_path / "ned_blender.zip"
    run_install(home, *zip_args(make_blender_extension(tmp_path / "src"), wheels, out))
    tool = next(bpy_python().parents[1].glob("lib/python3.*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/"
                                             "blender_ext.py"))
    result = subprocess.run([sys.executable, str(tool), "validate", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def make_fake_blender(tmp_path: Path) -> Path:
    blender = tmp_path / "bin" / "blender"
    blender.parent.mkdir()
    blender.write_text(FAKE_BLENDER.format(python=sys.executable, state=str(tmp_path / "blender-state")))
    blender.chmod(0o755)
    return blender


def test_install_and_uninstall_through_blenders_command_line(home, tmp_path, wheels):
    source = make_blender_extension(tmp_path / "src")
    blender = make_fake_blender(tmp_path)
    args = ["blender", "--source", str(source), "--wheels", str(wheels), "--platform", "linux-x64",
            "--blender", str(blender)]
    result = run_install(home, *args)
    assert f"installed and enabled user_default.ned_blender in {blender}" in result.stdout
    state = tmp_path / "blender-state"
    calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    assert calls[0][:6] == ["--command", "extension", "install-file", "-r", "user_default", "-e"]
    assert calls[0][6].endswith("ned_blender.zip") and not Path(calls[0][6]).exists()  # a temporary zip
    assert calls[1] == ["--command", "extension", "list"]
    assert (state / "user_default" / "ned_blender" / "blender_manifest.toml").exists()
    recorded = json.loads((home / ".local" / "share" / "ned" / "installs.json").read_text())
    assert recorded["installs"][f"blender:{blender}"]["id"] == "ned_blender"
    installed = snapshot(home)
    run_install(home, *args)
    assert snapshot(home) == installed

    run_install(home, "blender", "--uninstall")
    calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    assert calls[-1] == ["--command", "extension", "remove", "user_default.ned_blender"]
    assert not (state / "user_default" / "ned_blender").exists()
    assert snapshot(home) == {}


def test_a_failed_install_is_reported(home, tmp_path, wheels):
    """Blender prints some install failures without an exit status: the installer lists to be sure."""
    blender = tmp_path / "blender"
    blender.write_text(f"#!{sys.executable}\nprint('Error: cannot install')\n")
    blender.chmod(0o755)
    result = run_install(home, "blender", "--source", str(make_blender_extension(tmp_path / "src")), "--wheels",
                         str(wheels), "--platform", "linux-x64", "--blender", str(blender), check=False)
    assert result.returncode == 1
    assert "install.py: error: output_error:" in result.stderr and "did not list ned_blender" in result.stderr
    assert snapshot(home) == {}


@pytest.mark.skipif(bpy_python() is None, reason="no Python with bpy on this machine (tests/blender makes one)")
def test_real_blender_extension_command(home, tmp_path, wheels):
    """Blender's own `--command extension` code (run in the bpy module) installs the zip and removes it."""
    shim = tmp_path / "blender_shim.py"
    shim.write_text("import importlib, sys\nimport bpy  # noqa: F401\n"
                    "assert sys.argv[1:3] == ['--command', 'extension'], sys.argv\n"
                    "cli = importlib.import_module('bl_pkg.bl_extension_cli')\n"
                    "sys.exit(cli.cli_extension_handler(sys.argv[3:]))\n")
    blender = tmp_path / "blender"
    blender.write_text(f'#!/bin/sh\nexec "{bpy_python()}" "{shim}" "$@"\n')
    blender.chmod(0o755)
    before = snapshot(home)
    run_install(home, "blender", "--source", str(make_blender_extension(tmp_path / "src")), "--wheels", str(wheels),
                "--platform", "linux-x64", "--blender", str(blender))
    extensions = next((home / ".config" / "blender").glob("*/extensions"))
    assert (extensions / "user_default" / "ned_blender" / "ops.py").read_text() == "X = 1\n"
    site = next(extensions.glob(".local/lib/python3.11/site-packages"))
    assert (site / "ned_protocol" / "client.py").exists() and (site / "zmq").is_dir() and (site / "msgpack").is_dir()
    run_install(home, "blender", "--uninstall")
    assert not (extensions / "user_default" / "ned_blender").exists()
    assert not (site / "ned_protocol").exists()
    # What is left is Blender's own (preferences, repository caches); the install record is gone too.
    left = set(without_times(snapshot(home))) - set(before)
    assert left and all(p.startswith(".config/blender") or p == ".config" for p in left), sorted(left)


def test_usage_errors(home, tmp_path):
    result = run_install(home, "blender", check=False)
    assert result.returncode == 1 and "error: invalid_option: blender: give --zip" in result.stderr
    result = run_install(home, "blender", "--source", str(tmp_path), "--zip", str(tmp_path / "x.zip"), check=False)
    assert result.returncode == 1 and "error: input_not_found:" in result.stderr
    result = run_install(home, "blender", "--zip", str(tmp_path / "x.zip"), "--platform", "amiga", check=False)
    assert result.returncode == 1 and "--platform amiga" in result.stderr


REPO_EXTENSION = ROOT / "plugins" / "blender" / "ned_blender"


@pytest.mark.skipif(not (REPO_EXTENSION / "blender_manifest.toml").exists(), reason="plugins/blender not written yet")
def test_the_repository_extension(home, tmp_path, wheels):
    """plugins/blender/ned_blender (without --source) builds into a zip whose manifest lists its wheels."""
    out = tmp_path / "ned_blender.zip"
    run_install(home, "blender", "--wheels", str(wheels), "--platform", "linux-x64", "--zip", str(out))
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
    assert manifest["id"] == "ned_blender"
    assert manifest["wheels"] == [f"./{n}" for n in sorted(n for n in names if n.startswith("wheels/"))]
    assert {n.split("/")[1].split("-")[0] for n in names if n.startswith("wheels/")} >= {
        "msgpack", "pyzmq", "ned_protocol"}
    assert "__init__.py" in names
