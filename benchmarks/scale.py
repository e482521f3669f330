"""Benchmark: how the engine scales with worker processes (and Ray actors), and a model for a farm.

One run prints, with the real default backends on the demo clip (360x288, analysis included: every
engine gets a fresh analysis cache):
  (a) frames/s of one shot (``--frames`` frames) and of a queue of four shots (``--frames`` / 2 frames
      each, submitted together) on engines with
        1 worker held to one core (``--workers 1 --worker-threads 1``, the engine under ``taskset -c 0``),
        1 worker using every core  (``--workers 1``),
        2 worker processes         (``--workers 2``: cores / 2 threads each),
        2 Ray actors               (``--ray auto``, only with ``--ray-python``: a Python that has Ray),
      each as a ratio to the first, in the same run, and two worker processes over one worker using
      every core (the issue's second yardstick);
  (b) the per-frame costs the scaling model needs: analysis seconds per frame (serial per shot),
      render seconds per frame (parallel per chunk), the bare OpenImageIO read+write of the same
      frames (the I/O floor) and the bytes written per frame;
  (c) the model's frames/s for 16-64 GPUs (see docs/engine.md, "Scaling"), with those costs.

    .venv/bin/python benchmarks/scale.py [--frames 48] [--rounds 1] [--ray-python ~/.cache/ned/ray-venv/bin/python]

One round each by default (no best-of): on a shared 2-core machine the ratios move by ±15 % between
runs; ``--rounds N`` repeats every configuration N times, interleaved, and prints the range.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import OpenImageIO as oiio
from ned_engine.monitor import fetch
from ned_protocol import Client

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "demo" / "grid_bbaf2n.mpg"


class Engine:
    """``ned-engine serve`` in a subprocess on a free loopback port, ready once its workers are."""

    def __init__(self, folder: Path, *args: str, python: str = sys.executable, pin: str | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        self.scratch: str | None = None
        if "--ray" in args:  # a new local Ray cluster writes its auth token under ~/.ray: keep it here
            (folder / "home").mkdir(exist_ok=True)
            self.scratch = tempfile.mkdtemp(prefix="nedray-", dir="/tmp")  # its own cluster, never another's
            env.update(HOME=str(folder / "home"), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
                       RAY_TMPDIR=self.scratch, NED_PROJECT_SITE=sysconfig.get_paths()["purelib"])
        self.log = open(folder / "engine.log", "w")  # noqa: SIM115 - closed in stop
        prefix = ["taskset", "-c", pin] if pin is not None else []  # the engine and its workers on those cores
        self.proc = subprocess.Popen(
            [*prefix, python, "-m", "ned_engine.main", "serve", "--bind", "tcp://127.0.0.1:*", "--journal",
             str(folder / "journal.sqlite"), "--cache-dir", str(folder / "cache"), "--monitor", "127.0.0.1:0",
             "--allow-root", str(folder), "--allow-root", str(CLIP.parent), "--log-level", "WARNING", *args],
            stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=str(ROOT), env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"serving (\S+) .*monitor (\S+),", line)
        if match is None:
            self.stop()
            raise RuntimeError(f"the engine did not start: {line!r}\n{Path(self.log.name).read_text()[-2000:]}")
        self.address, self.monitor = match.group(1), match.group(2)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if fetch(self.monitor + "/readyz")[0] == 200:
                return
            time.sleep(0.2)
        raise RuntimeError("the engine's workers did not get ready")

    def client(self) -> Client:
        return Client(self.address, timeout=120.0)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)
        self.log.close()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def spec(first: int, last: int, output: str) -> dict:
    return {"plate": str(CLIP), "frame_range": [first, last],
            "keys": [{"frame": first, "weights": {"neutral": 1.0}}, {"frame": last, "weights": {"happy": 1.0}}],
            "output": {"pattern": output}}


def run_jobs(engine: Engine, specs: list[dict]) -> dict[str, float]:
    """Submit ``specs`` together and wait for all; wall time and the first job's stage times."""
    with engine.client() as client:
        start = time.perf_counter()
        ids = [client.submit(s) for s in specs]
        marks: dict[str, float] = {}
        ended: set[str] = set()
        for event in client.events(timeout=600):
            now = time.perf_counter() - start
            if event.job == ids[0] and event.type == "progress" and event.body["stage"] == "analyze":
                marks.setdefault("analysis_first", now)
                marks["analysis_end"] = now
            if event.terminal:
                if event.type != "done":
                    raise RuntimeError(f"job failed: {event.body}")
                ended.add(event.job)
                if event.job == ids[0]:
                    marks["first_done"] = now
                if ended >= set(ids):
                    break
        marks["wall"] = time.perf_counter() - start
    return marks


