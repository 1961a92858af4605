#!/usr/bin/env bash
# Installs every Debian package attnbench needs, skipping what is already installed.
# Used by the README's two commands and by CI; safe to run again. ATTNBENCH_NO_APT=1 skips it, for a
# machine whose packages come another way (scripts/gpu_deps.sh, ATTNBENCH_PREFIX_PATH in build.sh).
set -euo pipefail
if [[ "${ATTNBENCH_NO_APT:-0}" == 1 ]]; then exit 0; fi

packages=(
  build-essential cmake ninja-build ccache git unzip python3 python3-pip
  libtorch-dev libopenblas0-pthread
  libyaml-cpp-dev libfmt-dev libeigen3-dev libboost-dev libspectra-dev
  libgtest-dev nlohmann-json3-dev libbz2-dev libutf8proc-dev
  clang-14 libclang-rt-14-dev python3-matplotlib
  python3-dev python3-torch pybind11-dev   # the python plugin: Debian's torch for Python is libtorch-dev's 1.13
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo_cmd=()
  if [[ $(id -u) != 0 ]]; then sudo_cmd=(sudo); fi
  echo "setup: installing ${missing[*]}"
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
