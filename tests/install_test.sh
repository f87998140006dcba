#!/usr/bin/env bash
# Issue 9, acceptance 1 and 2: install the library to a temporary prefix, check that the
# installed headers include only the standard library and each other, build examples/ as a
# separate CMake project against that prefix alone, and run `generate MODEL "" 256`: its output
# must be the CLI's greedy run, byte for byte (CliTest.RunPrintsKnownGreedyText holds that one to
# the known text).
# usage: install_test.sh BUILD_DIR SOURCE_DIR CLI MODEL
set -euo pipefail
build=$1 src=$2 cli=$3 model=$4
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT

cmake --install "$build" --prefix "$prefix" >/dev/null
test -f "$prefix/lib/cmake/streamingllm/streamingllmConfig.cmake"
test -f "$prefix/lib/pkgconfig/streamingllm.pc"

# Every #include of the public headers: "streamingllm/..." or a standard header <name>.
bad=$(grep -h '^#include' "$prefix"/include/streamingllm/*.h |
      grep -vE '^#include ("streamingllm/[a-z_]+\.h"|<[a-z_]+>)$' || true)
if [ -n "$bad" ]; then
  echo "public headers include more than the standard library and each other:"; echo "$bad"
  exit 1
fi

cmake -S "$src/examples" -B "$prefix/examples" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$prefix/examples" >/dev/null
got=$("$prefix/examples/generate" "$model" "" 256)
want=$("$cli" run -m "$model" -n 256 --temp 0 2>/dev/null)
if [ "$got" != "$want" ]; then
  echo "generate printed:"; echo "$got"; echo "the CLI printed:"; echo "$want"
  exit 1
fi
case "$got" in
  "Once upon a time, there was a little girl named Lily."*) ;;
  *) echo "not the known greedy text: $got"; exit 1 ;;
esac
echo "installed, built examples/ against $prefix, generate printed the known greedy text"
