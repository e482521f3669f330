"""Per-frame DECA codes: NED's pickles read without skimage or code execution; npz/JSON written and read."""

from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np
import pytest

from ned_core.errors import CorruptModelError, InputNotFoundError
from ned_core.ned import deca_codes


def _ned_pickle(monkeypatch, rng, protocol: int = 4) -> tuple[bytes, np.ndarray]:
    """A pickle laid out as NED's reconstruct.py writes it, with a stand-in skimage SimilarityTransform."""
    module = "skimage.transform._geometric"
    for i in range(len(module.split("."))):
        name = ".".join(module.split(".")[:i + 1])
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))

    class SimilarityTransform:
        def __init__(self, params):
            self.params = params

    SimilarityTransform.__module__ = module
    SimilarityTransform.__qualname__ = "SimilarityTransform"
    sys.modules[module].SimilarityTransform = SimilarityTransform
    params = np.array([[0.8, 0.1, 5.0], [-0.1, 0.8, 7.0], [0.0, 0.0, 1.0]])
    data = {k: rng.normal(size=(1, *shape)).astype(np.float32)
            for k, shape in deca_codes.SHAPES.items() if k not in ("tform", "original_size")}
    data["tform"] = SimilarityTransform(params)
    data["original_size"] = (256, 256)
    return pickle.dumps(data, protocol=protocol), params


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_ned_pickle_reads_without_skimage(monkeypatch, tmp_path, protocol):
    rng = np.random.default_rng(0)
    blob, params = _ned_pickle(monkeypatch, rng, protocol)
    monkeypatch.undo()  # skimage is gone again
    path = tmp_path / "000000.pkl"
    path.write_bytes(blob)
    codes = deca_codes.read_frame(path)
    assert codes["exp"].shape == (50,) and codes["pose"].shape == (6,) and codes["light"].shape == (9, 3)
    assert np.array_equal(codes["tform"], params)
    assert np.array_equal(codes["original_size"], [256, 256])


def test_foreign_classes_are_refused_without_running(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "000000.pkl"
    path.write_bytes(pickle.dumps({"exp": Payload(), "pose": np.zeros((1, 6))}))
    with pytest.raises(CorruptModelError, match="posix.system|os.system"):
        deca_codes.read_frame(path)
    assert not marker.exists()


def test_npz_and_json_round_trip_and_mixed_folders(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    codes = {"exp": rng.normal(size=(3, 50)), "pose": rng.normal(size=(3, 6)), "cam": rng.normal(size=(3, 3)),
             "tform": np.tile(np.eye(3), (3, 1, 1))}
    npz = deca_codes.write_folder(tmp_path / "a", codes)
    js = deca_codes.write_folder(tmp_path / "b", codes, fmt="json", first=10)
    assert [p.name for p in npz] == ["000000.npz", "000001.npz", "000002.npz"]
    assert js[0].name == "000010.json" and '"schema": "NedDecaCodes.1"' in js[0].read_text()
    for folder in ("a", "b"):
        back = deca_codes.read_folder(tmp_path / folder)
        assert set(back) == set(codes)
        assert np.allclose(back["exp"], codes["exp"], atol=1e-6)
    # A folder mixing our files and an NED pickle stacks the codes every frame holds.
    blob, _ = _ned_pickle(monkeypatch, rng)
    (tmp_path / "a" / "000003.pkl").write_bytes(blob)
    mixed = deca_codes.read_folder(tmp_path / "a")
    assert mixed["exp"].shape == (4, 50) and "shape" not in mixed


def test_clip_file_and_manipulator_vectors(tmp_path):
    exp, pose = np.arange(100.0).reshape(2, 50), np.zeros((2, 6))
    pose[:, 3] = [0.1, 0.2]
    path = deca_codes.write_clip(tmp_path / "clip.npz", {"exp": exp, "pose": pose})
    frames = deca_codes.manipulator_frames(deca_codes.read_clip(path))
    assert frames.shape == (2, 51) and frames.dtype == np.float32
    assert np.allclose(frames[:, 0], [0.1, 0.2]) and np.allclose(frames[:, 1:], exp)


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(InputNotFoundError):
        deca_codes.read_folder(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputNotFoundError, match="no DECA code files"):
        deca_codes.read_folder(tmp_path / "empty")
    bad = tmp_path / "000000.npz"
    np.savez(bad, exp=np.zeros(49), pose=np.zeros(6))
    with pytest.raises(CorruptModelError, match="exp has shape"):
        deca_codes.read_frame(bad)
    garbage = tmp_path / "000001.pkl"
    garbage.write_bytes(b"not a pickle")
    with pytest.raises(CorruptModelError) as err:
        deca_codes.read_frame(garbage)
    assert err.value.path == str(garbage)
