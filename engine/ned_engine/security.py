"""Who may talk to the engine: loopback-or-CurveZMQ binds, the ZAP allow-list and the shutdown token.

- ``is_loopback(endpoint)``: only ``tcp://`` on a 127.0.0.0/8 or ::1 address (or ``localhost``) and
  ``ipc://`` count as local; anything else (``*``, ``0.0.0.0``, a host name, an interface) needs CurveZMQ.
- ``CurveServer``: the engine's keypair and a ZAP handler (pyzmq's ``ThreadAuthenticator``) whose
  allow-list is registered for the exact ZAP domain set on the socket, so no other domain's
  configuration (or none) can let a client in. The authenticated key becomes each message's
  ``User-Id``, which the server uses as the client's identity (idempotency scope, limits, admin).
- ``write_token``: the random shutdown secret, written owner-only next to the journal.

Imports zmq and ned_protocol's key helpers; nothing of ned_core.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

import zmq
from ned_protocol.errors import InvalidOptionError
from ned_protocol.keys import load_allow_list, load_keypair, load_public_key
from zmq.auth.thread import ThreadAuthenticator

ZAP_DOMAIN = "ned"
logger = logging.getLogger(__name__)


def split_tcp(endpoint: str) -> tuple[str, str]:
    """``(host, port)`` of a ``tcp://host:port`` endpoint (IPv6 hosts in brackets)."""
    if not endpoint.startswith("tcp://"):
        raise InvalidOptionError(f"{endpoint!r} is not a tcp:// endpoint", field="bind")
    rest = endpoint[len("tcp://"):]
    host, sep, port = rest.rpartition(":")
    if not sep or not host:
        raise InvalidOptionError(f"{endpoint!r} needs a host and a port (tcp://127.0.0.1:7741)", field="bind")
    return host.strip("[]"), port


def is_loopback(endpoint: str) -> bool:
    """True for an endpoint only this machine can reach (loopback TCP, or ``ipc://``)."""
    if endpoint.startswith("ipc://"):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    host, _ = split_tcp(endpoint)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a wildcard, an interface name or a host name: reachable from elsewhere
        return False


def read_keys(paths: Iterable[str]) -> set[bytes]:
    """Public keys from ``*.key`` files and folders of them (``--curve-allow``, ``--admin-keys``)."""
    keys: set[bytes] = set()
    for path in paths:
        keys |= load_allow_list(path) if os.path.isdir(path) else {load_public_key(path)}
    return keys


class _AllowList:
    """The ZAP credentials provider: a fixed set of Z85 public keys."""

    def __init__(self, keys: set[bytes]) -> None:
        self.keys = frozenset(keys)

    def callback(self, domain: str, key: bytes) -> bool:
        allowed = domain == ZAP_DOMAIN and key in self.keys
        if not allowed:
            logger.warning("refused a CurveZMQ client with an unknown key %s", key.decode("ascii", "replace"))
        return allowed


class CurveServer:
    """CurveZMQ for the engine's socket: its keypair and a ZAP handler holding the allow-list.

    Parameters
    ----------
    secret_file
        The engine's ``.key_secret`` file (``ned-engine keygen``).
    allowed
        Client public keys allowed to connect (administrators' keys are added by the caller).
    """

    def __init__(self, secret_file: str, allowed: set[bytes]) -> None:
        self.public, self.secret = load_keypair(secret_file)
        if not allowed:
            raise InvalidOptionError("CurveZMQ needs an allow-list of client keys (--curve-allow DIR or FILE)",
                                     field="curve_allow")
        self.allowed = set(allowed)
        self._auth: ThreadAuthenticator | None = None

    def apply(self, ctx: zmq.Context, socket: zmq.Socket) -> None:
        """Start the ZAP handler in ``ctx`` and make ``socket`` a Curve server in its domain (before bind)."""
        self._auth = ThreadAuthenticator(ctx, log=logging.getLogger("ned_engine.zap"))
        self._auth.start()
        self._auth.configure_curve_callback(domain=ZAP_DOMAIN, credentials_provider=_AllowList(self.allowed))
        socket.zap_domain = ZAP_DOMAIN.encode()
        socket.curve_secretkey = self.secret
        socket.curve_publickey = self.public
        socket.curve_server = True

    def stop(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


def write_token(path: str | Path) -> str:
    """Write a fresh random shutdown token to ``path`` (owner-only, replacing any old one); return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as stream:
        stream.write(token + "\n")
    os.replace(temp, path)
    return token


def read_token(path: str | Path) -> str:
    """The shutdown token in ``path``."""
    try:
        return Path(path).read_text(encoding="ascii").strip()
    except OSError as error:
        raise InvalidOptionError(f"cannot read the engine's token file {path}: {error.strerror or error}",
                                 field="token_file") from None


__all__ = ["ZAP_DOMAIN", "CurveServer", "is_loopback", "read_keys", "read_token", "split_tcp", "write_token"]
