# Sourced, from the repository root, by the scripts that run on a GPU machine without a package registry
# (docs/gpu.md): unpacks the Debian packages scripts/gpu_deps.sh fetched into .gpu-deps/ to /tmp/deps,
# points the build (ATTNBENCH_PREFIX_PATH) and the loader at them, keeps apt-get out (ATTNBENCH_NO_APT),
# and sets `out` to $OUT (default ./out), created.
mkdir -p "${OUT:-out}" /tmp/deps
out=$(cd "${OUT:-out}" && pwd)
for f in .gpu-deps/*.deb; do dpkg -x "$f" /tmp/deps; done
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-} ATTNBENCH_PREFIX_PATH=/tmp/deps/usr
export ATTNBENCH_NO_APT=1
