#!/usr/bin/env python3
"""Merges results files (e.g. the shards of one study) into one: every cell once, keyed by its hash.
Where a cell appears more than once, an `ok` line wins over `skipped` and `error`, then the later one.
Idempotent: merging the output again, or with itself, changes nothing.

usage: scripts/merge_results.py OUT.jsonl IN.jsonl [IN.jsonl ...]   (OUT may be one of the inputs)
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attnbench_results  # noqa: E402

def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out, inputs = sys.argv[1], sys.argv[2:]
    rows = attnbench_results.latest_per_cell(attnbench_results.read(inputs))
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    os.replace(tmp, out)
    print(f"merge_results: {len(rows)} cells from {len(inputs)} files -> {out}")


if __name__ == "__main__":
    main()
