#!/usr/bin/env bash
# The whole test suite: a format check, release build + tests, the Python module (built on the
# release tree) + pytest, Debug+ASan/UBSan build + tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)

echo "== format check (clang-format) =="
git ls-files '*.cc' '*.h' | xargs clang-format --dry-run --Werror

echo "== release =="
cmake --preset release
cmake --build --preset release -j "$jobs"
ctest --preset release -j "$jobs"

echo "== python module (release build, offline pip install into a venv, pytest) =="
bash scripts/test_python.sh

echo "== debug + ASan/UBSan =="
cmake --preset debug-asan
cmake --build --preset debug-asan -j "$jobs"
ctest --preset debug-asan -j "$jobs"
