"""One job's events (``progress``, ``frame_ready``, ``done``/``failed``/``cancelled``) → what the UI shows.

``JobTracker.feed`` takes each event's type and body as the protocol defines them and keeps the stage,
a 0..1 fraction for the progress bar, a status line, the frames written (plate number → path) and, at
the end, the outcome and the engine's error code and message, which the add-on reports as they are.

No bpy; standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# share of the bar each stage fills: analysis is the long part of a first run
_STAGE_SPAN = {"queued": (0.0, 0.0), "load": (0.0, 0.05), "analyze": (0.05, 0.55), "render": (0.55, 1.0)}


@dataclass
class JobTracker:
    """The state of one job as its events report it."""

    job: str
    stage: str = "queued"
    fraction: float = 0.0
    message: str = "queued"
    frames: dict[int, str] = field(default_factory=dict)
    outcome: str | None = None
    """None while the job runs; then ``done``, ``failed`` or ``cancelled``."""
    code: str | None = None
    error: str | None = None
    lost_frames: list[int] = field(default_factory=list)
    last_seq: int = 0

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def feed(self, type: str, body: dict[str, Any]) -> None:
        """Take one event (events at or below the last ``seq`` seen are ignored)."""
        seq = int(body.get("seq", 0))
        if seq and seq <= self.last_seq:
            return
        self.last_seq = max(self.last_seq, seq)
        if type == "progress":
            self.stage = str(body.get("stage", self.stage))
            total, done = int(body.get("total") or 0), int(body.get("done") or 0)
            lo, hi = _STAGE_SPAN.get(self.stage, (0.0, 1.0))
            self.fraction = max(self.fraction, lo + (hi - lo) * (done / total if total else 0.0))
            eta = body.get("eta")
            suffix = f", about {eta:.0f} s left" if isinstance(eta, (int, float)) and eta > 0 else ""
            self.message = body.get("message") or f"{self.stage} {done}/{total}{suffix}"
        elif type == "frame_ready":
            if body.get("path"):
                self.frames[int(body["frame"])] = str(body["path"])
        elif type == "done":
            self.outcome, self.fraction = "done", 1.0
            self.lost_frames = [int(f) for f in body.get("lost_frames") or []]
            lost = f", no face on {len(self.lost_frames)}" if self.lost_frames else ""
            cached = " (analysis from cache)" if body.get("analysis_cached") else ""
            self.message = f"done: {body.get('frames_written', len(self.frames))} frames{lost}{cached}"
        elif type == "failed":
            self.outcome, self.code = "failed", str(body.get("code", "internal"))
            self.error = str(body.get("message", ""))
            self.message = f"{self.code}: {self.error}"
        elif type == "cancelled":
            self.outcome = "cancelled"
            self.message = f"cancelled after {body.get('frames_written', len(self.frames))} frames"

    def fail(self, code: str, message: str) -> None:
        """End the job locally (the client could not reach the engine, a result could not be loaded)."""
        self.outcome, self.code, self.error = "failed", code, message
        self.message = f"{code}: {message}"
