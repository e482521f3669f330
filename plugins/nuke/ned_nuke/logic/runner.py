"""One job's network side, on a worker thread: submit through ``ned_protocol.Client``, follow its events,
cancel on request, and hand every change to the host through ``post`` (Nuke's ``executeInMainThread``).

The host never waits on the network: ``start`` returns at once, ``cancel`` only sets a flag the worker
acts on within a fraction of a second, and every callback runs wherever ``post`` puts it. A progress
sink (``nuke.ProgressTask`` in Nuke) is made and fed on the worker thread, as Nuke's own examples do,
and its Cancel button cancels the job like the node's. When the first frame arrives the worker reads its
EXR header (``ned_protocol.exr_header``) so the host can set the result's colourspace from the file.

Imports ``ned_protocol`` and the node's logic; never ``nuke``, torch, numpy, ned_core or ned_engine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ned_protocol.errors import NedError
from ned_protocol.exr_header import channel_names, colorspace, read_headers
from ned_protocol.schema import new_id, session_version

from ned_nuke.logic.events import JobStatus, accepted, apply, failed, submitting
from ned_nuke.logic.job import for_version

logger = logging.getLogger(__name__)
POLL = 0.2
"""Seconds the worker waits for events before it checks for a cancel request."""


class ProgressSink:
    """What the runner reports progress to (the host wraps ``nuke.ProgressTask``); this base does nothing."""

    def update(self, message: str, percent: int) -> None:
        """Show ``message`` and ``percent`` (0..100)."""

    def cancelled(self) -> bool:
        """True when the user asked to stop."""
        return False

    def close(self) -> None:
        """The job ended: take the progress display down."""


def _client(address: str, **options: Any) -> Any:
    from ned_protocol.client import Client  # zmq is imported only when a job is really sent

    return Client(address, **options)


class JobRunner:
    """Runs one job on a worker thread.

    Parameters
    ----------
    address
        The engine's endpoint.
    spec
        A schema-valid JobSpec (``logic.job.spec``).
    on_status
        Called (through ``post``) with each new ``JobStatus``; the last call has ``status.ended``.
    post
        Runs a callable on the host's UI thread (``nuke.executeInMainThread``); default: right here.
    progress
        Makes the progress sink, on the worker thread; default: none.
    key
        The submit's idempotency key (default: a fresh one).
    client_factory
        ``(address, **options) -> Client``; tests may wrap the real one.
    timeout
        Seconds each request waits for the engine.
    """

    def __init__(self, address: str, spec: dict[str, Any], *, on_status: Callable[[JobStatus], None],
                 post: Callable[[Callable[[], None]], None] | None = None,
                 progress: Callable[[], ProgressSink] | None = None, key: str | None = None,
                 client_factory: Callable[..., Any] = _client, timeout: float = 10.0) -> None:
        self.address = address
        self.spec = spec
        self.key = key or new_id()
        self.status = JobStatus()
        self._on_status = on_status
        self._post = post or (lambda call: call())
        self._progress = progress
        self._client_factory = client_factory
        self._timeout = timeout
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ned-nuke {spec.get('label', '')}", daemon=True)

    # -- called from the host's thread ------------------------------------------------------------------
    def start(self) -> JobRunner:
        """Start the worker; returns at once."""
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the worker to cancel the job (frames already written stay); returns at once."""
        self._cancel.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        """True while the worker thread is alive."""
        return self._thread.is_alive()

    # -- the worker thread ------------------------------------------------------------------------------
    def _show(self, status: JobStatus, sink: ProgressSink | None) -> None:
        self.status = status
        if sink is not None:
            try:
                sink.update(status.text(), status.percent)
            except Exception:  # a host's progress display must never stop the job
                logger.exception("progress display failed")
        self._post(lambda s=status: self._on_status(s))

    def _wants_cancel(self, sink: ProgressSink | None) -> bool:
        if not self._cancel.is_set() and sink is not None and sink.cancelled():
            self._cancel.set()
        return self._cancel.is_set()

    def _run(self) -> None:
        sink = None
        client = None
        try:
            sink = self._progress() if self._progress is not None else None
            self._show(submitting(), sink)
            client = self._client_factory(self.address, timeout=self._timeout, client_name="ned-nuke")
            spec = self.spec
            if for_version(spec, (1, 0))[1]:
                # The spec carries fields newer than protocol 1.0 (keyed mouth preservation, 1.2; the output's
                # layers, 1.3): an engine that lacks them gets the job's mouth preservation alone and writes
                # every layer. Only then is its version asked for.
                spec, dropped = for_version(spec, session_version(client.hello()["protocol"]))
                if dropped:
                    logger.warning("the engine speaks an older protocol: %s not sent (the job's mouth "
                                   "preservation holds for the whole range; every layer is written)",
                                   ", ".join(dropped))
            job = client.submit(spec, idempotency_key=self.key)
            status = accepted(job)
            self._show(status, sink)
            cancel_sent = False
            while not status.ended:
                if not cancel_sent and self._wants_cancel(sink):
                    client.cancel(job)
                    cancel_sent = True
                for event in client.events(job, timeout=POLL):
                    status = apply(status, event.type, event.body)
                    if event.type == "frame_ready" and "colorspace" not in status.detail and status.first_path:
                        status = self._with_header(status)
                    self._show(status, sink)
                    if status.ended or (not cancel_sent and self._wants_cancel(sink)):
                        break
        except NedError as error:
            self._show(failed(error.code, error.message), sink)
        except Exception as error:  # a bug must still end the node's job visibly, with a code
            logger.exception("job runner failed")
            self._show(failed("internal", f"{type(error).__name__}: {error}"), sink)
        finally:
            if client is not None:
                client.close()
            if sink is not None:
                sink.close()

    @staticmethod
    def _with_header(status: JobStatus) -> JobStatus:
        """The status with the first frame's colourspace and channels (from its EXR header)."""
        assert status.first_path is not None
        try:
            headers = read_headers(status.first_path)
        except NedError as error:  # an engine on another machine: its path is not ours to read
            logger.warning("cannot read %s: %s", status.first_path, error.message)
            return replace(status, detail={**status.detail, "colorspace": None})
        # RGBA and the colourspace are in the first part; the matte and STMap layers in parts of their own.
        return replace(status, detail={**status.detail, "colorspace": colorspace(headers[0]),
                                       "channels": channel_names(headers)})


__all__ = ["POLL", "JobRunner", "ProgressSink"]
