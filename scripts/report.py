#!/usr/bin/env python3
"""Reports on attnbench results: A/B comparisons with verdicts, a history across commits, one HTML page.

usage:
  scripts/report.py RESULTS                                   the summary table of one set of results
  scripts/report.py BASE NEW [NEW ...] [--fail-above 1.05]    each NEW against BASE, cell by cell
  scripts/report.py --history RESULTS [RESULTS ...]           each cell across the commits that ran it
  scripts/report.py ... --html report.html                    also one self-contained page (needs matplotlib)
Each RESULTS, BASE and NEW is a results file or a folder, whose *.jsonl files are read as one set; both
forms combine (`report.py BASE NEW --history results/history/ --html page.html`).

A/B: cells are matched by hash, else by study, attention and axes (said so: their settings differ).
For every timing with raw samples: the ratio of medians NEW/BASE, its 95% percentile-bootstrap interval
(seeded: the same files give the same report) and a verdict: faster or slower when the interval
excludes 1, else not separated ("too few samples" below 5 on either side). A side holding several runs
of a cell (reruns, a folder) is resampled run by run, so that the interval also holds the difference
between runs, which on a shared machine is larger than that within one. Consistency errors and
quality scores are compared in their better direction; a speed-up beside a worse one is flagged.
Exit status: 1 when a timing is slower with its ratio above --fail-above (a CI gate), 2 for bad input
or no cells in common, else 0.

History: lines are grouped by cell (study, attention, axes; and host, when several machines ran) and
by commit (context.git_commit; a commit's runs are taken together, resampled run by run), ordered by
commit time from git (--repo, default this checkout) or, when a commit is not in it, by when each
commit's cells ran. A step is a change of median whose 95% interval does not overlap the previous
commit's. History informs; it does not change the exit status.
"""

import argparse
import datetime
import os
import subprocess
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attnbench_results as ar  # noqa: E402
import report_stats as st  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class InputError(Exception):
    """Bad input: the message names the thing and how to fix it."""


def load(paths):
    """The ok lines of one set of results (files and folders) and the files read."""
    try:
        files = ar.result_files(paths)
    except ValueError as e:
        raise InputError(f"{e} (give .jsonl results files, or folders of them)") from None
    rows = [r for r in ar.read(files) if isinstance(r, dict) and r.get("status") == "ok" and "hash" in r]
    if not rows:
        raise InputError(f"{', '.join(paths)}: no ok cells in {', '.join(files)}")
    return rows, files


def name(path):
    """A results file's or folder's name, as tables and the page title it."""
    return os.path.basename(os.path.normpath(path))


# --- A/B ------------------------------------------------------------------------------------------------


def match_cells(base_rows, other_rows):
    """Pairs (base, other, by_identity): by hash, then the rest by study, attention and axes when that
    names exactly one cell on each side. Also the base and other cells left without a partner."""
    by_hash = {r["hash"]: r for r in other_rows}
    pairs, paired = [], set()
    unmatched = []
    for b in base_rows:
        o = by_hash.get(b["hash"])
        if o is not None:
            pairs.append((b, o, False))
            paired.add(o["hash"])
        else:
            unmatched.append(b)
    rest = defaultdict(list)
    for o in other_rows:
        if o["hash"] not in paired:
            rest[ar.cell_identity(o)].append(o)
    base_rest = defaultdict(list)
    for b in unmatched:
        base_rest[ar.cell_identity(b)].append(b)
    only_base = []
    for b in unmatched:
        identity = ar.cell_identity(b)
        if len(base_rest[identity]) == 1 and len(rest[identity]) == 1:
            o = rest.pop(identity)[0]
            pairs.append((b, o, True))
        else:
            only_base.append(b)
    only_other = [o for group in rest.values() for o in group]
    order = {b["hash"]: i for i, b in enumerate(base_rows)}
    return sorted(pairs, key=lambda p: order[p[0]["hash"]]), only_base, only_other


def runs_of(rows, path):
    """The samples of each run that kept them (a list of sample lists)."""
    return [samples for r in rows if (samples := ar.samples(r, path))]


def item(kind, measure, path, base, other, verdict, low=None, high=None, ratio=None):
    if ratio is None and base:
        ratio = other / base
    return {
        "kind": kind,
        "measure": measure,
        "path": path,
        "base": base,
        "other": other,
        "ratio": ratio,
        "low": low,
        "high": high,
        "verdict": verdict,
    }


