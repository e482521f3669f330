"""VGG19 written by hand: torchvision's key names and shapes; its weights file loads strictly."""

from __future__ import annotations

import pytest
import torch

from ned_core.errors import CorruptModelError, MissingModelError
from ned_core.ned.checkpoints import empty_network
from ned_core.ned.vgg import VGG19, VGGLoss, load_vgg19

CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
WIDTHS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)


def test_feature_keys_and_shapes_are_torchvisions():
    state = empty_network(VGG19).state_dict()
    expected = {}
    n_in = 3
    for index, width in zip(CONVS, WIDTHS, strict=True):
        expected[f"features.{index}.weight"] = (width, n_in, 3, 3)
        expected[f"features.{index}.bias"] = (width,)
        n_in = width
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert sum(v.numel() for v in state.values()) == 20_024_384  # torchvision's vgg19().features


def test_weights_file_loads_with_its_classifier_and_problems_are_named(tmp_path):
    torch.manual_seed(0)
    net = VGG19()
    state = {**net.state_dict(), "classifier.0.weight": torch.zeros(4096, 25088 // 512)}
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    loaded = load_vgg19(path)
    assert not any(p.requires_grad for p in loaded.parameters())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert len(loaded(x)) == 5 and float(VGGLoss(loaded)(x, x)) == 0.0
    del state["features.34.bias"]
    torch.save(state, path)
    with pytest.raises(CorruptModelError, match="features.34.bias"):
        load_vgg19(path)
    with pytest.raises(MissingModelError, match="vgg19-dcbb9e9d"):
        load_vgg19(tmp_path / "none.pth")
