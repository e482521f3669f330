"""Benchmark: ``ned edit`` on a 1080p EXR sequence against plain OpenImageIO read+write of the same frames.

Makes a scene-linear 1920x1080 half-float EXR sequence from the demo clip (upscaled), then in one run:
  1. reads and writes those frames with OpenImageIO alone (RGBA half, same compression): the yardstick,
     timed before and after the ``ned edit`` runs (the ratio uses their mean, so a machine that gets
     busier or quieter during the run skews it less);
  2. runs ``ned edit --emotion happy`` on them in a subprocess, cold (analysis included), again warm
     (analysis from the cache), warm without the appearance stage (``appearance="none"``), which
     gives the appearance stage's share of a frame, and warm with the matte alone beside RGBA
     (``--layers matte``), which gives the STMap layer's share;
and prints frames/s, the ratio of each ``ned edit`` run to the yardstick, and each run's peak memory.

    .venv/bin/python benchmarks/pipeline.py [--frames 25]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio

from ned_core.io import Plate
from ned_core.io.colour import convert

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "demo" / "grid_bbaf2n.mpg"


def make_plate(directory: Path, count: int) -> str:
    with Plate.open(str(CLIP)) as movie:
        for frame in movie.frames[:count]:
            image = movie.read(frame)
            big = cv2.resize(image.pixels[..., :3], (1920, 1080), interpolation=cv2.INTER_CUBIC)
            linear = convert(np.clip(big, 0, 1), image.colorspace, "scene_linear")
            spec = oiio.ImageSpec(1920, 1080, 3, "half")
            spec.attribute("compression", "zip")
            out = oiio.ImageOutput.create(str(directory / f"plate.{frame}.exr"))
            out.open(str(directory / f"plate.{frame}.exr"), spec)
            out.write_image(linear.astype(np.float32))
            out.close()
    return str(directory / "plate.####.exr")


def oiio_read_write(pattern: str, out_dir: Path) -> tuple[float, float]:
    """(seconds, CPU seconds) to read every frame and write it back as RGBA half EXR with OpenImageIO alone."""
    frames = sorted(Path(pattern).parent.glob("plate.*.exr"))
    start = time.perf_counter()
    cpu = time.process_time()
    for path in frames:
        pixels = oiio.ImageBuf(str(path)).get_pixels(oiio.FLOAT)
        rgba = np.concatenate([pixels, np.ones(pixels.shape[:2] + (1,), np.float32)], axis=-1)
        spec = oiio.ImageSpec(rgba.shape[1], rgba.shape[0], 4, "half")
        spec.attribute("compression", "zip")
        out = oiio.ImageOutput.create(str(out_dir / path.name))
        out.open(str(out_dir / path.name), spec)
        out.write_image(rgba)
        out.close()
    return time.perf_counter() - start, time.process_time() - cpu


# ``ned edit`` with the appearance stage switched off (the CLI has presets, not a per-stage switch).
_NO_APPEARANCE = (
    "import sys\n"
    "from ned_engine import cli\n"
    "presets = cli.backends_from_args\n"
    "def without_appearance(args):\n"
    "    backends = presets(args)\n"
    "    backends.appearance = 'none'\n"
    "    return backends\n"
    "cli.backends_from_args = without_appearance\n"
    "sys.exit(cli.main(sys.argv[1:]))\n"
)


def ned_edit(pattern: str, out_dir: Path, cache: Path, appearance: bool = True, *extra: str
             ) -> tuple[float, float, float]:
    """(seconds, CPU seconds, peak RSS MiB) of one ``ned edit`` subprocess (``extra``: more arguments)."""
    entry = ["-m", "ned_engine.cli"] if appearance else ["-c", _NO_APPEARANCE]
    cmd = [sys.executable, *entry, "edit", pattern, "--output", str(out_dir / "edit.####.exr"),
           "--emotion", "happy", "--cache-dir", str(cache), "--quiet", *extra]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, cmd)
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "plate").mkdir()
        (tmp_path / "io").mkdir()
        (tmp_path / "ned").mkdir()
        pattern = make_plate(tmp_path / "plate", args.frames)
        n = len(list((tmp_path / "plate").glob("*.exr")))
        io_before, io_cpu_before = oiio_read_write(pattern, tmp_path / "io")
        runs = [("ned edit, cold (with analysis)", *ned_edit(pattern, tmp_path / "ned", tmp_path / "cache")),
                ("ned edit, warm (cached analysis)", *ned_edit(pattern, tmp_path / "ned", tmp_path / "cache")),
                ("ned edit, warm, no appearance stage",
                 *ned_edit(pattern, tmp_path / "ned", tmp_path / "cache", appearance=False)),
                ("ned edit, warm, --layers matte",
                 *ned_edit(pattern, tmp_path / "ned", tmp_path / "cache", True, "--layers", "matte"))]
        io_after, io_cpu_after = oiio_read_write(pattern, tmp_path / "io")
    io_seconds, io_cpu = (io_before + io_after) / 2, (io_cpu_before + io_cpu_after) / 2
    print(f"1920x1080 half RGB EXR plate, {n} frames, zip compression, {os.cpu_count()} CPUs")
    print(f"OpenImageIO read+write only : {n / io_seconds:6.2f} frames/s  ({io_seconds / n * 1000:.0f} ms/frame; "
          f"{io_before / n * 1000:.0f} before, {io_after / n * 1000:.0f} after the ned runs; "
          f"CPU {io_cpu / n * 1000:.0f} ms/frame)")
    # Wall time is what a user waits; CPU time (all threads, process start included) is the work, which a
    # machine shared with other jobs distorts far less.
    for label, seconds, cpu, peak in runs:
        print(f"{label:36s}: {n / seconds:6.2f} frames/s  ratio to read+write {seconds / io_seconds:.2f}x  "
              f"CPU {cpu / n * 1000:.0f} ms/frame ({cpu / io_cpu:.2f}x)  peak memory {peak:.0f} MiB")
    (_, warm, warm_cpu, _) = runs[1]
    for what, (_, other, other_cpu, _) in (("appearance stage", runs[2]), ("STMap layer", runs[3])):
        print(f"{what}: {(warm - other) / n * 1000:.0f} ms/frame of wall time "
              f"({100 * (warm - other) / warm:.0f}% of a warm run), {(warm_cpu - other_cpu) / n * 1000:.0f} ms/frame "
              f"of CPU ({100 * (warm_cpu - other_cpu) / warm_cpu:.0f}%)")


if __name__ == "__main__":
    main()
