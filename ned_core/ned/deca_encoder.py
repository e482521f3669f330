"""DECA's coarse encoder (``E_flame``): a 224-px face crop -> 236 FLAME, camera and lighting codes.

A ResNet-50 trunk (written here with torchvision's layer names, as DECA's own copy has them; DECA
drops the final ``fc``) gives 2048 pooled features, and a 2048 -> 1024 -> 236 MLP (``layers``)
regresses the codes. ``DecaCoarseEncoder().state_dict()`` matches ``deca_model.tar['E_flame']``
exactly. The crop helpers reproduce DECA's ``TestData`` box-to-crop similarity.

Must not import zmq, msgpack, the engine or ``checkpoints`` (which loads the weights file into this
network: ``checkpoints.load_deca_encoder``).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch import nn

from ned_core.errors import InvalidOptionError

CODE_SIZES: dict[str, int] = {"shape": 100, "tex": 50, "exp": 50, "pose": 6, "cam": 3, "light": 27}
"""DECA's code layout, in order: identity, albedo, expression, global+jaw pose, camera, SH lighting."""
CODE_SIZE = sum(CODE_SIZES.values())
CROP_SIZE = 224
CROP_SCALE = 1.25
DECA_HELP = ("download DECA's trained model (deca_model.tar) through the DECA README "
             "(github.com/yfeng95/DECA; research-only licence)")


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 reduce, 3x3 (carries the stride), 1x1 expand (x4), plus the shortcut."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_planes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(y + shortcut)


class ResNet50(nn.Module):
    """ResNet-50 with torchvision's parameter names; ``num_classes=None`` (DECA) leaves out ``fc``.

    ``forward`` returns the globally average-pooled (B, 2048) features, or the ``fc`` logits when
    ``fc`` exists. DECA pools with ``AvgPool2d(7)``, the same thing at its 224-px input.
    """

    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3), num_classes: int | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_planes = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            stride = 1 if i == 0 else 2
            stage = [Bottleneck(in_planes, planes, stride)]
            in_planes = planes * Bottleneck.expansion
            stage += [Bottleneck(in_planes, planes) for _ in range(blocks - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.fc = nn.Linear(in_planes, num_classes) if num_classes is not None else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        features = x.mean(dim=(2, 3))
        return features if self.fc is None else self.fc(features)


class DecaCoarseEncoder(nn.Module):
    """DECA's ``E_flame``: (B, 3, 224, 224) RGB in [0, 1], not normalised -> (B, 236) codes.

    Run it in ``eval()`` mode (DECA does: batch norm uses its running statistics).
    """

    def __init__(self, code_size: int = CODE_SIZE, feature_size: int = 2048,
                 layers: Sequence[int] = (3, 4, 6, 3)) -> None:
        super().__init__()
        self.encoder = ResNet50(layers)
        self.layers = nn.Sequential(nn.Linear(feature_size, 1024), nn.ReLU(), nn.Linear(1024, code_size))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(self.encoder(images))


def split_code(code: torch.Tensor) -> dict[str, torch.Tensor]:
    """Split (B, 236) codes into DECA's named parts; ``light`` comes back as (B, 9, 3)."""
    if code.ndim != 2 or code.shape[1] != CODE_SIZE:
        raise InvalidOptionError(f"DECA codes must be (B, {CODE_SIZE}), got {tuple(code.shape)}",
                                 field="code")
    parts = dict(zip(CODE_SIZES, code.split(list(CODE_SIZES.values()), dim=1), strict=True))
    parts["light"] = parts["light"].reshape(-1, 9, 3)
    return parts


# ---------------------------------------------------------------------------------------------------
# The 224-px crop


def crop_transform(box: Sequence[float], box_kind: str = "kpt68", scale: float = CROP_SCALE,
                   crop_size: int = CROP_SIZE) -> np.ndarray:
    """3x3 similarity taking image pixels to DECA crop pixels, as DECA's ``TestData``.

    Parameters
    ----------
    box:
        (left, top, right, bottom) in image pixels.
    box_kind:
        ``"kpt68"``: the box spans 68 landmarks (DECA's FAN detector, what NED runs): side
        ``1.1 * (w + h) / 2`` around the box centre. ``"bbox"``: a face-detector box: side ``(w + h) / 2``,
        centre moved down by 0.12 of that side.
    scale, crop_size:
        The square crop side is ``int(side * scale)`` image pixels, mapped onto ``crop_size`` pixels
        with its corners at 0 and ``crop_size - 1`` (so the crop centre lands on 111.5, not 112).
    """
    left, top, right, bottom = (float(v) for v in box)
    old_size = (right - left + bottom - top) / 2.0
    cx, cy = (left + right) / 2.0, (top + bottom) / 2.0
    if box_kind == "kpt68":
        old_size *= 1.1
    elif box_kind == "bbox":
        cy += 0.12 * old_size
    else:
        raise InvalidOptionError(f"unknown box kind {box_kind!r} (kpt68 or bbox)", field="box_kind")
    size = int(old_size * scale)
    if size <= 0:
        raise InvalidOptionError(f"face box {tuple(box)} is empty", field="box")
    s = (crop_size - 1) / size
    return np.array([[s, 0.0, -s * (cx - size / 2.0)],
                     [0.0, s, -s * (cy - size / 2.0)],
                     [0.0, 0.0, 1.0]])


def crop_image(image: np.ndarray, transform: np.ndarray, crop_size: int = CROP_SIZE) -> np.ndarray:
    """Warp an (H, W, 3) image into the (crop_size, crop_size, 3) float32 crop, bilinear, black outside.

    uint8 input is scaled to [0, 1]; float input is taken as already in [0, 1].
    """
    img = np.asarray(image)
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    return cv2.warpAffine(img, np.asarray(transform, dtype=np.float64)[:2], (crop_size, crop_size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
