"""NED's per-actor neural face renderer (Head2Head / vid2vid style) and its multi-scale discriminator.

The generator sees the conditioning of the last 3 frames (NMFC, eye-gaze disks, shape shading, face
mask; 10 channels each) and its own 2 previous outputs, and draws the face of the current frame.
Layer order and attribute names reproduce NED's ``state_dict`` exactly, including its quirk that every
ResnetBlock's weights appear twice (``conv_block`` and ``resnetblock_sequential``), so released
``*_net_G.pth`` / ``*_net_D.pth`` files load strictly.

Normalisation: NED builds ``InstanceNorm2d(affine=False, track_running_stats=True)`` and never calls
``.eval()``, so its outputs always use per-image statistics. ``InstanceNorm`` here keeps the running
buffers (for the checkpoint keys) but, by default, uses per-image statistics in eval mode too, without
touching the buffers; ``use_instance_statistics(net, False)`` switches eval mode to the running stats.

Must not import zmq, msgpack or the engine; reads and writes no files (see ``checkpoints``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FRAME_CHANNELS = 10
"""Conditioning channels per frame: NMFC (3), eye-gaze image (3), shape image (3), mask (1)."""


class InstanceNorm(nn.InstanceNorm2d):
    """``InstanceNorm2d(affine=False, track_running_stats=True)`` that normalises per image in eval too.

    Training mode behaves exactly like torch's layer (per-image statistics, running buffers updated).
    Eval mode uses per-image statistics and leaves the buffers alone while ``instance_stats_in_eval``
    is True (the default, NED's behaviour); set it False to use the running statistics instead.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, affine=False, track_running_stats=True)
        self.instance_stats_in_eval = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not self.instance_stats_in_eval:
            return super().forward(x)
        return F.instance_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


def use_instance_statistics(net: nn.Module, enabled: bool = True) -> None:
    """Make every ``InstanceNorm`` in ``net`` use per-image statistics in eval mode (NED's outputs).

    ``enabled=False`` makes eval mode use the running statistics, which NED itself never does.
    """
    for layer in net.modules():
        if isinstance(layer, InstanceNorm):
            layer.instance_stats_in_eval = enabled


def _init_conv_weights(net: nn.Module) -> None:
    """N(0, 0.02) convolution weights, as NED initialises both networks (biases keep torch's init)."""
    for layer in net.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(layer.weight, 0.0, 0.02)


class ResnetBlock(nn.Module):
    """x + [pad, conv3, IN, ReLU, pad, conv3, IN](x), reflection padding."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3), InstanceNorm(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3), InstanceNorm(dim))
        # NED registers the same Sequential under two names (this one first), so its checkpoints hold
        # both key sets; loading either set fills the same weights.
        self.resnetblock_sequential = block
        self.conv_block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def _encoder(in_nc: int, ngf: int, n_downsample: int, n_blocks: int) -> nn.Sequential:
    """ReflectionPad3 + Conv7 + IN + ReLU, ``n_downsample`` x [Conv3 s2 + IN + ReLU], ResnetBlocks."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_nc, ngf, kernel_size=7),
                               InstanceNorm(ngf), nn.ReLU(True)]
    for i in range(n_downsample):
        c = ngf * 2 ** i
        layers += [nn.Conv2d(c, 2 * c, kernel_size=3, stride=2, padding=1), InstanceNorm(2 * c),
                   nn.ReLU(True)]
    layers += [ResnetBlock(ngf * 2 ** n_downsample) for _ in range(n_blocks)]
    return nn.Sequential(*layers)


