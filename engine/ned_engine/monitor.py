"""The engine's monitoring endpoint: plain HTTP for Prometheus and health probes.

Monitoring systems speak HTTP, not the NED protocol, so the engine serves (read-only, loopback by
default) on its own thread:

- ``GET /metrics``: counters and gauges in Prometheus text format;
- ``GET /healthz``: 200 when the socket loop turns and no worker is hung or dead, else 503 with the reason;
- ``GET /readyz``: 200 when, in addition, every worker has loaded its backends and the engine takes jobs;
- ``GET /status``: everything above as JSON (what ``ned-engine status`` and ``health`` read).

Nothing here can change the engine. ``fetch`` is the matching client. Imports only the standard
library and the engine's metrics.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ned_engine.metrics import Metrics, to_json

_CONTENT_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


class Monitor:
    """The HTTP endpoint of one engine.

    Parameters
    ----------
    address
        ``HOST:PORT`` to listen on (port 0: any free port).
    health
        Returns the engine's health dict (``Engine.health``).
    metrics
        The engine's counters.
    """

    def __init__(self, address: str, health: Callable[[], dict[str, Any]], metrics: Metrics) -> None:
        host, _, port = address.rpartition(":")
        monitor = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                monitor._answer(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet probes
                return

        self._health, self._metrics = health, metrics
        self._server = ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{host or '127.0.0.1'}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="ned-engine monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(request, 200, self._metrics.prometheus(), _CONTENT_PROMETHEUS)
            return
        health = self._health()
        if path == "/healthz":
            ok = health["live"]
            self._send(request, 200 if ok else 503, "ok\n" if ok else "; ".join(health["problems"]) + "\n")
        elif path == "/readyz":
            ok = health["ready"]
            self._send(request, 200 if ok else 503, "ready\n" if ok else "not ready\n")
        elif path == "/status":
            status = dict(health, metrics=to_json(self._metrics.counters()))
            self._send(request, 200, json.dumps(status, indent=1) + "\n", "application/json")
        else:
            self._send(request, 404, "not found: try /metrics, /healthz, /readyz or /status\n")

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, code: int, text: str,
              content_type: str = "text/plain; charset=utf-8") -> None:
        data = text.encode()
        request.send_response(code)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)


def fetch(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """``(status, body)`` of a GET; status 0 with the reason when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - the engine's own URL
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, OSError) as error:
        return 0, str(getattr(error, "reason", error))


__all__ = ["Monitor", "fetch"]
