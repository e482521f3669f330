"""The real default backends through a running engine, on the demo clip: a keyframed job end to end, and
``ned edit --engine`` (paths, and inline frames) writing the same bytes as ``ned edit`` in-process."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from ned_engine import cli
from ned_engine.remote import run_remote

from ned_core.errors import InvalidOptionError, NedError
from ned_core.io import Plate, read_exr_channels
from ned_core.io.colour import convert
from ned_core.pipeline import Progress

from .helpers import GRID, EngineProcess, collect, write_exr


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """An engine with the real default backends, allowed to read the demo clip."""
    root = tmp_path_factory.mktemp("real")
    process = EngineProcess(root / "state", standin=False, roots=(str(root), str(GRID.parent)))
    process.root = root
    yield process
    process.stop()


def test_keyframed_job_with_the_real_backends(real):
    spec = {"plate": str(GRID), "frame_range": [1001, 1005],
            "keys": [{"frame": 1001, "weights": {"neutral": 1.0}}, {"frame": 1005, "weights": {"happy": 1.0}}],
            "output": {"pattern": str(real.root / "e2e" / "sh.####.exr")}}
    with real.client(timeout=30.0) as client:
        job = client.submit(spec)
        events = collect(client, job, timeout=120)
    assert events[-1].type == "done", events[-1].body
    assert [e.body["frame"] for e in events if e.type == "frame_ready"] == list(range(1001, 1006))
    assert events[-1].body["lost_frames"] == []
    first = read_exr_channels(str(real.root / "e2e" / "sh.1001.exr"))
    last = read_exr_channels(str(real.root / "e2e" / "sh.1005.exr"))
    assert last["ned.matte"].max() > 0.5
    # neutral at 1001 changes nothing where the matte is zero; the happy end moves pixels
    assert not np.array_equal(first["R"], last["R"])


def _args(*argv: str):
    return cli.build_parser().parse_args(["edit", *argv])


def _same_frames(a: Path, b: Path, frames: range) -> None:
    for frame in frames:
        assert (a / f"o.{frame}.exr").read_bytes() == (b / f"o.{frame}.exr").read_bytes(), f"frame {frame} differs"


def test_ned_edit_engine_writes_what_ned_edit_writes(real, tmp_path):
    local = tmp_path / "local"
    remote = real.root / "remote"
    # with the matte alone beside RGBA (protocol 1.3's Output.layers; the inline test below writes both)
    common = ["--frames", "1001-1005", "--key", "1001:neutral=1", "--key", "1005:happy=1,surprised=0.3",
              "--face", "180,120", "--layers", "matte", "-q"]
    assert cli.main(["edit", str(GRID), "-o", str(local / "o.####.exr"), "--cache-dir", str(tmp_path / "c"),
                     *common]) == 0
    reports: list[Progress] = []
    printed = io.StringIO()
    status = run_remote(_args(str(GRID), "-o", str(remote / "o.####.exr"), *common), real.address, reports.append,
                        stream=printed)
    assert status == 0
    assert printed.getvalue().startswith(f"wrote 5 frames 1001-1005 to {remote / 'o.####.exr'}")
    assert {r.stage for r in reports} <= {"analyze", "render"} and reports[-1] == Progress("render", 1005, 5, 5)
    _same_frames(local, remote, range(1001, 1006))
    assert set(read_exr_channels(str(remote / "o.1005.exr"))) == {"R", "G", "B", "A", "ned.matte"}


def test_ned_edit_engine_inline(real, tmp_path):
    plate = tmp_path / "plate"
    plate.mkdir()
    with Plate.open(str(GRID), frame_range=(1001, 1004)) as movie:  # a scene-linear EXR sequence
        for frame in movie.frames:
            image = movie.read(frame)
            big = cv2.resize(image.pixels[..., :3], (480, 384), interpolation=cv2.INTER_CUBIC)
            write_exr(plate / f"plate.{frame}.exr", convert(np.clip(big, 0, 1), image.colorspace, "scene_linear"))
    common = ["--emotion", "happy:0.8", "-q"]
    assert cli.main(["edit", str(plate / "plate.####.exr"), "-o", str(tmp_path / "local" / "o.####.exr"),
                     "--cache-dir", str(tmp_path / "c"), *common]) == 0
    args = _args(str(plate / "plate.####.exr"), "-o", str(tmp_path / "inline" / "o.####.exr"), *common)
    assert run_remote(args, real.address, None, inline=True, stream=io.StringIO()) == 0
    _same_frames(tmp_path / "local", tmp_path / "inline", range(1001, 1005))


def test_remote_errors_come_back_as_pipeline_errors(real, tmp_path):
    with pytest.raises(NedError) as error:  # outside the engine's allowed roots
        run_remote(_args(str(GRID), "-o", "/tmp/elsewhere/o.####.exr", "--emotion", "happy"), real.address,
                   stream=io.StringIO())
    assert error.value.code == "forbidden_path" and "outside the allowed roots" in error.value.one_line()
    with pytest.raises(InvalidOptionError):
        run_remote(_args(str(GRID), "-o", str(tmp_path / "o.####.exr"), "--emotion", "happy", "--preview", "p.mp4"),
                   real.address)
    with pytest.raises(InvalidOptionError):  # a movie cannot be sent inline without re-encoding it
        run_remote(_args(str(GRID), "-o", str(tmp_path / "o.####.exr"), "--emotion", "happy"), real.address,
                   inline=True)
    with pytest.raises(NedError) as error:
        run_remote(_args(str(GRID), "-o", str(tmp_path / "o.####.exr"), "--emotion", "happy"),
                   "tcp://127.0.0.1:9", timeout=1.0)
    assert error.value.code == "timeout"
