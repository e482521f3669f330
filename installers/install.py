#!/usr/bin/env python3
"""Install NED into its hosts: the Nuke plugin, the Blender extension and the engine's environment.

    install.py nuke    [--user | --prefix DIR] [--uninstall] [--nuke-python 3.10,3.11] [--platform P]
    install.py blender [--zip OUT.zip] [--blender PATH] [--platform P,...|all] [--uninstall]
    install.py engine  [--dev | --ned] [--systemd [--serve-args ARGS]] [--no-venv] [--uninstall]

This script owns putting files in place and taking exactly those files away again: it records every
file it wrote, every folder it created and every line it added in ``~/.local/share/ned/installs.json``
(``$XDG_DATA_HOME/ned``), and ``--uninstall`` reverts exactly that. Running an install twice changes
nothing the second time (files whose bytes already match are not rewritten). It honours ``HOME``.

It runs before any virtual environment exists, with any Python 3.9+, so it imports only the standard
library; it must not import ``ned_protocol``, ``ned_core`` or anything from PyPI. Wheels are fetched with
``pip download`` (the running Python's pip, else the repository's ``.venv``) or taken from ``--wheels DIR``;
they are unpacked here, not by ``pip install``, so the same wheel always gives the same bytes.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARKER = "# added by NED installer"
SITE_DIR = "site-packages"  # inside the installed Nuke plugin; plugins/nuke/init.py puts it on sys.path
NUKE_FOLDER = "ned"  # ~/.nuke/ned
DEFAULT_NUKE_PYTHON = "3.10,3.11"  # Nuke 15.x runs Python 3.10, Nuke 16.x Python 3.11
DEFAULT_BLENDER_PYTHON = "3.11"  # Blender 4.2 LTS to 5.0 all embed Python 3.11
BLENDER_REPO = "user_default"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed entry times: the same inputs always give the same zip bytes
SKIP_NAMES = {"__pycache__", ".DS_Store", ".git", ".gitignore", ".pytest_cache", ".ruff_cache"}

# Blender's platform names (blender_manifest.toml ``platforms``) and the pip tags whose wheels run there.
PLATFORMS: dict[str, list[str]] = {
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux2014_x86_64"],
    "macos-arm64": ["macosx_11_0_arm64"],
    "macos-x64": ["macosx_11_0_x86_64"],
    "windows-x64": ["win_amd64"],
    "windows-arm64": ["win_arm64"],
}

FileMap = dict[Path, tuple[bytes, int]]  # absolute path -> (bytes, permission bits)


class InstallError(Exception):
    """A failure the user can act on: printed as ``install.py: error: CODE: message``, exit status 1."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------------------------- places


def home() -> Path:
    """The home folder as Nuke and Blender see it: ``$HOME`` first (also on Windows), else the OS's."""
    return Path(os.environ.get("HOME") or os.path.expanduser("~")).resolve()


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME")
    return (Path(base) if base else home() / ".local" / "share") / "ned"


def config_dir() -> Path:
    # systemd reads user units from $XDG_CONFIG_HOME/systemd/user, so the unit goes where it looks.
    base = os.environ.get("XDG_CONFIG_HOME")
    return Path(base) if base else home() / ".config"


def host_platform() -> str:
    """This machine's platform in Blender's naming (``linux-x64`` ...)."""
    machine = platform.machine().lower()
    arm = machine in ("arm64", "aarch64")
    if sys.platform.startswith("linux"):
        return "linux-arm64" if arm else "linux-x64"
    if sys.platform == "darwin":
        return "macos-arm64" if arm else "macos-x64"
    if sys.platform == "win32":
        return "windows-arm64" if arm else "windows-x64"
    return sys.platform


def parse_platforms(text: str | None) -> list[str]:
    names = list(PLATFORMS) if text == "all" else [p.strip() for p in (text or host_platform()).split(",")]
    for name in names:
        if name not in PLATFORMS:
            raise InstallError("invalid_option", f"--platform {name}: use one of {', '.join(PLATFORMS)} or all")
    return sorted(set(names))


def parse_versions(text: str, option: str) -> list[str]:
    versions = {v.strip() for v in text.split(",") if v.strip()}
    if not versions or any(not re.fullmatch(r"3\.\d+", v) for v in versions):
        raise InstallError("invalid_option", f"{option} {text}: give Python versions such as 3.10,3.11")
    return sorted(versions, key=lambda v: int(v.split(".")[1]))


