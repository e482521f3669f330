"""Reading the small array files the default backends ship in ``ned_core/data`` (or a user's rebuild).

Owns the one way a missing or damaged ``.npz`` is reported (a stable error code naming the file and the
command that rebuilds it) and the one way a rebuild writes one. Must not import any stage.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ned_core.errors import CorruptModelError, MissingModelError


def load_arrays(path: str | Path, what: str, rebuild: str) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path`` (no pickles), by name.

    Raises
    ------
    MissingModelError
        The file is not there (the message names ``rebuild``, the command that makes it).
    CorruptModelError
        It cannot be read as an ``.npz``.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingModelError(f"{what} {path} is missing: run `{rebuild}`", path=str(path))
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CorruptModelError(f"{what} {path} cannot be read ({exc}): run `{rebuild}`", path=str(path)) from exc


def save_arrays(arrays: dict[str, np.ndarray], path: str | Path) -> Path:
    """Write ``arrays`` as a compressed ``.npz`` at ``path`` through a temporary name (a reader never sees
    half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return path
