#!/usr/bin/env bash
# The Python module's tests, given a configured and built release tree (cmake --preset release):
# builds the extension into that tree (-DSLLM_BUILD_PYTHON=ON, target _streamingllm), installs the
# package offline with pip into a fresh venv build/python-venv (Debian's python3, pybind11,
# numpy, pytest; no package index), and runs pytest from outside the source tree, so that the
# installed package is what is tested. Exits non-zero on any failure.
#   SLLM_BUILD_DIR  the build tree (default build/release; it provides the CLI the tests compare with)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
build=${SLLM_BUILD_DIR:-$repo/build/release}
venv=$build/python-venv
py=/usr/bin/python3

echo "== python module: build + offline pip install into $venv =="
rm -rf "$venv"
"$py" -m venv --system-site-packages "$venv"
SLLM_BUILD_DIR="$build" "$venv/bin/pip" install --no-build-isolation --no-index --no-deps \
  --disable-pip-version-check -q "$repo/python"
rm -rf "$repo/python/build" "$repo/python/streamingllm.egg-info"

echo "== python module: pytest =="
cd "$build"
SLLM_CLI="${SLLM_CLI:-$build/apps/streamingllm/streamingllm}" \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "$repo/python/tests"
