"""Per-frame DECA codes on disk: NED's pickles read safely, our own files written in open formats.

NED writes one pickle per frame, ``DECA/NNNNNN.pkl``: a dict of (1, n) numpy arrays (``shape, tex, exp,
pose, cam, light, detail``), the crop's skimage ``SimilarityTransform`` as ``tform`` and
``original_size``. Reading one never imports skimage or runs code from the file: a restricted
unpickler maps skimage's transform classes to a stand-in that keeps only their ``params`` (3x3).
We write the same codes as ``NNNNNN.npz`` (numpy, no pickle) or ``NNNNNN.json``, with ``tform`` as its
3x3 matrix and a schema label (``NedDecaCodes.1``). A folder may mix the three formats.

Must not import torch, zmq, msgpack or the engine.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ned_core.errors import CorruptModelError, InputNotFoundError, InvalidOptionError, OutputError
from ned_core.ned.safe_pickle import StandIn, restricted_load

SCHEMA = "NedDecaCodes"
SCHEMA_VERSION = 1
SUFFIXES = (".pkl", ".npz", ".json")
SHAPES: dict[str, tuple[int, ...]] = {"shape": (100,), "tex": (50,), "exp": (50,), "pose": (6,), "cam": (3,),
                                      "light": (9, 3), "detail": (128,), "tform": (3, 3), "original_size": (2,)}
"""Per-frame shape of each code; a file may hold any subset (NED's manipulated pickles: exp, pose)."""


class _TransformStandIn(StandIn):
    """Takes the place of skimage's geometric transforms: only the 3x3 ``params`` matrix is kept."""

    @property
    def params(self) -> np.ndarray:
        state = self.state
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) form
            state = state[0]
        if not isinstance(state, Mapping) or "params" not in state:
            raise ValueError("the pickled transform has no params matrix")
        return np.asarray(state["params"], dtype=np.float64)


def _stand_in(module: str, name: str) -> type[StandIn] | None:
    if module.startswith("skimage.transform") and name.endswith("Transform"):
        return _TransformStandIn
    return None


def _clean(raw: Mapping[str, Any], path: Path) -> dict[str, np.ndarray]:
    """Known codes with their per-frame shapes (NED's leading batch axis of 1 removed)."""
    out: dict[str, np.ndarray] = {}
    for key, shape in SHAPES.items():
        if key not in raw:
            continue
        value = raw[key]
        if isinstance(value, _TransformStandIn):
            value = value.params
        array = np.asarray(value, dtype=np.float64)
        if array.size != int(np.prod(shape)):
            raise CorruptModelError(f"{path}: {key} has shape {array.shape}, expected {shape}", path=str(path))
        out[key] = array.reshape(shape)
    if "exp" not in out or "pose" not in out:
        raise CorruptModelError(f"{path} holds no DECA exp and pose codes", path=str(path))
    return out


def read_frame(path: str | Path) -> dict[str, np.ndarray]:
    """The codes of one frame from an NED pickle, our ``.npz`` or our ``.json``, as float64 arrays."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"DECA code file not found: {path}", path=str(path))
    try:
        if path.suffix == ".pkl":
            with path.open("rb") as f:
                raw = restricted_load(f, _stand_in, "a DECA code file")
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                raw = {k: npz[k] for k in npz.files if k != "schema"}
        elif path.suffix == ".json":
            raw = json.loads(path.read_text())
        else:
            raise InvalidOptionError(f"{path} is not a DECA code file ({', '.join(SUFFIXES)})",
                                     path=str(path))
        if not isinstance(raw, Mapping):
            raise ValueError(f"expected a dict of codes, found {type(raw).__name__}")
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            pickle.UnpicklingError) as exc:
        raise CorruptModelError(f"{path} cannot be read as DECA codes ({exc})", path=str(path)) from exc
    return _clean(raw, path)


def frame_files(folder: str | Path) -> list[Path]:
    """The code files of a folder, in frame (file name) order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputNotFoundError(f"DECA code folder not found: {folder}", path=str(folder))
    files = sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and not p.name.startswith("."))
    if not files:
        raise InputNotFoundError(f"no DECA code files ({', '.join(SUFFIXES)}) in {folder}", path=str(folder))
    return files


def read_folder(folder: str | Path) -> dict[str, np.ndarray]:
    """Every frame of a folder stacked: (T, ...) arrays for the codes all its frames hold."""
    frames = [read_frame(p) for p in frame_files(folder)]
    keys = [k for k in SHAPES if all(k in f for f in frames)]
    return {k: np.stack([f[k] for f in frames]) for k in keys}


def read_clip(path: str | Path) -> dict[str, np.ndarray]:
    """A clip's codes: a folder of per-frame files, or one ``.npz`` of (T, ...) arrays (``write_clip``)."""
    path = Path(path)
    if path.is_dir():
        return read_folder(path)
    if path.suffix == ".npz" and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                raw = {k: npz[k] for k in npz.files if k != "schema"}
        except (OSError, ValueError) as exc:
            raise CorruptModelError(f"{path} cannot be read as DECA codes ({exc})", path=str(path)) from exc
        if "exp" not in raw or "pose" not in raw or raw["exp"].ndim != 2:
            raise CorruptModelError(f"{path} holds no (T, 50) exp and (T, 6) pose codes", path=str(path))
        return {k: v.astype(np.float64) for k, v in raw.items() if k in SHAPES}
    raise InputNotFoundError(f"DECA codes not found: {path} (a folder of per-frame files or a clip .npz)",
                             path=str(path))


def write_clip(path: str | Path, codes: Mapping[str, np.ndarray]) -> Path:
    """Write a clip's (T, ...) codes as one ``.npz`` (atomically)."""
    path = Path(path)
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in codes.items() if k in SHAPES}
    return _atomic_npz(path, arrays)


def _atomic_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, schema=np.array(f"{SCHEMA}.{SCHEMA_VERSION}"), **arrays)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}", path=str(path)) from exc
    return path


def write_folder(folder: str | Path, codes: Mapping[str, np.ndarray], fmt: str = "npz",
                 first: int = 0) -> list[Path]:
    """Write (T, ...) codes as per-frame files ``NNNNNN.npz`` or ``NNNNNN.json`` (NED's numbering).

    Frames are numbered from ``first``. Each file holds that frame's codes with their per-frame shapes.
    """
    if fmt not in ("npz", "json"):
        raise InvalidOptionError(f"DECA code format must be npz or json, got {fmt!r}", field="format")
    folder = Path(folder)
    arrays = {k: np.asarray(v) for k, v in codes.items() if k in SHAPES}
    count = len(next(iter(arrays.values()))) if arrays else 0
    written = []
    for t in range(count):
        path = folder / f"{first + t:06d}.{fmt}"
        frame = {k: v[t] for k, v in arrays.items()}
        if fmt == "npz":
            written.append(_atomic_npz(path, {k: v.astype(np.float32) for k, v in frame.items()}))
            continue
        data = {"schema": f"{SCHEMA}.{SCHEMA_VERSION}", **{k: v.tolist() for k, v in frame.items()}}
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data))
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}", path=str(path)) from exc
        written.append(path)
    return written


def manipulator_frames(codes: Mapping[str, np.ndarray]) -> np.ndarray:
    """(T, 51) manipulator vectors ``[jaw opening pose[3], exp 0..49]`` from (T, ...) codes."""
    pose, exp = np.asarray(codes["pose"]), np.asarray(codes["exp"])
    return np.concatenate([pose[:, 3:4], exp], axis=1).astype(np.float32)
