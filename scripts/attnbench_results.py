"""Reading attnbench results files (JSON Lines, schema in docs/results.md), shared by the scripts."""
import json


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
    """row['metrics'][path...] or None."""
    node = row.get("metrics", {})
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


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
