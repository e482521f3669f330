"""CurveZMQ keypair files, in the ``zmq.auth`` certificate format (``NAME.key`` holds the public key,
``NAME.key_secret`` both keys), so keys made here work with ``zmq.auth`` tools and the other way round.

The secret file is created owner-only (mode 0600) from the first byte, unlike ``zmq.auth``'s writer.
An engine's ZAP allow-list is a folder of client public-key files (``load_allow_list``).

Imports zmq (for key generation and the certificate reader); nothing of torch, numpy or ned_core.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Union

import zmq
from zmq.auth.certs import load_certificate

from ned_protocol.errors import InputNotFoundError, InvalidOptionError

PathLike = Union[str, os.PathLike]
PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"

_BANNER = ("#   ****  Generated on {0} by ned_protocol.keys  ****\n"
           "#   ZeroMQ CURVE {1} Certificate\n"
           "#   {2}\n\n")


def _certificate(kind: str, public: bytes, secret: bytes | None) -> str:
    note = ("Exchange securely, or use a secure mechanism to verify the contents of this file after "
            "exchange. Store public certificates in your home directory, in the .curve subdirectory."
            if secret is None else "THIS FILE IS SECRET: keep it owner-only.")
    text = _BANNER.format(datetime.datetime.now().isoformat(timespec="seconds"), kind, note)
    text += f'metadata\ncurve\n    public-key = "{public.decode("ascii")}"\n'
    if secret is not None:
        text += f'    secret-key = "{secret.decode("ascii")}"\n'
    return text


def create_keypair(directory: PathLike, name: str) -> tuple[Path, Path]:
    """Make a new CurveZMQ keypair as ``directory/NAME.key`` and ``directory/NAME.key_secret``.

    Returns
    -------
    (public_path, secret_path)

    Raises
    ------
    InvalidOptionError
        ``name`` is not a plain file name, or a key file of that name already exists (never overwritten).
    """
    if not name or name in (".", "..") or any(c in name for c in "/\\\x00"):
        raise InvalidOptionError(f"key name {name!r} must be a plain file name", field="name")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    public_path, secret_path = folder / (name + PUBLIC_SUFFIX), folder / (name + SECRET_SUFFIX)
    for path in (public_path, secret_path):
        if path.exists():
            raise InvalidOptionError(f"{path} already exists; remove it or pick another name", field="name")
    public, secret = zmq.curve_keypair()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    fd = os.open(secret_path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(_certificate("Secret", public, secret))
    fd = os.open(public_path, flags, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(_certificate("Public", public, None))
    return public_path, secret_path


def _read(path: PathLike) -> tuple[bytes, bytes | None]:
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"key file {path} does not exist", path=str(path))
    try:
        public, secret = load_certificate(path)
    except (ValueError, OSError, UnicodeDecodeError) as error:
        raise InvalidOptionError(f"{path} is not a CurveZMQ key file ({error})", path=str(path)) from None
    if public is None or len(public) != 40:
        raise InvalidOptionError(f"{path} holds no 40-character Z85 public key", path=str(path))
    return public, secret


def load_public_key(path: PathLike) -> bytes:
    """The Z85 public key (40 bytes) in a ``.key`` or ``.key_secret`` file."""
    return _read(path)[0]


def load_keypair(path: PathLike) -> tuple[bytes, bytes]:
    """The ``(public, secret)`` Z85 keys in a ``.key_secret`` file (the form ``Client`` takes)."""
    public, secret = _read(path)
    if secret is None or len(secret) != 40:
        raise InvalidOptionError(f"{path} holds no secret key (use the {SECRET_SUFFIX} file)", path=str(path))
    return public, secret


def load_allow_list(directory: PathLike) -> set[bytes]:
    """The public keys of every ``*.key`` file in ``directory`` (an engine's ZAP allow-list)."""
    folder = Path(directory)
    if not folder.is_dir():
        raise InputNotFoundError(f"allow-list folder {folder} does not exist", path=str(folder))
    return {load_public_key(path) for path in sorted(folder.glob("*" + PUBLIC_SUFFIX))}


__all__ = ["create_keypair", "load_allow_list", "load_keypair", "load_public_key"]
