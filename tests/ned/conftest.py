"""Shared fixtures for the NED backend tests: a tiny synthetic FLAME-like model."""

from __future__ import annotations

import numpy as np
import pytest

# Joints of FLAME: 0 global (root), 1 neck, 2 jaw, 3 and 4 eyes.
ROOT, NECK, JAW, EYE_L, EYE_R = range(5)
N_SHAPE_TOTAL, N_EXPR_TOTAL = 6, 4


def tiny_flame_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """A 16-vertex model with FLAME's keys and joint tree; vertices 8..11 follow the jaw only."""
    rng = np.random.default_rng(seed)
    n_vert = 16
    v_template = rng.normal(size=(n_vert, 3)).astype(np.float32)
    owner = np.array([ROOT] * 4 + [NECK] * 4 + [JAW] * 4 + [EYE_L] * 2 + [EYE_R] * 2)
    weights = np.zeros((n_vert, 5), np.float32)
    weights[np.arange(n_vert), owner] = 1.0
    j_regressor = np.zeros((5, n_vert), np.float32)
    for j in range(5):
        j_regressor[j, owner == j] = 1.0 / np.sum(owner == j)
    shapedirs = rng.normal(size=(n_vert, 3, N_SHAPE_TOTAL + N_EXPR_TOTAL)).astype(np.float32) * 0.1
    posedirs = np.zeros((n_vert, 3, 36), np.float32)
    posedirs[owner == JAW] = rng.normal(size=(4, 3, 36)) * 0.05  # correctives only on the jaw
    faces = np.array([[0, 1, 2], [1, 2, 3], [4, 5, 6], [8, 9, 10], [9, 10, 11], [12, 13, 14]])
    kintree = np.array([[2**32 - 1, ROOT, NECK, NECK, NECK], [0, 1, 2, 3, 4]], dtype=np.int64)
    return {"v_template": v_template, "shapedirs": shapedirs, "posedirs": posedirs,
            "J_regressor": j_regressor, "kintree_table": kintree, "weights": weights, "f": faces}


@pytest.fixture
def tiny_flame_npz(tmp_path):
    path = tmp_path / "tiny_flame.npz"
    np.savez(path, **tiny_flame_arrays())
    return path
