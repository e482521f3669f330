"""A job's events → what the node shows: a status line, a 0..100 progress value, the frames written so
far and, at the end, the engine's error code and text.

``apply`` is a pure function of the previous ``JobStatus`` and one event (its type and body, as
``ned_protocol.Event`` carries them), so the runner thread computes the status and the host only draws it.

Imports only the standard library; never ``nuke`` or ``ned_protocol.client``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

STAGE_SPAN: dict[str, tuple[float, float]] = {"queued": (0.0, 0.0), "load": (0.0, 0.05),
                                              "analyze": (0.05, 0.5), "render": (0.5, 1.0)}
"""Where each progress stage sits on the node's one 0..1 bar."""
STAGE_WORDS = {"queued": "Queued", "load": "Loading", "analyze": "Analysing", "render": "Rendering"}
ENDED = ("done", "failed", "cancelled")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


@dataclass(frozen=True)
class JobStatus:
    """What the node knows of its job. ``state``: idle, submitting, queued, running, done, failed,
    cancelled."""

    state: str = "idle"
    job: str | None = None
    stage: str = ""
    done: int = 0
    total: int = 0
    eta: float | None = None
    fraction: float = 0.0
    frames: tuple[int, ...] = ()
    first_path: str | None = None
    frames_written: int = 0
    lost_frames: tuple[int, ...] = ()
    code: str | None = None
    message: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        """True once the job is done, failed or cancelled."""
        return self.state in ENDED

    @property
    def percent(self) -> int:
        """Progress for ``nuke.ProgressTask.setProgress`` (0..100)."""
        return int(round(100 * self.fraction))

    def text(self) -> str:
        """The node's status line."""
        if self.state == "idle":
            return "idle"
        if self.state == "submitting":
            return "Submitting..."
        if self.state == "failed":
            return f"Failed: {self.code}: {self.message}"
        if self.state == "cancelled":
            return f"Cancelled: {self.frames_written} frames written (kept)"
        if self.state == "done":
            text = f"Done: {self.frames_written} frames written"
            if self.lost_frames:
                shown = ", ".join(str(f) for f in self.lost_frames[:8]) + (", ..." if len(self.lost_frames) > 8 else "")
                text += f"; {len(self.lost_frames)} without a face (left untouched): {shown}"
            return text
        word = STAGE_WORDS.get(self.stage, "Running")
        text = f"{word} {self.done}/{self.total}" if self.total else word
        if self.eta is not None:
            text += f", about {_clock(self.eta)} left"
        return text


def submitting() -> JobStatus:
    """The status while the job is being sent."""
    return JobStatus(state="submitting")


def accepted(job: str, state: str = "queued") -> JobStatus:
    """The status once the engine accepted the job."""
    return JobStatus(state=state, job=job, stage="queued")


def failed(code: str, message: str) -> JobStatus:
    """A failure the plugin met itself (bad knob value, engine unreachable...)."""
    return JobStatus(state="failed", code=code, message=message)


def apply(status: JobStatus, kind: str, body: Mapping[str, Any]) -> JobStatus:
    """The status after one event (``kind`` is the event type); unknown kinds change nothing (an older
    plugin keeps working with a newer engine)."""
    if status.ended:
        return status
    if kind == "progress":
        stage = str(body.get("stage", ""))
        done, total = int(body.get("done", 0)), int(body.get("total", 0))
        low, high = STAGE_SPAN.get(stage, (status.fraction, status.fraction))
        fraction = low + (high - low) * (done / total if total else 0.0)
        return replace(status, state="running" if stage != "queued" else "queued", stage=stage, done=done,
                       total=total, eta=body.get("eta"), fraction=max(status.fraction, fraction))
    if kind == "frame_ready":
        frame = int(body["frame"])
        frames = tuple(sorted(set(status.frames) | {frame}))
        return replace(status, state="running", frames=frames,
                       first_path=status.first_path or body.get("path"))
    if kind == "done":
        return replace(status, state="done", fraction=1.0, eta=None,
                       frames_written=int(body.get("frames_written", len(status.frames))),
                       lost_frames=tuple(body.get("lost_frames", ())))
    if kind == "failed":
        detail = {k: body[k] for k in ("path", "frame", "field") if body.get(k) is not None}
        return replace(status, state="failed", eta=None, code=str(body.get("code", "internal")),
                       message=str(body.get("message", "")), detail=detail)
    if kind == "cancelled":
        return replace(status, state="cancelled", eta=None,
                       frames_written=int(body.get("frames_written", len(status.frames))))
    return status


__all__ = ["ENDED", "STAGE_SPAN", "JobStatus", "accepted", "apply", "failed", "submitting"]
