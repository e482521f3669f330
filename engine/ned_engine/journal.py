"""The engine's journal: every job's spec, state, finished frames and kept events, in one SQLite file.

It is what lets a killed engine resume: on start, jobs still ``queued`` or ``running`` are queued again
and restart at their first unfinished frame; a frame recorded as finished is never rendered again; a
reconnecting client gets the events it missed from ``events``. Each change is one transaction (WAL,
``synchronous=NORMAL``: a committed row survives the process being killed; only a power cut can lose
the newest rows, and then the frame is merely rendered again).

Events: a job's ``frame_ready`` and terminal events are all kept; of its ``progress`` events only the
newest (the protocol allows that). Sequence numbers come from the job row's ``last_seq``, so they keep
increasing across restarts and a client never sees a number twice.

Imports only the standard library: no zmq, no ned_core.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACTIVE_STATES = ("queued", "running")
TERMINAL_STATES = ("done", "failed", "cancelled")
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    idempotency_key TEXT,
    client TEXT NOT NULL,
    spec TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    submitted REAL NOT NULL,
    started REAL,
    finished REAL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    stage TEXT,
    done INTEGER,
    total INTEGER,
    error TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_key ON jobs (owner, idempotency_key);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE TABLE IF NOT EXISTS frames (
    job TEXT NOT NULL,
    frame INTEGER NOT NULL,
    path TEXT NOT NULL,
    finished REAL NOT NULL,
    PRIMARY KEY (job, frame)
);
CREATE TABLE IF NOT EXISTS events (
    job TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    file TEXT,
    PRIMARY KEY (job, seq)
);
"""


@dataclass
class JobRecord:
    """One job as the journal holds it.

    ``owner`` is the authenticated principal (a CurveZMQ public key, "" on an unauthenticated engine)
    that scopes idempotency keys; ``client`` names the connection's client for per-client limits.
    ``started`` is the first time a worker began the job: after a crash, output files newer than it
    are the job's own.
    """

    id: str
    owner: str
    idempotency_key: str | None
    client: str
    spec: dict[str, Any]
    priority: int
    state: str
    submitted: float
    started: float | None
    finished: float | None
    last_seq: int
    stage: str | None
    done: int | None
    total: int | None
    error: dict[str, Any] | None


@dataclass(frozen=True)
class StoredEvent:
    """One kept event: its body (``seq`` included) and, for ``frame_ready``, the EXR on disk."""

    job: str
    seq: int
    type: str
    body: dict[str, Any]
    file: str | None = None

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_STATES


class JournalError(Exception):
    """The journal file cannot be used (another schema, not a journal)."""