def show(path: Path) -> str:
    """A path as printed: under the home folder as ``~/...``."""
    try:
        return "~/" + path.relative_to(home()).as_posix()
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------------------- manifest


class Manifest:
    """``installs.json``: what each install wrote, so that uninstall reverts exactly that."""

    def __init__(self) -> None:
        self.path = data_dir() / "installs.json"
        self.data: dict[str, Any] = {"version": 1, "created_dirs": [], "installs": {}}
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise InstallError("corrupt_manifest", f"{self.path}: not valid JSON ({exc})") from exc

    def get(self, key: str) -> dict[str, Any] | None:
        return self.data["installs"].get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.data["installs"][key] = entry
        self.save()

    def drop(self, key: str) -> None:
        self.data["installs"].pop(key, None)
        self.save()

    def save(self) -> None:
        if not self.data["installs"]:
            if self.path.exists():
                self.path.unlink()
            remove_dirs(self.data.get("created_dirs", []))
            self.data["created_dirs"] = []
            return
        created = make_dirs(self.path.parent)
        self.data["created_dirs"] = sorted(set(self.data.get("created_dirs", [])) | set(created))
        write_if_changed(self.path, (json.dumps(self.data, indent=2, sort_keys=True) + "\n").encode(), 0o644)


def make_dirs(folder: Path) -> list[str]:
    """Create ``folder`` and its missing parents; return the ones created (to remove on uninstall)."""
    missing: list[Path] = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
    return [str(p) for p in missing]


def remove_dirs(dirs: list[str]) -> list[str]:
    """Remove the given folders if empty, deepest first; return the ones still holding files."""
    kept = []
    for name in sorted(set(dirs), key=lambda d: -len(Path(d).parts)):
        path = Path(name)
        if not path.is_dir():
            continue
        cache = path / "__pycache__"  # byte code Python wrote beside installed modules goes with them
        if cache.is_dir() and all(p.suffix == ".pyc" for p in cache.iterdir()):
            shutil.rmtree(cache)
        try:
            path.rmdir()
        except OSError:
            kept.append(name)
    return kept


