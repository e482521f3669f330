"""Engine test helpers: a real ``ned-engine serve`` subprocess on 127.0.0.1, and synthetic EXR plates."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GRID = ROOT / "demo" / "grid_bbaf2n.mpg"
W, H = 160, 120
READY = re.compile(r"serving (\S+) .*monitor (\S+), token (\S+)\)")


def write_exr(path: Path, pixels: np.ndarray) -> None:
    spec = oiio.ImageSpec(pixels.shape[1], pixels.shape[0], pixels.shape[2], "half")
    spec.attribute("compression", "zip")
    out = oiio.ImageOutput.create(str(path))
    out.open(str(path), spec)
    out.write_image(pixels)
    out.close()


def exr_bytes(path: Path) -> tuple[list[str], list[str], bytes]:
    """Channel names, their stored formats and every pixel byte of an EXR, over all its parts (the matte
    and STMap layers are parts after the RGBA), as OpenImageIO reads them."""
    image = oiio.ImageInput.open(str(path))
    assert image is not None, oiio.geterror()
    names: list[str] = []
    formats: list[str] = []
    data = b""
    part = 0
    while part == 0 or image.seek_subimage(part, 0):
        spec = image.spec()
        names += spec.channelnames
        formats += [str(f) for f in spec.channelformats] or [str(spec.format)] * spec.nchannels
        data += np.ascontiguousarray(image.read_image(part, 0, 0, spec.nchannels, "unknown")).tobytes()
        part += 1
    image.close()
    return names, formats, data


def make_plate(folder: Path, frames: range, seed: int = 0) -> str:
    """A scene-linear half EXR sequence ``folder/plate.####.exr`` of noise (HDR values and negatives)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for frame in frames:
        write_exr(folder / f"plate.{frame}.exr", (rng.random((H, W, 3)) * 4 - 0.5).astype(np.float32))
    return str(folder / "plate.####.exr")


def engine_env(delay: float = 0.0) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH", "")]))
    env["NED_TEST_FRAME_DELAY"] = str(delay)
    env.pop("NED_ENGINE_HOME", None)
    return env


class EngineProcess:
    """``ned-engine serve`` as a subprocess; ``address`` and ``monitor`` are read from its ready line."""

    def __init__(self, folder: Path, *args: str, standin: bool = True, delay: float = 0.0,
                 bind: str = "tcp://127.0.0.1:*", journal: Path | None = None, roots: tuple[str, ...] | None = None,
                 timeout: float = 60.0, wait_ready: bool = True) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.journal = journal or folder / "journal.sqlite"
        self.log = open(folder / f"engine-{time.monotonic_ns()}.log", "w")  # noqa: SIM115 - closed in stop
        command = [sys.executable, "-m", "ned_engine.main", "serve", "--bind", bind, "--journal", str(self.journal),
                   "--cache-dir", str(folder / "cache"), "--monitor", "127.0.0.1:0", "--log-level", "DEBUG"]
        for root in (roots if roots is not None else (str(folder),)):
            command += ["--allow-root", root]
        if standin:
            command += ["--stages", "standin:stages"]
        command += list(args)
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env=engine_env(delay), cwd=str(ROOT))
        line = self._ready_line(timeout)
        match = READY.search(line)
        if match is None:
            self.stop()
            raise RuntimeError(f"engine did not start: {line!r}\n{self.stderr()}")
        self.address, self.monitor, self.token_file = match.group(1), match.group(2), match.group(3)
        if wait_ready:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every worker process has loaded its backends (``/readyz`` answers 200), so tests
        that depend on which job starts first do not race the workers' start."""
        if not self.monitor.startswith("http"):
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.monitor + "/readyz", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"engine workers not ready after {timeout} s\n{self.stderr()}")

    def _ready_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline() if ready else ""

    def stderr(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text()

    def kill(self) -> None:
        """``kill -9``: no cleanup of any kind."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode

    def client(self, **options):
        from ned_protocol import Client

        options.setdefault("timeout", 10.0)
        options.setdefault("heartbeat", 0.5)
        return Client(self.address, **options)


def spec_for(plate: str, output: str | None, *, inline: bool = False, **extra) -> dict:
    """A keyframed JobSpec over ``plate``."""
    out: dict = {"inline": inline}
    if output is not None:
        out["pattern"] = output
    spec = {"plate": plate, "keys": [{"frame": 1001, "weights": {"neutral": 1.0}},
                                     {"frame": 1004, "weights": {"happy": 1.0}}],
            "interpolation": "smooth", "output": out}
    spec.update(extra)
    return spec


def collect(client, job: str, timeout: float = 60.0) -> list:
    """Every event of ``job`` until its terminal one."""
    events = []
    deadline = time.monotonic() + timeout
    for event in client.events(job, timeout=max(deadline - time.monotonic(), 0.1)):
        events.append(event)
        if event.terminal:
            break
    return events


def stamp(path: str | Path) -> tuple[int, int]:
    """(inode, mtime ns): changes when a file is rewritten, even by rename."""
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns
