#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install packages, build (release), and run the
# bundled stories260K model on a stream.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset release
cmake --build --preset release
./build/release/apps/streamingllm/streamingllm run \
  -m ../shared/models/stories260K/stories260K.gguf -n 256 --temp 0
