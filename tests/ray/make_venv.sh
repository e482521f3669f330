#!/usr/bin/env bash
# Ray's own virtual environment for `ned-engine serve --ray` and tests/ray: Ray 2.60 (about 285 MB) apart
# from the project's .venv, which it sees through a .pth file (so ned_core, ned_engine and their
# dependencies are the project's own, and Ray's pins do not touch the project's environment).
#   bash tests/ray/make_venv.sh            # into ${NED_RAY_VENV:-$HOME/.cache/ned/ray-venv}
# NED_PROJECT_VENV names the project's venv (default: .venv of this checkout); run again after moving it.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${NED_RAY_VENV:-$HOME/.cache/ned/ray-venv}"
PROJECT="${NED_PROJECT_VENV:-$HERE/.venv}"
PYTHON="${NED_RAY_PYTHON:-$PROJECT/bin/python}"
[ -x "$PYTHON" ] || { echo "make_venv.sh: no Python at $PYTHON (run installers/install.sh --dev first)" >&2; exit 1; }
SITE="$("$PROJECT/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ] && [ -n "$(ls -A "$VENV" 2>/dev/null)" ]; then
    echo "make_venv.sh: $VENV exists and is not a virtual environment; not touching it" >&2; exit 1
fi
# packages both need stay at the project's versions (MediaPipe breaks on a newer protobuf)
PINS="$("$PROJECT/bin/python" - <<'PY'
from importlib.metadata import PackageNotFoundError, version
for name in ("protobuf", "msgpack", "numpy", "packaging", "pyyaml", "requests"):
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        pass
PY
)"
STAMP="ray==2.60.* $(echo $PINS)"
if [ ! -f "$VENV/.complete" ] || [ "$(cat "$VENV/.complete")" != "$STAMP" ]; then
    rm -rf "$VENV"  # a half-made one, or made against other project versions: start again
    # the base interpreter of the project's venv, so compiled packages of the project load in it
    BASE="$("$PYTHON" -c 'import sys; print(sys._base_executable)')"
    "$BASE" -m venv "$VENV"
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "ray==2.60.*" $PINS
    echo "$STAMP" > "$VENV/.complete"
fi
# the project's packages after Ray's own (addsitedir also reads the project's editable-install .pth
# files): NED_PROJECT_SITE when set (the tests set it, so two checkouts sharing this venv each test
# their own code), else the project that ran this script last
PURELIB="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "import os, site; site.addsitedir(os.environ.get('NED_PROJECT_SITE') or '$SITE')" > "$PURELIB/ned_project.pth"
NED_PROJECT_SITE="$SITE" "$VENV/bin/python" -c "import ray, ned_engine, ned_core.pipeline" >/dev/null
echo "ray venv ready: $VENV"
