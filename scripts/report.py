#!/usr/bin/env python3
"""Compares results files side by side (two commits, two machines): the median of each timing per cell,
matched by cell hash, with the ratio of each file to the first.

usage: scripts/report.py BASE.jsonl OTHER.jsonl [MORE.jsonl ...]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attnbench_results  # noqa: E402


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    files = sys.argv[1:]
    tables = [{r["hash"]: r for r in attnbench_results.latest_per_cell(attnbench_results.read([f])) if r.get("status") == "ok"}
              for f in files]
    header = ["cell", "mode"] + [f"{os.path.basename(f)} ms" for f in files] + [f"x {os.path.basename(f)}" for f in files[1:]]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for key, base in tables[0].items():
        for path in attnbench_results.timings():
            mode = path.split(".")[0]
            times = [attnbench_results.metric(t[key], path, "median") if key in t else None for t in tables]
            if times[0] is None:
                continue
            cells = [f"{t:.3f}" if t is not None else "-" for t in times]
            ratios = [f"{t / times[0]:.2f}" if t is not None and times[0] else "-" for t in times[1:]]
            print("| " + " | ".join([attnbench_results.label(base), mode] + cells + ratios) + " |")


if __name__ == "__main__":
    main()
