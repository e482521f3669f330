"""NED wire protocol: messages, codec, errors and client. Depends only on msgpack and pyzmq."""

__version__ = "0.1.0"
