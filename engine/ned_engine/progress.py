"""Console output of long CLI tasks: a progress bar (stderr; plain lines when not a terminal), frame ranges."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ned_core.pipeline import Progress

LABELS = {"analyze": "analysing", "render": "rendering"}


class ProgressBar:
    """Draws ``Progress`` reports: one updating line per stage on a terminal, a few lines otherwise."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self._stage: str | None = None
        self._started = time.monotonic()
        self._last_percent = -1

    def __call__(self, report: Progress) -> None:
        if report.stage != self._stage:
            if self._stage is not None and self.tty:
                self.stream.write("\n")
            self._stage = report.stage
            self._started = time.monotonic()
            self._last_percent = -1
        fraction = report.done / report.total if report.total else 1.0
        percent = int(fraction * 100)
        elapsed = time.monotonic() - self._started
        eta = elapsed / report.done * (report.total - report.done) if report.done else 0.0
        label = LABELS.get(report.stage, report.stage)
        if self.tty:
            filled = int(fraction * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r{label:>10} [{bar}] {report.done}/{report.total} "
                              f"frame {report.frame} eta {eta:4.0f}s ")
        elif percent // 25 != self._last_percent // 25 or report.done == report.total:
            self.stream.write(f"{label} {report.done}/{report.total} ({percent}%)\n")
        self._last_percent = percent
        if report.done == report.total and self.tty:
            self.stream.write("\n")
            self._stage = None
        self.stream.flush()


def print_summary(frames: list[int], target: str, lost: list[int], cached: bool,
                  out: TextIO | None = None) -> None:
    """The closing lines of a run: frames written where, from a cached analysis or not, frames with no face."""
    out = out or sys.stdout
    if frames:
        out.write(f"wrote {len(frames)} frames {frames[0]}-{frames[-1]} to {target}"
                  + (" (analysis from cache)" if cached else "") + "\n")
    if lost:
        out.write(f"no face on {len(lost)} frames (passed through untouched): {format_ranges(lost)}\n")
    out.flush()


def format_ranges(frames: list[int]) -> str:
    """``[1, 2, 3, 7]`` → ``"1-3, 7"``."""
    parts: list[str] = []
    start = prev = frames[0]
    for frame in [*frames[1:], None]:
        if frame is not None and frame == prev + 1:
            prev = frame
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if frame is not None:
            start = prev = frame
    return ", ".join(parts)
