"""NED core: the shot pipeline (io, track, face3d, manipulate, render, composite, metrics).

Must not import zmq, msgpack or the engine; torch is imported only by the ``ned`` backends.
"""

__version__ = "0.1.0"

EMOTIONS: tuple[str, ...] = ("neutral", "angry", "disgusted", "fear", "happy", "sad", "surprised")
"""NED's label order; every per-frame emotion-weight array uses these column indices."""
