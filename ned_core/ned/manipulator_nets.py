"""NED's emotion manipulator networks (StarGAN-v2 style, on sequences of 3D expression parameters).

Each frame is a 51-vector ``[jaw opening (DECA pose[3]), expression 0..49]``; the networks work on
windows of 10 frames. Attribute names and layer order reproduce NED's ``state_dict`` keys exactly
(``seq1``, ``LSTM``, ``seq2``, ``shared``, ``unshared``), so ``*_nets_finetuned.pth`` loads strictly.
Also here: the inference helpers NED's ``manipulator/test.py`` uses (Gaussian overlap-add of window
outputs, geometric median of reference styles, styles from emotion labels).

Must not import zmq, msgpack or the engine; reads and writes no files (see ``checkpoints``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ned_core.errors import InvalidOptionError

FRAME_DIM = 51
"""Per-frame manipulator vector: jaw opening + 50 expression coefficients."""
SEQ_LEN = 10
"""Window length NED trains and runs the manipulator with (hop 1)."""


def _he_init(module: nn.Module) -> None:
    """Kaiming-normal (fan-in) weights and zero biases on every Linear layer, as NED trains from."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(layer.bias)


def _mlp(sizes: Sequence[int], relu_last: bool) -> nn.Sequential:
    """Linear layers between consecutive ``sizes`` with a ReLU after each (and after the last if asked).

    The ReLUs sit between the Linears so the Linear indices are 0, 2, 4... like NED's keys.
    """
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if relu_last or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Generator(nn.Module):
    """Translates a window of frame vectors toward a style: (B, T, 51) + (B, 16) -> (B, T, 51).

    The output holds new absolute parameters, not a residual.

    Parameters
    ----------
    input_dim, style_dim:
        Frame vector and style sizes (51, 16 in NED).
    hidden_dim:
        Width of the two input Linear layers (512).
    lstm_dim:
        Hidden size of the 2-layer bidirectional LSTM (512); the output MLP is ``2 * lstm_dim`` wide.
    """

    def __init__(self, input_dim: int = FRAME_DIM, style_dim: int = 16, hidden_dim: int = 512,
                 lstm_dim: int = 512, lstm_layers: int = 2) -> None:
        super().__init__()
        self.seq1 = _mlp([input_dim + style_dim, hidden_dim, hidden_dim], relu_last=True)
        self.LSTM = nn.LSTM(hidden_dim, lstm_dim, lstm_layers, batch_first=True, bidirectional=True)
        self.seq2 = _mlp([2 * lstm_dim, 2 * lstm_dim, 2 * lstm_dim, input_dim], relu_last=False)
        _he_init(self)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Translate ``x`` (B, T, input_dim) with ``style`` (B, style_dim), the same style every step."""
        s = style[:, None, :].expand(-1, x.shape[1], -1)
        hidden, _ = self.LSTM(self.seq1(torch.cat([x, s], dim=2)))
        return self.seq2(hidden)


class MappingNetwork(nn.Module):
    """Maps a latent code and an emotion label to a style: (B, 4) + (B,) -> (B, 16).

    One shared trunk (3 Linear+ReLU) and one head per emotion (Linear+ReLU+Linear); the label picks
    the head. Labels follow ``ned_core.EMOTIONS``.
    """

    def __init__(self, latent_dim: int = 4, hidden_dim: int = 64, style_dim: int = 16,
                 num_domains: int = 7) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_domains = num_domains
        self.shared = _mlp([latent_dim, hidden_dim, hidden_dim, hidden_dim], relu_last=True)
        self.unshared = nn.ModuleList(
            _mlp([hidden_dim, hidden_dim, style_dim], relu_last=False) for _ in range(num_domains))
        _he_init(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Style of each row of ``z`` (B, latent_dim) for label ``y`` (B,) int64."""
        h = self.shared(z)
        heads = torch.stack([head(h) for head in self.unshared], dim=1)  # (B, domains, style)
        return heads[torch.arange(z.shape[0], device=z.device), y]


