"""``kill -9`` in the middle of a job, then a restart on the same journal: the job resumes at its first
unfinished frame, no finished frame is written again, none is lost, and the connected client follows
the job across the restart without seeing any event twice."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from ned_engine import jobs

from ned_core.cache import AnalysisCache
from ned_core.pipeline import Backends, Pipeline

from . import standin
from .helpers import EngineProcess, make_plate, spec_for, stamp

FRAMES = list(range(1001, 1013))


def _journal_frames(path: Path, job: str) -> list[int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return [row[0] for row in db.execute("SELECT frame FROM frames WHERE job=? ORDER BY frame", (job,))]


def _journal_ready(path: Path, job: str) -> list[int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT body FROM events WHERE job=? AND type='frame_ready' ORDER BY seq", (job,))
        import json

        return [json.loads(row[0])["frame"] for row in rows]


def test_kill_9_mid_job_then_resume(tmp_path):
    plate = make_plate(tmp_path / "plate", range(FRAMES[0], FRAMES[-1] + 1))
    out = tmp_path / "out"
    spec = spec_for(plate, str(out / "r.####.exr"), backends={"options": {"render": {"delay": 0.25}}})
    first = EngineProcess(tmp_path / "state", roots=(str(tmp_path),))
    port = first.address.rpartition(":")[2]
    client = first.client(heartbeat=0.3, timeout=20.0)
    seen = []
    try:
        job = client.submit(spec)
        for event in client.events(job, timeout=30):
            seen.append(event)
            if sum(e.type == "frame_ready" for e in seen) == 4:
                break
        time.sleep(0.1)
        before = {p.name: stamp(p) for p in out.glob("r.*.exr")}
        journaled = _journal_frames(first.journal, job)
        first.kill()
        assert 4 <= len(before) < len(FRAMES) and set(journaled) <= {int(n.split(".")[1]) for n in before}

        second = EngineProcess(tmp_path / "state", bind=f"tcp://127.0.0.1:{port}", roots=(str(tmp_path),))
        try:
            for event in client.events(job, timeout=60):
                seen.append(event)
                if event.terminal:
                    break
            assert client.welcome["session"] != ""
            info = client.status(job)
        finally:
            client.close()
            second.stop()
    finally:
        if first.proc.poll() is None:
            first.kill()

    assert seen[-1].type == "done" and info["state"] == "done"
    seqs = [e.seq for e in seen]
    assert seqs == sorted(set(seqs)), "no event seen twice, in order across the restart"
    ready = [e.body["frame"] for e in seen if e.type == "frame_ready"]
    assert ready == FRAMES, "each frame reported exactly once"
    assert _journal_frames(first.journal, job) == FRAMES
    assert _journal_ready(first.journal, job) == FRAMES
    for name, before_stamp in before.items():
        assert stamp(out / name) == before_stamp, f"{name} was written again"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"r.{f}.exr" for f in FRAMES), "no temp files left"
    # and the frames are what one uninterrupted run writes
    plan = jobs.plan(spec)
    plan.output.pattern = str(tmp_path / "ref" / "r.####.exr")
    Pipeline(plan.backends, cache=AnalysisCache(tmp_path / "ref-cache"),
             stages=standin.stages(Backends())).run(plan.shot, plan.curve, plan.output)
    for frame in FRAMES:
        assert (out / f"r.{frame}.exr").read_bytes() == (tmp_path / "ref" / f"r.{frame}.exr").read_bytes()


def test_frames_written_but_not_journaled_are_adopted(tmp_path):
    """The kill can land between a frame's rename and its journal row: that frame is kept, not redone."""
    plate = make_plate(tmp_path / "plate", range(1001, 1007))
    out = tmp_path / "out"
    spec = spec_for(plate, str(out / "w.####.exr"))
    process = EngineProcess(tmp_path / "state", roots=(str(tmp_path),))
    with process.client() as client:
        job = client.submit(spec)
        assert [e for e in client.events(job, timeout=30) if e.terminal][0].type == "done"
    process.stop()
    before = {p.name: stamp(p) for p in out.glob("w.*.exr")}
    with sqlite3.connect(process.journal) as db:  # as if killed right after frames 1005 and 1006 were renamed
        db.execute("DELETE FROM frames WHERE job=? AND frame>=1005", (job,))
        db.execute("DELETE FROM events WHERE job=? AND (type IN ('done', 'progress') OR body LIKE '%\"frame\": 1005%' "
                   "OR body LIKE '%\"frame\": 1006%')", (job,))
        db.execute("UPDATE jobs SET state='running', finished=NULL WHERE id=?", (job,))
    stale = out / ".w.1006.exr.0123456789ab.tmp"
    stale.write_bytes(b"half a frame")
    again = EngineProcess(tmp_path / "state", roots=(str(tmp_path),))
    try:
        with again.client() as client:
            client.resume(job, after_seq=0)
            events = []
            for event in client.events(job, timeout=30):
                events.append(event)
                if event.terminal:
                    break
    finally:
        again.stop()
    assert events[-1].type == "done" and events[-1].body["frames_written"] == 6
    assert [e.body["frame"] for e in events if e.type == "frame_ready"] == list(range(1001, 1007))
    assert {p.name: stamp(p) for p in out.glob("w.*.exr")} == before
    assert not stale.exists()
    assert _journal_frames(process.journal, job) == list(range(1001, 1007))
