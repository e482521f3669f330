"""Which binds count as local, and the shutdown token file."""

from __future__ import annotations

import pytest
from ned_engine.security import is_loopback, read_token, write_token


@pytest.mark.parametrize("endpoint, local", [
    ("tcp://127.0.0.1:7741", True), ("tcp://127.0.0.2:7741", True), ("tcp://localhost:7741", True),
    ("tcp://[::1]:7741", True), ("ipc:///tmp/ned.sock", True),
    ("tcp://0.0.0.0:7741", False), ("tcp://*:7741", False), ("tcp://10.0.0.5:7741", False),
    ("tcp://eth0:7741", False), ("tcp://render01.studio:7741", False), ("tcp://[::]:7741", False),
    ("inproc://x", False),
])
def test_is_loopback(endpoint, local):
    assert is_loopback(endpoint) is local


def test_token_is_owner_only_and_new_each_time(tmp_path):
    first = write_token(tmp_path / "engine.token")
    assert oct((tmp_path / "engine.token").stat().st_mode & 0o777) == "0o600"
    assert read_token(tmp_path / "engine.token") == first and len(first) >= 40
    assert write_token(tmp_path / "engine.token") != first
