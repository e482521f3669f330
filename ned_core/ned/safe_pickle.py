"""Reading pickles that other tools wrote, without running any code from them.

FLAME's ``generic_model.pkl`` (chumpy arrays, a scipy sparse matrix) and NED's per-frame DECA pickles
(numpy arrays and an skimage ``SimilarityTransform``) are pickles of classes we do not want to import,
and a pickle may name any callable. ``RestrictedUnpickler`` resolves only numpy's array
reconstructors, a few builtin containers, and the inert stand-in classes a caller maps foreign class
names to; every other name is refused before anything runs. A stand-in only keeps the pickled state.

Must not import torch, zmq, msgpack or the engine.
"""

from __future__ import annotations

import builtins
import codecs
import collections
import pickle
from collections.abc import Callable
from typing import IO, Any

import numpy as np

try:  # numpy >= 2 moved the pickle helpers to numpy._core; 1.x pickles still name numpy.core
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


class StandIn:
    """Takes the place of a foreign class in a pickle; keeps whatever state was pickled in ``state``."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """Protocol 0/1 object creation (``copy_reg._reconstructor``), for stand-in classes only."""
    if not (isinstance(cls, type) and issubclass(cls, StandIn)) or base is not object or state is not None:
        raise pickle.UnpicklingError(f"refusing to rebuild {cls!r} from {base!r}")
    return object.__new__(cls)


def _newobj(cls: type, *args: Any) -> Any:
    if not (isinstance(cls, type) and issubclass(cls, StandIn)):
        raise pickle.UnpicklingError(f"refusing to create {cls!r}")
    return object.__new__(cls)


ALLOWED: dict[tuple[str, str], Any] = {
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("copy_reg", "__newobj__"): _newobj,
    ("copyreg", "__newobj__"): _newobj,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    # Python 3 writes bytes as _codecs.encode(text, "latin1") in protocols 0-2 (Python 2 does not).
    ("_codecs", "encode"): codecs.encode,
}
"""Every global a restricted pickle may name besides its stand-ins; none of them runs foreign code."""
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    ALLOWED[(_module, "_reconstruct")] = _multiarray._reconstruct
    ALLOWED[(_module, "scalar")] = _multiarray.scalar
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    ALLOWED[(_module, "_frombuffer")] = _numeric._frombuffer  # protocol 5 arrays
for _module in ("__builtin__", "builtins"):
    for _name in ("object", "set", "frozenset", "dict", "list", "tuple", "complex"):
        ALLOWED[(_module, _name)] = getattr(builtins, _name)

StandInFor = Callable[[str, str], "type[StandIn] | None"]
"""Maps a pickled (module, class name) to the stand-in class that replaces it, or None to refuse it."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only ``ALLOWED`` globals and the stand-ins ``stand_in_for`` names.

    Parameters
    ----------
    file:
        The open binary file.
    stand_in_for:
        Called with each foreign (module, name); returns a ``StandIn`` subclass or None (refused).
    what:
        Words for the refusal message ("a FLAME model", "a DECA code file").
    """

    def __init__(self, file: IO[bytes], stand_in_for: StandInFor, what: str) -> None:
        # latin1 reads Python 2 pickles' str as bytes-compatible text (numpy arrays need it).
        super().__init__(file, encoding="latin1")
        self._stand_in_for = stand_in_for
        self._what = what

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED:
            return ALLOWED[(module, name)]
        cls = self._stand_in_for(module, name)
        if cls is not None:
            return cls
        raise pickle.UnpicklingError(f"the file refers to {module}.{name}, which {self._what} never holds")


def restricted_load(file: IO[bytes], stand_in_for: StandInFor, what: str) -> Any:
    """Unpickle ``file`` with ``RestrictedUnpickler`` (raises ``pickle.UnpicklingError`` on a refusal)."""
    return RestrictedUnpickler(file, stand_in_for, what).load()
