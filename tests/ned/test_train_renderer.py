"""The renderer trainer: data prepared from a shot, loss goes down, NED's layout, exact resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ned_core.errors import NoFaceError
from ned_core.ned import checkpoints
from ned_core.ned.face3d_deca import DecaFaceModeller
from ned_core.ned.train_renderer import FOLDERS, RendererData, RendererTrainConfig, prepare, train
from ned_core.ned.training import read_scalars

from .conftest import StandInTracker, write_plate

TINY = {"n_frames_total": 3, "max_frames_per_gpu": 2, "ngf": 8, "n_downsample": 2, "n_blocks": 2, "ndf": 8,
        "n_layers_D": 2}


@pytest.fixture(autouse=True)
def _no_models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NED_MODELS", str(tmp_path / "no_models"))  # no VGG19 found by accident
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("actor")
    plate = write_plate(root)
    modeller = DecaFaceModeller(flame=tiny_models["flame"], deca=tiny_models["deca"])
    count = prepare([plate], root / "data", tracker=StandInTracker(), modeller=modeller, size=32, seq_len=5)
    assert count == 2  # frames 1001-1005 and 1007-1011 (1006 is lost, 1012 is a short tail)
    return root / "data"


def test_prepared_folders_follow_neds_layout(data, tiny_models, tmp_path):
    for folder in FOLDERS:
        assert sorted(p.name for p in (data / folder / "000000").iterdir())[0] == "000000.png"
    rows = np.loadtxt(data / "eye_landmarks_aligned" / "000001" / "000004.txt")
    assert rows.shape == (34, 2)
    dataset = RendererData(data)
    cond, images, mouths = dataset.load(0, 0, 5, torch.Generator().manual_seed(0), augment=True)
    assert cond.shape == (5, 10, 32, 32) and images.shape == (5, 3, 32, 32) and mouths.shape == (5, 2)
    assert images.min() >= -1 and images.max() <= 1 and cond[:, 9].max() == 1.0  # mask channel
    modeller = DecaFaceModeller(flame=tiny_models["flame"], deca=tiny_models["deca"])
    with pytest.raises(NoFaceError, match="50 frames"):
        prepare([write_plate(tmp_path, frames=range(1001, 1004))], tmp_path / "d", tracker=StandInTracker(),
                modeller=modeller, size=32)


def test_training_lowers_the_loss_and_writes_neds_layout(data, tmp_path):
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="VGG19"):
        train(RendererTrainConfig(data=str(data), out=str(out), niter=6, save_epoch_freq=3, **TINY))
    rows = read_scalars(out / "logs")
    assert len(rows) == 6 * 2 * 2
    first = np.mean([r["G/total"] for r in rows[:4]])
    last = np.mean([r["G/total"] for r in rows[-4:]])
    assert last < 0.8 * first
    for name in ("3_net_G.pth", "6_net_G.pth", "6_net_D.pth", "6_net_Dm.pth", "latest_net_G.pth",
                 "latest_optims.pth", "opt.txt"):
        assert (out / name).is_file(), name
    g = checkpoints.load_renderer(out / "6_net_G.pth")  # sizes read from the file
    assert g.model_down_seg[1].weight.shape == (8, 27, 7, 7)
    d = checkpoints.load_renderer_discriminator(out / "6_net_Dm.pth")
    assert d.n_layers == 2 and d.num_D == 2


def test_resume_continues_exactly_and_meta_renderer_fine_tunes(data, tmp_path):
    base = {"data": str(data), "niter": 2, "save_latest_freq": 100, **TINY}
    with pytest.warns(UserWarning):
        train(RendererTrainConfig(out=str(tmp_path / "straight"), **base))
        train(RendererTrainConfig(out=str(tmp_path / "cut"), max_steps=2, **base))
        train(RendererTrainConfig(out=str(tmp_path / "cut"), **base), resume=True)
    a = torch.load(tmp_path / "straight" / "2_net_G.pth", weights_only=True)
    b = torch.load(tmp_path / "cut" / "2_net_G.pth", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.warns(UserWarning):
        train(RendererTrainConfig(out=str(tmp_path / "actor"), load_pretrain=str(tmp_path / "straight"),
                                  which_epoch="2", **{**base, "niter": 1}))
    assert (tmp_path / "actor" / "1_net_G.pth").is_file()