def compare_pair(base_runs, other_runs):
    """The comparison items of one cell, given its runs on each side (the latest last): every timing,
    from the samples of all its runs, and every consistency error and quality score of the latest runs."""
    base, other = base_runs[-1], other_runs[-1]
    items = []
    for path in ar.timings():
        a, b = ar.metric(base, path, "median"), ar.metric(other, path, "median")
        if a is None or b is None:
            continue
        a_runs, b_runs = runs_of(base_runs, path), runs_of(other_runs, path)
        result = st.compare_timing(a_runs, b_runs, f"{base['hash']}:{path}")
        if result["ratio"] is not None:
            a, b = st.pooled_median(a_runs), st.pooled_median(b_runs)
        timing = item(
            "timing", path.split(".")[0], path, a, b, result["verdict"], result["low"], result["high"], result["ratio"]
        )
        items.append(dict(timing, runs=(len(a_runs), len(b_runs))))
    for path in ar.errors():
        a, b = ar.metric(base, path, "rel_rms"), ar.metric(other, path, "rel_rms")
        if a is not None and b is not None:
            items.append(item("error", path.split(".", 1)[1], path, a, b, st.compare_error(a, b)))
    other_quality = ar.quality(other)
    for task, q in ar.quality(base).items():
        if task in other_quality:
            a, b = q["score"], other_quality[task]["score"]
            verdict = st.compare_quality(a, b, q.get("better", ""))
            items.append(item("quality", f"{task} {q.get('score_name', 'score')}", f"quality.{task}", a, b, verdict))
    return items


def cell_runs(rows):
    """Each cell once, as ar.latest_per_cell picks it, with all its ok runs (by hash), the latest last."""
    runs = defaultdict(list)
    for r in rows:
        runs[r["hash"]].append(r)
    chosen = ar.latest_per_cell(rows)
    return chosen, {r["hash"]: [x for x in runs[r["hash"]] if x is not r] + [r] for r in chosen}


def compare(base_set, other_set, base_name, other_name, fail_above):
    """One A/B comparison of two sets of ok lines: per cell its items, whether it was matched by identity,
    and its flag; how many timings got each verdict ("tally") and the ones that fail the gate ("failing")."""
    (base_rows, base_runs), (other_rows, other_runs) = cell_runs(base_set), cell_runs(other_set)
    pairs, only_base, only_other = match_cells(base_rows, other_rows)
    cells = []
    for base, other, by_identity in pairs:
        items = compare_pair(base_runs[base["hash"]], other_runs[other["hash"]])
        for item in items:
            item["fails"] = item["kind"] == "timing" and st.fails(item, fail_above)
        faster = [i for i in items if i["kind"] == "timing" and i["verdict"] == st.FASTER]
        worse = [i for i in items if i["kind"] != "timing" and i["verdict"] == st.WORSE]
        flag = None
        if faster and worse:
            flag = "faster ({}) but worse {}".format(
                ", ".join(i["measure"] for i in faster),
                ", ".join(f"{i['measure']} ({fmt(i, 'base')} -> {fmt(i, 'other')})" for i in worse),
            )
        cells.append(
            {
                "label": ar.label(other),
                "base_row": base,
                "other_row": other,
                "by_identity": by_identity,
                "items": items,
                "flag": flag,
            }
        )
    tally, failing = defaultdict(int), []
    for cell in cells:
        for item in cell["items"]:
            if item["kind"] == "timing":
                tally[item["verdict"]] += 1
                if item["fails"]:
                    failing.append(f"{cell['label']} {item['measure']} x{item['ratio']:.3f}")
    comparison = {
        "base": base_name,
        "other": other_name,
        "cells": cells,
        "fail_above": fail_above,
        "only_base": [ar.label(r) for r in only_base],
        "only_other": [ar.label(r) for r in only_other],
        "machines": machines(base_rows, other_rows),
        "tally": dict(tally),
        "failing": failing,
    }
    comparison["table"], comparison["notes"] = comparison_table(comparison), comparison_notes(comparison)
    return comparison


def machines(base_rows, other_rows):
    """A note when the two sides ran on different machines: the timings then compare machines as well."""

    def hosts(rows):
        return sorted(
            {f"{r.get('context', {}).get('host', '?')} ({r.get('context', {}).get('cpu', '?')})" for r in rows}
        )

    a, b = hosts(base_rows), hosts(other_rows)
    return None if a == b else f"the two sides ran on different machines ({', '.join(a)} against {', '.join(b)})"


def fmt(item, side):
    value = item[side]
    if item["kind"] == "timing":
        return f"{value:.3f}"
    if item["kind"] == "error":
        return f"{value:.1e}"
    return f"{value:.4g}"


def interval_text(item):
    return f"[{item['low']:.3f}, {item['high']:.3f}]" if item.get("low") is not None else "-"


