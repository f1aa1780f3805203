#!/bin/sh
# Build the worker's virtualenv: the one install recipe of deploy/Dockerfile.worker,
# also run outside Docker by tests/deploy (so the image's install is tested here).
#
#   build-venv.sh SOURCE_DIR VENV_DIR [APP_DIR]
#
# 1. builds the Bananas wheel from SOURCE_DIR (a checkout: pyproject.toml, src/),
# 2. creates VENV_DIR and installs the wheel (with the extras named in
#    BANANAS_EXTRAS, comma-separated, default none) and its dependencies into it,
# 3. installs APP_DIR/requirements.txt when there is one (the user's app's deps).
# PYTHON names the interpreter (default python3); PIP_* variables are honoured.
set -eu
if [ $# -lt 2 ]; then
  echo "usage: build-venv.sh SOURCE_DIR VENV_DIR [APP_DIR]" >&2
  exit 2
fi
SRC=$1
VENV=$2
APP=${3:-}
PYTHON=${PYTHON:-python3}
EXTRAS=${BANANAS_EXTRAS-}
WHEELS=$(mktemp -d)
trap 'rm -rf "$WHEELS"' EXIT

"$PYTHON" -m pip wheel --no-deps --wheel-dir "$WHEELS" "$SRC"
"$PYTHON" -m venv "$VENV"
WHEEL=$(ls "$WHEELS"/bananas-*.whl)
if [ -n "$EXTRAS" ]; then
  WHEEL="$WHEEL[$EXTRAS]"
fi
"$VENV/bin/python" -m pip install "$WHEEL"
if [ -n "$APP" ] && [ -f "$APP/requirements.txt" ]; then
  "$VENV/bin/python" -m pip install -r "$APP/requirements.txt"
fi
"$VENV/bin/bananas" --version
