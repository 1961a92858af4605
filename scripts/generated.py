#!/usr/bin/env python3
"""Writes the files that follow from the runner's registries, so they cannot drift from the code:
  docs/results.md           the metric table (every registered mode's metrics), between its markers
  docs/study.md             the study-key table (the schema), between its markers
  scripts/attnbench_metrics.json   the modes and metrics the Python scripts read (attnbench_results.py)

usage: scripts/generated.py RUNNER [--check]
  --check   change nothing; exit 1 naming each file that is out of date (CI runs this)
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def describe(runner, *args):
    return subprocess.run([runner, "describe", *args], check=True, capture_output=True, text=True).stdout


def between_markers(text, name, body):
    begin, end = f"<!-- BEGIN GENERATED {name} (scripts/generated.py) -->", f"<!-- END GENERATED {name} -->"
    if begin not in text or end not in text:
        sys.exit(f"generated.py: the markers for {name} are missing")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}{end}{tail}"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    runner, check = sys.argv[1], "--check" in sys.argv[2:]
    wanted = {}
    for doc, name, args in (("docs/results.md", "metrics", ("metrics", "--markdown")),
                            ("docs/study.md", "keys", ("keys", "--markdown"))):
        with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
            wanted[doc] = between_markers(f.read(), name, describe(runner, *args))
    wanted["scripts/attnbench_metrics.json"] = describe(runner, "modes", "--json")
    stale = []
    for path, content in wanted.items():
        full = os.path.join(ROOT, path)
        current = open(full, encoding="utf-8").read() if os.path.exists(full) else None
        if current == content:
            continue
        stale.append(path)
        if not check:
            with open(full + ".tmp", "w", encoding="utf-8") as f:
                f.write(content)
            os.replace(full + ".tmp", full)
    if check and stale:
        sys.exit("out of date (run scripts/generated.py build/runner): " + ", ".join(stale))
    print("generated.py: " + (", ".join(stale) + (" checked" if check else " written") if stale else "all current"))


if __name__ == "__main__":
    main()
