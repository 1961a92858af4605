#!/usr/bin/env python3
"""Builds the plugin that docs/writing-a-plugin.md shows, as an author would copy it: the C++ block under
"A minimal plugin" as identity.cpp and the CMake block under "Building it" as CMakeLists.txt, configured
against an installed attnbench; then runs the installed runner's check-plugin on it. Exits non-zero,
saying which step failed, when the page's code does not build or does not conform as it stands.

usage: doc_plugin.py DOC WORKDIR PREFIX RUNNER -- CMAKE_ARGS..."""
import os
import re
import shutil
import subprocess
import sys


def block(text, heading, language):
    """The first ```language fenced block after the `## heading` line."""
    start = text.index("## " + heading + "\n")
    match = re.compile(r"```" + language + r"\n(.*?)```", re.S).search(text, start)
    if not match:
        sys.exit(f"doc_plugin: no ```{language} block under '## {heading}'")
    return match.group(1)


def run(step, command, cwd):
    """Runs one step, printing its output; stops with its name when it fails."""
    print("$", " ".join(command), flush=True)
    done = subprocess.run(command, cwd=cwd)
    if done.returncode != 0:
        sys.exit(f"doc_plugin: {step} failed (exit status {done.returncode})")


def main():
    if "--" not in sys.argv or sys.argv.index("--") != 5:
        sys.exit(__doc__)
    doc, work, prefix, runner = sys.argv[1:5]
    cmake_args = sys.argv[6:]
    text = open(doc, encoding="utf-8").read()
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    with open(os.path.join(work, "identity.cpp"), "w", encoding="utf-8") as f:
        f.write(block(text, "A minimal plugin", "cpp"))
    with open(os.path.join(work, "CMakeLists.txt"), "w", encoding="utf-8") as f:
        f.write(block(text, "Building it", "cmake"))
    build = os.path.join(work, "build")
    run("configure", ["cmake", "-S", work, "-B", build, f"-DCMAKE_PREFIX_PATH={prefix}", *cmake_args], work)
    run("build", ["cmake", "--build", build], work)
    run("check-plugin", [runner, "check-plugin", os.path.join(build, "attnbench_identity.so"), "--seq-len", "65"], work)


if __name__ == "__main__":
    main()
