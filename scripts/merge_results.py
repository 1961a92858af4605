#!/usr/bin/env python3
"""Merges results files (e.g. the shards of one study) into one: every cell once, keyed by its hash.
Where a cell appears more than once, an `ok` line wins over `inconsistent`, `skipped` and `error`, then
the later one. OUT's own cells are kept (it is read first, as if it were the first input), and it is
replaced atomically. Idempotent: merging the output again, or with itself, changes nothing.

With --expect CELLS (a file holding what `runner STUDY --dry-run` printed for the cells that should be
there), every expected cell that is missing from the merge or whose status is `error` or `inconsistent`
is named, with its number, hash, label and message, and the exit status is 1; skipped cells are named but count as
done, as the runner counts them.

usage: scripts/merge_results.py [--expect CELLS] OUT.jsonl [IN.jsonl ...]
       (inputs may be left out with --expect: OUT alone is checked)
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attnbench_results  # noqa: E402

# One line of `runner --dry-run`: number, hash, label and axes, [modes]; the last line counts the cells.
DRY_RUN_LINE = re.compile(r"^\s*(\d+)\s+([0-9a-f]{16})\s+(.*?)\s+\[[^\]]*\]\s*$")
DRY_RUN_TOTAL = re.compile(r"^\d+ cells$")


def read_expected(path):
    """The cells a --dry-run listing names, as (number, hash, description) in its order."""
    cells = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            match = DRY_RUN_LINE.match(line)
            if match:
                cells.append((int(match.group(1)), match.group(2), " ".join(match.group(3).split())))
            elif line.strip() and not DRY_RUN_TOTAL.match(line.strip()):
                sys.exit(f"merge_results: {path}:{n}: not a line of `runner STUDY --dry-run`: {line!r}")
    return cells


def check(expected, rows):
    """Lines naming each expected cell that is not done, and how many are missing, failed, skipped."""
    by_hash = {row["hash"]: row for row in rows}
    problems, counts = [], {"missing": 0, "error": 0, "skipped": 0}
    for number, cell_hash, description in expected:
        row = by_hash.get(cell_hash)
        if row is None:
            counts["missing"] += 1
            problems.append(f"  missing  cell {number} {cell_hash} {description}: no input holds it "
                            "(its task was killed, cancelled or has not run)")
        elif row.get("status") != "ok":
            status = row.get("status", "?")
            counts[status if status in counts else "error"] += 1
            problems.append(f"  {status:<8} cell {number} {cell_hash} {description}: {row.get('message', '')}")
    return problems, counts


def main():
    args = sys.argv[1:]
    expect = None
    if args[:1] == ["--expect"]:
        if len(args) < 2:
            sys.exit(__doc__)
        expect, args = args[1], args[2:]
    if not args or (len(args) < 2 and expect is None):
        sys.exit(__doc__)
    out, inputs = args[0], args[1:]
    for path in [p for p in [expect] + inputs if p is not None]:
        if not os.path.isfile(path):
            sys.exit(f"merge_results: {path}: no such file; nothing was written")
    expected = read_expected(expect) if expect else None
    # OUT first, so its cells are kept and a newer line in an input wins a tie.
    sources = ([out] if os.path.isfile(out) and out not in inputs else []) + inputs
    rows = attnbench_results.latest_per_cell(attnbench_results.read(sources))
    if rows or os.path.isfile(out):
        tmp = f"{out}.tmp.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    print(f"merge_results: {len(rows)} cells from {len(sources)} files -> {out}")
    if expected is None:
        return 0
    problems, counts = check(expected, rows)
    bad = counts["missing"] + counts["error"]
    if bad == 0:
        skipped = f" ({counts['skipped']} skipped)" if counts["skipped"] else ""
        print(f"merge_results: all {len(expected)} expected cells are done{skipped}")
    else:
        print(f"merge_results: {bad} of {len(expected)} expected cells are not done: {counts['missing']} missing, "
              f"{counts['error']} failed")
    for line in problems:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
