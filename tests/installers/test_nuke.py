"""``install.py nuke``: the plugin copied beside ~/.nuke with its wheels, one marked line in init.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import INSTALL, ROOT, install_env, make_nuke_plugin, run_install, snapshot, without_times

MARK = "# added by NED installer"
INIT_VARIANTS = {
    "absent": None,
    "newline": b"import nuke\nnuke.pluginAddPath('./gizmos')\n",
    "no_final_newline": b"import nuke\nnuke.pluginAddPath('./gizmos')",
    "crlf": b"import nuke\r\nnuke.pluginAddPath('./gizmos')\r\n",
    "empty": b"",
}


def nuke_args(plugin: Path, wheels: Path, *more: str) -> list[str]:
    return ["nuke", "--source", str(plugin), "--wheels", str(wheels), "--platform", "linux-x64", *more]


@pytest.mark.parametrize("variant", list(INIT_VARIANTS))
def test_install_again_and_uninstall(variant, home, tmp_path, wheels):
    """Install, install again (nothing changes, not even a time stamp), uninstall (home as it was)."""
    plugin = make_nuke_plugin(tmp_path / "plugin")
    original = INIT_VARIANTS[variant]
    if original is not None:
        (home / ".nuke").mkdir()
        (home / ".nuke" / "init.py").write_bytes(original)
        (home / ".nuke" / "my.gizmo").write_text("Gizmo {}\n")
    before = snapshot(home)

    first = run_install(home, *nuke_args(plugin, wheels, "--nuke-python", "3.11"))
    target = home / ".nuke" / "ned"
    for name in ("init.py", "menu.py", "ned_nuke/__init__.py"):
        assert (target / name).read_bytes() == (plugin / name).read_bytes()
    assert not (target / "ned_nuke" / "__pycache__").exists()
    init = (home / ".nuke" / "init.py").read_bytes()
    line = f"import nuke; nuke.pluginAddPath({str(target)!r})  {MARK}".encode()
    eol = b"\r\n" if variant == "crlf" else b"\n"
    sep = eol if original and not original.endswith(b"\n") else b""
    assert init == (original or b"") + sep + line + eol
    assert f"{'created' if original is None else 'edited'} ~/.nuke/init.py" in first.stdout
    assert "new " in first.stdout and "files in ~/.nuke/ned" in first.stdout
    assert (home / ".local" / "share" / "ned" / "installs.json").exists()
    installed = snapshot(home)

    again = run_install(home, *nuke_args(plugin, wheels, "--nuke-python", "3.11"))
    assert "nothing changed" in again.stdout
    assert snapshot(home) == installed

    gone = run_install(home, "nuke", "--uninstall")
    assert "uninstalled" in gone.stdout
    assert without_times(snapshot(home)) == without_times(before)  # init.py was written twice: new mtime
    if original is not None:
        assert (home / ".nuke" / "init.py").read_bytes() == original


def test_wheels_import_in_a_bare_python(home, tmp_path, wheels):
    """The installed site-packages imports ned_protocol, zmq and msgpack (compiled) with no venv at all."""
    run_install(home, *nuke_args(make_nuke_plugin(tmp_path / "plugin"), wheels))  # default: 3.10 and 3.11
    site = home / ".nuke" / "ned" / "site-packages"
    for version in ("310", "311"):
        assert list(site.glob(f"msgpack/_cmsgpack.cpython-{version}-*.so"))
        assert list(site.glob(f"zmq/backend/cython/_zmq.cpython-{version}-*.so"))
    assert (site / "ned_protocol" / "client.py").read_bytes() == (
        ROOT / "protocol" / "ned_protocol" / "client.py").read_bytes()
    code = (f"import sys; sys.path.insert(0, {str(site)!r}); import msgpack, zmq, ned_protocol; "
            "from ned_protocol import Client; assert msgpack.Packer.__module__ == 'msgpack._cmsgpack'; "
            "assert zmq.__file__.startswith(sys.path[0]); print(zmq.zmq_version())")
    # -I -S: no site-packages and no environment variables, as in a host's embedded Python.
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("4.")


def test_init_line_adds_the_plugin_path(home, tmp_path, wheels):
    """~/.nuke/init.py run as Nuke runs it (a stub ``nuke`` module) adds the installed plugin folder."""
    run_install(home, *nuke_args(make_nuke_plugin(tmp_path / "plugin"), wheels, "--nuke-python", "3.11"))
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "nuke.py").write_text("added = []\ndef pluginAddPath(path, addToSysPath=True):\n    added.append(path)\n")
    code = (f"import sys; sys.path.insert(0, {str(stub)!r}); import nuke; "
            f"exec(open({str(home / '.nuke' / 'init.py')!r}).read()); print(nuke.added)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == repr([str(home / ".nuke" / "ned")])


def test_user_lines_added_later_survive_uninstall(home, tmp_path, wheels):
    plugin = make_nuke_plugin(tmp_path / "plugin")
    (home / ".nuke").mkdir()
    init = home / ".nuke" / "init.py"
    init.write_bytes(b"import nuke")
    run_install(home, *nuke_args(plugin, wheels, "--nuke-python", "3.11"))
    with init.open("ab") as handle:
        handle.write(b"nuke.pluginAddPath('./later')\n")
    run_install(home, "nuke", "--uninstall")
    assert init.read_bytes() == b"import nuke\nnuke.pluginAddPath('./later')\n"


def test_source_changes_are_followed(home, tmp_path, wheels):
    """A file added to the plugin is installed, a file dropped from it is removed; the rest is untouched."""
    plugin = make_nuke_plugin(tmp_path / "plugin")
    run_install(home, *nuke_args(plugin, wheels, "--nuke-python", "3.11"))
    kept = snapshot(home / ".nuke" / "ned" / "site-packages")
    (plugin / "menu.py").unlink()
    (plugin / "ned_nuke" / "farm.py").write_text("FARM = 1\n")
    result = run_install(home, *nuke_args(plugin, wheels, "--nuke-python", "3.11", "--verbose"))
    assert "new ~/.nuke/ned/ned_nuke/farm.py" in result.stdout
    assert "removed ~/.nuke/ned/menu.py" in result.stdout
    assert not (home / ".nuke" / "ned" / "menu.py").exists()
    assert snapshot(home / ".nuke" / "ned" / "site-packages") == kept
    recorded = json.loads((home / ".local" / "share" / "ned" / "installs.json").read_text())
    files = recorded["installs"][f"nuke:{home / '.nuke' / 'ned'}"]["files"]
    assert str(home / ".nuke" / "ned" / "ned_nuke" / "farm.py") in files
    assert str(home / ".nuke" / "ned" / "menu.py") not in files


def test_prefix_for_nuke_path(home, tmp_path, wheels):
    """--prefix DIR: a self-contained NUKE_PATH folder; ~/.nuke is not touched; uninstall removes DIR."""
    plugin = make_nuke_plugin(tmp_path / "plugin")
    prefix = tmp_path / "studio" / "nuke" / "ned"
    before = snapshot(home)
    result = run_install(home, *nuke_args(plugin, wheels, "--prefix", str(prefix), "--nuke-python", "3.11"))
    assert f'export NUKE_PATH="{prefix}${{NUKE_PATH:+:$NUKE_PATH}}"' in result.stdout
    assert (prefix / "init.py").exists() and (prefix / "site-packages" / "ned_protocol" / "__init__.py").exists()
    assert not (home / ".nuke").exists()
    installed = snapshot(prefix)
    assert "nothing changed" in run_install(home, *nuke_args(plugin, wheels, "--prefix", str(prefix),
                                                              "--nuke-python", "3.11")).stdout
    assert snapshot(prefix) == installed
    run_install(home, "nuke", "--prefix", str(prefix), "--uninstall")
    assert not (tmp_path / "studio").exists()
    assert without_times(snapshot(home)) == without_times(before)


def test_prefix_refuses_a_folder_it_did_not_make(home, tmp_path, wheels):
    prefix = tmp_path / "shared"
    prefix.mkdir()
    (prefix / "menu.py").write_text("# the studio's own\n")
    result = run_install(home, *nuke_args(make_nuke_plugin(tmp_path / "plugin"), wheels, "--prefix", str(prefix)),
                         check=False)
    assert result.returncode == 1
    assert "install.py: error: invalid_option:" in result.stderr and str(prefix) in result.stderr
    assert (prefix / "menu.py").read_text() == "# the studio's own\n"


def test_uninstall_with_nothing_installed(home):
    result = run_install(home, "nuke", "--uninstall")
    assert "nothing to remove" in result.stdout
    assert snapshot(home) == {}


def test_the_repository_plugin_folder(home, wheels):
    """Whatever plugins/nuke holds (without --source) is installed file for file."""
    run_install(home, "nuke", "--wheels", str(wheels), "--platform", "linux-x64", "--nuke-python", "3.11")
    source = ROOT / "plugins" / "nuke"
    files = [p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert files
    for path in files:
        assert (home / ".nuke" / "ned" / path.relative_to(source)).read_bytes() == path.read_bytes()
    run_install(home, "nuke", "--uninstall")
    assert snapshot(home) == {}


def test_a_windows_folder_prepared_on_linux(home, tmp_path, wheels):
    """--platform picks the wheels for the machine Nuke runs on, not the one running the installer."""
    prefix = tmp_path / "win"
    run_install(home, *nuke_args(make_nuke_plugin(tmp_path / "plugin"), wheels, "--prefix", str(prefix),
                                 "--nuke-python", "3.11"), "--platform", "windows-x64")
    assert list((prefix / "site-packages").glob("zmq/backend/cython/_zmq.cp311-win_amd64.pyd"))
    assert not list((prefix / "site-packages").glob("**/*.so"))


def test_runs_on_the_standard_library_alone(home, tmp_path, wheels):
    """-I -S: no site-packages at all (pip then comes from the checkout's .venv), as before any venv."""
    plugin = make_nuke_plugin(tmp_path / "plugin")
    args = nuke_args(plugin, wheels, "--nuke-python", "3.11")
    result = subprocess.run([sys.executable, "-I", "-S", str(INSTALL), *args], capture_output=True, text=True,
                            env=install_env(home))
    assert result.returncode == 0, result.stderr
    assert (home / ".nuke" / "ned" / "site-packages" / "zmq").is_dir()


def test_a_symlinked_init_py_stays_a_link(home, tmp_path, wheels):
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "nuke_init.py").write_bytes(b"import nuke\n")
    (home / ".nuke").mkdir()
    (home / ".nuke" / "init.py").symlink_to(dotfiles / "nuke_init.py")
    run_install(home, *nuke_args(make_nuke_plugin(tmp_path / "plugin"), wheels, "--nuke-python", "3.11"))
    assert (home / ".nuke" / "init.py").is_symlink()
    assert MARK in (dotfiles / "nuke_init.py").read_text()
    run_install(home, "nuke", "--uninstall")
    assert (home / ".nuke" / "init.py").is_symlink()
    assert (dotfiles / "nuke_init.py").read_bytes() == b"import nuke\n"
