#!/usr/bin/env bash
# Install NED into ./.venv (created if missing): the core pipeline, the protocol and the engine.
#   --dev   also the test tools and torch (CPU) for the NED backend's tests
#   --ned   also torch (CPU), for --backend ned
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
dev=0; ned=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1; ned=1 ;;
    --ned) ned=1 ;;
    *) echo "install.sh: unknown option $arg (use --dev or --ned)" >&2; exit 2 ;;
  esac
done
py="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$py" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
extras="track"
[ "$dev" = 1 ] && extras="$extras,dev"
[ "$ned" = 1 ] && extras="$extras,ned"
"${pip[@]}" -e ".[$extras]" -e ./protocol -e ./engine
# MediaPipe 0.10.21 is the newest wheel that still ships the face-mesh model; its metadata asks for
# numpy<2 although it runs with numpy 2, so it is installed without its declared dependencies (the
# ones it really imports are the "track" extra above).
"${pip[@]}" --no-deps "mediapipe==0.10.21"
echo "NED installed in $root/.venv (run .venv/bin/ned --help)"
