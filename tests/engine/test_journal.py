"""The SQLite journal: jobs, idempotency keys, event numbering across restarts, frames recorded once."""

from __future__ import annotations

import sqlite3

import pytest
from ned_engine.journal import Journal, JournalError

SPEC = {"plate": "/p.####.exr", "emotion": "happy", "output": {"pattern": "/o.####.exr"}}


def test_jobs_and_idempotency(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    job, duplicate = journal.add_job("j-1", SPEC, owner="", client="nuke", priority=3, idempotency_key="k")
    assert not duplicate and job.state == "queued" and job.spec == SPEC and job.priority == 3
    again, duplicate = journal.add_job("j-2", SPEC, owner="", idempotency_key="k")
    assert duplicate and again.id == "j-1" and journal.job("j-2") is None
    other, duplicate = journal.add_job("j-3", SPEC, owner="KEY", idempotency_key="k")  # keys are per owner
    assert not duplicate and journal.find_key("KEY", "k").id == "j-3"
    journal.add_job("j-4", SPEC)
    assert journal.count_active() == 3 and journal.count_active("nuke") == 1
    assert [j.id for j in journal.jobs()] == ["j-4", "j-3", "j-1"]


def test_events_are_numbered_and_progress_keeps_only_the_newest(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    journal.add_job("j-1", SPEC)
    for done in range(3):
        journal.record_event("j-1", "progress", {"stage": "render", "frame": 1001 + done, "done": done + 1,
                                                 "total": 3, "eta": None})
    event = journal.finish_frame("j-1", 1001, "/o.1001.exr", {"frame": 1001, "path": "/o.1001.exr", "inline": False})
    assert event.seq == 4 and event.file == "/o.1001.exr"
    assert journal.finish_frame("j-1", 1001, "/o.1001.exr", {"frame": 1001, "inline": False}) is None
    assert [(e.seq, e.type) for e in journal.events("j-1")] == [(3, "progress"), (4, "frame_ready")]
    assert journal.job("j-1").stage == "render" and journal.job("j-1").done == 3
    journal.record_event("j-1", "failed", {"code": "no_face", "message": "no face", "retryable": False})
    job = journal.job("j-1")
    assert job.state == "failed" and job.error["code"] == "no_face" and job.last_seq == 5
    assert journal.last_event("j-1").type == "failed" and [e.seq for e in journal.events("j-1", 4)] == [5]
    journal.add_job("j-2", SPEC)
    assert journal.frames_written(["j-1", "j-2"]) == {"j-1": 1, "j-2": 0}  # the duplicate counted once
    assert journal.frames_written([]) == {}


def test_restart_requeues_and_continues_numbering(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    journal.add_job("j-1", SPEC)
    journal.add_job("j-2", SPEC)
    record, resumed = journal.start("j-1")
    assert record.state == "running" and not resumed and journal.start("j-1") is None
    journal.record_event("j-1", "progress", {"stage": "load", "done": 0, "total": 0})
    journal.close()
    reopened = Journal(tmp_path / "j.sqlite")
    assert [j.id for j in reopened.requeue_interrupted()] == ["j-1", "j-2"]
    record, resumed = reopened.start("j-1")
    assert resumed and record.started is not None
    assert reopened.record_event("j-1", "done", {"frames_written": 0}).seq == 2
    assert reopened.prune(record.finished + 1 if record.finished else 1e12) == ["j-1"]
    assert reopened.job("j-1") is None and reopened.known_ids() == {"j-2"}


def test_a_foreign_file_is_refused(tmp_path):
    (tmp_path / "x.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(JournalError):
        Journal(tmp_path / "x.sqlite")
    with sqlite3.connect(tmp_path / "old.sqlite") as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema', '1')")
    with pytest.raises(JournalError, match="version 1"):
        Journal(tmp_path / "old.sqlite")