def write_if_changed(path: Path, data: bytes, mode: int) -> str | None:
    """Write ``data`` atomically (temp name, then rename); return "new"/"updated", or None if unchanged."""
    if path.is_file() and path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
        return None
    state = "updated" if path.exists() else "new"
    tmp = path.with_name(f".{path.name}.ned-tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return state


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Log:
    """Prints what changed: files inside an installed folder as counts per folder, anything else by name."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.changed = False
        self.counts: dict[tuple[str, str], int] = {}

    def say(self, text: str) -> None:
        self.changed = True
        print(text)

    def file(self, state: str, path: Path, folder: Path | None = None) -> None:
        self.changed = True
        if folder is None or self.verbose:
            print(f"{state} {show(path)}")
        if folder is not None:
            self.counts[(str(folder), state)] = self.counts.get((str(folder), state), 0) + 1

    def flush(self) -> None:
        for (folder, state), count in sorted(self.counts.items()):
            print(f"{state} {count} file{'s' if count != 1 else ''} in {show(Path(folder))}")
        self.counts.clear()


def apply_files(files: FileMap, entry: dict[str, Any], prune: bool, log: Log,
                folder: Path | None = None) -> None:
    """Make the recorded file set equal ``files``: write what differs, remove what is no longer wanted."""
    recorded: dict[str, str] = entry.setdefault("files", {})
    created: list[str] = list(entry.get("dirs", []))
    for path in sorted(files):
        data, mode = files[path]
        created += make_dirs(path.parent)
        state = write_if_changed(path, data, mode)
        if state:
            log.file(state, path, folder)
        recorded[str(path)] = digest(data)
    if prune:
        for name in sorted(set(recorded) - {str(p) for p in files}):
            path = Path(name)
            if path.is_file():
                path.unlink()
                log.file("removed", path, folder)
            del recorded[name]
    entry["dirs"] = sorted(set(created))


def remove_files(entry: dict[str, Any], log: Log, folder: Path | None = None) -> None:
    for name in sorted(entry.get("files", {})):
        path = Path(name)
        if path.is_file():
            path.unlink()
            log.file("removed", path, folder)


def remove_created_dirs(entry: dict[str, Any], log: Log) -> None:
    for name in remove_dirs(entry.get("dirs", [])):
        log.say(f"kept {show(Path(name))}: it holds files NED did not install")


# -------------------------------------------------------------------------------------------- wheels


def read_pyproject(path: Path) -> dict[str, Any]:
    """``name``, ``version``, ``requires-python`` and ``dependencies`` of a simple pyproject.toml.

    Python 3.9 has no tomllib, so the few top-level ``[project]`` keys used here are read by pattern.
    """
    text = path.read_text(encoding="utf-8")
    project = text.split("[project]", 1)[-1].split("\n[", 1)[0]
    out: dict[str, Any] = {}
    for key in ("name", "version", "requires-python"):
        match = re.search(rf'^{re.escape(key)}\s*=\s*"([^"]*)"', project, re.M)
        if match:
            out[key] = match.group(1)
    deps = re.search(r"^dependencies\s*=\s*\[(.*?)\]", project, re.M | re.S)
    out["dependencies"] = re.findall(r'"([^"]+)"', deps.group(1)) if deps else []
    return out


def protocol_wheel(protocol: Path) -> tuple[str, bytes]:
    """Build the ``ned_protocol`` wheel (pure Python) from ``protocol/``: its filename and bytes.

    Built here rather than by ``pip wheel`` so that it needs no build backend or network, and so that
    the same sources always give the same bytes (pip's wheels carry the build time).
    """
    meta = read_pyproject(protocol / "pyproject.toml")
    dist = re.sub(r"[-_.]+", "_", meta["name"])
    info = f"{dist}-{meta['version']}.dist-info"
    files: list[tuple[str, bytes]] = []
    for path in sorted((protocol / "ned_protocol").rglob("*")):
        rel = path.relative_to(protocol)
        if path.is_file() and not SKIP_NAMES & set(rel.parts) and path.suffix != ".pyc":
            files.append((rel.as_posix(), path.read_bytes()))
    metadata = ["Metadata-Version: 2.1", f"Name: {meta['name']}", f"Version: {meta['version']}"]
    if meta.get("requires-python"):
        metadata.append(f"Requires-Python: {meta['requires-python']}")
    metadata += [f"Requires-Dist: {dep}" for dep in meta["dependencies"]]
    files.append((f"{info}/METADATA", ("\n".join(metadata) + "\n").encode()))
    files.append((f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: ned-installer\nRoot-Is-Purelib: true\n"
                                   b"Tag: py3-none-any\n"))
    files.append((f"{info}/top_level.txt", b"ned_protocol\n"))
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in files:
        hashed = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([name, f"sha256={hashed}", len(data)])
    writer.writerow([f"{info}/RECORD", "", ""])
    files.append((f"{info}/RECORD", record.getvalue().encode()))
    return f"{dist}-{meta['version']}-py3-none-any.whl", zip_bytes(files)


def zip_bytes(files: list[tuple[str, bytes]]) -> bytes:
    """A zip of ``files`` in the given order, with fixed times and modes: equal inputs, equal bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def pip_command() -> list[str]:
    """A pip to download with: this Python's, else the repository's virtual environment's."""
    import importlib.util

    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for venv_python in (ROOT / ".venv" / "bin" / "python", ROOT / ".venv" / "Scripts" / "python.exe"):
        if venv_python.exists():
            return [str(venv_python), "-m", "pip"]
    raise InstallError("missing_dependency", f"{sys.executable} has no pip: install pip for it "
                       "(e.g. apt install python3-pip) or run installers/install.sh first")


def download_wheels(requirements: list[str], python: str, platform_name: str, wheels: Path | None,
                    dest: Path) -> list[Path]:
    """The wheels (with their dependencies) of ``requirements`` for one Python version and platform.

    ``wheels`` is a local folder to take them from instead of PyPI (offline installs, tests).
    """
    if not requirements:
        return []
    out = dest / f"{python}-{platform_name}"
    out.mkdir(parents=True)
    command = pip_command() + ["download", "--disable-pip-version-check", "--quiet", "--only-binary", ":all:",
                               "--python-version", python, "--implementation", "cp", "--dest", str(out)]
    for tag in PLATFORMS[platform_name]:
        command += ["--platform", tag]
    if wheels is not None:
        command += ["--no-index", "--find-links", str(wheels)]
    result = subprocess.run(command + requirements, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-6:])
        raise InstallError("missing_dependency",
                           f"no wheels of {' '.join(requirements)} for Python {python} on {platform_name}"
                           f"{f' in {wheels}' if wheels else ''}:\n{tail}")
    return sorted(out.glob("*.whl"))


def wheel_project(filename: str) -> tuple[str, str]:
    name, version = filename.split("-")[:2]
    return re.sub(r"[-_.]+", "_", name).lower(), version


def unpack_wheels(wheels: list[tuple[str, bytes]], target: Path) -> FileMap:
    """The files that installing ``wheels`` into ``target`` gives (as ``pip install --target`` lays them).

    Wheels of the same project for several Python versions share one folder (their compiled modules
    carry the version in their names), so their versions must agree.
    """
    seen: dict[str, str] = {}
    files: FileMap = {}
    for filename, data in wheels:
        project, version = wheel_project(filename)
        if seen.setdefault(project, version) != version:
            raise InstallError("invalid_option", f"{project} resolved to {seen[project]} for one Python version "
                               f"and {version} for another; give one --nuke-python or pin the version")
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                name = info.filename
                if info.is_dir():
                    continue
                parts = name.split("/")
                if name.startswith("/") or ".." in parts:
                    raise InstallError("corrupt_wheel", f"{filename}: unsafe path {name}")
                if parts[0].endswith(".data"):
                    # Only importable code is wanted; scripts, headers and data files are left out.
                    if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                        continue
                    parts = parts[2:]
                mode = 0o755 if (info.external_attr >> 16) & 0o111 else 0o644
                files[target.joinpath(*parts)] = (archive.read(info), mode)
    return files


def tree_files(source: Path, target: Path, skip: Callable[[Path], bool] = lambda p: False) -> FileMap:
    """Every file under ``source`` (caches left out), mapped to the same place under ``target``."""
    files: FileMap = {}
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if not path.is_file() or SKIP_NAMES & set(rel.parts) or path.suffix == ".pyc" or skip(rel):
            continue
        mode = 0o755 if os.access(path, os.X_OK) else 0o644
        files[target / rel] = (path.read_bytes(), mode)
    return files


# ---------------------------------------------------------------------------------------------- nuke


def init_line(plugin: Path) -> str:
    return f"import nuke; nuke.pluginAddPath({str(plugin)!r})  {MARKER}"


def add_init_line(init: Path, line: str, entry: dict[str, Any], log: Log) -> None:
    """Put ``line`` into ``init`` once, leaving every other line (and byte) of the user's file as it was.

    ``entry["init"]`` remembers how the file was before the first install (absent, or without a final
    newline), so that uninstalling gives it back byte for byte. A symlinked init.py (dotfiles kept
    elsewhere) is edited where it points, so the link stays a link.
    """
    init = init.resolve() if init.is_symlink() else init
    original = init.read_bytes() if init.exists() else None
    edit = entry.setdefault("init", {"path": str(init)})
    if "created" not in edit:
        edit["created"] = original is None
        edit["separator"] = bool(original) and not original.endswith(b"\n")
    text = original or b""
    eol = b"\r\n" if b"\r\n" in text else b"\n"
    want = line.encode("utf-8")
    lines = text.splitlines(keepends=True)
    marked = [i for i, ln in enumerate(lines) if MARKER.encode() in ln]
    if [lines[i].rstrip(b"\r\n") for i in marked] == [want]:
        return
    if marked:  # an older NED line (another path): replace it where it stands
        lines[marked[0]] = want + eol
        new = b"".join(ln for i, ln in enumerate(lines) if i not in marked[1:])
    else:
        new = text + (eol if text and not text.endswith(b"\n") else b"") + want + eol
    entry["dirs"] = sorted(set(entry.get("dirs", [])) | set(make_dirs(init.parent)))
    write_if_changed(init, new, (init.stat().st_mode & 0o777) if init.exists() else 0o644)
    log.say(f"{'created' if original is None else 'edited'} {show(init)}: {line}")


def remove_init_line(edit: dict[str, Any], log: Log) -> None:
    init = Path(edit["path"])
    if not init.exists():
        return
    lines = init.read_bytes().splitlines(keepends=True)
    marked = [i for i, ln in enumerate(lines) if MARKER.encode() in ln]
    if not marked:
        return
    new = b"".join(ln for i, ln in enumerate(lines) if i not in marked)
    if edit.get("separator") and marked[-1] == len(lines) - 1 and new.endswith(b"\n"):
        new = new[:-2] if new.endswith(b"\r\n") else new[:-1]  # the newline the installer added
    if edit.get("created") and not new.strip():
        init.unlink()
        log.say(f"removed {show(init)} (the installer had created it)")
    else:
        write_if_changed(init, new, init.stat().st_mode & 0o777)
        log.say(f"restored {show(init)}: removed the NED line")


def nuke_target(args: argparse.Namespace) -> tuple[Path, bool]:
    if args.prefix:
        return Path(args.prefix).expanduser().resolve(), False
    return home() / ".nuke" / NUKE_FOLDER, True


def install_nuke(args: argparse.Namespace, manifest: Manifest, log: Log) -> None:
    target, user = nuke_target(args)
    key = f"nuke:{target}"
    if args.uninstall:
        return uninstall_nuke(key, manifest, log)
    source = Path(args.source).resolve() if args.source else ROOT / "plugins" / "nuke"
    if not source.is_dir():
        raise InstallError("input_not_found", f"{source}: no Nuke plugin folder there")
    entry = manifest.get(key)
    if entry is None and target.exists() and any(target.iterdir()):
        raise InstallError("invalid_option", f"{target} holds files NED did not install (no record of it in "
                           f"{manifest.path}): " + ("choose an empty or new folder for --prefix, the folder that "
                           "goes on NUKE_PATH" if not user else "move it away and run again"))
    entry = entry or {"component": "nuke", "target": str(target)}
    versions = parse_versions(args.nuke_python, "--nuke-python")
    platforms = parse_platforms(args.platform)
    if len(platforms) != 1:
        raise InstallError("invalid_option", "nuke: give one --platform (the machine Nuke runs on)")
    site = target / SITE_DIR
    wheels = [protocol_wheel(ROOT / "protocol")]
    deps = read_pyproject(ROOT / "protocol" / "pyproject.toml")["dependencies"]
    with tempfile.TemporaryDirectory(prefix="ned-wheels-") as tmp:
        for version in versions:
            for path in download_wheels(deps, version, platforms[0], wheels_dir(args), Path(tmp)):
                wheels.append((path.name, path.read_bytes()))
    files = tree_files(source, target, skip=lambda rel: rel.parts[0] == SITE_DIR)
    files.update(unpack_wheels(wheels, site))
    apply_files(files, entry, prune=True, log=log, folder=target)
    log.flush()
    entry.update({"python": versions, "platform": platforms[0]})
    if user:
        add_init_line(home() / ".nuke" / "init.py", init_line(target), entry, log)
    manifest.put(key, entry)
    if not log.changed:
        print(f"nuke: {show(target)} is up to date; nothing changed")
    if not user:
        print("Put it on Nuke's plugin path:")
        print(f"  set NUKE_PATH={target};%NUKE_PATH%" if sys.platform == "win32"
              else f'  export NUKE_PATH="{target}${{NUKE_PATH:+:$NUKE_PATH}}"')


def uninstall_nuke(key: str, manifest: Manifest, log: Log) -> None:
    entry = manifest.get(key)
    if entry is None:
        print(f"nuke: nothing recorded for {show(Path(key.split(':', 1)[1]))}; nothing to remove")
        return
    target = Path(entry["target"])
    remove_files(entry, log, folder=target)
    log.flush()
    if "init" in entry:
        remove_init_line(entry["init"], log)
    remove_created_dirs(entry, log)
    manifest.drop(key)
    print(f"nuke: uninstalled from {show(target)}")


def wheels_dir(args: argparse.Namespace) -> Path | None:
    if not args.wheels:
        return None
    path = Path(args.wheels).resolve()
    if not path.is_dir():
        raise InstallError("input_not_found", f"--wheels {path}: no such folder")
    return path


# ------------------------------------------------------------------------------------------- blender


def manifest_value(text: str, key: str) -> str | None:
    match = re.search(rf'^{key}\s*=\s*"([^"]*)"', text, re.M)
    return match.group(1) if match else None


def set_toml_array(text: str, key: str, values: list[str]) -> str:
    """Set a top-level string array in ``blender_manifest.toml``, keeping every other byte."""
    value = "[\n" + "".join(f'  "{v}",\n' for v in values) + "]" if values else "[]"
    pattern = re.compile(rf"^{key}\s*=\s*\[[^\]]*\]", re.M)
    if pattern.search(text):
        return pattern.sub(lambda m: f"{key} = {value}", text, count=1)
    table = re.search(r"^\[", text, re.M)  # a new top-level key must come before the first [table]
    at = table.start() if table else len(text)
    head = text[:at] if not text[:at] or text[:at].endswith("\n") else text[:at] + "\n"
    return head + f"{key} = {value}\n" + ("\n" if table else "") + text[at:]


def blender_requirements(source: Path) -> list[str]:
    """ned_protocol's own dependencies plus the requirement lines of ``plugins/blender/wheels.txt``.

    ``ned_protocol`` itself is packed from protocol/, and wheel paths are not requirements, so lines
    naming either are left out; pip resolves the rest together (``msgpack>=1.0`` with a pin is fine).
    """
    lines = read_pyproject(ROOT / "protocol" / "pyproject.toml")["dependencies"]
    listing = source.parent / "wheels.txt"
    if listing.is_file():
        lines += [ln.split("#", 1)[0].strip() for ln in listing.read_text(encoding="utf-8").splitlines()]
    wanted = [ln for ln in lines if ln and not re.match(r"(ned[-_.]protocol\b|\.|/)", ln, re.I)]
    return sorted(set(wanted), key=wanted.index)


def build_blender_zip(source: Path, platforms: list[str], python: str, wheels: Path | None) -> tuple[str, bytes]:
    """The extension zip: ``source``'s files, ``wheels/`` for ``platforms`` and a manifest listing them.

    Returns the extension id and the zip's bytes. The manifest's ``wheels`` and ``platforms`` are
    rewritten to exactly the wheels included, so the two can never disagree.
    """
    manifest_path = source / "blender_manifest.toml"
    if not manifest_path.is_file():
        raise InstallError("input_not_found", f"{manifest_path}: no Blender extension manifest there")
    text = manifest_path.read_text(encoding="utf-8")
    ext_id = manifest_value(text, "id")
    if not ext_id:
        raise InstallError("invalid_option", f"{manifest_path}: no id = \"...\" line")
    name, data = protocol_wheel(ROOT / "protocol")
    chosen: dict[str, bytes] = {name: data}
    requirements = blender_requirements(source)
    with tempfile.TemporaryDirectory(prefix="ned-wheels-") as tmp:
        for platform_name in platforms:
            for path in download_wheels(requirements, python, platform_name, wheels, Path(tmp)):
                chosen[path.name] = path.read_bytes()
    text = set_toml_array(text, "wheels", [f"./wheels/{n}" for n in sorted(chosen)])
    text = set_toml_array(text, "platforms", platforms)
    files = [(rel.relative_to(source).as_posix(), blob) for rel, (blob, _) in
             tree_files(source, source, skip=lambda rel: rel.parts[0] == "wheels").items()
             if rel.name != "blender_manifest.toml" or rel.parent != source]
    files.append(("blender_manifest.toml", text.encode("utf-8")))
    files += [(f"wheels/{n}", chosen[n]) for n in sorted(chosen)]
    return ext_id, zip_bytes(sorted(files))


def run_blender(blender: str, *command: str) -> str:
    env = dict(os.environ, NO_COLOR="1")  # plain text, to read back what Blender lists
    try:
        result = subprocess.run([blender, "--command", "extension", *command], capture_output=True, text=True,
                                env=env)
    except OSError as exc:
        raise InstallError("input_not_found", f"--blender {blender}: cannot run it ({exc})") from exc
    output = result.stdout + result.stderr
    if result.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-8:])
        raise InstallError("output_error", f"{blender} --command extension {' '.join(command)} failed:\n{tail}")
    return output


