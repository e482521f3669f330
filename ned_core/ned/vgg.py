"""VGG19 features and the renderer trainer's perceptual loss (NED's / vid2vid's ``VGGLoss``).

``VGG19.features`` reproduces torchvision's ``vgg19().features`` layer for layer, so the ImageNet
weights file torchvision distributes (``vgg19-dcbb9e9d.pth``: keys ``features.N.weight/bias`` and
``classifier.*``) loads strictly into it; the classifier is not needed and its keys are ignored. The
loss compares relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1 activations with L1, weighted 1/32, 1/16,
1/8, 1/4 and 1, and takes [-1, 1] images as they are (NED applies no ImageNet normalisation).

Must not import torchvision (it does not install beside our torch), zmq or the engine.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ned_core.errors import CorruptModelError
from ned_core.ned.checkpoints import read_checkpoint, state_dict_problems

CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
"""torchvision's VGG19 ("E"): conv widths, "M" for a 2x2 max-pool."""
SLICES = (2, 7, 12, 21, 30)
"""End index (exclusive) in ``features`` of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1."""
WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
VGG_HELP = ("fetch torchvision's ImageNet VGG19 (https://download.pytorch.org/models/vgg19-dcbb9e9d.pth) on a "
            "connected machine and give its path (or put it at $NED_MODELS/vgg/vgg19.pth)")


class VGG19(nn.Module):
    """VGG19's convolutional part with torchvision's names (``features.0`` ... ``features.36``)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in CONFIG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU()]
                channels = int(item)
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five ReLU activations the perceptual loss compares."""
        out = []
        start = 0
        for end in SLICES:
            x = self.features[start:end](x)
            out.append(x)
            start = end
        return out


def load_vgg19(path: str | Path) -> VGG19:
    """VGG19 features from torchvision's weights file, strictly (classifier keys ignored), frozen, eval.

    Raises ``MissingModelError`` for a missing file and ``CorruptModelError`` naming every missing,
    unexpected or mis-shaped feature tensor.
    """
    path = Path(path)
    state = read_checkpoint(path, "VGG19 weights file", VGG_HELP)
    net = VGG19()
    if not isinstance(state, dict):
        raise CorruptModelError(f"{path} is not a VGG19 state dict", path=str(path))
    features = {k: v for k, v in state.items() if not str(k).startswith("classifier.")}
    problems = state_dict_problems(net, features)
    if problems:
        raise CorruptModelError(f"{path} does not match VGG19: {'; '.join(problems[:3])}", path=str(path))
    net.load_state_dict(features, strict=True)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


class VGGLoss(nn.Module):
    """Weighted L1 between VGG19 activations of a generated and a real image batch (both in [-1, 1])."""

    def __init__(self, vgg: VGG19) -> None:
        super().__init__()
        self.vgg = vgg

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        fake_features, real_features = self.vgg(fake), self.vgg(real)
        loss = fake.new_zeros(())
        for w, f, r in zip(WEIGHTS, fake_features, real_features, strict=True):
            loss = loss + w * nn.functional.l1_loss(f, r.detach())
        return loss
