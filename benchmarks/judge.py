"""Independent measuring instruments for the emotion benchmark: an emotion classifier and a face identity
distance. A benchmark only: nothing here is a training signal, a loss or a parameter-search target, and
the product (ned_core, ned_engine, plugins) must never import it.

Owns:
  - ``EmotionJudge``: the network of the PyPI sdist ``facial-emotion-recognition==0.3.4`` (its weights
    ``model.pkl``, fetched by ``benchmarks/setup_judge.sh`` into ``benchmarks/.cache/``) on a face crop
    found by OpenCV's Haar frontal-face cascade. ``judge(image_rgb8)`` returns a distribution over NED's
    seven labels.
  - ``IdentityJudge``: dlib's ResNet face descriptor (``face_recognition_models``) and the Euclidean
    distance of two faces' 128-D embeddings (dlib's same-person threshold is about 0.6).

Imports numpy, torch, cv2 and dlib only (never ned_core): it must measure the product from outside.

The network below (``NetworkV2``) is my own copy of the architecture in that sdist's ``networks.py``,
written to load its state dict without the package (which imports torchvision and facenet_pytorch):

    facial_emotion_recognition 0.3.4 -- Copyright (c) Rayyan Akhtar
    Licensed under the MIT License (as declared in the sdist's setup.py and PKG-INFO; the sdist ships
    no LICENSE file; the set-up step keeps both in benchmarks/.cache/emotion_judge/):

    Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
    associated documentation files (the "Software"), to deal in the Software without restriction,
    including without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense,
    and/or sell copies of the Software, and to permit persons to whom the Software is furnished to do so,
    subject to the following conditions: The above copyright notice and this permission notice shall be
    included in all copies or substantial portions of the Software. THE SOFTWARE IS PROVIDED "AS IS",
    WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
    MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
    COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF
    CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR
    OTHER DEALINGS IN THE SOFTWARE.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

CACHE = Path(__file__).resolve().parent / ".cache" / "emotion_judge"
WEIGHTS = CACHE / "model.pkl"
SETUP_HINT = "run `bash benchmarks/setup_judge.sh` first"

# The network's output order (the sdist's ``emotions`` table) and NED's name for each.
JUDGE_ORDER = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
NED_NAME = {"Angry": "angry", "Disgust": "disgusted", "Fear": "fear", "Happy": "happy", "Sad": "sad",
            "Surprise": "surprised", "Neutral": "neutral"}
NED_LABELS = ("neutral", "angry", "disgusted", "fear", "happy", "sad", "surprised")

# The detector settings the figures used; kept fixed so the figures stay comparable.
CASCADE_FILE = "haarcascade_frontalface_default.xml"
SCALE_FACTOR, MIN_NEIGHBORS, MIN_SIZE = 1.1, 5, (60, 60)
INPUT_SIZE = 48
DETECT_SIDE = 700  # identity: HOG face detection on at most this many px (shorter side)


def _block(in_c: int, out_c: int, stride: int) -> nn.Sequential:
    # Index layout (pad, conv, bn, relu) matches the sdist's state-dict keys, e.g. ``conv_2.1.weight``.
    return nn.Sequential(nn.ReflectionPad2d(padding=1),
                         nn.Conv2d(in_c, out_c, kernel_size=(3, 3), stride=stride, padding=0),
                         nn.BatchNorm2d(out_c), nn.ReLU(inplace=True))


class NetworkV2(nn.Module):
    """Four reflection-padded conv blocks (48 -> 6 px) and a two-layer sigmoid head (MIT, see header)."""

    def __init__(self, in_c: int = 1, nl: int = 32, out_f: int = 7) -> None:
        super().__init__()
        self.conv_1 = _block(in_c, nl, 1)
        self.conv_2 = _block(nl, 2 * nl, 2)
        self.conv_3 = _block(2 * nl, 4 * nl, 2)
        self.conv_4 = _block(4 * nl, 8 * nl, 2)
        self.linear = nn.Sequential(nn.Linear(8 * nl * 6 * 6, 256), nn.ReLU(inplace=True),
                                    nn.Linear(256, out_f), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_4(self.conv_3(self.conv_2(self.conv_1(x))))
        return self.linear(x.reshape((x.shape[0], -1)))


def _rgb8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected display-referred RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
    return image


class EmotionJudge:
    """The classifier on the largest Haar-cascade face of an RGB uint8 image."""

    def __init__(self, weights: Path = WEIGHTS) -> None:
        if not Path(weights).is_file():
            raise FileNotFoundError(f"judge weights not found at {weights}: {SETUP_HINT}")
        torch.set_num_threads(1)  # tiny network; the machine's cores are shared
        state = torch.load(weights, weights_only=True, map_location="cpu")["network"]
        self.network = NetworkV2(in_c=1, nl=32, out_f=7)
        self.network.load_state_dict(state, strict=True)
        self.network.eval()
        self.cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / CASCADE_FILE))
        if self.cascade.empty():
            raise RuntimeError(f"OpenCV could not load {CASCADE_FILE} (needs opencv-python-headless < 5)")

    def face_box(self, gray: np.ndarray) -> tuple[int, int, int, int] | None:
        """(x, y, w, h) of the largest detected face, or None."""
        boxes = self.cascade.detectMultiScale(gray, SCALE_FACTOR, MIN_NEIGHBORS, minSize=MIN_SIZE)
        if len(boxes) == 0:
            return None
        x, y, w, h = max(boxes, key=lambda b: int(b[2]) * int(b[3]))
        return int(x), int(y), int(w), int(h)

    @torch.no_grad()
    def scores(self, face_gray: np.ndarray) -> np.ndarray:
        """The seven sigmoid outputs (JUDGE_ORDER) of a grayscale uint8 face crop of any size."""
        # INTER_AREA averages like PIL's antialiased resize, which the sdist's transform used.
        small = cv2.resize(face_gray, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
        x = (torch.from_numpy(small.astype(np.float32) / 255.0) - 0.5) / 0.5
        return self.network(x[None, None]).numpy()[0].astype(np.float64)

    def judge(self, image_rgb8: np.ndarray) -> dict[str, Any]:
        """Distribution over NED's labels on the largest face.

        Returns ``{"face": bool, "box": (x, y, w, h) | None, "probs": {label: p}, "top": label | None}``;
        with no face found, ``probs`` is empty and ``top`` None (the caller counts it as a miss).
        """
        gray = cv2.cvtColor(_rgb8(image_rgb8), cv2.COLOR_RGB2GRAY)
        box = self.face_box(gray)
        if box is None:
            return {"face": False, "box": None, "probs": {}, "top": None}
        x, y, w, h = box
        raw = self.scores(gray[y:y + h, x:x + w])
        dist = raw / raw.sum()
        probs = {NED_NAME[name]: float(p) for name, p in zip(JUDGE_ORDER, dist, strict=True)}
        return {"face": True, "box": box, "probs": probs, "top": max(probs, key=probs.__getitem__)}


def _dlib_models() -> Path:
    # face_recognition_models' __init__ imports pkg_resources (gone from recent setuptools): locate the
    # package's files without importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"face_recognition_models is not installed: {SETUP_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class IdentityJudge:
    """dlib's ResNet face descriptor: 128-D embedding of the largest HOG-detected face."""

    def __init__(self) -> None:
        import dlib  # only the identity measure needs it

        models = _dlib_models()
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self.encoder = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def embedding(self, image_rgb8: np.ndarray) -> np.ndarray | None:
        """The face descriptor of the largest face, or None when HOG finds no face.

        The detector looks at a copy scaled to at most ``DETECT_SIDE`` px on the shorter side (the London
        photos' faces stay far above HOG's 80 px minimum, and full-size HOG is the slow part); frames
        smaller than 500 px a side (GRID's 360x288) are upsampled once, as dlib's examples do. Landmarks
        and the descriptor use the full-resolution image.
        """
        image = np.ascontiguousarray(_rgb8(image_rgb8))
        side = min(image.shape[:2])
        scale = min(1.0, DETECT_SIDE / side)
        small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale,
                                                      interpolation=cv2.INTER_AREA)
        faces = self.detector(small, 1 if side < 500 else 0)
        if len(faces) == 0:
            return None
        face = max(faces, key=lambda r: r.width() * r.height())
        rect = self._dlib.rectangle(int(face.left() / scale), int(face.top() / scale),
                                    int(face.right() / scale), int(face.bottom() / scale))
        shape = self.predictor(image, rect)
        return np.asarray(self.encoder.compute_face_descriptor(image, shape), dtype=np.float64)

    def distance(self, a_rgb8: np.ndarray, b_rgb8: np.ndarray) -> float | None:
        """Euclidean distance of the two faces' embeddings (None if either has no face)."""
        ea, eb = self.embedding(a_rgb8), self.embedding(b_rgb8)
        if ea is None or eb is None:
            return None
        return float(np.linalg.norm(ea - eb))