def io_floor(folder: Path, frames: int) -> tuple[float, int]:
    """Seconds per frame to read the engine's output EXRs with OpenImageIO and write them again (the
    bare I/O of a frame of this size and these layers), and their mean size in bytes."""
    files = sorted(folder.glob("*.exr"))[:frames]
    scratch = folder / "io"
    scratch.mkdir(exist_ok=True)
    start = time.perf_counter()
    size = 0
    for path in files:
        image = oiio.ImageBuf(str(path))
        image.read(force=True)
        image.write(str(scratch / path.name))
        size += path.stat().st_size
    return (time.perf_counter() - start) / max(1, len(files)), size // max(1, len(files))


def model(gpus: int, frames: int, analysis: float, render: float, chunk_cost: float, chunk: int,
          frame_bytes: float, bandwidth: float) -> tuple[float, float]:
    """Modelled frames/s of (one shot of ``frames``, a long queue of such shots) on ``gpus`` workers.

    One shot: its analysis is serial, then its chunks spread over the workers (Amdahl). A queue:
    shots analyse in parallel on different workers, so every worker is busy; each frame costs its
    analysis, its render and its share of a chunk's fixed cost. Both are capped by the shared storage:
    ``bandwidth`` bytes/s over ``frame_bytes`` read and written per frame.
    """
    chunks = max(1, -(-frames // chunk))
    waves = -(-chunks // gpus)
    one = frames / (frames * analysis + waves * (chunk * render + chunk_cost))
    queue = gpus / (analysis + render + chunk_cost / chunk)
    ceiling = bandwidth / frame_bytes
    return min(one, ceiling), min(queue, ceiling)


def spread(values: list[tuple[float, float]]) -> str:
    """min..median..max of per-round (one shot, queue of 4) ratios."""
    cells = []
    for label, column in (("one shot", 0), ("queue of 4", 1)):
        got = sorted(v[column] for v in values)
        cells.append(f"{label} x{got[0]:.2f}..x{got[len(got) // 2]:.2f}..x{got[-1]:.2f}")
    return "   ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48, help="frames of the one shot (the queue: 4 x half; "
                        "at most 48 on the 75-frame clip)")
    parser.add_argument("--ray-python", help="a Python with Ray and this project (bash tests/ray/make_venv.sh)")
    parser.add_argument("--bandwidth-gbs", type=float, default=2.0, help="shared storage GB/s for the model (2)")
    parser.add_argument("--rounds", type=int, default=1, help="run every configuration this many times, "
                        "interleaved, and print each round's ratios and their range (1)")
    args = parser.parse_args()
    frames, half = args.frames, max(1, args.frames // 2)
    cores = len(os.sched_getaffinity(0))
    pin = "0" if shutil.which("taskset") else None
    configs: list[tuple[str, tuple[str, ...], str, str | None]] = [
        ("1 worker, 1 core", ("--workers", "1", "--worker-threads", "1"), sys.executable, pin),
        (f"1 worker, {cores} cores", ("--workers", "1"), sys.executable, None),
        ("2 worker processes", ("--workers", "2"), sys.executable, None),
        ("2 processes, pinned", ("--workers", "2", "--pin-cpus"), sys.executable, None),
    ]
    if args.ray_python:
        configs.append(("2 Ray actors", ("--workers", "2", "--ray", "auto"), args.ray_python, None))
    print(f"demo clip 360x288, real default backends, {cores} cores (load average {os.getloadavg()[0]:.1f} "
          f"at the start), analysis included (fresh cache per engine); one round each")
    rows = []
    ratios: dict[str, list[tuple[float, float]]] = {name: [] for name, *_ in configs}
    # The second yardstick: two worker processes against one worker using every core, per round.
    over_threads: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="ned-scale-") as tmp:
        base = Path(tmp)
        for round_ in range(max(1, args.rounds)):
            rows = []
            if args.rounds > 1:
                print(f"round {round_ + 1} (load average {os.getloadavg()[0]:.1f})")
            for name, options, python, cpus in configs:
                folder = base / f"r{round_}" / re.sub(r"\W+", "_", name)
                engine = Engine(folder, *options, python=python, pin=cpus)
                try:
                    one = run_jobs(engine, [spec(1001, 1000 + frames, str(folder / "one" / "o.####.exr"))])
                    # four other frame ranges of the 75-frame clip (each its own analysis), overlapping
                    queue = run_jobs(engine, [spec(1002 + 7 * i, 1001 + 7 * i + half,
                                                   str(folder / f"q{i}" / "q.####.exr")) for i in range(4)])
                finally:
                    engine.stop()
                rows.append((name, frames / one["wall"], 4 * half / queue["wall"], one, folder))
                print(f"  {name:<22} one shot {frames / one['wall']:6.2f} frames/s   "
                      f"queue of 4 {4 * half / queue['wall']:6.2f} frames/s", flush=True)
            first = rows[0]
            print("(a) ratios to 1 worker held to one core (same run):")
            for name, one_rate, queue_rate, _, _ in rows:
                ratios[name].append((one_rate / first[1], queue_rate / first[2]))
                print(f"  {name:<22} one shot x{one_rate / first[1]:.2f}   queue of 4 x{queue_rate / first[2]:.2f}")
            threads, processes = rows[1], rows[2]
            over_threads.append((processes[1] / threads[1], processes[2] / threads[2]))
            print(f"  2 worker processes over 1 worker on {cores} cores: one shot x{over_threads[-1][0]:.2f}   "
                  f"queue of 4 x{over_threads[-1][1]:.2f}")
        if args.rounds > 1:
            print(f"    over {args.rounds} rounds (min..median..max):")
            for name, values in ratios.items():
                print(f"  {name:<22} " + spread(values))
            print(f"  2 processes over 1 worker on {cores} cores: " + spread(over_threads))
        single = rows[0][3]
        analysis = single["analysis_end"] / frames  # load + track + fit, per frame of the shot
        render = (single["wall"] - single["analysis_end"]) / frames
        floor, frame_bytes = io_floor(rows[0][4] / "one", frames)
        print(f"(b) one worker, one core: analysis {analysis * 1000:.1f} ms/frame (serial per shot), render "
              f"{render * 1000:.1f} ms/frame (parallel per chunk); bare OpenImageIO read+write of the output "
              f"{floor * 1000:.1f} ms/frame ({render / floor:.1f}x the render); {frame_bytes / 1e6:.2f} MB/frame")
        chunk = 10
        chunk_cost = 0.05 * chunk * render  # load the cached analysis + edit the whole shot: ~5 % of a chunk
        scale_1080 = (1920 * 1080) / (360 * 288)
        bandwidth = args.bandwidth_gbs * 1e9
        print(f"(c) model, 96-frame shots, chunks of {chunk}, {args.bandwidth_gbs:g} GB/s storage; per frame "
              f"read+written ~{2 * frame_bytes * scale_1080 / 1e6:.0f} MB at 1080p:")
        for label, a, r, b in (("demo costs (360x288)", analysis, render, 2 * frame_bytes),
                               ("1080p, render x20.8 px", analysis, render * scale_1080, 2 * frame_bytes * scale_1080)):
            cells = []
            for gpus in (1, 16, 32, 64):
                one_rate, queue_rate = model(gpus, 96, a, r, chunk_cost * r / render, chunk, b, bandwidth)
                cells.append(f"{gpus} → {one_rate:.0f}/{queue_rate:.0f}")
            limit = bandwidth * (a + r + chunk_cost * r / render / chunk) / b
            print(f"  {label:<24} frames/s one shot/queue: " + ", ".join(cells)
                  + f"; storage-bound from {limit:.0f} GPUs (one shot: at most {1 / a:.1f} frames/s)")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
