"""The FLAME head model: loading the user's model file and posing it (linear blend skinning).

FLAME 2020's ``generic_model.pkl`` is a Python 2 pickle holding chumpy arrays and a scipy sparse joint
regressor. Neither package is a dependency: a restricted unpickler maps those classes to inert
stand-ins that only keep their pickled state, and refuses every class outside a short whitelist, so
loading a model file never runs code from it. A plain ``.npz`` with the same keys also loads (tests
use tiny synthetic ones).

Pose layout (DECA's): global rotation (3), neck (3), jaw (3), eyes (6), all axis-angle; DECA itself
predicts global + jaw and keeps neck and eyes at zero.

Must not import zmq, msgpack or the engine.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ned_core.errors import CorruptModelError, MissingModelError
from ned_core.ned.safe_pickle import StandIn, restricted_load

FLAME_HELP = ("register at https://flame.is.tue.mpg.de, accept the FLAME licence (non-commercial "
              "research use; check its current terms) and download FLAME 2020, which holds generic_model.pkl")

REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights", "f")
N_SHAPE, N_EXPRESSION, EXPRESSION_OFFSET = 100, 50, 300
"""DECA's FLAME: the first 100 of 300 identity components and the first 50 of 100 expression ones."""


@dataclass(frozen=True)
class FlameModel:
    """FLAME model arrays, as numpy.

    v_template (V, 3); shapedirs (V, 3, K) identity then expression components; posedirs (V, 3, 9*(J-1))
    pose correctives; j_regressor (J, V) dense; parents (J,) int64 with -1 at the root; weights (V, J)
    skinning weights; faces (F, 3) int64.
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    j_regressor: np.ndarray
    parents: np.ndarray
    weights: np.ndarray
    faces: np.ndarray


# ---------------------------------------------------------------------------------------------------
# Restricted unpickling of FLAME's pickle


class _ChumpyStandIn(StandIn):
    """Takes the place of any chumpy class; a plain array lives in ``state["x"]``."""


class _SparseStandIn(StandIn):
    """Takes the place of a scipy compressed sparse matrix; keeps ``data``, ``indices``, ``indptr``."""

    compressed_axis = 1  # csc: indptr runs over columns


class _CsrStandIn(_SparseStandIn):
    compressed_axis = 0


def _flame_stand_in(module: str, name: str) -> type[StandIn] | None:
    """chumpy classes and scipy's compressed sparse matrices: the only foreign classes FLAME pickles."""
    if module == "chumpy" or module.startswith("chumpy."):
        return _ChumpyStandIn
    if module.startswith("scipy.sparse"):
        if name in ("csc_matrix", "csc_array"):
            return _SparseStandIn
        if name in ("csr_matrix", "csr_array"):
            return _CsrStandIn
    return None


def _sparse_to_dense(obj: _SparseStandIn) -> np.ndarray:
    state = obj.state
    shape = state.get("_shape", state.get("shape"))
    data, indices, indptr = (np.asarray(state[k]) for k in ("data", "indices", "indptr"))
    dense = np.zeros(tuple(int(s) for s in shape), dtype=np.float64)
    outer = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    rows, cols = (indices, outer) if obj.compressed_axis == 1 else (outer, indices)
    np.add.at(dense, (rows, cols), data)  # compressed formats may hold duplicate entries
    return dense


def _to_array(obj: Any, key: str) -> np.ndarray:
    if isinstance(obj, np.ndarray):
        return obj
    if isinstance(obj, _ChumpyStandIn):
        if not isinstance(obj.state, dict) or "x" not in obj.state:
            raise ValueError(f"{key} is a computed chumpy expression, not a stored array")
        return _to_array(obj.state["x"], key)
    if isinstance(obj, _SparseStandIn):
        return _sparse_to_dense(obj)
    return np.asarray(obj)


