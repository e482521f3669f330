"""Starting a ``ned-engine serve`` on this machine for the "start local engine" button.

The engine runs in its own session (it outlives a Nuke that quits) and only on a loopback address; it
may read and write under the user's home, the temporary folder and the folders the node names (the
script's, the plate's, the output's), plus ``$NED_NUKE_ALLOW_ROOTS`` (``os.pathsep``-separated).
Which ``ned-engine`` runs: ``$NED_ENGINE`` when set, else the one on ``PATH``, else the one the NED
installer puts in ``~/.local/share/ned/venv``.

Imports only the standard library and ``ned_protocol.errors``; never ``nuke``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from urllib.parse import urlparse

from ned_protocol.errors import InvalidOptionError, MissingDependencyError

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
CANDIDATES = (os.path.join("~", ".local", "share", "ned", "venv", "bin", "ned-engine"),
              os.path.join("~", ".local", "bin", "ned-engine"))


def is_loopback(address: str) -> bool:
    """True for a ``tcp://`` endpoint on this machine's loopback, or an ``ipc://`` one."""
    if address.startswith("ipc://"):
        return True
    parsed = urlparse(address)
    return parsed.scheme == "tcp" and (parsed.hostname or "") in {h.strip("[]") for h in LOOPBACK}


def find_engine() -> str:
    """The ``ned-engine`` executable to start.

    Raises
    ------
    MissingDependencyError
        None was found (install the engine: ``python installers/install.py engine``).
    """
    chosen = os.environ.get("NED_ENGINE")
    if chosen:
        return chosen
    found = shutil.which("ned-engine")
    if found:
        return found
    for candidate in CANDIDATES:
        path = os.path.expanduser(candidate)
        if os.access(path, os.X_OK):
            return path
    raise MissingDependencyError("no ned-engine found (set $NED_ENGINE, put it on PATH, or install it with "
                                 "`python installers/install.py engine`)")


def roots(folders: Iterable[str | None] = ()) -> list[str]:
    """The engine's allowed roots: home, the temporary folder, ``folders`` and ``$NED_NUKE_ALLOW_ROOTS``
    (those that exist: the engine refuses a root that is not a folder), none inside another."""
    out: list[str] = []
    extra = [r for r in os.environ.get("NED_NUKE_ALLOW_ROOTS", "").split(os.pathsep) if r]
    for folder in (os.path.expanduser("~"), tempfile.gettempdir(), *folders, *extra):
        if folder and os.path.isdir(os.path.expanduser(folder)):
            path = os.path.realpath(os.path.expanduser(folder))
            if path not in out and not any(path.startswith(r.rstrip(os.sep) + os.sep) for r in out):
                out.append(path)
    return out


def command(address: str, allowed: Iterable[str], executable: str | None = None) -> list[str]:
    """The command line that serves ``address`` with ``allowed`` roots.

    Raises
    ------
    InvalidOptionError
        (field ``address``) an address beyond loopback: such an engine needs CurveZMQ keys, so it is
        started by hand (docs/engine.md), never by a button.
    """
    if not is_loopback(address):
        raise InvalidOptionError(f"start local engine serves loopback addresses only, not {address!r}",
                                 field="address")
    out = [executable or find_engine(), "serve", "--bind", address]
    for root in allowed:
        out += ["--allow-root", root]
    return out


def start(address: str, folders: Iterable[str | None] = (), log: str | None = None,
          executable: str | None = None) -> subprocess.Popen[bytes]:
    """Start the engine in the background, its output going to ``log`` (default: the temporary folder)."""
    argv = command(address, roots(folders), executable)
    log = log or os.path.join(tempfile.gettempdir(), "ned-engine-nuke.log")
    with open(log, "ab") as stream:
        kwargs = {"start_new_session": True} if sys.platform != "win32" else {
            "creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
        return subprocess.Popen(argv, stdout=stream, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                **kwargs)


__all__ = ["command", "find_engine", "is_loopback", "roots", "start"]
