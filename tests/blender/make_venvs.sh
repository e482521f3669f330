#!/usr/bin/env bash
# Make the virtual environments the Blender tests run in: the PyPI `bpy` module (Blender as a Python
# module, CPython 3.11) for Blender 4.5 LTS and 5.0, each with the add-on's two runtime wheels.
#
#   bash tests/blender/make_venvs.sh [4.5|5.0 ...]     # default: both
#
# Venvs go to ${NED_BPY_CACHE:-$HOME/.cache/ned/bpy}/<version> (outside the repo, so CI reuses them; about
# 1 GB each). A venv is made only when missing or incomplete (`.ok` marks a finished one): running this
# again costs nothing. bpy 4.5 needs numpy < 2, which is why Blender never shares the project's .venv.
set -euo pipefail

CACHE="${NED_BPY_CACHE:-$HOME/.cache/ned/bpy}"
PYTHON="${NED_BPY_PYTHON:-python3.11}"
HERE="$(cd "$(dirname "$0")" && pwd)"
WHEELS_TXT="$HERE/../../plugins/blender/wheels.txt"

# Blender version -> the bpy release and numpy cap used for it.
declare -A BPY=([4.5]="bpy==4.5.15" [5.0]="bpy==5.0.1")
declare -A NUMPY=([4.5]="numpy<2" [5.0]="numpy<2.4")

versions=("$@")
[ ${#versions[@]} -eq 0 ] && versions=(4.5 5.0)

# The add-on's own runtime requirements (msgpack, pyzmq), exactly as the extension bundles them.
mapfile -t runtime < <(grep -v '^\s*#' "$WHEELS_TXT" | grep -v '^\s*$' | sed 's/\s*;.*$//' | sort -u)

for version in "${versions[@]}"; do
    if [ -z "${BPY[$version]:-}" ]; then
        echo "make_venvs: unknown Blender version $version (known: ${!BPY[*]})" >&2
        exit 2
    fi
    venv="$CACHE/$version"
    if [ -f "$venv/.ok" ] && [ "$(cat "$venv/.ok")" = "${BPY[$version]} ${NUMPY[$version]} ${runtime[*]}" ]; then
        echo "make_venvs: $venv is ready (${BPY[$version]})"
        continue
    fi
    echo "make_venvs: making $venv (${BPY[$version]}, ${NUMPY[$version]}, ${runtime[*]})"
    rm -rf "$venv"
    mkdir -p "$CACHE"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "${BPY[$version]}" "${NUMPY[$version]}" "${runtime[@]}"
    "$venv/bin/python" -c "import bpy, msgpack, zmq; print('bpy', bpy.app.version_string)"
    echo "${BPY[$version]} ${NUMPY[$version]} ${runtime[*]}" > "$venv/.ok"
done
