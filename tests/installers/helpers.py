"""Installer test helpers: run ``installers/install.py`` in a temporary home, snapshot folders, fake hosts.

Nothing here imports the installer's own code paths: every test drives it as a user does, as a
subprocess, and judges it by the files it leaves and the lines it prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "installers" / "install.py"
# pip writes these into whatever HOME it runs under (its cache; ~/.rustup when it asks rustc for its
# version for the user agent): they are pip's, not the installer's, so snapshots leave them out.
TOOL_LEFTOVERS = {".cache", ".rustup"}

Snapshot = dict[str, tuple[bytes, int, int] | None]


def install_env(home: Path) -> dict[str, str]:
    env = dict(os.environ, HOME=str(home))
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "NUKE_PATH"):
        env.pop(name, None)
    return env


def run_install(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``install.py ARGS`` with ``HOME=home``; fails the test with its output unless it succeeds."""
    result = subprocess.run([sys.executable, str(INSTALL), *args], capture_output=True, text=True,
                            env=install_env(home), cwd=home)
    if check and result.returncode != 0:
        raise AssertionError(f"install.py {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def snapshot(folder: Path) -> Snapshot:
    """Every path under ``folder``: files as (bytes, mode, mtime_ns), folders as None."""
    out: Snapshot = {}
    if not folder.exists():
        return out
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if rel.parts[0] in TOOL_LEFTOVERS:
            continue
        stat = path.stat()
        out[rel.as_posix()] = (path.read_bytes(), stat.st_mode, stat.st_mtime_ns) if path.is_file() else None
    return out


def without_times(snap: Snapshot) -> dict[str, tuple[bytes, int] | None]:
    return {k: (v[0], v[1]) if v else None for k, v in snap.items()}


def make_nuke_plugin(folder: Path) -> Path:
    """A small stand-in for plugins/nuke: init.py, menu.py and the ned_nuke package."""
    (folder / "ned_nuke").mkdir(parents=True)
    (folder / "init.py").write_text("import os, sys\n"
                                    "sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'site-packages'))\n")
    (folder / "menu.py").write_text("import ned_nuke\n")
    (folder / "ned_nuke" / "__init__.py").write_text('"""Stand-in."""\n')
    (folder / "ned_nuke" / "__pycache__").mkdir()
    (folder / "ned_nuke" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"cache")
    return folder


MANIFEST = """schema_version = "1.0.0"
id = "ned_blender"
version = "0.1.0"
name = "NED"
tagline = "Neural Emotion Director"
maintainer = "NED"
type = "add-on"
blender_version_min = "4.2.0"
license = ["SPDX:MIT"]
wheels = [
  "./wheels/msgpack-0.0.0-cp311-cp311-manylinux2014_x86_64.whl",
]

[permissions]
network = "Talks to a local ned-engine"
"""


def make_blender_extension(folder: Path) -> Path:
    """A small extension folder ``folder/ned_blender`` (with a stale wheel) and ``folder/wheels.txt``."""
    ext = folder / "ned_blender"
    (ext / "wheels").mkdir(parents=True)
    (ext / "blender_manifest.toml").write_text(MANIFEST)
    (ext / "__init__.py").write_text("def register():\n    pass\n\n\ndef unregister():\n    pass\n")
    (ext / "ops.py").write_text("X = 1\n")
    (ext / "wheels" / "stale-0.0.0-py3-none-any.whl").write_bytes(b"not a wheel")
    (ext / "__pycache__").mkdir()
    (ext / "__pycache__" / "ops.cpython-311.pyc").write_bytes(b"cache")
    (folder / "wheels.txt").write_text("# the extension's wheels\nmsgpack>=1.0\npyzmq>=25\nned-protocol\n")
    return ext


def bpy_python() -> Path | None:
    """A Python with the ``bpy`` module (Blender as a module), if one was made on this machine."""
    candidates = [os.environ.get("NED_BPY_PYTHON", "")]
    candidates += sorted(str(p) for p in (Path.home() / ".cache" / "ned" / "bpy").glob("*/bin/python"))
    for name in candidates:
        if name and Path(name).exists():
            return Path(name)
    return None