class Generator(nn.Module):
    """Draws the face of the current frame from 3 frames of conditioning and 2 previous outputs.

    Parameters
    ----------
    cond_nc:
        Conditioning channels per frame without the mask (9: NMFC, eye, shape).
    n_frames:
        Frames in the window (3); the generator also takes ``n_frames - 1`` previous outputs.
    output_nc:
        Image channels (3, RGB in [-1, 1]).
    ngf, n_downsample, n_blocks:
        Width (64), down/up-sampling steps (3) and ResnetBlocks (9: ``n_blocks - n_blocks // 2`` in each
        encoder branch, ``n_blocks // 2`` after the branches are summed).
    """

    def __init__(self, cond_nc: int = FRAME_CHANNELS - 1, n_frames: int = 3, output_nc: int = 3,
                 ngf: int = 64, n_downsample: int = 3, n_blocks: int = 9) -> None:
        super().__init__()
        self.cond_nc = cond_nc
        self.n_frames = n_frames
        n_branch = n_blocks - n_blocks // 2
        self.model_down_seg = _encoder(cond_nc * n_frames, ngf, n_downsample, n_branch)
        self.model_down_img = _encoder(output_nc * (n_frames - 1), ngf, n_downsample, n_branch)
        self.model_res_img = nn.Sequential(
            *[ResnetBlock(ngf * 2 ** n_downsample) for _ in range(n_blocks // 2)])
        up: list[nn.Module] = []
        for i in range(n_downsample, 0, -1):
            c = ngf * 2 ** i
            up += [nn.ConvTranspose2d(c, c // 2, kernel_size=3, stride=2, padding=1, output_padding=1),
                   InstanceNorm(c // 2), nn.ReLU(True)]
        self.model_up_img = nn.Sequential(*up)
        self.model_final_img = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7), nn.Tanh())
        _init_conv_weights(self)

    def forward(self, conditioning: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """Render the current (last) frame of the window.

        Parameters
        ----------
        conditioning:
            (B, n_frames * (cond_nc + 1), H, W): per frame, oldest first, ``cond_nc`` conditioning
            channels then the face mask in [0, 1]. H and W must be multiples of ``2 ** n_downsample``.
        previous:
            (B, (n_frames - 1) * output_nc, H, W) the previous generated frames, oldest first, in
            [-1, 1]; zeros at the start of a sequence.

        Returns
        -------
        (B, output_nc, H, W) in [-1, 1]; -1 (black) outside the current frame's mask.
        """
        expected = self.n_frames * (self.cond_nc + 1)
        if conditioning.shape[1] != expected:
            raise ValueError(f"renderer conditioning has {conditioning.shape[1]} channels, expected "
                             f"{expected} ({self.n_frames} frames of {self.cond_nc} + mask)")
        frames = conditioning.chunk(self.n_frames, dim=1)
        mask = frames[-1][:, -1:]
        cond = torch.cat([f[:, :-1] for f in frames], dim=1)
        features = self.model_down_seg(cond) + self.model_down_img(previous)
        image = self.model_final_img(self.model_up_img(self.model_res_img(features)))
        return image * mask - (1.0 - mask)


def _patch_layers(input_nc: int, ndf: int, n_layers: int) -> list[nn.Sequential]:
    """PatchGAN layers, each its own Sequential so the discriminator can return every feature map."""
    layers = [nn.Sequential(nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=2),
                            nn.LeakyReLU(0.2, True))]
    nf = ndf
    for n in range(1, n_layers + 1):
        nf_prev, nf = nf, min(nf * 2, 512)
        stride = 2 if n < n_layers else 1
        layers.append(nn.Sequential(nn.Conv2d(nf_prev, nf, kernel_size=4, stride=stride, padding=2),
                                    InstanceNorm(nf), nn.LeakyReLU(0.2, True)))
    layers.append(nn.Sequential(nn.Conv2d(nf, 1, kernel_size=4, stride=1, padding=2)))
    return layers


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` PatchGAN discriminators on an image pyramid, returning every layer's features.

    Parameters
    ----------
    cond_nc, image_nc:
        The input is the current frame's conditioning (first ``cond_nc`` channels, mask excluded) and
        the image (last ``image_nc`` channels): 9 + 3 = 12 channels in NED.
    ndf, n_layers, num_D:
        Base width (64, capped at 64 for every scale), strided layers (3) and scales (2).
    """

    def __init__(self, cond_nc: int = FRAME_CHANNELS - 1, image_nc: int = 3, ndf: int = 64,
                 n_layers: int = 3, num_D: int = 2) -> None:
        super().__init__()
        self.cond_nc, self.image_nc = cond_nc, image_nc
        self.n_layers, self.num_D = n_layers, num_D
        for i in range(num_D):
            width = min(64, ndf * 2 ** (num_D - 1 - i))
            for j, layer in enumerate(_patch_layers(cond_nc + image_nc, width, n_layers)):
                setattr(self, f"scale{i}_layer{j}", layer)
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        _init_conv_weights(self)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Feature maps of every scale, full resolution first (scale ``num_D - 1``), last map = logits.

        ``x`` holds the conditioning then the image; any channels between the first ``cond_nc`` and
        the last ``image_nc`` (NED's mask channel) are dropped.
        """
        x = torch.cat([x[:, :self.cond_nc], x[:, -self.image_nc:]], dim=1)
        results = []
        for i in range(self.num_D):
            scale = self.num_D - 1 - i
            features = [x]
            for j in range(self.n_layers + 2):
                features.append(getattr(self, f"scale{scale}_layer{j}")(features[-1]))
            results.append(features[1:])
            if i != self.num_D - 1:
                x = self.downsample(x)
        return results
