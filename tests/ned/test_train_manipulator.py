"""The manipulator trainer: loss goes down, checkpoints in NED's layout, exact resume, fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ned_core import EMOTIONS
from ned_core.errors import InputNotFoundError
from ned_core.ned import checkpoints, deca_codes
from ned_core.ned.train_manipulator import ManipulatorTrainConfig, load_clips, train
from ned_core.ned.training import read_scalars

TINY = {"generator_hidden": 32, "generator_lstm": 16, "encoder_hidden": (32, 16), "encoder_lstm": 8,
        "encoder_head": (16, 8), "mapping_hidden": 16, "batch_size": 16, "seed": 0}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny LSTMs: thread hand-offs cost more than the maths
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Each emotion moves its own expression coefficient; the jaw talks."""
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for label, emotion in enumerate(EMOTIONS):
        for c in range(2):
            t = np.arange(16)
            exp = rng.normal(size=(16, 50)) * 0.05
            exp[:, label] += 1.0
            pose = np.zeros((16, 6))
            pose[:, 3] = 0.1 + 0.1 * np.sin(t / 2 + c)
            codes = {"exp": exp, "pose": pose}
            if c == 0:
                deca_codes.write_clip(root / emotion / "clip0.npz", codes)
            else:
                deca_codes.write_folder(root / emotion / "clip1", codes)
    return root


def _mean(rows, key, part):
    values = [r[key] for r in rows]
    return float(np.mean(values[:3] if part == "first" else values[-3:]))


def test_clips_load_with_labels(clips, tmp_path):
    loaded = load_clips(clips)
    assert len(loaded) == 14 and {label for _, label in loaded} == set(range(7))
    assert loaded[0][0].shape == (16, 51)
    with pytest.raises(InputNotFoundError, match="emotion"):
        load_clips(tmp_path)


def test_training_lowers_the_loss_and_writes_neds_layout(clips, tmp_path):
    out = tmp_path / "run"
    train(ManipulatorTrainConfig(data=str(clips), out=str(out), niter=2, niter_decay=1, save_every=100, **TINY))
    rows = read_scalars(out / "logs")
    assert len(rows) == 3 * 6 and rows[-1]["step"] == 18
    assert _mean(rows, "G/latent_total", "last") < _mean(rows, "G/latent_total", "first") - 0.3
    assert _mean(rows, "G/latent_cyc", "last") < _mean(rows, "G/latent_cyc", "first")
    assert rows[-1]["lr"] < rows[0]["lr"]  # the decay epoch
    for name in ("01_nets.pth", "03_nets.pth", "03_optims.pth", "latest_nets.pth", "opt.txt", "latest_state.json"):
        assert (out / name).is_file(), name
    saved = torch.load(out / "03_nets.pth", weights_only=True)
    assert set(saved) == {"generator", "mapping_network", "style_encoder", "discriminator"}
    g, f, e = checkpoints.load_manipulator(out / "03_nets.pth")  # sizes read from the file
    assert g.seq1[0].weight.shape == (32, 67)
    # Against NED's full-size networks the tiny file is named tensor by tensor.
    assert "generator: seq1.0.weight has shape 32x67, expected 512x67" in checkpoints.check_checkpoint(
        out / "03_nets.pth", "manipulator")


def test_resume_continues_exactly(clips, tmp_path):
    base = {"data": str(clips), "niter": 2, "niter_decay": 0, "save_every": 100, **TINY}
    train(ManipulatorTrainConfig(out=str(tmp_path / "straight"), **base))
    train(ManipulatorTrainConfig(out=str(tmp_path / "cut"), max_steps=7, **base))  # stops mid-epoch
    assert not (tmp_path / "cut" / "02_nets.pth").exists()
    train(ManipulatorTrainConfig(out=str(tmp_path / "cut"), **base), resume=True)
    a = torch.load(tmp_path / "straight" / "02_nets.pth", weights_only=True)
    b = torch.load(tmp_path / "cut" / "02_nets.pth", weights_only=True)
    for net in a:
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    steps = [r["step"] for r in read_scalars(tmp_path / "cut" / "logs")]
    assert steps == list(range(1, 13))


def test_finetuning_writes_finetuned_files(clips, tmp_path):
    base = {"data": str(clips), "niter": 1, "niter_decay": 0, **TINY}
    train(ManipulatorTrainConfig(out=str(tmp_path / "pre"), **base))
    train(ManipulatorTrainConfig(out=str(tmp_path / "fine"), finetune=str(tmp_path / "pre" / "01_nets.pth"), **base))
    assert (tmp_path / "fine" / "01_nets_finetuned.pth").is_file()
    assert (tmp_path / "fine" / "01_optims_finetuned.pth").is_file()