def blender_lists(blender: str, ext_id: str) -> bool:
    # `extension install-file` reports some failures only as text, so the install is checked by listing.
    output = run_blender(blender, "list")
    return any(re.match(rf"\s+{re.escape(ext_id)}\b.*installed", ln) for ln in output.splitlines())


def install_blender(args: argparse.Namespace, manifest: Manifest, log: Log) -> None:
    if args.prefix:
        raise InstallError("invalid_option", "blender has no --prefix: build a zip with --zip OUT.zip, or install "
                           "into a Blender with --blender PATH")
    source = Path(args.source).resolve() if args.source else ROOT / "plugins" / "blender" / "ned_blender"
    if args.uninstall:
        return uninstall_blender(args, manifest, log)
    if not args.zip and not args.blender:
        raise InstallError("invalid_option", "blender: give --zip OUT.zip (build the extension) and/or "
                           "--blender PATH (install it into that Blender)")
    platforms = parse_platforms(args.platform)
    python = parse_versions(args.blender_python, "--blender-python")
    if len(python) != 1:
        raise InstallError("invalid_option", "--blender-python takes one version")
    ext_id, data = build_blender_zip(source, platforms, python[0], wheels_dir(args))
    with tempfile.TemporaryDirectory(prefix="ned-blender-") as tmp:
        out = Path(args.zip).resolve() if args.zip else Path(tmp) / f"{ext_id}.zip"
        make_dirs(out.parent)
        state = write_if_changed(out, data, 0o644)
        if args.zip:
            print(f"{state or 'unchanged'} {out} ({len(data) // 1024} KiB, {', '.join(platforms)})")
        if args.blender:
            blender = shutil.which(args.blender) or str(Path(args.blender).resolve())
            run_blender(blender, "install-file", "-r", BLENDER_REPO, "-e", str(out))
            if not blender_lists(blender, ext_id):
                raise InstallError("output_error", f"{blender} did not list {ext_id} as installed after "
                                   f"install-file; run it with --command extension install-file to see why")
            manifest.put(f"blender:{blender}", {"component": "blender", "blender": blender, "id": ext_id,
                                                "repo": BLENDER_REPO})
            print(f"installed and enabled {BLENDER_REPO}.{ext_id} in {blender}")


