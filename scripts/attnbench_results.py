"""Reading attnbench results files (JSON Lines, schema in docs/results.md), shared by the scripts.

The metric names, kinds and units come from attnbench_metrics.json beside this file, which
scripts/generated.py writes from the runner's own registry (`runner describe modes --json`): the one
place the scripts learn what a result holds."""
import json
import os

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "attnbench_metrics.json"), encoding="utf-8") as _f:
    MODES = json.load(_f)


def metrics(kind=None, unit=None):
    """Every registered metric (dicts with path, kind, unit, better, help, and the mode's name), in the
    runner's order, filtered by kind and unit."""
    out = []
    for mode in MODES:
        for m in mode["metrics"]:
            if (kind is None or m["kind"] == kind) and (unit is None or m["unit"] == unit):
                out.append(dict(m, mode=mode["name"]))
    return out


def timings():
    """Paths of the timing stats in milliseconds: one per timed mode (full.time_ms, step.time_ms, ...)."""
    return [m["path"] for m in metrics(kind="stats", unit="ms")]


def position_series():
    """Paths of the per-position latency lists (step.per_position_us, ...)."""
    return [m["path"] for m in metrics(kind="list", unit="us")]


def errors():
    """Paths of the error objects (consistency and closed-loop checks)."""
    return [m["path"] for m in metrics(kind="error")]


def summary_columns():
    """The summary table's columns as the runner prints them: dicts with title, path, format."""
    return [c for mode in MODES for c in mode["summary"]]


def read(paths):
    """Every complete JSON object in the files, in order; a torn last line is skipped, as the runner does."""
    rows = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return rows


def label(row):
    """The cell's name as the runner prints it: attention entry and matrix axes."""
    axes = " ".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(row.get("axes", {}).items()) if k != "attention")
    return f"{row['attention']['name']} {axes}".strip()


def metric(row, *path):
    """row['metrics'] at a path, given as keys or as one dotted string ("step.time_ms"), or None."""
    keys = [k for part in path for k in str(part).split(".")]
    node = row.get("metrics", {})
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def column_text(row, column):
    """A summary column's value, formatted as the runner's console table formats it."""
    value = metric(row, column["path"])
    if value is None:
        return "-"
    if column["format"] == "ms":
        return f"{value['median']:.3f}" if isinstance(value, dict) and "median" in value else "-"
    if column["format"] == "rel":
        return f"{value['rel_rms']:.1e}" if isinstance(value, dict) and "rel_rms" in value else "-"
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:.0f}" if column["format"] == "rate" else f"{value:.4g}"


RANK = {"ok": 2, "skipped": 1, "error": 0}


def latest_per_cell(rows):
    """Every cell once, keyed by its hash: an `ok` line wins over `skipped` and `error`, then the later one.
    Ordered by study and cell index."""
    best, order = {}, []
    for row in rows:
        key = row.get("hash")
        if key is None:
            continue
        if key not in best:
            order.append(key)
            best[key] = row
        elif RANK.get(row.get("status"), -1) >= RANK.get(best[key].get("status"), -1):
            best[key] = row
    return sorted((best[k] for k in order), key=lambda r: (r.get("study", ""), r.get("cell", 0)))
