"""The engine's counters and gauges, and their Prometheus text rendering.

Counters only go up (jobs by outcome, frames written, errors by code, requests by type, seconds spent
per pipeline stage); gauges are read when a report is made (queue length, busy and hung workers).
Every method is thread-safe: workers, the socket loop and the monitor's HTTP thread all use one
``Metrics``.

Imports only the standard library.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

PREFIX = "ned_engine_"

HELP = {
    "jobs_submitted_total": ("counter", "Jobs accepted (duplicates of an idempotency key not counted)."),
    "jobs_finished_total": ("counter", "Jobs that ended, by terminal state."),
    "frames_written_total": ("counter", "Output frames written."),
    "errors_total": ("counter", "Failed jobs and refused requests, by error code."),
    "requests_total": ("counter", "Requests received, by message type."),
    "invalid_messages_total": ("counter", "Messages that failed to decode (answered with an error)."),
    "stage_seconds_total": ("counter", "Seconds workers spent per pipeline stage."),
    "jobs": ("gauge", "Jobs in the queue and running."),
    "workers": ("gauge", "Worker threads."),
    "workers_busy": ("gauge", "Workers running a job."),
    "workers_hung": ("gauge", "Workers whose job has not reported progress within the hang timeout."),
    "worker_heartbeat_age_seconds": ("gauge", "Seconds since each worker's loop last reported."),
    "loop_heartbeat_age_seconds": ("gauge", "Seconds since the socket loop last went round."),
    "peers": ("gauge", "Connections the engine currently knows."),
    "ready": ("gauge", "1 when every worker has loaded its backends and the engine takes jobs."),
    "up": ("gauge", "1 while the engine runs."),
}

UNLABELLED = ("jobs_submitted_total", "frames_written_total", "invalid_messages_total")
"""Counters without labels: reported as 0 from the start, so a scrape before the first job already has
the series (``rate()`` and absent-series alerts need it); labelled ones appear with their first value."""

Labels = tuple[tuple[str, str], ...]


class Metrics:
    """Counters by name and labels; gauges come from a callback at report time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        for name in UNLABELLED:
            self._counters[name][()] = 0.0
        self.gauges: Callable[[], dict[str, dict[Labels, float]]] | None = None

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        if name not in HELP:
            raise KeyError(name)
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._counters[name][key] += value

    def counters(self) -> dict[str, dict[Labels, float]]:
        with self._lock:
            return {name: dict(values) for name, values in self._counters.items()}

    def snapshot(self) -> dict[str, dict[Labels, float]]:
        """Counters and gauges together."""
        values = self.counters()
        if self.gauges is not None:
            values.update(self.gauges())
        return values

    def prometheus(self) -> str:
        """The Prometheus text exposition (format 0.0.4) of every counter and gauge."""
        return render_prometheus(self.snapshot())


def render_prometheus(values: dict[str, dict[Labels, float]]) -> str:
    """Prometheus text for ``{name: {labels: value}}`` (names without the ``ned_engine_`` prefix)."""
    lines = []
    for name in sorted(values):
        kind, text = HELP.get(name, ("untyped", name))
        lines.append(f"# HELP {PREFIX}{name} {text}")
        lines.append(f"# TYPE {PREFIX}{name} {kind}")
        for labels, value in sorted(values[name].items()):
            shown = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{PREFIX}{name}{{{shown}}} {_number(value)}" if shown else
                         f"{PREFIX}{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def to_json(values: dict[str, dict[Labels, float]]) -> dict[str, list[dict[str, object]]]:
    """The same values as plain JSON: ``{name: [{"labels": {...}, "value": v}, ...]}``."""
    return {name: [{"labels": dict(labels), "value": value} for labels, value in sorted(series.items())]
            for name, series in sorted(values.items())}


def from_json(data: dict[str, list[dict[str, object]]]) -> dict[str, dict[Labels, float]]:
    """The inverse of ``to_json``."""
    return {name: {tuple(sorted(dict(item["labels"]).items())): float(item["value"]) for item in series}
            for name, series in data.items()}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


__all__ = ["HELP", "UNLABELLED", "Metrics", "from_json", "render_prometheus", "to_json"]
