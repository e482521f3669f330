"""Renderer networks: NED's exact keys (337 for G, duplicated ResnetBlocks), masking, normalisation."""

from __future__ import annotations

import pytest
import torch

from ned_core.ned.renderer_nets import (
    Generator,
    InstanceNorm,
    MultiscaleDiscriminator,
    use_instance_statistics,
)

_IN = ("running_mean", "running_var", "num_batches_tracked")


def _conv(prefix, shape, transposed=False):
    # A transposed convolution's weight is (in, out, k, k); its bias has one value per output channel.
    return {f"{prefix}.weight": shape, f"{prefix}.bias": (shape[1] if transposed else shape[0],)}


def _norm(prefix, c):
    return {f"{prefix}.{b}": ((c,) if b != "num_batches_tracked" else ()) for b in _IN}


def _resblock(prefix, c=512):
    keys = {}
    for name in ("conv_block", "resnetblock_sequential"):
        for conv, norm in ((1, 2), (5, 6)):
            keys.update(_conv(f"{prefix}.{name}.{conv}", (c, c, 3, 3)))
            keys.update(_norm(f"{prefix}.{name}.{norm}", c))
    return keys


def _reference_generator_keys():
    """G's keys and shapes as NED's reference lists them, written out independently."""
    keys = {}
    for branch, in_nc in (("model_down_seg", 27), ("model_down_img", 6)):
        for conv, norm, shape in ((1, 2, (64, in_nc, 7, 7)), (4, 5, (128, 64, 3, 3)),
                                  (7, 8, (256, 128, 3, 3)), (10, 11, (512, 256, 3, 3))):
            keys.update(_conv(f"{branch}.{conv}", shape))
            keys.update(_norm(f"{branch}.{norm}", shape[0]))
        for i in range(13, 18):
            keys.update(_resblock(f"{branch}.{i}"))
    for i in range(4):
        keys.update(_resblock(f"model_res_img.{i}"))
    for conv, norm, shape in ((0, 1, (512, 256, 3, 3)), (3, 4, (256, 128, 3, 3)), (6, 7, (128, 64, 3, 3))):
        keys.update(_conv(f"model_up_img.{conv}", shape, transposed=True))
        keys.update(_norm(f"model_up_img.{norm}", shape[1]))
    keys.update(_conv("model_final_img.1", (3, 64, 7, 7)))
    return keys


@pytest.fixture(scope="module")
def full_generator():
    return Generator()


def test_full_generator_matches_ned(full_generator):
    state = full_generator.state_dict()
    assert len(state) == 337
    assert {k: tuple(v.shape) for k, v in state.items()} == _reference_generator_keys()
    assert sum(p.numel() for p in full_generator.parameters()) == 70_834_755  # 70.83 M
    block = full_generator.model_res_img[0]
    assert block.conv_block is block.resnetblock_sequential


def test_full_discriminator_matches_ned():
    d = MultiscaleDiscriminator()
    expected = {}
    for s in (0, 1):
        for j, shape in enumerate([(64, 12, 4, 4), (128, 64, 4, 4), (256, 128, 4, 4), (512, 256, 4, 4),
                                   (1, 512, 4, 4)]):
            expected[f"scale{s}_layer{j}.0.weight"] = shape
            expected[f"scale{s}_layer{j}.0.bias"] = (shape[0],)
            if 1 <= j <= 3:
                expected.update(_norm(f"scale{s}_layer{j}.1", shape[0]))
    assert {k: tuple(v.shape) for k, v in d.state_dict().items()} == expected
    assert sum(p.numel() for p in d.parameters()) == 5_547_906


def _tiny_generator():
    torch.manual_seed(0)
    return Generator(ngf=4, n_downsample=2, n_blocks=3)


def _inputs(size=16):
    torch.manual_seed(1)
    cond = torch.rand(1, 30, size, size)
    mask = torch.zeros(size, size)
    mask[4:12, 3:13] = 1.0
    cond[:, 29] = mask  # the current (last) frame's mask
    cond[:, 9] = 1 - mask  # earlier frames' masks do not matter
    return cond, torch.rand(1, 6, size, size) * 2 - 1, mask.bool()


def test_output_is_masked_to_black_outside_the_current_face():
    g = _tiny_generator()
    cond, prev, mask = _inputs()
    out = g(cond, prev)
    assert out.shape == (1, 3, 16, 16)
    assert torch.all(out[0][:, ~mask] == -1.0)
    assert out.min() >= -1 and out.max() <= 1 and out[0][:, mask].std() > 0


def test_eval_keeps_per_image_normalisation_and_buffers():
    g = _tiny_generator()
    cond, prev, _ = _inputs()
    with torch.no_grad():
        train_out = g.train()(cond, prev)
        buffers = {k: v.clone() for k, v in g.state_dict().items() if "running" in k}
        eval_out = g.eval()(cond, prev)
    assert torch.allclose(train_out, eval_out, atol=1e-6)
    assert all(torch.equal(v, g.state_dict()[k]) for k, v in buffers.items())
    use_instance_statistics(g, False)  # running statistics: what a plain .eval() would give
    with torch.no_grad():
        assert not torch.allclose(g(cond, prev), eval_out, atol=1e-3)
    assert any(isinstance(m, InstanceNorm) for m in g.modules())


def test_discriminator_returns_every_layer_and_ignores_the_mask_channel():
    d = MultiscaleDiscriminator(ndf=8)
    x = torch.rand(1, 13, 32, 32)  # 9 conditioning + mask + 3 image, as NED feeds it
    feats = d(x)
    assert len(feats) == 2 and all(len(f) == 5 for f in feats)
    assert feats[0][0].shape[-1] == 17 and feats[1][0].shape[-1] == 9  # full, then half resolution
    assert feats[0][-1].shape[1] == 1
    y = x.clone()
    y[:, 9] = torch.rand(32, 32)
    assert torch.equal(d(y)[0][-1], feats[0][-1])
