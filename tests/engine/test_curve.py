"""CurveZMQ: an engine bound beyond loopback refuses to start without keys; with ``--require-curve`` (the
same code path, on 127.0.0.1) only clients whose key is on the ZAP allow-list get in, and only an
administrator key may shut it down."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from ned_protocol import Client
from ned_protocol.errors import UnauthorizedError
from ned_protocol.keys import create_keypair, load_keypair, load_public_key

from .helpers import ROOT, EngineProcess


def test_a_non_loopback_bind_without_keys_does_not_start(tmp_path):
    # the check comes before any bind, so nothing listens on this address even for a moment
    result = subprocess.run([sys.executable, "-m", "ned_engine.main", "serve", "--bind", "tcp://0.0.0.0:7741",
                             "--journal", str(tmp_path / "j.sqlite")], capture_output=True, text=True, timeout=60,
                            cwd=str(ROOT))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "ned-engine: error: invalid_option:" in lines[0]
    assert "not loopback" in lines[0] and "--curve-secret" in lines[0]
    assert not (tmp_path / "j.sqlite").exists()


@pytest.fixture(scope="module")
def curve_engine(tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys")
    allowed = keys / "allowed"
    allowed.mkdir()
    for name in ("server", "alice", "mallory", "admin"):
        create_keypair(keys, name)
    # clients keep their secrets: the engine's allow-list folder holds only public keys
    shutil.copy(keys / "alice.key", allowed / "alice.key")
    process = EngineProcess(tmp_path_factory.mktemp("curve"), "--require-curve",
                            "--curve-secret", str(keys / "server.key_secret"), "--curve-allow", str(allowed),
                            "--admin-keys", str(keys / "admin.key"))
    process.keys = keys
    yield process
    process.stop()


def _client(engine, name: str | None, **options) -> Client:
    keys = engine.keys
    server = load_public_key(keys / "server.key")
    curve = {} if name is None else {"curve_server_key": server,
                                     "curve_keypair": load_keypair(keys / f"{name}.key_secret")}
    return Client(engine.address, timeout=options.pop("timeout", 10.0), heartbeat=0.5, **curve, **options)


def test_an_allowed_key_gets_in(curve_engine):
    with _client(curve_engine, "alice") as client:
        assert client.ping() > 0
        assert client.hello()["auth"] == "curve"
        with pytest.raises(UnauthorizedError):
            client.shutdown()  # allowed in, but not an administrator


@pytest.mark.parametrize("name", ["mallory", None])
def test_unknown_keys_and_plain_clients_are_refused(curve_engine, name):
    # refused at the handshake: the client says so at once instead of timing out and reconnecting
    with _client(curve_engine, name, timeout=30.0) as client, pytest.raises(UnauthorizedError) as caught:
        client.ping()
    assert caught.value.code == "unauthorized"
    # a plain client hears "requires CurveZMQ" unless the engine hung up before saying so
    assert ("refused this client's CurveZMQ key" if name else "CurveZMQ") in caught.value.message
    with _client(curve_engine, "alice") as client:
        assert client.ping() > 0  # and the engine is unbothered
    if name == "mallory":  # refused by the ZAP allow-list, not by a failed handshake
        assert "refused a CurveZMQ client with an unknown key" in curve_engine.stderr()


def test_ping_with_an_unknown_key_fails_in_one_unauthorized_line(curve_engine):
    keys = curve_engine.keys
    result = subprocess.run([sys.executable, "-m", "ned_engine.main", "ping", curve_engine.address,
                             "--curve-server-key", str(keys / "server.key"),
                             "--curve-key", str(keys / "mallory.key_secret"), "--timeout", "30"],
                            capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ned-engine: error: unauthorized: "), result.stderr


def test_an_administrator_key_may_shut_it_down(curve_engine):
    with _client(curve_engine, "admin") as client:
        client.shutdown()
    assert curve_engine.proc.wait(20) == 0