def uninstall_blender(args: argparse.Namespace, manifest: Manifest, log: Log) -> None:
    keys = [k for k in manifest.data["installs"] if k.startswith("blender:")]
    if args.blender:
        blender = shutil.which(args.blender) or str(Path(args.blender).resolve())
        keys = [k for k in keys if k == f"blender:{blender}"]
    if not keys:
        print("blender: nothing recorded; nothing to remove")
        return
    for key in keys:
        entry = manifest.get(key) or {}
        if Path(entry["blender"]).exists():
            run_blender(entry["blender"], "remove", f"{entry['repo']}.{entry['id']}")
            print(f"removed {entry['repo']}.{entry['id']} from {entry['blender']}")
        else:
            print(f"{entry['blender']} is gone; forgot its {entry['id']} install")
        manifest.drop(key)


# -------------------------------------------------------------------------------------------- engine


def unit_text(executable: Path, serve_args: list[str]) -> str:
    command = " ".join(shlex.quote(a) for a in [str(executable), "serve", *serve_args])
    return ("# Written by NED's installer (installers/install.py engine --systemd); --uninstall removes it.\n"
            "[Unit]\nDescription=NED engine (ned-engine serve)\nAfter=network.target\n\n"
            f"[Service]\nExecStart={command}\nRestart=on-failure\n\n"
            "[Install]\nWantedBy=default.target\n")


