"""The add-on's side of the engine: one ``ned_protocol.Client`` per address, local engines it started, and
the jobs it follows.

``Client`` already does the networking on its own thread; this module only keeps one per address,
starts a local ``ned-engine serve`` when asked and none answers, submits specs and drains each job's
queued events without waiting (``events(job, timeout=0)``), so the UI thread never blocks on the network.
What the events mean is ``logic.tracker``'s business; what Blender shows is ``operators``'.

Imports ``ned_protocol`` and ``logic``; never bpy (so it is usable and testable outside Blender).
"""

from __future__ import annotations

import atexit
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ned_protocol import PROTOCOL_VERSION, Client
from ned_protocol.errors import DisconnectedError, MissingDependencyError, NedError, RequestTimeoutError
from ned_protocol.schema import session_version

from .logic.engine_cmd import serve_command
from .logic.tracker import JobTracker

CLIENT_NAME = "ned-blender/0.1.0"
_clients: dict[str, Client] = {}
_local: dict[str, subprocess.Popen] = {}


def client_for(address: str, host: str | None = None) -> Client:
    """The add-on's one client for ``address`` (made on first use; connecting happens in the background)."""
    client = _clients.get(address)
    if client is None:
        client = Client(address, client_name=CLIENT_NAME, host=host, timeout=10.0, heartbeat=2.0)
        _clients[address] = client
    return client


def answers(address: str, timeout: float = 1.0) -> bool:
    """True when an engine at ``address`` answers a ping within ``timeout`` seconds."""
    try:
        client_for(address).ping(timeout=timeout)
        return True
    except (RequestTimeoutError, DisconnectedError):
        return False


def engine_version(address: str) -> tuple[int, int]:
    """The protocol version a session with the engine at ``address`` speaks (this side's when unknown)."""
    welcome = client_for(address).welcome
    if not welcome:
        return tuple(PROTOCOL_VERSION)
    return session_version(welcome["protocol"])


def start_local(address: str, executable: str, roots: Iterable[str], timeout: float = 60.0) -> subprocess.Popen:
    """Start ``ned-engine serve`` on the loopback ``address`` and wait until it answers.

    Raises
    ------
    MissingDependencyError
        The engine exited before answering (its last output lines are in the message) or did not answer
        within ``timeout`` seconds.
    """
    running = _local.get(address)
    if running is not None and running.poll() is None:
        return running
    command = serve_command(executable, address, roots)
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    _local[address] = proc
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = " | ".join((proc.stderr.read() if proc.stderr else "").strip().splitlines()[-3:])
            _local.pop(address, None)
            raise MissingDependencyError(f"the local ned-engine exited with status {proc.returncode}: {tail}",
                                         path=executable, field="engine_executable")
        if answers(address, timeout=1.0):
            return proc
    stop_local(address)
    raise MissingDependencyError(f"the local ned-engine did not answer on {address} within {timeout:.0f} s",
                                 path=executable, field="engine_executable")


def stop_local(address: str | None = None) -> None:
    """Stop the local engines this add-on started (all of them, or the one on ``address``)."""
    for key in [address] if address is not None else list(_local):
        proc = _local.pop(key, None)
        if proc is None or proc.poll() is not None:
            continue
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr:
            proc.stderr.close()


def close_all() -> None:
    """Close every client (jobs keep running in the engine) and stop the local engines."""
    while _clients:
        _, client = _clients.popitem()
        client.close()
    stop_local()


atexit.register(stop_local)  # Blender quitting never unregisters add-ons; a local engine goes with it


@dataclass
class RunningJob:
    """A submitted job the add-on follows until its end, and what it needs to load the result."""

    address: str
    job: str
    tracker: JobTracker
    context: dict[str, Any] = field(default_factory=dict)
    """Host data for loading the result (scene, strip and frame map), opaque here."""

    def poll(self) -> bool:
        """Take the job's queued events (never waits); True when something changed."""
        if self.tracker.finished:
            return False
        client = _clients.get(self.address)
        if client is None:
            self.tracker.fail("disconnected", f"the connection to {self.address} was closed")
            return True
        changed = False
        try:
            for event in client.events(self.job, timeout=0):
                self.tracker.feed(event.type, {**event.body, "seq": event.seq})
                changed = True
        except NedError as error:
            self.tracker.fail(error.code, error.message)
            changed = True
        return changed

    def cancel(self) -> None:
        """Ask the engine to cancel (its ``cancelled`` event ends the job on a later poll)."""
        client = _clients.get(self.address)
        if client is not None and not self.tracker.finished:
            client.cancel(self.job)


def submit(address: str, spec: dict[str, Any], *, label: str = "", host: str | None = None,
           context: dict[str, Any] | None = None) -> RunningJob:
    """Submit ``spec`` to the engine at ``address``; the returned job is followed by ``poll``.

    Raises
    ------
    NedError
        The engine refused the job (its code and message), or did not answer.
    """
    client = client_for(address, host=host)
    job = client.submit(spec)
    return RunningJob(address, job, JobTracker(job, message=f"queued {label}".strip()), context or {})


def host_name() -> str:
    """``Blender X.Y.Z`` when running inside Blender, else the Python version (for ``hello``)."""
    bpy = sys.modules.get("bpy")
    version = getattr(getattr(bpy, "app", None), "version_string", None)
    return f"Blender {version}" if version else f"Python {sys.version.split()[0]}"
