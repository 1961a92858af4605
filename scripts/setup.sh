#!/usr/bin/env bash
# Installs every Debian package attnbench needs, skipping what is already installed.
# Used by the README's two commands and by CI; safe to run again. ATTNBENCH_NO_APT=1 skips it, for a
# machine whose packages come another way (scripts/gpu_deps.sh, ATTNBENCH_PREFIX_PATH in build.sh).
# --tests also installs what only the tests use (scripts/test.sh passes it); where those cannot be
# installed, the tests that need them are skipped, and say so.
set -euo pipefail
if [[ "${ATTNBENCH_NO_APT:-0}" == 1 ]]; then exit 0; fi

packages=(
  build-essential cmake ninja-build ccache git unzip python3 python3-pip
  libtorch-dev libopenblas0-pthread
  libyaml-cpp-dev libfmt-dev libeigen3-dev libboost-dev libspectra-dev
  libgtest-dev nlohmann-json3-dev libbz2-dev libutf8proc-dev libonig-dev libre2-dev
  clang-14 libclang-rt-14-dev python3-matplotlib
  chromium  # headless, for the HTML report's test (tests/scripts/test_report_page.py)
  python3-dev python3-torch pybind11-dev   # the python plugin: Debian's torch for Python is libtorch-dev's 1.13
)
# tests/slurm: a one-node Slurm started by the test itself (no systemd needed), and strace to see which
# files each array task writes.
test_packages=(slurm-wlm munge strace)

missing_of() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}
sudo_cmd=()
if [[ $(id -u) != 0 ]]; then sudo_cmd=(sudo); fi
updated=0
install() {
  if ((!updated)); then
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    updated=1
  fi
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

mapfile -t missing < <(missing_of "${packages[@]}")
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  install "${missing[@]}"
fi
if [[ ${1:-} == --tests ]]; then
  mapfile -t missing < <(missing_of "${test_packages[@]}")
  if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]} (for the tests)"
    install "${missing[@]}" || echo "setup: warning: could not install ${missing[*]}; the tests that need them will be skipped"
  fi
fi