class _SequenceEncoder(nn.Module):
    """Per-step MLP -> 2-layer BiLSTM -> per-step MLP, averaged over time: (B, T, in) -> (B, out)."""

    def __init__(self, input_dim: int, output_dim: int, hidden_dims: tuple[int, int],
                 lstm_dim: int, head_dims: tuple[int, int]) -> None:
        super().__init__()
        self.seq1 = _mlp([input_dim, *hidden_dims], relu_last=True)
        self.LSTM = nn.LSTM(hidden_dims[-1], lstm_dim, 2, batch_first=True, bidirectional=True)
        self.seq2 = _mlp([2 * lstm_dim, *head_dims, output_dim], relu_last=False)
        _he_init(self)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.LSTM(self.seq1(x))
        return self.seq2(hidden).mean(dim=1)


class StyleEncoder(_SequenceEncoder):
    """Extracts the style of a window of frame vectors: (B, T, 51) -> (B, 16)."""

    def __init__(self, input_dim: int = FRAME_DIM, style_dim: int = 16,
                 hidden_dims: tuple[int, int] = (512, 256), lstm_dim: int = 128,
                 head_dims: tuple[int, int] = (128, 64)) -> None:
        super().__init__(input_dim, style_dim, hidden_dims, lstm_dim, head_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Style of each window of ``x`` (B, T, input_dim)."""
        return self.encode(x)


class Discriminator(_SequenceEncoder):
    """Scores how real a window looks for a given emotion: (B, T, 51) + (B,) -> (B,) logits."""

    def __init__(self, input_dim: int = FRAME_DIM, num_domains: int = 7,
                 hidden_dims: tuple[int, int] = (512, 256), lstm_dim: int = 128,
                 head_dims: tuple[int, int] = (128, 64)) -> None:
        super().__init__(input_dim, num_domains, hidden_dims, lstm_dim, head_dims)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Logit of label ``y`` (B,) int64 for each window of ``x``."""
        logits = self.encode(x)
        return logits[torch.arange(x.shape[0], device=x.device), y]


# ---------------------------------------------------------------------------------------------------
# Inference helpers (what NED's manipulator/test.py does around the networks)


def gaussian_window(length: int = SEQ_LEN, sigma: float = -1.0) -> np.ndarray:
    """Normalised Gaussian weights equal to ``cv2.getGaussianKernel(length, sigma)`` (OpenCV 4).

    A non-positive ``sigma`` takes OpenCV's default ``0.3 * ((length - 1) / 2 - 1) + 0.8`` (1.85 at 10).
    OpenCV 4's bit-exact kernel puts *both* middle taps of an even-length kernel at distance 0 (not
    +-0.5); NED's weights are what OpenCV returned, so this does the same. OpenCV uses fixed tables
    for odd lengths up to 9 with sigma <= 0; NED only uses length 10.
    """
    if sigma <= 0:
        sigma = 0.3 * ((length - 1) * 0.5 - 1) + 0.8
    x = np.abs(np.arange(length, dtype=np.float64) - (length - 1) / 2.0)
    if length % 2 == 0:
        x[length // 2 - 1:length // 2 + 1] = 0.0
    w = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return w / w.sum()


def sliding_windows(frames: np.ndarray, length: int = SEQ_LEN) -> np.ndarray:
    """All windows of ``length`` consecutive frames, hop 1: (T, C) -> (T - length + 1, length, C)."""
    frames = np.asarray(frames)
    if frames.ndim != 2 or frames.shape[0] < length:
        raise InvalidOptionError(
            f"the manipulator needs at least {length} frames of shape (T, C), got {frames.shape}",
            field="frames")
    idx = np.arange(length)[None, :] + np.arange(frames.shape[0] - length + 1)[:, None]
    return frames[idx]


def fuse_windows(outputs: np.ndarray | torch.Tensor, num_frames: int) -> np.ndarray:
    """Overlap-add hop-1 window outputs into one sequence, as NED's test script does.

    Each window is weighted by ``gaussian_window(L)`` and added at its start frame; then the first
    ``L - 1`` frames are overwritten by the first window's (unweighted) outputs and the last ``L - 1``
    frames by the last window's. NED computes those two edge windows with the first and the last style.

    Parameters
    ----------
    outputs:
        (W, L, C) generator outputs, window ``i`` covering frames ``i .. i + L - 1``.
    num_frames:
        T, the sequence length; must equal ``W + L - 1``.

    Returns
    -------
    (T, C) array, the dtype of ``outputs`` (float).
    """
    out = outputs.detach().cpu().numpy() if isinstance(outputs, torch.Tensor) else np.asarray(outputs)
    if out.ndim != 3:
        raise InvalidOptionError(f"window outputs must be (W, L, C), got {out.shape}", field="outputs")
    n_win, length, _ = out.shape
    if n_win < 1 or n_win + length - 1 != num_frames:
        raise InvalidOptionError(
            f"{n_win} windows of {length} frames cannot cover {num_frames} frames with hop 1",
            field="num_frames")
    weights = gaussian_window(length)[:, None]
    fused = np.zeros((num_frames, out.shape[2]), dtype=np.float64)
    for i in range(n_win):
        fused[i:i + length] += out[i] * weights
    fused[:length - 1] = out[0, :-1]
    fused[-(length - 1):] = out[-1, 1:]
    dtype = out.dtype if np.issubdtype(out.dtype, np.floating) else np.float32
    return fused.astype(dtype)


def window_style_index(num_windows: int, num_frames: int, num_styles: int) -> np.ndarray:
    """Which of ``num_styles`` styles each window uses when a clip is split into equal consecutive parts.

    NED's rule: window ``i`` takes style ``floor(i / (num_frames / num_styles))``.
    """
    if num_styles < 1:
        raise InvalidOptionError("at least one target style is needed", field="emotions")
    part = num_frames / num_styles
    return np.minimum(np.floor(np.arange(num_windows) / part).astype(np.int64), num_styles - 1)


def geometric_median(points: np.ndarray | torch.Tensor, eps: float = 1e-5,
                     max_iter: int = 10_000) -> np.ndarray:
    """Geometric median of (K, D) points by Weiszfeld's iteration (Vardi-Zhang step at data points).

    Starts at the mean and stops when a step moves less than ``eps`` (NED's tolerance), or after
    ``max_iter`` steps. Returns a (D,) float64 array.
    """
    x = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    x = x.astype(np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise InvalidOptionError(f"geometric median needs (K, D) points, got {x.shape}", field="styles")
    y = x.mean(axis=0)
    for _ in range(max_iter):
        dist = np.linalg.norm(x - y, axis=1)
        away = dist > 0
        if not away.any():
            return y
        inv = 1.0 / dist[away]
        t = (inv[:, None] * x[away]).sum(axis=0) / inv.sum()
        n_at = int((~away).sum())
        if n_at == 0:
            y_next = t
        else:
            # y sits on a data point: step toward t only as far as that point's pull allows.
            r = np.linalg.norm((t - y) * inv.sum())
            rinv = 0.0 if r == 0 else n_at / r
            y_next = max(0.0, 1.0 - rinv) * t + min(1.0, rinv) * y
        if np.linalg.norm(y - y_next) < eps:
            return y_next
        y = y_next
    return y


@torch.no_grad()
def label_styles(mapping: MappingNetwork, labels: Sequence[int], seed: int | None = None) -> torch.Tensor:
    """Style vectors for emotion ``labels`` from one latent code z ~ N(0, I), as NED's label mode.

    NED draws z unseeded, so its results vary run to run; a ``seed`` makes them repeatable (the same
    seed gives the same styles on any machine, since z is drawn on the CPU).

    Returns
    -------
    (len(labels), style_dim) float32 tensor on the mapping network's device.
    """
    labels = list(labels)
    for label in labels:
        if not 0 <= int(label) < mapping.num_domains:
            raise InvalidOptionError(
                f"emotion label {label} is outside 0..{mapping.num_domains - 1}", field="emotions")
    if not labels:
        raise InvalidOptionError("at least one emotion label is needed", field="emotions")
    gen = torch.Generator(device="cpu")
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    device = next(mapping.parameters()).device
    z = torch.randn(1, mapping.latent_dim, generator=gen).to(device)
    y = torch.tensor(labels, dtype=torch.int64, device=device)
    return mapping(z.expand(len(labels), -1), y)