class Journal:
    """Thread-safe access to the journal file (``:memory:`` for a throwaway engine)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.DatabaseError as error:
            raise JournalError(f"{self.path} is not a NED engine journal ({error})") from None
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif row[0] != str(SCHEMA_VERSION):
            raise JournalError(f"{self.path} is a version {row[0]} journal; this engine reads version "
                               f"{SCHEMA_VERSION} (finish its jobs with the engine that wrote it, or move it)")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- jobs -------------------------------------------------------------------------------------------
    def add_job(self, job_id: str, spec: dict[str, Any], *, owner: str = "", client: str = "",
                priority: int = 0, idempotency_key: str | None = None) -> tuple[JobRecord, bool]:
        """Record a new queued job; returns ``(job, duplicate)``.

        When ``owner`` already has a job with ``idempotency_key``, nothing is added and that job is
        returned with ``duplicate`` True.
        """
        with self._transaction() as db:
            if idempotency_key is not None:
                row = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE owner=? AND idempotency_key=?",
                                 (owner, idempotency_key)).fetchone()
                if row is not None:
                    return _record(row), True
            db.execute("INSERT INTO jobs (id, owner, idempotency_key, client, spec, priority, state, submitted) "
                       "VALUES (?, ?, ?, ?, ?, ?, 'queued', ?)",
                       (job_id, owner, idempotency_key, client, json.dumps(spec), priority, time.time()))
            row = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _record(row), False

    def find_key(self, owner: str, idempotency_key: str) -> JobRecord | None:
        """The job ``owner`` submitted with ``idempotency_key``, if the journal still keeps it."""
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE owner=? AND idempotency_key=?",
                                   (owner, idempotency_key)).fetchone()
        return None if row is None else _record(row)

    def job(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()
        return None if row is None else _record(row)

    def jobs(self, states: tuple[str, ...] | None = None, limit: int | None = None,
             oldest_first: bool = False) -> list[JobRecord]:
        """Jobs newest first (or oldest first), optionally only in ``states``, at most ``limit``."""
        query, args = f"SELECT {_COLUMNS} FROM jobs", []
        if states:
            query += f" WHERE state IN ({','.join('?' * len(states))})"
            args.extend(states)
        query += " ORDER BY submitted, rowid" if oldest_first else " ORDER BY submitted DESC, rowid DESC"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [_record(r) for r in rows]

    def count_active(self, client: str | None = None) -> int:
        """Queued and running jobs, of one ``client`` or of everyone."""
        query = "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')"
        args: tuple[str, ...] = ()
        if client is not None:
            query, args = query + " AND client=?", (client,)
        with self._lock:
            (count,) = self._db.execute(query, args).fetchone()
        return int(count)

    def start(self, job_id: str) -> tuple[JobRecord, bool] | None:
        """Mark a queued job running; returns ``(job, resumed)`` or None when it is not queued.

        ``started`` is set the first time only; ``resumed`` is True when the job had run before (an
        engine restart interrupted it), so its output folder may hold frames it did not journal.
        """
        with self._transaction() as db:
            row = db.execute("SELECT started FROM jobs WHERE id=? AND state='queued'", (job_id,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET state='running', started=COALESCE(started, ?) WHERE id=?",
                       (time.time(), job_id))
            record = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _record(record), row[0] is not None

    def requeue_interrupted(self) -> list[JobRecord]:
        """After a restart: running jobs become queued again; returns every active job, oldest first."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET state='queued' WHERE state='running'")
        return self.jobs(ACTIVE_STATES, oldest_first=True)

    def prune(self, finished_before: float) -> list[str]:
        """Forget terminal jobs that ended before ``finished_before`` (epoch seconds); returns their ids."""
        with self._transaction() as db:
            ids = [r[0] for r in db.execute(
                "SELECT id FROM jobs WHERE state IN ('done', 'failed', 'cancelled') AND finished < ?",
                (finished_before,)).fetchall()]
            for job_id in ids:
                for table, column in (("events", "job"), ("frames", "job"), ("jobs", "id")):
                    db.execute(f"DELETE FROM {table} WHERE {column}=?", (job_id,))
        return ids

    def known_ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT id FROM jobs").fetchall()}

    # -- frames -----------------------------------------------------------------------------------------
    def finished_frames(self, job_id: str) -> dict[int, str]:
        """Frame → output path of every frame the job has finished."""
        with self._lock:
            rows = self._db.execute("SELECT frame, path FROM frames WHERE job=? ORDER BY frame",
                                    (job_id,)).fetchall()
        return {int(f): p for f, p in rows}

    def frames_written(self, job_ids: list[str]) -> dict[str, int]:
        """How many frames each of ``job_ids`` has finished (0 for none), in one query."""
        counts = dict.fromkeys(job_ids, 0)
        if not job_ids:
            return counts
        marks = ",".join("?" * len(job_ids))
        with self._lock:
            rows = self._db.execute(f"SELECT job, COUNT(*) FROM frames WHERE job IN ({marks}) GROUP BY job",
                                    job_ids).fetchall()
        counts.update({job: int(n) for job, n in rows})
        return counts

    def finish_frame(self, job_id: str, frame: int, path: str, body: dict[str, Any]) -> StoredEvent | None:
        """Record a finished frame and its ``frame_ready`` event in one transaction.

        Returns the event, or None when the frame was already recorded (it is never recorded twice).
        """
        with self._transaction() as db:
            added = db.execute("INSERT OR IGNORE INTO frames VALUES (?, ?, ?, ?)",
                               (job_id, frame, path, time.time())).rowcount
            if not added:
                return None
            return self._append(db, job_id, "frame_ready", body, path)

    # -- events -----------------------------------------------------------------------------------------
    def record_event(self, job_id: str, type_: str, body: dict[str, Any]) -> StoredEvent:
        """Append an event (its ``seq`` is assigned here) and apply what it says to the job row.

        A ``progress`` replaces the job's previous one and sets its stage/done/total; a terminal
        event sets the job's final state (with the error of a ``failed``).
        """
        with self._transaction() as db:
            event = self._append(db, job_id, type_, body, None)
            if type_ == "progress":
                db.execute("DELETE FROM events WHERE job=? AND type='progress' AND seq<?", (job_id, event.seq))
                db.execute("UPDATE jobs SET stage=?, done=?, total=? WHERE id=?",
                           (body["stage"], body["done"], body["total"], job_id))
            elif type_ in TERMINAL_STATES:
                error = {k: v for k, v in body.items() if k != "seq"} if type_ == "failed" else None
                db.execute("UPDATE jobs SET state=?, finished=?, error=? WHERE id=?",
                           (type_, time.time(), None if error is None else json.dumps(error), job_id))
            return event

    def _append(self, db: sqlite3.Connection, job_id: str, type_: str, body: dict[str, Any],
                file: str | None) -> StoredEvent:
        row = db.execute("SELECT last_seq FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(job_id)
        seq = int(row[0]) + 1
        full = {"seq": seq, **{k: v for k, v in body.items() if k != "seq"}}
        db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?)", (job_id, seq, type_, json.dumps(full), file))
        db.execute("UPDATE jobs SET last_seq=? WHERE id=?", (seq, job_id))
        return StoredEvent(job_id, seq, type_, full, file)

    def events(self, job_id: str, after_seq: int = 0) -> list[StoredEvent]:
        """The job's kept events with ``seq > after_seq``, in order."""
        with self._lock:
            rows = self._db.execute("SELECT seq, type, body, file FROM events WHERE job=? AND seq>? ORDER BY seq",
                                    (job_id, after_seq)).fetchall()
        return [StoredEvent(job_id, int(s), t, json.loads(b), f) for s, t, b, f in rows]

    def last_event(self, job_id: str) -> StoredEvent | None:
        """The job's newest kept event (what a new watcher is shown first)."""
        with self._lock:
            row = self._db.execute("SELECT seq, type, body, file FROM events WHERE job=? ORDER BY seq DESC LIMIT 1",
                                   (job_id,)).fetchone()
        return None if row is None else StoredEvent(job_id, int(row[0]), row[1], json.loads(row[2]), row[3])


_COLUMNS = ("id, owner, idempotency_key, client, spec, priority, state, submitted, started, finished, last_seq, "
            "stage, done, total, error")


def _record(row: tuple) -> JobRecord:
    return JobRecord(id=row[0], owner=row[1], idempotency_key=row[2], client=row[3], spec=json.loads(row[4]),
                     priority=int(row[5]), state=row[6], submitted=float(row[7]),
                     started=None if row[8] is None else float(row[8]),
                     finished=None if row[9] is None else float(row[9]), last_seq=int(row[10]),
                     stage=row[11], done=row[12], total=row[13],
                     error=None if row[14] is None else json.loads(row[14]))
