"""Worker processes: two processes share one shot bit for bit, a killed process is replaced and its
chunk re-run without losing or rewriting a frame, a cancel reaches a chunk within a frame, and each
process gets its thread limits and device."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from ned_engine import jobs
from ned_engine.monitor import fetch

from ned_core.cache import AnalysisCache
from ned_core.pipeline import Pipeline

from . import standin
from .helpers import EngineProcess, collect, exr_bytes, make_plate, spec_for, stamp

FRAMES = list(range(1001, 1013))
WRITES_IN_FLIGHT = 2  # ned_core.pipeline._FrameWriter's depth: frames rendered, not yet in place
CHUNK = re.compile(r"worker (\d) \(process (\d+)\): job (\S+) frames (\d+)-(\d+)")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("procs")


@pytest.fixture(scope="module")
def plate(root) -> str:
    return make_plate(root / "plate", range(FRAMES[0], FRAMES[-1] + 1), seed=7)


@pytest.fixture(scope="module")
def engine(root):
    """Two worker processes, one numeric thread each, stand-in stages."""
    process = EngineProcess(root / "state", "--workers", "2", "--worker-threads", "1", roots=(str(root),))
    yield process
    process.stop()


def _reference(folder: Path, spec: dict) -> dict[int, Path]:
    """One in-process run of the whole shot with the same stand-in stages and a fresh analysis."""
    pattern = str(folder / "ref.####.exr")
    plan = jobs.plan(spec, output=pattern)
    pipeline = Pipeline(plan.backends, cache=AnalysisCache(folder / "cache"),
                        stages=standin.stages(plan.backends))
    result = pipeline.run(plan.shot, plan.curve, plan.output, mouth_preservation=plan.mouth_preservation)
    return {f: Path(p) for f, p in result.written.items()}


def _assert_identical(out: Path, name: str, reference: dict[int, Path]) -> None:
    assert sorted(reference) == FRAMES
    for frame, path in reference.items():
        assert exr_bytes(out / f"{name}.{frame}.exr") == exr_bytes(path), f"frame {frame} differs from a single run"


def _status(engine: EngineProcess) -> dict:
    code, body = fetch(engine.monitor + "/status")
    assert code in (200, 503), body
    return json.loads(body)


def _chunks(engine: EngineProcess, job: str) -> list[tuple[int, int, int, int]]:
    """(worker, process, first, last) of every chunk the engine's log says it ran for ``job``."""
    return [(int(m[1]), int(m[2]), int(m[4]), int(m[5])) for m in CHUNK.finditer(engine.stderr()) if m[3] == job]


def _frames(events) -> list[int]:
    return [e.body["frame"] for e in events if e.type == "frame_ready"]


def test_two_processes_share_one_shot_bit_for_bit(engine, plate, root, tmp_path):
    spec = spec_for(plate, str(root / "share" / "s.####.exr"), backends={"options": {"track": {"lost": [1010]},
                                                                                      "render": {"delay": 0.05}}})
    with engine.client() as client:
        events = collect(client, client.submit(spec), timeout=120)
    assert events[-1].type == "done" and events[-1].body["lost_frames"] == [1010]
    assert sorted(_frames(events)) == FRAMES  # every frame exactly once
    analysed = [e for e in events if e.type == "progress" and e.body["stage"] == "analyze"]
    assert analysed and analysed[-1].body["done"] == len(FRAMES)  # one analysis of the whole shot
    rendered = [e.body["done"] for e in events if e.type == "progress" and e.body["stage"] == "render"]
    assert rendered == list(range(1, len(FRAMES) + 1))  # the job's progress counts both processes' frames
    chunks = _chunks(engine, events[-1].job)
    assert {c[0] for c in chunks} == {0, 1} and len({c[1] for c in chunks}) == 2, chunks
    assert sorted(f for c in chunks for f in range(c[2], c[3] + 1)) == FRAMES
    _assert_identical(root / "share", "s", _reference(tmp_path, spec))


def test_a_killed_worker_process_is_replaced_and_its_chunk_rerun(engine, plate, root, tmp_path):
    out = root / "kill"
    spec = spec_for(plate, str(out / "k.####.exr"), backends={"options": {"render": {"delay": 0.4}}})
    before = {w["index"]: w for w in _status(engine)["workers"]}
    with engine.client() as client:
        job = client.submit(spec)
        seen = []
        for event in client.events(job, timeout=120):
            seen.append(event)
            if event.type == "frame_ready" or event.terminal:
                break
        assert seen[-1].type == "frame_ready"
        busy = [w for w in _status(engine)["workers"] if w["job"] == job]
        assert busy, "a worker runs the job"
        victim = busy[-1]
        os.kill(victim["pid"], signal.SIGKILL)
        early = {f: stamp(out / f"k.{f}.exr") for f in _frames(seen)}
        rest = collect(client, job, timeout=120)
    events = seen + rest
    assert events[-1].type == "done", events[-1].body
    frames = _frames(events)
    assert sorted(frames) == FRAMES  # none lost, none reported twice
    assert {f: stamp(out / f"k.{f}.exr") for f in early} == early  # frames written before the kill stay
    journal = _journal_frames(engine.journal, job)
    assert journal == FRAMES
    after = {w["index"]: w for w in _status(engine)["workers"]}
    index = victim["index"]
    assert after[index]["restarts"] == before[index]["restarts"] + 1 and after[index]["pid"] != victim["pid"]
    assert after[index]["alive"] and after[index]["ready"]
    assert not list(out.glob(".*.tmp"))  # the dead process's half-written temp file is gone
    _assert_identical(out, "k", _reference(tmp_path, spec))
    assert f"process {victim['pid']} died" in engine.stderr()


