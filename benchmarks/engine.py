"""Benchmark: the engine's cost over running the pipeline in-process, its latency, and worker scaling.

One run prints, with the real default backends on the demo clip:
  (a) one job's wall time through a running engine (submit → ``done`` at the client) over the same job
      run in-process by ``Pipeline.run`` with warm backends: cold (analysis included) and warm
      (analysis from the cache), best of three (the least noisy estimate on a shared machine);
  (b) round-trip latency of ``ping``, of a ``submit`` carrying a ~10 MB inline EXR plate frame (to
      ``accepted``), and of a ~10 MB inline EXR output frame (``resume`` → its ``frame_ready`` payload);
  (c) frames/s of four 15-frame jobs submitted together to an engine with 1 and with 2 workers (best
      of three rounds).

    .venv/bin/python benchmarks/engine.py [--frames 25]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
from ned_engine import jobs
from ned_protocol import Client

from ned_core.cache import AnalysisCache
from ned_core.io import Plate
from ned_core.io.colour import convert
from ned_core.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "demo" / "grid_bbaf2n.mpg"


class Engine:
    """``ned-engine serve`` in a subprocess on a free loopback port."""

    def __init__(self, folder: Path, workers: int = 1) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ned_engine.main", "serve", "--bind", "tcp://127.0.0.1:*", "--workers", str(workers),
             "--journal", str(folder / "journal.sqlite"), "--cache-dir", str(folder / "cache"), "--monitor", "off",
             "--allow-root", str(folder.parent), "--allow-root", str(CLIP.parent), "--log-level", "WARNING"],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"serving (\S+) ", line)
        if match is None:
            raise RuntimeError(f"the engine did not start: {line!r}")
        self.address = match.group(1)

    def client(self) -> Client:
        return Client(self.address, timeout=60.0, credit_window=8)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def spec(first: int, last: int, output: str) -> dict:
    return {"plate": str(CLIP), "frame_range": [first, last],
            "keys": [{"frame": first, "weights": {"neutral": 1.0}}, {"frame": last, "weights": {"happy": 1.0}}],
            "output": {"pattern": output}}


def through_engine(client: Client, job_spec: dict) -> float:
    start = time.perf_counter()
    job = client.submit(job_spec)
    for event in client.events(job):
        if event.terminal:
            if event.type != "done":
                raise RuntimeError(f"job failed: {event.body}")
            break
    return time.perf_counter() - start


def in_process(job_spec: dict, cache: Path, pipeline: Pipeline | None = None) -> tuple[float, Pipeline]:
    plan = jobs.plan(job_spec)
    if pipeline is None:
        pipeline = Pipeline(plan.backends)
        pipeline.load()  # warm, as the engine's workers are
    pipeline.cache = AnalysisCache(cache)
    start = time.perf_counter()
    pipeline.run(plan.shot, plan.curve, plan.output, mouth_preservation=plan.mouth_preservation)
    return time.perf_counter() - start, pipeline


def big_frame(path: Path) -> bytes:
    """One demo frame upscaled so that its edited EXR (RGBA half + 3 float layers, no compression) is ~10 MB."""
    with Plate.open(str(CLIP), frame_range=(1010, 1010)) as movie:
        image = movie.read(1010)
    pixels = cv2.resize(image.pixels[..., :3], (928, 564), interpolation=cv2.INTER_CUBIC)
    linear = convert(np.clip(pixels, 0, 1), image.colorspace, "scene_linear").astype(np.float32)
    spec_ = oiio.ImageSpec(928, 564, 3, "float")
    spec_.attribute("compression", "none")
    out = oiio.ImageOutput.create(str(path))
    out.open(str(path), spec_)
    out.write_image(linear)
    out.close()
    return path.read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=25, help="frames of the job in (a)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        # (a) protocol overhead: both sides warmed by one small job, then three cold+warm pairs
        pipeline = in_process(spec(1070, 1072, str(tmp_path / "warmup" / "a.####.exr")), tmp_path / "lw")[1]
        engine = Engine(tmp_path / "e1")
        try:
            with engine.client() as client:
                through_engine(client, spec(1070, 1072, str(tmp_path / "warmup" / "b.####.exr")))
                local_cold, local_warm, remote_cold, remote_warm = [], [], [], []
                for shift in range(3):  # a new range is a new shot: cold in both caches
                    first, last = 1001 + shift, 1000 + args.frames + shift
                    local = spec(first, last, str(tmp_path / "local" / f"{shift}.####.exr"))
                    remote = spec(first, last, str(tmp_path / "remote" / f"{shift}.####.exr"))
                    local_cold.append(in_process(local, tmp_path / f"lc{shift}", pipeline)[0])
                    remote_cold.append(through_engine(client, remote))
                    local_warm.append(in_process(local, tmp_path / f"lc{shift}", pipeline)[0])
                    remote_warm.append(through_engine(client, remote))
                # (b) latency
                pings = [client.ping() for _ in range(200)]
                plate = big_frame(tmp_path / "big.exr")
                inline = {"plate_frames": [1010], "emotion": "happy", "output": {"inline": True, "compression": "none"}}
                uploads = []
                for _ in range(5):
                    start = time.perf_counter()
                    job = client.submit(inline, payloads=[plate])
                    uploads.append(time.perf_counter() - start)
                    frames = [e for e in client.events(job) if e.type == "frame_ready"]
                size = len(frames[0].payload)
                downloads = []
                for _ in range(5):
                    start = time.perf_counter()
                    client.resume(job, after_seq=0, inline=True)
                    next(e for e in client.events(job) if e.type == "frame_ready")
                    downloads.append(time.perf_counter() - start)
                    list(client.events(job, timeout=0.2))
        finally:
            engine.stop()
        # (c) worker scaling: four cold 15-frame jobs at once, best of three rounds (new shots each round)
        rates = {}
        for workers in (1, 2):
            engine = Engine(tmp_path / f"w{workers}", workers)
            try:
                with engine.client() as client:
                    client.ping()
                    best = float("inf")
                    for round_ in range(3):
                        chunks = [(1001 + round_ + 15 * i, 1015 + round_ + 15 * i) for i in range(4)]
                        folder = tmp_path / f"w{workers}" / str(round_)
                        start = time.perf_counter()
                        ids = [client.submit(spec(a, b, str(folder / f"c{a}.####.exr"))) for a, b in chunks]
                        for job in ids:
                            for event in client.events(job):
                                if event.terminal and event.type != "done":
                                    raise RuntimeError(f"job failed: {event.body}")
                        best = min(best, time.perf_counter() - start)
                    rates[workers] = 60 / best
            finally:
                engine.stop()

    print(f"(a) {args.frames}-frame job, real backends, demo clip 360x288 (best of 3):")
    for label, local, remote in (("cold (analysis included)", local_cold, remote_cold),
                                 ("warm (analysis cached)  ", local_warm, remote_warm)):
        a, b = min(local), min(remote)
        print(f"    {label}: in-process {a:.2f} s, through the engine {b:.2f} s, ratio {b / a:.3f}")
    print(f"(b) ping round trip: median {statistics.median(pings) * 1e3:.2f} ms, "
          f"p95 {sorted(pings)[int(0.95 * len(pings))] * 1e3:.2f} ms (200 pings)")
    print(f"    submit with a {len(plate) / 1e6:.1f} MB inline plate frame → accepted: median "
          f"{statistics.median(uploads) * 1e3:.1f} ms")
    print(f"    {size / 1e6:.1f} MB inline EXR frame (resume → frame_ready with payload): median "
          f"{statistics.median(downloads) * 1e3:.1f} ms")
    print(f"(c) four 15-frame jobs at once (best of 3): 1 worker {rates[1]:.2f} frames/s, "
          f"2 workers {rates[2]:.2f} frames/s (x{rates[2] / rates[1]:.2f})")


if __name__ == "__main__":
    main()