def install_engine(args: argparse.Namespace, manifest: Manifest, log: Log) -> None:
    if args.prefix:
        raise InstallError("invalid_option", "engine has no --prefix: it installs into the repository's .venv "
                           "(installers/install.sh)")
    root = Path(args.source).resolve() if args.source else ROOT
    key = f"engine:{root}"
    entry = manifest.get(key)
    if args.uninstall:
        if entry is None:
            print(f"engine: nothing recorded for {root}; nothing to remove")
            return
        remove_files(entry, log)
        remove_created_dirs(entry, log)
        venv = Path(entry["venv"])
        if entry.get("venv_created") and venv.is_dir():
            shutil.rmtree(venv)
            log.say(f"removed {show(venv)} (the installer had created it)")
        elif venv.is_dir():
            print(f"kept {show(venv)}: it existed before NED's installer ran")
        manifest.drop(key)
        print(f"engine: uninstalled from {show(root)}")
        return
    entry = entry or {"component": "engine", "target": str(root)}
    venv = root / ".venv"
    entry["venv"] = str(venv)
    if not args.no_venv:
        existed = venv.exists()
        flags = ["--dev"] if args.dev else ["--ned"] if args.ned else []
        result = subprocess.run(["bash", str(root / "installers" / "install.sh"), *flags])
        if result.returncode != 0:
            raise InstallError("output_error", f"installers/install.sh {' '.join(flags)} failed "
                               f"(exit {result.returncode})")
        entry["venv_created"] = entry.get("venv_created", False) or not existed
        if not existed:
            log.say(f"created {show(venv)}")
    if args.systemd:
        unit = config_dir() / "systemd" / "user" / "ned-engine.service"
        executable = venv / ("Scripts" if sys.platform == "win32" else "bin") / "ned-engine"
        text = unit_text(executable, shlex.split(args.serve_args or ""))
        apply_files({unit: (text.encode(), 0o644)}, entry, prune=False, log=log)
        print("Start it with: systemctl --user daemon-reload && systemctl --user enable --now ned-engine")
    manifest.put(key, entry)
    if not log.changed:
        print("engine: nothing changed")