def test_cancel_reaches_every_chunk_within_a_frame(engine, plate, root):
    out = root / "cancel"
    spec = spec_for(plate, str(out / "c.####.exr"), backends={"options": {"render": {"delay": 0.5},
                                                                          "track": {"lost": [1011]}}})
    with engine.client() as client:
        job = client.submit(spec)
        events = []
        for event in client.events(job, timeout=120):
            events.append(event)
            if event.type == "frame_ready" and len(_frames(events)) == 1:
                busy = sum(1 for w in _status(engine)["workers"] if w["job"] == job)
                assert client.cancel(job) == "running"
                at_cancel = len(list(out.glob("c.*.exr")))  # the engine's own count may be ahead of ours
            if event.terminal:
                break
    assert events[-1].type == "cancelled" and busy == 2  # both processes had a chunk of the job
    written = _frames(events)
    # each process stops at its next frame boundary: what it had in hand when the cancel came (the
    # frame it renders, and those its writer threads are still writing) is finished, nothing after
    assert at_cancel <= len(written) <= at_cancel + (1 + WRITES_IN_FLIGHT) * busy, written
    assert len(written) < len(FRAMES) and events[-1].body["frames_written"] == len(written)
    assert sorted(int(p.name.split(".")[1]) for p in out.glob("c.*.exr")) == sorted(written)
    assert not list(out.glob(".*.tmp"))
    time.sleep(1.0)  # nothing more arrives on disk after the terminal event
    assert sorted(int(p.name.split(".")[1]) for p in out.glob("c.*.exr")) == sorted(written)