def comparison_table(comparison):
    """The A/B table as texts, one row per cell and measure, and each row's classes (its verdict, and
    "fails", "flag"), which the page colours: (header, rows, classes)."""
    base, other = comparison["base"], comparison["other"]
    header = ["cell", "measure", base, other, "ratio", "95% CI", "verdict"]
    rows, classes = [], []
    for cell in comparison["cells"]:
        name = cell["label"] + (" (matched by label)" if cell["by_identity"] else "")
        for item in cell["items"]:
            verdict = item["verdict"]
            if item["fails"]:
                verdict += f" (fails: above {comparison['fail_above']:g})"
            elif cell["flag"] and item["kind"] != "timing" and item["verdict"] == st.WORSE:
                verdict += " (beside a speed-up)"
            rows.append(
                [
                    name,
                    item["measure"],
                    fmt(item, "base"),
                    fmt(item, "other"),
                    f"{item['ratio']:.2f}" if item["ratio"] is not None else "-",
                    interval_text(item),
                    verdict,
                ]
            )
            classes.append(
                " ".join(
                    [item["verdict"].replace(" ", "-")]
                    + (["fails"] if item["fails"] else [])
                    + (["flag"] if "beside" in verdict else [])
                )
            )
    return header, rows, classes


def comparison_notes(comparison):
    """The sentences under the A/B table: how the timings came out, what fails, what is flagged, which
    cells were matched by label or are on one side only."""
    base, other = comparison["base"], comparison["other"]
    order = [st.FASTER, st.SLOWER, st.NOT_SEPARATED, st.FEW, st.NO_SAMPLES]
    notes = [
        "timings: "
        + (", ".join(f"{comparison['tally'][v]} {v}" for v in order if comparison["tally"].get(v)) or "none")
    ]
    by_identity = [c["label"] for c in comparison["cells"] if c["by_identity"]]
    if by_identity:
        notes.append(
            "matched by study, attention and axes, their hashes differ (their settings differ): "
            + ", ".join(by_identity)
        )
    pooled = [
        f"{c['label']} ({runs[0]} in {base}, {runs[1]} in {other})"
        for c in comparison["cells"]
        if (runs := max((i["runs"] for i in c["items"] if i["kind"] == "timing"), default=(1, 1))) != (1, 1)
    ]
    if pooled:
        notes.append("timings from several runs, resampled run by run: " + ", ".join(pooled))
    if comparison["only_base"]:
        notes.append(f"only in {base}: {', '.join(comparison['only_base'])}")
    if comparison["only_other"]:
        notes.append(f"only in {other}: {', '.join(comparison['only_other'])}")
    if comparison["machines"]:
        notes.append(f"note: {comparison['machines']}")
    notes += [f"flagged: {c['label']}: {c['flag']}" for c in comparison["cells"] if c["flag"]]
    if comparison["failing"]:
        gate = comparison["fail_above"]
        notes.append(f"FAIL: slower than x{gate:g} with an interval excluding 1: " + "; ".join(comparison["failing"]))
    return notes


def markdown(header, rows):
    return "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]
    )


def print_comparison(comparison):
    print(f"## {comparison['other']} against {comparison['base']}")
    print(
        "timings: median ms, ratio of medians with its 95% bootstrap interval; errors: relative RMS; "
        "quality: the task's score"
    )
    header, rows, _ = comparison["table"]
    print(markdown(header, rows))
    print("\n".join(comparison["notes"]) + "\n")


# --- history --------------------------------------------------------------------------------------------


