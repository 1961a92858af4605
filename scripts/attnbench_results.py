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


def bandwidth_series():
    """Paths of the per-position bandwidth lists (step.bandwidth_gbps): each beside a peak_gbps."""
    return [m["path"] for m in metrics(kind="list", unit="GB/s")]


def errors():
    """Paths of the error objects (consistency and closed-loop checks)."""
    return [m["path"] for m in metrics(kind="error")]


def summary_columns():
    """The summary table's fixed columns as the runner prints them: dicts with title, path, format. A
    column over every key of a level ("quality.*.score") is left out: summary_table() adds one column per
    quality task, titled with its score's name."""
    return [c for mode in MODES for c in mode["summary"] if "*" not in c["path"]]


def result_files(paths):
    """The results files that paths name: a file as given, a folder as its *.jsonl files in name order.
    Raises ValueError naming a path that does not exist or a folder that holds no results file."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, n) for n in os.listdir(path)
                           if n.endswith(".jsonl") and os.path.isfile(os.path.join(path, n)))
            if not found:
                raise ValueError(f"{path}: a folder with no .jsonl results file in it")
            files += found
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise ValueError(f"{path}: no such results file or folder")
    return files


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


def samples(row, path):
    """The raw samples of the stats object at path, in the order measured, or None (per-token stats have
    none, nor have results written before samples were kept)."""
    values = metric(row, path, "samples")
    return values if isinstance(values, list) and values else None


# The x of the quality/latency figures: what one streamed token costs, the latency a streaming user sees.
STREAMING_LATENCY = "step.per_token_us"


def quality(row):
    """The cell's quality results, {task: {"score", "score_name", "better", "baseline", ...}}, in task
    order; tasks that wrote no numeric score are left out."""
    node = metric(row, "quality")
    if not isinstance(node, dict):
        return {}
    return {task: q for task, q in sorted(node.items()) if isinstance(q, dict)
            and isinstance(q.get("score"), (int, float)) and not isinstance(q["score"], bool)}


def quality_tasks(rows):
    """Every task any row scored, in name order: {task: {"score_name", "better"}} from its first row."""
    tasks = {}
    for row in rows:
        for task, q in quality(row).items():
            tasks.setdefault(task, {"score_name": q.get("score_name", "score"), "better": q.get("better", "")})
    return dict(sorted(tasks.items()))


def commit(row):
    """The commit the runner was built from (context.git_commit, "-dirty" when tracked files differed)."""
    return row.get("context", {}).get("git_commit") or "unknown"


def cell_identity(row):
    """A cell's identity where hashes differ (a plugin gained a parameter): study, attention and axes."""
    return (row.get("study", ""), row.get("attention", {}).get("name", ""),
            tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in row.get("axes", {}).items())))


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


def summary_table(rows):
    """The summary table as the runner prints it, plus state bytes and each quality task's score:
    (header, one list of cell texts per row)."""
    columns = summary_columns()
    tasks = quality_tasks(rows)
    header = ["cell", "status"] + [c["title"] for c in columns] + ["state bytes"] + \
             [f"{t['score_name']} ({task})" for task, t in tasks.items()]
    table = []
    for row in rows:
        state = metric(row, "state_bytes")
        scores = quality(row)
        table.append([label(row), str(row.get("status"))] + [column_text(row, c) for c in columns]
                     + [str(state) if state is not None else "-"]
                     + [f"{scores[task]['score']:.4g}" if task in scores else "-" for task in tasks])
    return header, table


RANK = {"ok": 3, "inconsistent": 2, "skipped": 1, "error": 0}  # inconsistent: measured, but beyond a gate


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