def test_a_queue_runs_shots_whole_and_a_killed_whole_shot_is_rerun(engine, plate, root, tmp_path):
    """A worker that takes a shot while another shot is still waiting for its fellow runs it in one
    task (its analysis, then every frame) instead of splitting it; a process killed in such a task is
    replaced and the task re-run without losing or rewriting a frame, and every shot equals a single run."""
    options = {"track": {"delay": 0.05}, "render": {"delay": 0.1}}
    specs = [spec_for(plate, str(root / f"queue{i}" / "q.####.exr"), backends={"options": {
        **options, "track": {**options["track"], "lost": [1010] if i == 2 else []}}}) for i in range(5)]
    with engine.client() as client:
        ids = [client.submit(s) for s in specs[:2]]
        deadline = time.monotonic() + 30
        while sum(1 for w in _status(engine)["workers"] if w["job"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        ids += [client.submit(s) for s in specs[2:]]  # queued while both workers are busy
        events: dict[str, list] = {job: [] for job in ids}
        killed = None
        ended: set[str] = set()
        for event in client.events(timeout=120):
            events[event.job].append(event)
            if killed is None and event.job == ids[2] and event.type == "frame_ready":
                busy = [w for w in _status(engine)["workers"] if w["job"] == ids[2]]
                assert len(busy) == 1, "the third shot runs whole, in one worker"
                killed = busy[0]
                os.kill(killed["pid"], signal.SIGKILL)
                early = {f: stamp(root / "queue2" / f"q.{f}.exr") for f in _frames(events[ids[2]])}
            if event.terminal:
                ended.add(event.job)
                if ended == set(ids):
                    break
    assert killed is not None
    for job in ids:
        assert events[job][-1].type == "done", events[job][-1].body
        assert sorted(_frames(events[job])) == FRAMES and _journal_frames(engine.journal, job) == FRAMES
    assert events[ids[2]][-1].body["lost_frames"] == [1010]
    assert {f: stamp(root / "queue2" / f"q.{f}.exr") for f in early} == early
    assert not list((root / "queue2").glob(".*.tmp"))
    log = engine.stderr()
    for job in ids[2:4]:  # taken while another shot waited: one task each (the last shot may be split)
        assert f"job {job} frames 1001-1012 (whole job)" in log, _chunks(engine, job)
    assert f"process {killed['pid']} died" in log
    reference = _reference(tmp_path, specs[0])
    for i in (0, 1, 3, 4):
        _assert_identical(root / f"queue{i}", "q", reference)
    _assert_identical(root / "queue2", "q", _reference(tmp_path / "lost", specs[2]))


def _journal_frames(path: Path, job: str) -> list[int]:
    import sqlite3

    db = sqlite3.connect(str(path))
    try:
        rows = db.execute("SELECT frame FROM frames WHERE job=? ORDER BY frame", (job,)).fetchall()
    finally:
        db.close()
    return [r[0] for r in rows]


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc/PID/environ (Linux)")
def test_each_process_gets_its_threads_and_device(tmp_path):
    process = EngineProcess(tmp_path / "state", "--workers", "2", "--device", "cuda:3", "--device", "cpu",
                            roots=(str(tmp_path),))
    try:
        workers = _status(process)["workers"]
    finally:
        process.stop()
    assert [w["device"] for w in workers] == ["cuda:3", "cpu"]
    cores = len(os.sched_getaffinity(0))
    for worker in workers:
        assert worker["threads"] == max(1, cores // 2)
    envs = [_environ(w["pid"]) for w in workers] if all(Path(f"/proc/{w['pid']}").exists() for w in workers) else []
    for worker, env in zip(workers, envs, strict=False):
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            assert env[name] == str(worker["threads"])
    if envs:
        assert envs[0]["CUDA_VISIBLE_DEVICES"] == "3" and "CUDA_VISIBLE_DEVICES" not in envs[1]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pins two workers to cores of their own")
def test_pin_cpus_gives_each_process_its_own_cores(tmp_path):
    process = EngineProcess(tmp_path / "state", "--workers", "2", "--worker-threads", "1", "--pin-cpus",
                            roots=(str(tmp_path),))
    try:
        workers = _status(process)["workers"]
        allowed = [os.sched_getaffinity(w["pid"]) for w in workers]
    finally:
        process.stop()
    cores = sorted(os.sched_getaffinity(0))
    assert [w["cpus"] for w in workers] == [[cores[0]], [cores[1]]]
    assert allowed == [{cores[0]}, {cores[1]}]


def test_the_scheduler_hands_out_started_work_first():
    from ned_engine.workers import Chunk, Scheduler

    scheduler = Scheduler()
    scheduler.push("j-new", priority=50)
    first, second, retried = (Chunk(None, [f]) for f in (1001, 1002, 1003))  # type: ignore[arg-type]
    scheduler.add_chunks(0, [first, second])
    scheduler.add_chunks(0, [retried], first=True)  # a dead worker's task goes before its siblings
    assert [scheduler.take_task(0.1) for _ in range(3)] == [retried, first, second]
    scheduler.add_chunks(0, [first])
    scheduler.pause()  # a draining engine still finishes the chunks of the jobs it runs, takes no new job
    assert scheduler.take_task(0.1) is first
    assert scheduler.take_task(0.1) is None


def test_ray_without_ray_installed_is_a_clear_error(tmp_path):
    import importlib.util
    import subprocess
    import sys

    spec = importlib.util.find_spec("ray")
    if spec is not None and spec.origin is not None:  # (tests/ray itself looks like a namespace package "ray")
        pytest.skip("Ray is installed in this environment (tests/ray covers --ray)")
    result = subprocess.run([sys.executable, "-m", "ned_engine.main", "serve", "--ray", "auto", "--journal",
                             str(tmp_path / "j.sqlite"), "--monitor", "off"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert "invalid_option: --ray needs Ray: pip install 'ned-engine[ray]'" in result.stderr


def test_engine_killed_with_two_busy_workers_resumes_without_rewriting(tmp_path):
    plate = make_plate(tmp_path / "plate", range(FRAMES[0], FRAMES[-1] + 1), seed=9)
    out = tmp_path / "out"
    spec = spec_for(plate, str(out / "r.####.exr"), backends={"options": {"render": {"delay": 0.3}}})
    first = EngineProcess(tmp_path / "state", "--workers", "2", roots=(str(tmp_path),))
    port = first.address.rpartition(":")[2]
    try:
        with first.client() as client:
            job = client.submit(spec)
            seen = []
            for event in client.events(job, timeout=60):
                seen.append(event)
                if len(_frames(seen)) == 3 or event.terminal:
                    break
            workers = _status(first)["workers"]
        assert sum(1 for w in workers if w["job"] == job) == 2
        first.kill()
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{w['pid']}").exists() for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(Path(f"/proc/{w['pid']}").exists() for w in workers), "orphaned worker processes exit"
        before = {p.name: stamp(p) for p in out.glob("r.*.exr")}
        assert 3 <= len(before) < len(FRAMES)
        second = EngineProcess(tmp_path / "state", "--workers", "2", bind=f"tcp://127.0.0.1:{port}",
                               roots=(str(tmp_path),))
        try:
            with second.client() as client:
                client.resume(job, after_seq=0)  # every kept event: each frame_ready, then the end
                replay = collect(client, job, timeout=120)
        finally:
            second.stop()
    finally:
        if first.proc.poll() is None:
            first.kill()
    assert replay[-1].type == "done"
    assert sorted(_frames(replay)) == FRAMES  # every frame journaled and reported exactly once
    assert _journal_frames(first.journal, job) == FRAMES
    for name, before_stamp in before.items():
        assert stamp(out / name) == before_stamp, f"{name} was written again"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"r.{f}.exr" for f in FRAMES), "no temp files left"
    reference = _reference(tmp_path / "ref", spec)
    for frame, path in reference.items():
        assert exr_bytes(out / f"r.{frame}.exr") == exr_bytes(path), f"frame {frame} differs from a single run"