def commit_time(repo, commit):
    """The commit's time (seconds since the epoch) from git in repo, or None where git or the commit is absent."""
    sha = commit[: -len("-dirty")] if commit.endswith("-dirty") else commit
    try:
        out = subprocess.run(
            ["git", "-C", repo, "log", "-1", "--format=%ct", sha, "--"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return int(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip().isdigit() else None


def order_commits(rows, repo):
    """The commits in time order, with how they were ordered, each {"commit", "time" (ISO, for humans)}."""
    first_run = {}
    for r in rows:
        c = ar.commit(r)
        first_run[c] = min(first_run.get(c, r.get("time", "")), r.get("time", ""))
    times = {c: commit_time(repo, c) for c in first_run}
    if all(t is not None for t in times.values()):
        ordered = sorted(first_run, key=lambda c: (times[c], c.endswith("-dirty"), first_run[c]))
        how = "by commit time"
        stamp = {c: _iso(times[c]) for c in ordered}
    else:
        missing = sorted(c for c, t in times.items() if t is None)
        ordered = sorted(first_run, key=lambda c: (first_run[c], c))
        how = f"by when each commit's cells ran ({', '.join(missing)} not in the git repository {repo})"
        stamp = first_run
    return [{"commit": c, "time": stamp[c]} for c in ordered], how


def _iso(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def history(rows, repo):
    """Every cell's runs by commit: {"commits", "ordered_by", "series": [{"label", "metrics": {path:
    [point]}, "latest_row"}], "runs", "steps"} (the two tables of history_tables). A point is {"commit",
    "time", "runs", "n", "median", "low", "high", "step", "settings_changed"}: a timing is the median
    of the samples of the commit's runs with its interval (resampled run by run), a quality score their
    mean."""
    commits, how = order_commits(rows, repo)
    position = {c["commit"]: i for i, c in enumerate(commits)}
    several_hosts = len({r.get("context", {}).get("host") for r in rows}) > 1
    groups = defaultdict(lambda: defaultdict(list))
    names = {}
    for r in rows:
        key = ar.cell_identity(r) + ((r.get("context", {}).get("host"),) if several_hosts else ())
        groups[key][ar.commit(r)].append(r)
        names[key] = ar.label(r) + (f" on {r.get('context', {}).get('host')}" if several_hosts else "")

    def cell_order(key):
        row = next(iter(groups[key].values()))[0]
        return row.get("study", ""), row.get("cell", 0), names[key]

    series = []
    for key in sorted(groups, key=cell_order):
        by_commit = groups[key]
        ordered = sorted(by_commit, key=position.get)
        metrics = {}
        for path in ar.timings():
            points = [
                p for c in ordered if (p := timing_point(by_commit[c], path, c, commits[position[c]]["time"], key))
            ]
            if points:
                mark_steps(points)
                metrics[path] = points
        for task in ar.quality_tasks([r for rs in by_commit.values() for r in rs]):
            points = []
            for c in ordered:
                scores = [ar.quality(r)[task]["score"] for r in by_commit[c] if task in ar.quality(r)]
                if scores:
                    points.append(
                        {
                            "commit": c,
                            "time": commits[position[c]]["time"],
                            "runs": len(scores),
                            "n": len(scores),
                            "median": sum(scores) / len(scores),
                            "low": None,
                            "high": None,
                            "step": None,
                            "hashes": sorted({r["hash"] for r in by_commit[c]}),
                            "settings_changed": False,
                        }
                    )
            if points:
                metrics[f"quality.{task}"] = points
        newest = by_commit[ordered[-1]]
        series.append(
            {"label": names[key], "metrics": metrics, "latest_row": max(newest, key=lambda r: r.get("time", ""))}
        )
    hist = {"commits": commits, "ordered_by": how, "series": series}
    hist["runs"], hist["steps"] = history_tables(hist)
    return hist


def timing_point(rows, path, commit, time, key):
    rows = [r for r in rows if ar.metric(r, path, "median") is not None]
    if not rows:
        return None
    point = {
        "commit": commit,
        "time": time,
        "runs": len(rows),
        "hashes": sorted({r["hash"] for r in rows}),
        "step": None,
        "settings_changed": False,
    }
    runs = runs_of(rows, path)
    if len(runs) == len(rows):
        median, low, high = st.median_interval(runs, f"{key}:{commit}:{path}")
        return dict(point, n=sum(map(len, runs)), median=median, low=low, high=high)
    medians = sorted(ar.metric(r, path, "median") for r in rows)
    return dict(point, n=0, median=st.quantile(medians, 0.5), low=None, high=None)


def mark_steps(points):
    for previous, current in zip(points, points[1:]):
        current["step"] = st.step(previous, current)
        current["settings_changed"] = previous["hashes"] != current["hashes"]


def step_text(point, previous):
    if not point["step"]:
        return "settings changed" if point["settings_changed"] else ""
    text = f"{point['step']} step x{point['median'] / previous['median']:.3f}"
    return text + (" (settings changed)" if point["settings_changed"] else "")


def measure_name(path):
    return path.split(".")[0] if path in ar.timings() else path


def history_tables(hist):
    """The history as texts: every run {"header", "rows", "classes"} and the steps {"header", "rows",
    "classes"}; classes are the steps' directions, which the page colours."""
    runs = {
        "header": ["cell", "measure", "commit", "time", "runs", "n", "median", "95% CI", "step"],
        "rows": [],
        "classes": [],
    }
    found = {
        "header": ["cell", "measure", "commit", "after", "median before", "median", "step"],
        "rows": [],
        "classes": [],
    }
    for s in hist["series"]:
        for path, points in s["metrics"].items():
            for i, p in enumerate(points):
                value = f"{p['median']:.4g}" if path.startswith("quality.") else f"{p['median']:.3f}"
                text = step_text(p, points[i - 1]) if i else ""
                runs["rows"].append(
                    [
                        s["label"],
                        measure_name(path),
                        p["commit"],
                        p["time"],
                        str(p["runs"]),
                        str(p["n"]),
                        value,
                        interval_text(p),
                        text,
                    ]
                )
                runs["classes"].append(p["step"] or "")
                if p["step"]:
                    previous = points[i - 1]
                    found["rows"].append(
                        [
                            s["label"],
                            measure_name(path),
                            p["commit"],
                            previous["commit"],
                            f"{previous['median']:.3f}",
                            value,
                            text,
                        ]
                    )
                    found["classes"].append(p["step"])
    return runs, found


def print_history(hist):
    commits = hist["commits"]
    print(f"## History: {len(hist['series'])} cells over {len(commits)} commits, ordered {hist['ordered_by']}")
    if len(commits) < 2:
        print(f"a history needs results from two or more commits; these all come from {commits[0]['commit']}")
    print(markdown(hist["runs"]["header"], hist["runs"]["rows"]))
    print(f"steps: {len(hist['steps']['rows'])}")
    for row in hist["steps"]["rows"]:
        print(f"  {row[0]} {row[1]}: {row[-1]} at {row[2]} (after {row[3]})")
    print()


# --- main -----------------------------------------------------------------------------------------------


def parse(argv):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s [RESULTS ...] [--history RESULTS ...] [--html PAGE] [--fail-above RATIO]",
    )
    parser.add_argument(
        "results", nargs="*", help="results files or folders: one to summarise; BASE then NEW to compare"
    )
    parser.add_argument("--history", nargs="+", metavar="RESULTS", help="results files or folders from several commits")
    parser.add_argument("--html", metavar="PAGE", help="write one self-contained HTML page here")
    parser.add_argument(
        "--fail-above",
        type=float,
        default=1.05,
        metavar="RATIO",
        help="exit 1 when a timing is slower with its ratio of medians above this (default 1.05)",
    )
    parser.add_argument(
        "--repo", default=ROOT, help="the git repository that orders commits by time (default: this one)"
    )
    args = parser.parse_args(argv)
    if not args.results and not args.history:
        parser.error("give results to summarise (one), to compare (BASE NEW ...), or --history RESULTS ...")
    if not args.fail_above >= 1:
        parser.error(
            f"--fail-above {args.fail_above:g}: a ratio of NEW's median to BASE's, at least 1 (1.05 fails on 5% slower)"
        )
    return args


def fail(message):
    """Bad input: one message on stderr and exit status 2, which CI tells apart from 1 (slower)."""
    print(f"report: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv=None):
    args = parse(argv)
    if args.html:
        try:
            import report_html
        except ImportError as e:
            fail(f"--html needs matplotlib ({e}); Debian: apt-get install python3-matplotlib")
    try:
        sets = [load([path]) for path in args.results]
        comparisons = []
        for (rows, _), path in zip(sets[1:], args.results[1:]):
            comparison = compare(
                sets[0][0],
                rows,
                name(args.results[0]),
                name(path),
                args.fail_above,
            )
            if not comparison["cells"]:
                raise InputError(
                    f"{path} and {args.results[0]} have no cell in common (matched by hash, then by "
                    "study, attention and axes): compare results of the same study"
                )
            comparisons.append(comparison)
        history_rows, history_files = load(args.history) if args.history else ([], [])
    except InputError as e:
        fail(e)
    hist = history(history_rows, args.repo) if args.history else None

    if len(sets) == 1:
        print(markdown(*ar.summary_table(ar.latest_per_cell(sets[0][0]))) + "\n")
    for comparison in comparisons:
        print_comparison(comparison)
    if hist:
        print_history(hist)
    if args.html:
        # The summary and its figures show the newest set: the last one given, else each cell's latest run.
        if sets:
            summary_rows, summary_name = ar.latest_per_cell(sets[-1][0]), name(args.results[-1])
        else:
            summary_rows, summary_name = [s["latest_row"] for s in hist["series"]], "the latest run of each cell"
        files = [f for _, set_files in sets for f in set_files] + history_files
        read = [r for rows, _ in sets for r in rows] + history_rows
        page = report_html.build(summary_rows, summary_name, read, files, comparisons, hist)
        size = report_html.write(args.html, page)
        print(f"report: wrote {args.html} ({size / 1e6:.2f} MB)")
    return 1 if any(c["failing"] for c in comparisons) else 0


if __name__ == "__main__":
    sys.exit(main())
