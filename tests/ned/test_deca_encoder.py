"""DECA coarse encoder: torchvision-style ResNet-50 names, DECA's key layout, code split and crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ned_core.errors import InvalidOptionError
from ned_core.ned.deca_encoder import (
    CODE_SIZES,
    DecaCoarseEncoder,
    ResNet50,
    crop_image,
    crop_transform,
    split_code,
)


def test_resnet50_has_torchvisions_names_and_size():
    net = ResNet50(num_classes=1000)
    state = net.state_dict()
    assert sum(p.numel() for p in net.parameters()) == 25_557_032  # torchvision's resnet50
    assert tuple(state["fc.weight"].shape) == (1000, 2048)
    assert tuple(state["layer1.0.downsample.0.weight"].shape) == (256, 64, 1, 1)
    assert "layer1.1.downsample.0.weight" not in state
    assert tuple(state["layer3.5.bn3.running_var"].shape) == (1024,)


def test_deca_encoder_layout_matches_e_flame():
    enc = DecaCoarseEncoder()
    state = enc.state_dict()
    assert len(state) == 322 and not any(k.startswith("encoder.fc") for k in state)
    assert tuple(state["encoder.conv1.weight"].shape) == (64, 3, 7, 7)
    assert tuple(state["encoder.layer4.2.conv3.weight"].shape) == (2048, 512, 1, 1)
    assert tuple(state["layers.0.weight"].shape) == (1024, 2048)
    assert tuple(state["layers.2.weight"].shape) == (236, 1024)
    assert sum(p.numel() for p in enc.parameters()) == 25_848_108


def test_codes_split_into_named_parts():
    with torch.no_grad():
        code = DecaCoarseEncoder().eval()(torch.rand(1, 3, 224, 224))
    parts = split_code(code)
    assert list(parts) == list(CODE_SIZES)
    assert parts["pose"].shape == (1, 6) and parts["light"].shape == (1, 9, 3)
    assert torch.equal(parts["exp"], code[:, 150:200])
    with pytest.raises(InvalidOptionError):
        split_code(torch.zeros(1, 200))


def test_crop_maps_the_box_centre_to_the_crop_centre():
    box = (40.0, 60.0, 140.0, 180.0)  # landmark box: w 100, h 120
    m = crop_transform(box)
    size = int((100 + 120) / 2 * 1.1 * 1.25)
    centre = np.array([90.0, 120.0, 1.0])
    # DECA maps the crop's corners to 0 and 223, so the centre lands on 111.5.
    assert np.allclose(m @ centre, [111.5, 111.5, 1.0])
    assert np.allclose(m @ (centre - [size / 2, size / 2, 0]), [0.0, 0.0, 1.0])
    assert np.allclose(m @ (centre + [size / 2, size / 2, 0]), [223.0, 223.0, 1.0])
    # A detector box: the crop centre sits 0.12 of the box side below the box centre.
    mb = crop_transform(box, box_kind="bbox")
    assert np.allclose(mb @ [90.0, 120.0 + 0.12 * 110, 1.0], [111.5, 111.5, 1.0])
    with pytest.raises(InvalidOptionError):
        crop_transform((10, 10, 10, 10))


def test_crop_image_warps_the_face_into_the_crop():
    image = np.zeros((256, 256, 3), np.uint8)
    image[118:123, 88:93] = 255  # a bright dot around (90, 120)
    crop = crop_image(image, crop_transform((40, 60, 140, 180)))
    assert crop.shape == (224, 224, 3) and crop.dtype == np.float32 and crop.max() <= 1.0
    y, x = np.unravel_index(np.argmax(crop[..., 0]), crop.shape[:2])
    assert abs(x - 111.5) <= 3 and abs(y - 111.5) <= 3
