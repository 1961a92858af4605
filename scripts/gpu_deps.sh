#!/usr/bin/env bash
# Downloads the Debian packages a CUDA build needs into .gpu-deps/, for a GPU machine that has python3's
# CUDA torch and nvcc but no package registry. There, unpack and build with:
#   mkdir -p /tmp/deps && for f in .gpu-deps/*.deb; do dpkg -x "$f" /tmp/deps; done
#   export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu ATTNBENCH_PREFIX_PATH=/tmp/deps/usr ATTNBENCH_NO_APT=1
#   scripts/build.sh --cuda
# Extra package names may be given as arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-deps
cd .gpu-deps
apt-get update -qq > /dev/null 2>&1 || true
apt-get download libyaml-cpp-dev libyaml-cpp0.7 libfmt-dev libfmt9 libboost1.74-dev libeigen3-dev \
  libspectra-dev libgtest-dev googletest nlohmann-json3-dev libutf8proc-dev libutf8proc2 \
  libonig-dev libonig5 libre2-dev libre2-9 libbz2-dev "$@"
du -sh .
