"""NED wire protocol: messages, codec, errors and client. Depends only on msgpack and pyzmq.

``schema`` defines every message and ``PROTOCOL_VERSION``; ``codec`` frames them; ``errors`` holds the
error classes with their wire codes; ``client.Client`` talks to an engine from a host's threads;
``keys`` handles CurveZMQ key files; the written spec is ``protocol/PROTOCOL.md`` (tables rendered by
``python -m ned_protocol.spec``).

Never imports torch, numpy, ned_core or ned_engine: this package installs into Nuke's and Blender's
own Python (3.9 or newer).
"""

__version__ = "0.1.0"

from ned_protocol.client import Client, Event
from ned_protocol.codec import decode, encode
from ned_protocol.errors import NedError, ProtocolError, from_code
from ned_protocol.schema import MESSAGES, PROTOCOL_VERSION, build, validate

__all__ = ["MESSAGES", "PROTOCOL_VERSION", "Client", "Event", "NedError", "ProtocolError", "__version__",
           "build", "decode", "encode", "from_code", "validate"]
