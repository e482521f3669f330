"""The command line of a local ``ned-engine`` the add-on starts when none answers at the address.

A local engine binds loopback only and may touch only the folders a job needs (``--allow-root``): the
plate's, the output's and any the user adds in the preferences.

No bpy; standard library only.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable

from ned_protocol.errors import InvalidOptionError, MissingDependencyError

DEFAULT_ADDRESS = "tcp://127.0.0.1:7741"
_LOOPBACK = re.compile(r"^tcp://(127\.\d+\.\d+\.\d+|localhost|\[::1\]):(\d+)$")


def find_executable(preference: str = "") -> str:
    """The ``ned-engine`` to run: the preference's path, else the one on ``PATH``.

    Raises
    ------
    MissingDependencyError
        Neither exists.
    """
    if preference:
        path = os.path.abspath(os.path.expanduser(preference))
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        raise MissingDependencyError(f"the ned-engine set in the NED preferences does not exist or is not "
                                     f"executable: {path}", path=path, field="engine_executable")
    found = shutil.which("ned-engine")
    if found is None:
        raise MissingDependencyError("no ned-engine on PATH: set its path in the NED add-on preferences "
                                     "(installers/install.py engine makes one)", field="engine_executable")
    return found


def serve_command(executable: str, address: str, roots: Iterable[str], workers: int = 1) -> list[str]:
    """``ned-engine serve`` on ``address`` (loopback only) allowing the existing folders ``roots``.

    Raises
    ------
    InvalidOptionError
        ``address`` is not a loopback ``tcp://HOST:PORT`` (a local engine never listens beyond it).
    """
    if not _LOOPBACK.match(address):
        raise InvalidOptionError(f"a local engine binds loopback only: {address} is not "
                                 f"tcp://127.0.0.1:PORT", field="address")
    command = [executable, "serve", "--bind", address, "--workers", str(int(workers))]
    for root in dict.fromkeys(os.path.realpath(r) for r in roots if r):
        if os.path.isdir(root):
            command += ["--allow-root", root]
    return command
