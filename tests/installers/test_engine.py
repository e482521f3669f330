"""``install.py engine``: installers/install.sh for the virtual environment, and a systemd user unit."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .helpers import ROOT, run_install, snapshot, without_times

# Stands in for installers/install.sh (the real one takes a minute and needs the network): it makes
# .venv/bin/ned-engine and logs its arguments outside the venv.
STUB = """#!/usr/bin/env bash
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
echo "$*" >> "$root/install-sh.log"
mkdir -p "$root/.venv/bin" && printf '#!/bin/sh\\n' > "$root/.venv/bin/ned-engine"
echo "NED installed in $root/.venv"
"""


def fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "installers").mkdir(parents=True)
    (root / "installers" / "install.sh").write_text(STUB)
    return root


def test_venv_and_systemd_unit(home, tmp_path):
    root = fake_root(tmp_path)
    before = snapshot(home)
    result = run_install(home, "engine", "--source", str(root), "--dev", "--systemd",
                         "--serve-args", "--workers 2 --allow-root '/shows/my show'")
    assert (root / "install-sh.log").read_text() == "--dev\n"
    assert "created" in result.stdout and ".venv" in result.stdout
    unit = home / ".config" / "systemd" / "user" / "ned-engine.service"
    text = unit.read_text()
    assert f"ExecStart={root}/.venv/bin/ned-engine serve --workers 2 --allow-root '/shows/my show'\n" in text
    assert "[Install]\nWantedBy=default.target\n" in text
    assert "new ~/.config/systemd/user/ned-engine.service" in result.stdout
    assert "systemctl --user daemon-reload" in result.stdout
    installed = snapshot(home)

    again = run_install(home, "engine", "--source", str(root), "--dev", "--systemd",
                        "--serve-args", "--workers 2 --allow-root '/shows/my show'")
    assert "nothing changed" in again.stdout
    assert snapshot(home) == installed
    run_install(home, "engine", "--source", str(root), "--no-venv")  # without --systemd the unit stays
    assert unit.read_text() == text

    gone = run_install(home, "engine", "--source", str(root), "--uninstall")
    assert "removed ~/.config/systemd/user/ned-engine.service" in gone.stdout
    assert not (root / ".venv").exists()  # the installer had created it
    assert without_times(snapshot(home)) == without_times(before) == {}


def test_an_existing_venv_is_kept(home, tmp_path):
    root = fake_root(tmp_path)
    (root / ".venv").mkdir()
    run_install(home, "engine", "--source", str(root))
    assert (root / "install-sh.log").read_text() == "\n"
    result = run_install(home, "engine", "--source", str(root), "--uninstall")
    assert "kept" in result.stdout and (root / ".venv" / "bin" / "ned-engine").exists()
    assert snapshot(home) == {}


def test_install_sh_failure_is_an_error(home, tmp_path):
    root = fake_root(tmp_path)
    (root / "installers" / "install.sh").write_text("exit 3\n")
    result = run_install(home, "engine", "--source", str(root), check=False)
    assert result.returncode == 1 and "error: output_error: installers/install.sh" in result.stderr
    assert snapshot(home) == {}


def test_install_sh_is_unchanged_for_the_readme():
    """README's commands call installers/install.sh directly; its options stay --dev and --ned."""
    result = subprocess.run(["bash", str(ROOT / "installers" / "install.sh"), "--bogus"], capture_output=True,
                            text=True)
    assert result.returncode == 2 and "use --dev or --ned" in result.stderr
    readme = (ROOT / "README.md").read_text()
    assert "bash installers/install.sh && " in readme and "bash installers/install.sh --dev && " in readme


def test_prefix_is_refused(home, tmp_path):
    result = run_install(home, "engine", "--prefix", str(tmp_path / "x"), check=False)
    assert result.returncode == 1 and "error: invalid_option: engine has no --prefix" in result.stderr
