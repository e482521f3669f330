"""What both trainers share: the scalar log, progress reports, run state for resuming, lr schedules.

* ``ScalarLog`` appends one JSON line per step to ``<log_dir>/scalars.jsonl`` (step, wall time and
  every scalar); when the ``tensorboard`` package happens to be installed it also writes TensorBoard
  event files there (it is never a dependency).
* ``RunState`` is the small JSON file (``latest_state.json``) that says where an interrupted run
  stopped; with the ``latest_*`` checkpoints beside it a run resumes exactly where it was.
* Randomness is explicit: every random draw of a step comes from a generator seeded by
  ``step_generator(seed, step)``, so a resumed run makes the same draws as an uninterrupted one.

Must not import zmq, msgpack or the engine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, TextIO

import torch

from ned_core.errors import InvalidOptionError, OutputError

ProgressFn = Callable[[int, int, Mapping[str, float]], None]
"""Called after every step with (steps done, total steps, that step's scalars)."""
STATE_FILE = "latest_state.json"


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A CPU generator for one step's random draws, the same on every run and after a resume."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed((int(seed) * 1_000_003 + int(step) * 97 + stream) % (2 ** 63 - 1))
    return gen


def linear_decay(epoch: int, niter: int, niter_decay: int) -> float:
    """lr factor of ``epoch`` (0-based): 1 for ``niter`` epochs, then down by 1/(niter_decay+1) per epoch."""
    if epoch < niter or niter_decay <= 0:
        return 1.0
    return max(0.0, 1.0 - (epoch + 1 - niter) / float(niter_decay + 1))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class ScalarLog:
    """TensorBoard-style scalars: ``scalars.jsonl`` always, TensorBoard event files when available."""

    def __init__(self, log_dir: str | Path, append: bool = False) -> None:
        self.dir = Path(log_dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._file: TextIO | None = (self.dir / "scalars.jsonl").open("a" if append else "w")
        except OSError as exc:
            raise OutputError(f"cannot write the training log in {self.dir}: {exc.strerror or exc}",
                              path=str(self.dir)) from exc
        self._writer: Any = None
        if importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter  # only when tensorboard is installed

            self._writer = SummaryWriter(str(self.dir))

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        assert self._file is not None
        row = {"step": int(step), "time": round(time.time(), 3), **{k: float(v) for k, v in scalars.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in scalars.items():
                self._writer.add_scalar(key, float(value), int(step))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.close()


def read_scalars(log_dir: str | Path) -> list[dict[str, float]]:
    """The rows of ``<log_dir>/scalars.jsonl`` (for tests and quick plots)."""
    path = Path(log_dir) / "scalars.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class RunState:
    """Where a run stopped: the next epoch and the next iteration in it, and the global step."""

    epoch: int = 0
    iteration: int = 0
    step: int = 0

    @classmethod
    def load(cls, directory: Path) -> RunState | None:
        path = directory / STATE_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            return cls(**{f.name: int(data[f.name]) for f in fields(cls)})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidOptionError(f"cannot resume: {path} is unreadable ({exc})", path=str(path),
                                     field="resume") from exc

    def save(self, directory: Path) -> None:
        write_json(directory / STATE_FILE, asdict(self))


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary name, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}", path=str(path)) from exc


def write_options(directory: Path, config: Any) -> None:
    """``opt.txt`` as NED writes it (one ``name: value`` per line) for a dataclass config."""
    items = asdict(config) if is_dataclass(config) else dict(config)
    lines = ["------------ Options -------------"] + [f"{k}: {v}" for k, v in sorted(items.items())]
    lines.append("-------------- End ----------------")
    tmp = directory / f".opt.txt.tmp{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, directory / "opt.txt")
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {directory / 'opt.txt'}: {exc.strerror or exc}",
                          path=str(directory)) from exc


class TextProgress:
    """A progress bar for training on a stream (stderr): step, total, a few scalars, steps per second."""

    def __init__(self, stream: TextIO | None = None, keys: tuple[str, ...] = (), width: int = 24) -> None:
        self.stream = stream or sys.stderr
        self.keys = keys
        self.width = width
        self.tty = self.stream.isatty()
        self._start = time.monotonic()
        self._last_report = -1

    def __call__(self, done: int, total: int, scalars: Mapping[str, float]) -> None:
        fraction = done / total if total else 1.0
        rate = done / max(time.monotonic() - self._start, 1e-9)
        shown = "  ".join(f"{k} {scalars[k]:.4g}" for k in self.keys if k in scalars)
        if self.tty:
            filled = int(fraction * self.width)
            self.stream.write(f"\rtraining [{'#' * filled}{'-' * (self.width - filled)}] {done}/{total} "
                              f"{rate:.2f} it/s {shown} ")
            if done >= total:
                self.stream.write("\n")
        elif int(fraction * 20) != self._last_report or done >= total:
            self._last_report = int(fraction * 20)
            self.stream.write(f"training {done}/{total} ({fraction:.0%}) {shown}\n")
        self.stream.flush()
