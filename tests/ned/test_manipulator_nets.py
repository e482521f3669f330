"""Manipulator networks: NED's exact state_dict layout, forward contracts and inference helpers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ned_core.errors import InvalidOptionError
from ned_core.ned.manipulator_nets import (
    Discriminator,
    Generator,
    MappingNetwork,
    StyleEncoder,
    fuse_windows,
    gaussian_window,
    geometric_median,
    label_styles,
    sliding_windows,
    window_style_index,
)


def _lstm_shapes(in_dim: int, hidden: int, second_in: int) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for layer, n_in in ((0, in_dim), (1, second_in)):
        for suffix in ("", "_reverse"):
            shapes[f"LSTM.weight_ih_l{layer}{suffix}"] = (4 * hidden, n_in)
            shapes[f"LSTM.weight_hh_l{layer}{suffix}"] = (4 * hidden, hidden)
            shapes[f"LSTM.bias_ih_l{layer}{suffix}"] = (4 * hidden,)
            shapes[f"LSTM.bias_hh_l{layer}{suffix}"] = (4 * hidden,)
    return shapes


def _linear(prefix: str, n_out: int, n_in: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (n_out, n_in), f"{prefix}.bias": (n_out,)}


def _reference_generator() -> dict[str, tuple[int, ...]]:
    return {**_linear("seq1.0", 512, 67), **_linear("seq1.2", 512, 512), **_lstm_shapes(512, 512, 1024),
            **_linear("seq2.0", 1024, 1024), **_linear("seq2.2", 1024, 1024), **_linear("seq2.4", 51, 1024)}


def _reference_encoder(n_out: int) -> dict[str, tuple[int, ...]]:
    return {**_linear("seq1.0", 512, 51), **_linear("seq1.2", 256, 512), **_lstm_shapes(256, 128, 256),
            **_linear("seq2.0", 128, 256), **_linear("seq2.2", 64, 128), **_linear("seq2.4", n_out, 64)}


def _reference_mapping() -> dict[str, tuple[int, ...]]:
    shapes = {**_linear("shared.0", 64, 4), **_linear("shared.2", 64, 64), **_linear("shared.4", 64, 64)}
    for k in range(7):
        shapes.update({**_linear(f"unshared.{k}.0", 64, 64), **_linear(f"unshared.{k}.2", 16, 64)})
    return shapes


@pytest.mark.parametrize("net,reference,n_params", [
    (Generator, _reference_generator, 12_951_091),
    (MappingNetwork, _reference_mapping, 45_040),
    (StyleEncoder, lambda: _reference_encoder(16), 990_672),
    (Discriminator, lambda: _reference_encoder(7), 990_087),
])
def test_full_size_state_dict_matches_ned(net, reference, n_params):
    module = net()
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == reference()
    assert sum(p.numel() for p in module.parameters()) == n_params


def test_tiny_networks_keep_shapes_and_contracts():
    torch.manual_seed(0)
    g = Generator(hidden_dim=32, lstm_dim=16)
    f = MappingNetwork(hidden_dim=8)
    e = StyleEncoder(hidden_dims=(32, 16), lstm_dim=8, head_dims=(8, 8))
    d = Discriminator(hidden_dims=(32, 16), lstm_dim=8, head_dims=(8, 8))
    x = torch.randn(3, 10, 51)
    y = torch.tensor([0, 4, 6])
    s = f(torch.randn(3, 4), y)
    assert s.shape == (3, 16) and e(x).shape == (3, 16)
    assert g(x, s).shape == (3, 10, 51)
    assert d(x, y).shape == (3,)


def test_mapping_network_picks_the_head_of_each_label():
    f = MappingNetwork()
    z = torch.randn(1, 4).expand(7, -1)
    s = f(z, torch.arange(7))
    for k in range(7):
        assert torch.allclose(s[k], f.unshared[k](f.shared(z[:1]))[0], atol=1e-5)


def test_discriminator_returns_the_logit_of_the_label():
    d = Discriminator()
    x = torch.randn(2, 10, 51)
    all_logits = d.seq2(d.LSTM(d.seq1(x))[0]).mean(dim=1)
    assert torch.allclose(d(x, torch.tensor([2, 5])), all_logits[[0, 1], [2, 5]], atol=1e-6)


def test_generator_style_changes_output_and_is_per_window():
    g = Generator(hidden_dim=32, lstm_dim=16)
    x = torch.randn(1, 10, 51).expand(2, -1, -1)
    out = g(x, torch.randn(2, 16))
    assert not torch.allclose(out[0], out[1])


def test_gaussian_window_is_opencvs_kernel():
    assert np.allclose(gaussian_window(10), cv2.getGaussianKernel(10, -1)[:, 0], atol=1e-12)
    assert np.allclose(gaussian_window(12, 2.5), cv2.getGaussianKernel(12, 2.5)[:, 0], atol=1e-12)
    assert gaussian_window(10).sum() == pytest.approx(1.0)


def test_fuse_windows_keeps_a_constant():
    outputs = np.full((41, 10, 51), 0.7, dtype=np.float32)
    fused = fuse_windows(outputs, 50)
    assert fused.shape == (50, 51) and fused.dtype == np.float32
    assert np.allclose(fused, 0.7)


def test_fuse_windows_edges_come_from_the_first_and_last_window():
    rng = np.random.default_rng(1)
    outputs = rng.normal(size=(15, 10, 3))
    fused = fuse_windows(torch.from_numpy(outputs), 24)
    assert np.allclose(fused[:9], outputs[0, :9])
    assert np.allclose(fused[-9:], outputs[-1, 1:])
    w = gaussian_window(10)
    t = 12  # an interior frame: covered by windows 3..12 at offsets 9..0
    assert np.allclose(fused[t], sum(outputs[t - k, k] * w[k] for k in range(10)))


def test_fuse_windows_rejects_a_wrong_length():
    with pytest.raises(InvalidOptionError):
        fuse_windows(np.zeros((5, 10, 51)), 20)


def test_sliding_windows_and_style_split():
    frames = np.arange(24 * 2, dtype=np.float32).reshape(24, 2)
    windows = sliding_windows(frames)
    assert windows.shape == (15, 10, 2)
    assert np.array_equal(windows[4], frames[4:14])
    idx = window_style_index(15, 24, 3)  # parts of 8 frames
    assert idx.tolist() == [0] * 8 + [1] * 7
    with pytest.raises(InvalidOptionError):
        sliding_windows(frames[:5])


def test_label_styles_repeat_with_a_seed():
    f = MappingNetwork()
    a = label_styles(f, [4, 1], seed=123)
    b = label_styles(f, [4, 1], seed=123)
    assert a.shape == (2, 16) and torch.equal(a, b)
    assert not torch.equal(a, label_styles(f, [4, 1], seed=124))
    with pytest.raises(InvalidOptionError):
        label_styles(f, [7], seed=0)


def test_geometric_median():
    square = np.array([[0, 0], [2, 0], [0, 2], [2, 2]], dtype=float)
    assert np.allclose(geometric_median(square), [1, 1])
    assert np.allclose(geometric_median(np.array([[0.0], [1.0], [10.0]])), [1.0], atol=1e-4)
    # Robust to an outlier and a true minimiser of the summed distances.
    rng = np.random.default_rng(0)
    pts = np.vstack([rng.normal(size=(20, 16)), np.full((1, 16), 50.0)])
    med = geometric_median(torch.from_numpy(pts))

    def cost(y):
        return np.linalg.norm(pts - y, axis=1).sum()

    assert np.linalg.norm(med) < 2.0
    assert all(cost(med) <= cost(med + 1e-3 * rng.normal(size=16)) for _ in range(20))
    assert np.allclose(geometric_median(np.ones((3, 2))), [1, 1])
