#!/usr/bin/env bash
# The farm tools' own virtual environment: OpenJD's CLI and model, OpenCue's PyOutline and RQD.
# They are test tools only (ned-engine writes its farm files with the standard library), and they pin
# their own grpcio/protobuf, so they live apart from the project's .venv.
#   bash tests/farm/make_venv.sh            # into ${NED_FARM_VENV:-$HOME/.cache/ned/farm-venv}
set -euo pipefail
VENV="${NED_FARM_VENV:-$HOME/.cache/ned/farm-venv}"
PYTHON="${NED_FARM_PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ -x "$VENV/bin/openjd" ] && [ -x "$VENV/bin/rqd" ] && [ -f "$VENV/.complete" ]; then
    echo "farm venv ready: $VENV"; exit 0
fi
if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ] && [ -n "$(ls -A "$VENV" 2>/dev/null)" ]; then
    echo "make_venv.sh: $VENV exists and is not a virtual environment; not touching it" >&2; exit 1
fi
rm -rf "$VENV"  # a half-made one (no .complete): start again
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "openjd-cli==0.8.*" openjd-model \
    "opencue-pyoutline==1.37.*" "opencue-rqd==1.37.*" "opencue-proto==1.37.*" "opencue-pycue==1.37.*" \
    packaging
touch "$VENV/.complete"
echo "farm venv made: $VENV"
