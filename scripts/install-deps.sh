#!/usr/bin/env bash
# Installs the Debian 12 packages streamingllm builds, tests and plots with (skips if present).
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config clang-format
  clang libclang-rt-14-dev  # the libFuzzer targets (fuzz/, the `fuzz` preset)
  libhwy-dev nlohmann-json3-dev libcpp-httplib-dev libcli11-dev libfmt-dev libedit-dev libpcre2-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-dev python3-venv python3-pybind11 python3-numpy python3-pytest python3-setuptools
  gnuplot-nox tmux
  chromium  # the chat page's test drives it headless (tests/chat_page_test.py): ~400 MB
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The downloaded .debs (~140 MB for chromium alone) are not needed once installed; CI disks are
  # small.
  $sudo apt-get clean
fi