def _read_pickle(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        data = restricted_load(f, _flame_stand_in, "a FLAME model")
    if not isinstance(data, dict):
        raise ValueError("the pickle does not hold a dict")
    return data


def load_flame_model(path: str | Path) -> FlameModel:
    """Read a FLAME model: FLAME 2020's ``generic_model.pkl`` or an ``.npz`` with the same keys.

    Raises
    ------
    MissingModelError
        The file is missing (the message says how to get FLAME).
    CorruptModelError
        The file is not a usable FLAME model.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingModelError(f"FLAME model not found at {path}: {FLAME_HELP}", path=str(path))
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                raw: dict[str, Any] = {k: npz[k] for k in npz.files}
        else:
            raw = _read_pickle(path)
        missing = [k for k in REQUIRED_KEYS if k not in raw]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        arrays = {k: _to_array(raw[k], k) for k in REQUIRED_KEYS}
        model = _build_model(arrays)
    except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError, AttributeError,
            pickle.UnpicklingError) as exc:
        raise CorruptModelError(f"{path} is not a usable FLAME model ({exc}); {FLAME_HELP}",
                                path=str(path)) from exc
    return model


def _build_model(a: dict[str, np.ndarray]) -> FlameModel:
    v_template = np.asarray(a["v_template"], dtype=np.float32)
    n_vert = v_template.shape[0]
    parents = np.asarray(a["kintree_table"], dtype=np.int64)[0].copy()
    parents[0] = -1  # FLAME stores the root's parent as 2**32 - 1
    n_joint = len(parents)
    model = FlameModel(
        v_template=v_template,
        shapedirs=np.asarray(a["shapedirs"], dtype=np.float32),
        posedirs=np.asarray(a["posedirs"], dtype=np.float32),
        j_regressor=np.asarray(a["J_regressor"], dtype=np.float32),
        parents=parents,
        weights=np.asarray(a["weights"], dtype=np.float32),
        faces=np.asarray(a["f"], dtype=np.int64),
    )
    checks = {
        "v_template": (model.v_template.shape == (n_vert, 3)),
        "shapedirs": model.shapedirs.ndim == 3 and model.shapedirs.shape[:2] == (n_vert, 3),
        "posedirs": model.posedirs.shape == (n_vert, 3, 9 * (n_joint - 1)),
        "J_regressor": model.j_regressor.shape == (n_joint, n_vert),
        "weights": model.weights.shape == (n_vert, n_joint),
        "f": model.faces.ndim == 2 and model.faces.shape[1] == 3 and model.faces.size > 0
        and 0 <= model.faces.min() and model.faces.max() < n_vert,
        "kintree_table": all(0 <= p < j for j, p in enumerate(parents) if j > 0),
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise ValueError(f"inconsistent {', '.join(bad)} for {n_vert} vertices and {n_joint} joints")
    return model


def nmfc_vertex_colors(v_template: np.ndarray | torch.Tensor) -> torch.Tensor:
    """NMFC colours: each template vertex's coordinates min-max normalised per axis to [0, 1] (R=x...)."""
    v = v_template if isinstance(v_template, torch.Tensor) else torch.from_numpy(np.asarray(v_template))
    v = v.float()
    lo, hi = v.min(dim=0).values, v.max(dim=0).values
    return (v - lo) / (hi - lo).clamp_min(1e-12)


# ---------------------------------------------------------------------------------------------------
# Posing


def axis_angle_to_matrix(rvec: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: (..., 3) axis-angle -> (..., 3, 3) rotation matrices (identity at zero)."""
    angle = rvec.norm(dim=-1, keepdim=True)
    axis = rvec / angle.clamp_min(1e-12)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*rvec.shape[:-1], 3, 3)
    sin, cos = angle.sin()[..., None], angle.cos()[..., None]
    eye = torch.eye(3, dtype=rvec.dtype, device=rvec.device)
    return eye + sin * k + (1.0 - cos) * (k @ k)


class Flame(nn.Module):
    """FLAME as DECA uses it: identity + expression blendshapes, pose correctives, linear blend skinning.

    Parameters
    ----------
    model:
        The arrays from ``load_flame_model``.
    n_shape, n_expression:
        Identity and expression components used (DECA: 100 and 50).
    expression_offset:
        Index of the first expression component in ``shapedirs`` (FLAME: 300).
    """

    def __init__(self, model: FlameModel, n_shape: int = N_SHAPE, n_expression: int = N_EXPRESSION,
                 expression_offset: int = EXPRESSION_OFFSET) -> None:
        super().__init__()
        k = model.shapedirs.shape[2]
        if n_shape > expression_offset or expression_offset + n_expression > k:
            raise CorruptModelError(
                f"the FLAME model has {k} blendshapes, too few for {n_shape} identity components and "
                f"{n_expression} expression components from index {expression_offset}")
        dirs = np.concatenate([model.shapedirs[:, :, :n_shape],
                               model.shapedirs[:, :, expression_offset:expression_offset + n_expression]],
                              axis=2)
        self.n_shape, self.n_expression = n_shape, n_expression
        self.parents: tuple[int, ...] = tuple(int(p) for p in model.parents)
        self.register_buffer("v_template", torch.from_numpy(model.v_template.copy()))
        self.register_buffer("shapedirs", torch.from_numpy(dirs.copy()))
        self.register_buffer("posedirs", torch.from_numpy(model.posedirs.copy()))
        self.register_buffer("j_regressor", torch.from_numpy(model.j_regressor.copy()))
        self.register_buffer("lbs_weights", torch.from_numpy(model.weights.copy()))
        self.register_buffer("faces", torch.from_numpy(model.faces.copy()))

    @property
    def n_joints(self) -> int:
        return len(self.parents)

    def forward(self, shape: torch.Tensor, expression: torch.Tensor, pose: torch.Tensor,
                neck_pose: torch.Tensor | None = None, eye_pose: torch.Tensor | None = None) -> torch.Tensor:
        """Posed vertices (B, V, 3) from DECA's codes.

        Parameters
        ----------
        shape, expression:
            (B, n_shape), (B, n_expression).
        pose:
            (B, 6): global rotation then jaw rotation, axis-angle.
        neck_pose, eye_pose:
            (B, 3) and (B, 6); zero when omitted, as in DECA.
        """
        batch = shape.shape[0]
        zeros = shape.new_zeros
        neck = zeros(batch, 3) if neck_pose is None else neck_pose
        eyes = zeros(batch, 3 * (self.n_joints - 3)) if eye_pose is None else eye_pose
        full_pose = torch.cat([pose[:, :3], neck, pose[:, 3:6], eyes], dim=1)
        return self.skin(torch.cat([shape, expression], dim=1), full_pose)

    def skin(self, betas: torch.Tensor, full_pose: torch.Tensor) -> torch.Tensor:
        """Vertices (B, V, 3) for blendshape weights (B, n_shape + n_expression) and a (B, 3J) pose."""
        batch = betas.shape[0]
        v_shaped = self.v_template + torch.einsum("bk,vck->bvc", betas, self.shapedirs)
        joints = torch.einsum("jv,bvc->bjc", self.j_regressor, v_shaped)
        rots = axis_angle_to_matrix(full_pose.reshape(batch, self.n_joints, 3))
        eye = torch.eye(3, dtype=rots.dtype, device=rots.device)
        pose_feature = (rots[:, 1:] - eye).reshape(batch, -1)
        v_posed = v_shaped + torch.einsum("bp,vcp->bvc", pose_feature, self.posedirs)

        # World transform of each joint down the kinematic chain (parents precede children).
        world_r: list[torch.Tensor] = []
        world_t: list[torch.Tensor] = []
        for j, parent in enumerate(self.parents):
            if parent < 0:
                world_r.append(rots[:, j])
                world_t.append(joints[:, j])
            else:
                offset = joints[:, j] - joints[:, parent]
                world_r.append(world_r[parent] @ rots[:, j])
                world_t.append(world_t[parent] + (world_r[parent] @ offset[..., None])[..., 0])
        r = torch.stack(world_r, dim=1)  # (B, J, 3, 3)
        # Skinning moves rest-pose points, so take each joint's rest position out of its translation.
        t = torch.stack(world_t, dim=1) - (r @ joints[..., None])[..., 0]
        blend_r = torch.einsum("vj,bjmn->bvmn", self.lbs_weights, r)
        blend_t = torch.einsum("vj,bjm->bvm", self.lbs_weights, t)
        return (blend_r @ v_posed[..., None])[..., 0] + blend_t


_LOADED: dict[tuple[str, int, int], Flame] = {}


def load_flame(path: str | Path) -> Flame:
    """The FLAME head model of a model file with DECA's 100 identity and 50 expression components.

    FLAME 2020 stores 300 identity then 100 expression components; a smaller model (a test fixture)
    holds its 50 expression components right after its identity ones. Loaded once per file version
    and shared (the face fit, the manipulator and the renderer all need it); treat it as read-only.
    """
    path = Path(path)
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = None
    if key is not None and key in _LOADED:
        return _LOADED[key]
    model = load_flame_model(path)
    k = model.shapedirs.shape[2]
    offset = EXPRESSION_OFFSET if k >= EXPRESSION_OFFSET + N_EXPRESSION else k - N_EXPRESSION
    flame = Flame(model, expression_offset=offset).eval()
    if key is not None:
        _LOADED[key] = flame
    return flame
