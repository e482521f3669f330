"""The engine's journal: every job's spec, state, finished frames and events, in one SQLite file.

It is what lets a killed engine resume: on start, jobs still ``queued`` or ``running`` are queued again
and restart at their first unfinished frame; a frame recorded as finished is never rendered again; a
reconnecting client gets the events it missed from ``events``. Writes are committed one by one (WAL), so
a ``kill -9`` loses at most the frame in flight, never a finished one.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACTIVE_STATES = ("queued", "running")
TERMINAL_STATES = ("done", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT,
    client TEXT NOT NULL,
    spec TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_key ON jobs (client, idempotency_key);
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
    PRIMARY KEY (job, seq)
);
"""


@dataclass
class JobRecord:
    """One job as the journal holds it."""

    id: str
    idempotency_key: str | None
    client: str
    spec: dict[str, Any]
    priority: int
    state: str
    error: dict[str, Any] | None
    created: float
    updated: float


class Journal:
    """Thread-safe access to the journal file (``:memory:`` for a throwaway engine)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- jobs -------------------------------------------------------------------------------------------
    def add_job(self, job_id: str, client: str, spec: dict[str, Any], priority: int = 0,
                idempotency_key: str | None = None) -> JobRecord:
        """Record a new queued job, or return the existing one with the same client and key."""
        now = time.time()
        with self._lock:
            if idempotency_key is not None:
                row = self._db.execute("SELECT * FROM jobs WHERE client=? AND idempotency_key=?",
                                       (client, idempotency_key)).fetchone()
                if row is not None:
                    return _record(row)
            self._db.execute(
                "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, 'queued', NULL, ?, ?)",
                (job_id, idempotency_key, client, json.dumps(spec), priority, now, now))
        job = self.job(job_id)
        assert job is not None
        return job

    def job(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return None if row is None else _record(row)

    def jobs(self, client: str | None = None, states: tuple[str, ...] | None = None) -> list[JobRecord]:
        """Jobs in submission order, optionally of one client and/or in some states."""
        query, args = "SELECT * FROM jobs WHERE 1=1", []
        if client is not None:
            query += " AND client=?"
            args.append(client)
        if states:
            query += f" AND state IN ({','.join('?' * len(states))})"
            args.extend(states)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created, rowid", args).fetchall()
        return [_record(r) for r in rows]

    def set_state(self, job_id: str, state: str, error: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._db.execute("UPDATE jobs SET state=?, error=?, updated=? WHERE id=?",
                             (state, None if error is None else json.dumps(error), time.time(), job_id))

    # -- frames -----------------------------------------------------------------------------------------
    def finish_frame(self, job_id: str, frame: int, path: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO frames VALUES (?, ?, ?, ?)",
                             (job_id, frame, path, time.time()))

    def finished_frames(self, job_id: str) -> dict[int, str]:
        with self._lock:
            rows = self._db.execute("SELECT frame, path FROM frames WHERE job=? ORDER BY frame",
                                    (job_id,)).fetchall()
        return {int(f): p for f, p in rows}

    # -- events -----------------------------------------------------------------------------------------
    def add_event(self, job_id: str, type_: str, body: dict[str, Any]) -> int:
        """Append an event to the job's stream and return its sequence number (1, 2, ...)."""
        with self._lock:
            (last,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events WHERE job=?",
                                       (job_id,)).fetchone()
            seq = int(last) + 1
            self._db.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (job_id, seq, type_, json.dumps(body)))
        return seq

    def events(self, job_id: str, after_seq: int = 0) -> list[tuple[int, str, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute("SELECT seq, type, body FROM events WHERE job=? AND seq>? ORDER BY seq",
                                    (job_id, after_seq)).fetchall()
        return [(int(s), t, json.loads(b)) for s, t, b in rows]


def _record(row: tuple) -> JobRecord:
    return JobRecord(id=row[0], idempotency_key=row[1], client=row[2], spec=json.loads(row[3]),
                     priority=int(row[4]), state=row[5], error=None if row[6] is None else json.loads(row[6]),
                     created=float(row[7]), updated=float(row[8]))
