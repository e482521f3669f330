"""Shared fixtures: one folder of real wheels (msgpack, pyzmq) per session, a fresh home per test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# (Python version, pip platform tags): Nuke 15 and 16 on Linux, Blender on Linux and Windows.
TARGETS = [("3.10", ["manylinux_2_28_x86_64", "manylinux2014_x86_64"]),
           ("3.11", ["manylinux_2_28_x86_64", "manylinux2014_x86_64"]),
           ("3.11", ["win_amd64"])]


@pytest.fixture(scope="session")
def wheels(tmp_path_factory) -> Path:
    """msgpack and pyzmq wheels for TARGETS, downloaded once (pip's cache makes later sessions quick).

    The installer is then run with ``--wheels`` on this folder, so each test resolves offline.
    """
    folder = tmp_path_factory.mktemp("wheels")
    for python, tags in TARGETS:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                   "--only-binary", ":all:", "--python-version", python, "--implementation", "cp",
                   "--dest", str(folder), "msgpack>=1.0", "pyzmq>=25"]
        for tag in tags:
            command += ["--platform", tag]
        subprocess.run(command, check=True, capture_output=True)
    return folder


@pytest.fixture
def home(tmp_path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder
