"""keys: CurveZMQ key files in zmq.auth's format, secret files owner-only."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import zmq.auth
from ned_protocol import keys
from ned_protocol.errors import InputNotFoundError, InvalidOptionError


def test_create_and_load(tmp_path: Path) -> None:
    public_path, secret_path = keys.create_keypair(tmp_path / "k", "engine")
    assert (public_path.name, secret_path.name) == ("engine.key", "engine.key_secret")
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    public, secret = keys.load_keypair(secret_path)
    assert len(public) == len(secret) == 40
    assert keys.load_public_key(public_path) == public
    assert zmq.auth.load_certificate(secret_path) == (public, secret)  # zmq.auth reads ours


def test_reads_zmq_auth_files(tmp_path: Path) -> None:
    public_file, secret_file = zmq.auth.create_certificates(tmp_path, "ws01")
    assert keys.load_keypair(secret_file) == zmq.auth.load_certificate(secret_file)
    assert keys.load_allow_list(tmp_path) == {keys.load_public_key(public_file)}


def test_refusals(tmp_path: Path) -> None:
    keys.create_keypair(tmp_path, "a")
    with pytest.raises(InvalidOptionError, match="already exists"):
        keys.create_keypair(tmp_path, "a")
    with pytest.raises(InvalidOptionError, match="plain file name"):
        keys.create_keypair(tmp_path, "../b")
    with pytest.raises(InvalidOptionError, match="no secret key"):
        keys.load_keypair(tmp_path / "a.key")
    with pytest.raises(InputNotFoundError):
        keys.load_public_key(tmp_path / "missing.key")
    with pytest.raises(InputNotFoundError):
        keys.load_allow_list(tmp_path / "nowhere")
    (tmp_path / "junk.key").write_text("not a certificate\n")
    with pytest.raises(InvalidOptionError, match="junk.key"):
        keys.load_public_key(tmp_path / "junk.key")