@lru_cache(maxsize=1)
def emotion_judge() -> EmotionJudge:
    """One shared EmotionJudge per process."""
    return EmotionJudge()


@lru_cache(maxsize=1)
def identity_judge() -> IdentityJudge:
    """One shared IdentityJudge per process."""
    return IdentityJudge()


def judge(image_rgb8: np.ndarray) -> dict[str, Any]:
    """The emotion judge's verdict on the largest face of a display-referred RGB uint8 image."""
    return emotion_judge().judge(image_rgb8)


def identity_distance(a_rgb8: np.ndarray, b_rgb8: np.ndarray) -> float | None:
    """dlib face-descriptor distance between the largest faces of two RGB uint8 images."""
    return identity_judge().distance(a_rgb8, b_rgb8)


def _validate(data: Path) -> None:
    """Print the judge's figures on the London photos (the issue's reference numbers)."""
    for folder, suffix, target in (("smiling", "_08.jpg", "happy"), ("neutral", "_03.jpg", "neutral")):
        p, top, miss = [], [], 0
        for path in sorted((data / folder).glob(f"*{suffix}")):
            rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            v = judge(rgb)
            if not v["face"]:
                miss += 1
                p.append(0.0)
                top.append(False)
                continue
            p.append(v["probs"]["happy"])
            top.append(v["top"] == target)
        print(f"{folder:>8}: n={len(p)} no-face={miss} mean p(happy)={np.mean(p):.3f} "
              f"top-1 {target}={np.mean(top):.0%}")


if __name__ == "__main__":
    import sys

    _validate(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/data/london"))
