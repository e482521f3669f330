"""FLAME: restricted loading of the model file, blendshapes, skinning and NMFC colours."""

from __future__ import annotations

import math
import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from ned_core.errors import CorruptModelError, MissingModelError
from ned_core.ned.flame import Flame, axis_angle_to_matrix, load_flame_model, nmfc_vertex_colors

from .conftest import JAW, N_SHAPE_TOTAL, tiny_flame_arrays

N_SHAPE, N_EXPR = 3, 2


def _flame(path) -> Flame:
    return Flame(load_flame_model(path), n_shape=N_SHAPE, n_expression=N_EXPR,
                 expression_offset=N_SHAPE_TOTAL)


def _codes(batch: int = 1):
    return torch.zeros(batch, N_SHAPE), torch.zeros(batch, N_EXPR), torch.zeros(batch, 6)


def test_zero_codes_give_the_template(tiny_flame_npz):
    flame = _flame(tiny_flame_npz)
    verts = flame(*_codes(2))
    assert verts.shape == (2, 16, 3)
    assert torch.allclose(verts, flame.v_template.expand(2, -1, -1), atol=1e-6)


def test_blendshapes_pick_identity_then_expression_components(tiny_flame_npz):
    arrays = tiny_flame_arrays()
    flame = _flame(tiny_flame_npz)
    shape, expr = torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[1.5, -0.5]])
    verts = flame(shape, expr, torch.zeros(1, 6))[0].numpy()
    dirs = arrays["shapedirs"]
    expected = (arrays["v_template"] + dirs[:, :, :N_SHAPE] @ shape[0].numpy()
                + dirs[:, :, N_SHAPE_TOTAL:N_SHAPE_TOTAL + N_EXPR] @ expr[0].numpy())
    assert np.allclose(verts, expected, atol=1e-5)


def test_jaw_rotation_moves_only_jaw_vertices_about_the_jaw_joint(tiny_flame_npz):
    arrays = tiny_flame_arrays()
    flame = _flame(tiny_flame_npz)
    shape, expr, pose = _codes()
    pose[0, 3] = 0.3  # jaw opening (x axis)
    verts = flame(shape, expr, pose)[0]
    template = flame.v_template
    moved = (verts - template).norm(dim=1) > 1e-6
    jaw_weighted = torch.from_numpy(arrays["weights"][:, JAW] > 0)
    assert torch.equal(moved, jaw_weighted)
    # Jaw vertices: rotated about the jaw joint after their pose correctives.
    joint = flame.j_regressor[JAW] @ template
    rot = axis_angle_to_matrix(pose[0, 3:6])
    eye = torch.eye(3)
    feature = (torch.stack([eye, rot, eye, eye]) - eye).reshape(-1)  # joints neck, jaw, eyes
    posed = template + torch.einsum("p,vcp->vc", feature, flame.posedirs)
    expected = (posed - joint) @ rot.T + joint
    assert torch.allclose(verts[jaw_weighted], expected[jaw_weighted], atol=1e-5)


def test_global_rotation_turns_the_whole_head_about_the_root(tiny_flame_npz):
    flame = _flame(tiny_flame_npz)
    shape, expr, pose = _codes()
    pose[0, 1] = math.pi / 2
    verts = flame(shape, expr, pose)[0]
    root = flame.j_regressor[0] @ flame.v_template
    rot = axis_angle_to_matrix(pose[0, :3])
    assert torch.allclose(verts, (flame.v_template - root) @ rot.T + root, atol=1e-5)


def test_rodrigues():
    assert torch.equal(axis_angle_to_matrix(torch.zeros(3)), torch.eye(3))
    rz = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))
    assert torch.allclose(rz @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    r = axis_angle_to_matrix(torch.randn(5, 3, dtype=torch.float64))
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(5, 3, 3))


def test_nmfc_colors_span_the_unit_cube(tiny_flame_npz):
    colors = nmfc_vertex_colors(load_flame_model(tiny_flame_npz).v_template)
    assert torch.allclose(colors.min(dim=0).values, torch.zeros(3))
    assert torch.allclose(colors.max(dim=0).values, torch.ones(3))


def test_missing_model_says_where_to_get_flame(tmp_path):
    path = tmp_path / "generic_model.pkl"
    with pytest.raises(MissingModelError) as err:
        load_flame_model(path)
    assert str(path) in err.value.message and "flame.is.tue.mpg.de" in err.value.message
    assert err.value.path == str(path)


def test_inconsistent_model_is_rejected(tmp_path):
    arrays = tiny_flame_arrays()
    arrays["weights"] = arrays["weights"][:, :3]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(CorruptModelError, match="weights"):
        load_flame_model(tmp_path / "bad.npz")


# --- FLAME 2020's pickle: chumpy arrays and a scipy CSC regressor, read without either package ---


def _fake_class(monkeypatch, module: str, name: str, cls: type) -> type:
    """Register ``cls`` as ``module.name`` (and its parent packages) so pickle writes that path."""
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    cls.__module__, cls.__qualname__, cls.__name__ = module, name, name
    setattr(sys.modules[module], name, cls)
    return cls


def _flame_like_pickle(monkeypatch, protocol: int) -> bytes:
    class Ch:
        def __init__(self, x):
            self.x = x
            self._dirty_vars = {"x"}
            self._itr = None
            self._depends_on_deps = {}

    class CscMatrix:
        def __init__(self, dense):
            cols = [np.nonzero(dense[:, j])[0] for j in range(dense.shape[1])]
            self.indices = np.concatenate(cols).astype(np.int32)
            self.indptr = np.concatenate([[0], np.cumsum([len(c) for c in cols])]).astype(np.int32)
            self.data = np.concatenate([dense[c, j] for j, c in enumerate(cols)])
            self._shape = dense.shape
            self.maxprint = 50

    ch = _fake_class(monkeypatch, "chumpy.ch", "Ch", Ch)
    csc = _fake_class(monkeypatch, "scipy.sparse.csc", "csc_matrix", CscMatrix)
    arrays = tiny_flame_arrays()
    model = {
        "v_template": ch(arrays["v_template"].astype(np.float64)),
        "shapedirs": ch(arrays["shapedirs"].astype(np.float64)),
        "posedirs": arrays["posedirs"],
        "J_regressor": csc(arrays["J_regressor"].astype(np.float64)),
        "kintree_table": arrays["kintree_table"],
        "weights": ch(arrays["weights"]),
        "f": arrays["f"].astype(np.uint32),
        "bs_style": "lbs",
    }
    return pickle.dumps(model, protocol=protocol)


@pytest.mark.parametrize("protocol", [0, 2])
def test_chumpy_pickle_loads_like_the_npz(monkeypatch, tmp_path, tiny_flame_npz, protocol):
    blob = _flame_like_pickle(monkeypatch, protocol)
    monkeypatch.undo()  # chumpy and scipy are gone again while loading
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(blob)
    from_pickle, from_npz = load_flame_model(path), load_flame_model(tiny_flame_npz)
    for field in ("v_template", "shapedirs", "posedirs", "j_regressor", "parents", "weights", "faces"):
        assert np.allclose(getattr(from_pickle, field), getattr(from_npz, field)), field
    assert from_pickle.parents.tolist() == [-1, 0, 1, 1, 1]


def test_pickle_with_foreign_classes_is_refused_without_running_them(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps({"v_template": Payload()}, protocol=2))
    with pytest.raises(CorruptModelError, match="not a usable FLAME model"):
        load_flame_model(path)
    assert not marker.exists()