# ---------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="install.py", description="Install NED into Nuke, Blender, or the engine's "
                                     "virtual environment; --uninstall reverts exactly what was installed.")
    sub = parser.add_subparsers(dest="component", required=True, metavar="nuke|blender|engine")
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for this user (the default)")
    where.add_argument("--prefix", metavar="DIR", help="install a copy into DIR (nuke: a NUKE_PATH folder)")
    common.add_argument("--uninstall", action="store_true", help="revert exactly what the install did")
    common.add_argument("--verbose", "-v", action="store_true", help="list every file written or removed")
    # For tests and development: another source folder (nuke: plugin folder, blender: extension folder,
    # engine: repository root).
    common.add_argument("--source", metavar="DIR", help=argparse.SUPPRESS)
    wheels = argparse.ArgumentParser(add_help=False)
    wheels.add_argument("--wheels", metavar="DIR", help="take wheels from DIR instead of PyPI (offline)")
    wheels.add_argument("--platform", metavar="P", help=f"target platform(s): {', '.join(PLATFORMS)}"
                        " (blender: comma-separated or 'all'); default: this machine")

    nuke = sub.add_parser("nuke", parents=[common, wheels], help="the Nuke plugin (~/.nuke/init.py or NUKE_PATH)")
    nuke.add_argument("--nuke-python", default=DEFAULT_NUKE_PYTHON, metavar="X.Y[,X.Y]",
                      help="Nuke's Python version(s) for the compiled wheels: 3.9 Nuke 14, 3.10 Nuke 15, 3.11 Nuke 16"
                      f" (default {DEFAULT_NUKE_PYTHON})")
    blender = sub.add_parser("blender", parents=[common, wheels], help="the Blender extension")
    blender.add_argument("--zip", metavar="OUT.zip", help="write the extension zip here")
    blender.add_argument("--blender", metavar="PATH", help="install into this Blender with its extension command")
    blender.add_argument("--blender-python", default=DEFAULT_BLENDER_PYTHON, metavar="X.Y",
                         help=f"Blender's Python version (default {DEFAULT_BLENDER_PYTHON}: Blender 4.2 to 5.0)")
    engine = sub.add_parser("engine", parents=[common], help="the engine's virtual environment (+ systemd unit)")
    extra = engine.add_mutually_exclusive_group()
    extra.add_argument("--dev", action="store_true", help="passed to install.sh: test tools and torch")
    extra.add_argument("--ned", action="store_true", help="passed to install.sh: torch for --backend ned")
    engine.add_argument("--systemd", action="store_true",
                        help="also write ~/.config/systemd/user/ned-engine.service (ned-engine serve)")
    engine.add_argument("--serve-args", metavar="ARGS", help="arguments for ned-engine serve in the unit")
    engine.add_argument("--no-venv", action="store_true", help="leave the virtual environment alone")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log = Log(args.verbose)
    try:
        manifest = Manifest()
        {"nuke": install_nuke, "blender": install_blender, "engine": install_engine}[args.component](
            args, manifest, log)
    except InstallError as exc:
        print(f"install.py: error: {exc.code}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
