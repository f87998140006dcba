#!/usr/bin/env bash
# The whole test suite: a format check, release build + tests, the Python module (built on the
# release tree) + pytest, a clang ASan/UBSan build + tests, ThreadSanitizer on the tests labelled
# `threads` (pool, batched decoding, server), and a smoke run of every libFuzzer target (built in
# the ASan tree). Under 30 minutes on 2 cores (docs/RELIABILITY.md, CI).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)
# Each stage's wall time, so that CI's 30-minute budget can be watched stage by stage.
stage_start=$SECONDS
stage() {
  echo "   (took $((SECONDS - stage_start)) s)"
  stage_start=$SECONDS
  echo "$1"
}

stage "== format check (clang-format) =="
git ls-files '*.cc' '*.h' | xargs clang-format --dry-run --Werror

stage "== release =="
cmake --preset release
cmake --build --preset release -j "$jobs"
ctest --preset release -j "$jobs"

stage "== python module (release build, offline pip install into a venv, pytest) =="
bash scripts/test_python.sh

stage "== ASan/UBSan (clang, -O1) =="
cmake --preset debug-asan
cmake --build --preset debug-asan -j "$jobs"
ctest --preset debug-asan -j "$jobs"

stage "== ThreadSanitizer (tests labelled threads) =="
cmake --preset tsan
cmake --build --preset tsan -j "$jobs"
ctest --preset tsan -j "$jobs"

stage "== fuzz smoke (every libFuzzer target of the ASan/UBSan tree, ${SLLM_FUZZ_SECONDS:=5} s each) =="
SLLM_FUZZ_PRESET=debug-asan bash scripts/fuzz.sh "$SLLM_FUZZ_SECONDS"
stage "== done in $SECONDS s =="
