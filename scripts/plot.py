#!/usr/bin/env python3
"""Figures from attnbench results files, as PNG and SVG, with a markdown summary beside them:
  latency_by_position  per-token latency against token position, every streaming mode and cell
  bandwidth            GB/s a streamed token achieves by position, beside the device's read rate
                       (a KV cache grows, a reservoir stays flat)
  timings              each timed mode's whole-sequence time by cell
  consistency          step vs forward, prefix vs step and closed-loop errors (relative RMS)
  state_bytes          state size against tokens
  pareto_<task>        for each quality task: its score against a streamed token's latency, one point
                       per cell, marker area from the state's bytes, the cells no other beats on both
                       joined (the Pareto front)
  curve_<task>         for each quality task with a curve (memory capacity's r² against delay): every
                       cell's curve
  axis_<name>          for each matrix axis with several values: median times against it

usage: scripts/plot.py RESULTS.jsonl [MORE.jsonl ...] --out DIR
Needs matplotlib (Debian: python3-matplotlib; scripts/setup.sh installs it with ATTNBENCH_WITH_PLOTS=1).
"""
import argparse
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attnbench_results as ar  # noqa: E402


def save(fig, out, name, written):
    fig.tight_layout()
    for ext in ("png", "svg"):
        path = os.path.join(out, f"{name}.{ext}")
        fig.savefig(path, dpi=120)
        written.append(path)
    plt.close(fig)


def line_figure(series, name, xlabel, ylabel, title, xscale="linear", yscale="linear", marker=None):
    """[(name, figure)] with one line per (label, xs, ys, style); [] when there is no series."""
    if not series:
        return []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, xs, ys, style in series:
        ax.plot(xs, ys, style, marker=marker, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    # Setting a linear scale would reset the category labels of an axis of strings (matrix values).
    if xscale != "linear":
        ax.set_xscale(xscale)
    if yscale != "linear":
        ax.set_yscale(yscale)
    ax.set_title(title)
    ax.legend(fontsize="small")
    return [(name, fig)]


def latency_by_position(rows):
    styles = ["-", ":", "--", "-."]
    series = []
    for r in rows:
        for i, path in enumerate(ar.position_series()):
            values = ar.metric(r, path)
            if values:
                series.append((f"{ar.label(r)} ({path.split('.')[0]})", range(1, len(values) + 1), values, styles[i % 4]))
    return line_figure(series, "latency_by_position", "token position", "latency per token (µs, median over runs)",
                "Streaming latency against position", yscale="log")


def bandwidth(rows):
    """What a streamed token achieves, in GB/s of the bytes the layer declares it moves, by position; dashed,
    the rate the device reads a buffer of that size at: a roofline for a step bound by memory."""
    series = [(r, path) for r in rows for path in ar.bandwidth_series() if ar.metric(r, path)]
    if not series:
        return []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r, path in series:
        values = ar.metric(r, path)
        (line,) = ax.plot(range(1, len(values) + 1), values, label=f"{ar.label(r)} ({path.split('.')[0]})")
        peak = ar.metric(r, path.rsplit(".", 1)[0] + ".peak_gbps")
        if peak:
            ax.axhline(peak, color=line.get_color(), linestyle="--", linewidth=0.8)
    ax.set_xlabel("token position")
    ax.set_ylabel("GB/s (dashed: the device reading a step's bytes)")
    ax.set_ylim(bottom=0)
    ax.set_title("Bandwidth a streamed token achieves")
    ax.legend(fontsize="small")
    return [("bandwidth", fig)]


def timings(rows):
    paths = [p for p in ar.timings() if any(ar.metric(r, p) for r in rows)]
    if not paths:
        return []
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.5 * len(rows) * len(paths)))
    height = 0.8 / len(paths)
    for i, path in enumerate(paths):
        medians = [ar.metric(r, path, "median") or 0 for r in rows]
        low = [m - (ar.metric(r, path, "p10") or m) for r, m in zip(rows, medians)]
        high = [(ar.metric(r, path, "p90") or m) - m for r, m in zip(rows, medians)]
        ax.barh([y + i * height for y in range(len(rows))], medians, height, xerr=[low, high], label=path.split(".")[0])
    ax.set_yticks([y + height * (len(paths) - 1) / 2 for y in range(len(rows))])
    ax.set_yticklabels([ar.label(r) for r in rows], fontsize="small")
    ax.set_xscale("log")
    ax.set_xlabel("time for the whole sequence (ms, median, p10-p90)")
    ax.legend(fontsize="small")
    return [("timings", fig)]


def consistency(rows):
    checks = ar.errors()
    rows = [r for r in rows if any(ar.metric(r, c, "rel_rms") is not None for c in checks)]
    if not rows:
        return []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / len(checks)
    for i, check in enumerate(checks):
        values = [max(ar.metric(r, check, "rel_rms") or 0, 1e-17) for r in rows]
        ax.bar([x + i * width for x in range(len(rows))], values, width, label=check.split(".")[-1].replace("_", " "))
    ax.set_xticks([x + width for x in range(len(rows))])
    ax.set_xticklabels([ar.label(r) for r in rows], rotation=20, ha="right", fontsize="small")
    ax.set_yscale("log")
    ax.set_ylabel("relative RMS error (‖a−b‖/‖b‖)")
    ax.set_title("Consistency (exact zeros drawn at 1e-17)")
    ax.legend(fontsize="small")
    return [("consistency", fig)]


def state_bytes(rows):
    series = [(ar.label(r), g["tokens"], g["bytes"], "-") for r in rows if (g := ar.metric(r, "state_growth"))]
    return line_figure(series, "state_bytes", "tokens", "state size (bytes)", "State against tokens",
                       xscale="symlog", yscale="symlog", marker="o")


def log_if_wide(set_scale, values, decades=1.0):
    """A log scale when the positive values span at least `decades` decades; on a narrower range a log
    axis has no labelled tick, or labels that run into each other."""
    positive = [v for v in values if v is not None and v > 0]
    if positive and math.log10(max(positive) / min(positive)) >= decades:
        set_scale("log")


def pareto_front(points, better):
    """The points (latency, score, ...) no other point beats on both (lower latency, the better score),
    by latency; among equal latencies only the best score can be on the front."""
    sign = 1 if better == "higher" else -1
    front, best = [], None
    for p in sorted(points, key=lambda p: (p[0], -sign * p[1])):
        if best is None or sign * p[1] > sign * best:
            front.append(p)
            best = p[1]
    return front


def marker_areas(values, smallest=30.0, largest=400.0):
    """Marker areas for state bytes, spread on a log scale between smallest and largest (None: smallest)."""
    known = [v for v in values if v]
    if not known:
        return [smallest for _ in values]
    low, high = math.log(min(known)), math.log(max(known))

    def area(v):
        return smallest + (largest - smallest) * ((math.log(v) - low) / (high - low) if high > low else 0.5)

    return [area(v) if v else smallest for v in values]


def pareto(rows):
    """For each quality task: score against a streamed token's median latency, one point per cell."""
    figures = []
    for task, info in ar.quality_tasks(rows).items():
        points = []
        for r in rows:
            q = ar.quality(r).get(task)
            latency = ar.metric(r, ar.STREAMING_LATENCY, "median")
            if q is not None and latency is not None:
                points.append((latency, q["score"], ar.label(r), ar.metric(r, "state_bytes"), q))
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(8, 5))
        areas = marker_areas([p[3] for p in points])
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=areas, alpha=0.6, edgecolors="black")
        for p in points:
            ax.annotate(p[2], (p[0], p[1]), textcoords="offset points", xytext=(6, 4), fontsize="x-small")
        front = pareto_front(points, info["better"]) if info["better"] in ("higher", "lower") else []
        if len(front) > 1:
            ax.plot([p[0] for p in front], [p[1] for p in front], "--", color="tab:red", label="Pareto front")
        baselines = {}  # the baseline once per distinct value: cells on the same data share it
        for p in points:
            value = p[4].get("baseline")
            if isinstance(value, (int, float)):
                baselines.setdefault(f"{value:.6g}", (value, p[4].get("baseline_name", "baseline")))
        if len(baselines) <= 3:
            for value, name in baselines.values():
                ax.axhline(value, color="grey", linestyle=":", label=f"{name} ({value:.4g})")
        known = [p[3] for p in points if p[3]]
        if known:
            # Two invisible markers explain the sizes: the smallest and the largest state.
            for value, area in ((min(known), min(areas)), (max(known), max(areas))):
                ax.scatter([], [], s=area, alpha=0.6, edgecolors="black", color="tab:blue",
                           label=f"state {value:,} bytes")
        log_if_wide(ax.set_xscale, [p[0] for p in points])
        ax.set_xlabel(f"latency of a streamed token (µs, median; {ar.STREAMING_LATENCY})")
        ax.set_ylabel(f"{info['score_name']} ({info['better']} is better)")
        ax.set_title(f"{task}: quality against streaming latency")
        ax.legend(fontsize="small", labelspacing=1.2)
        figures.append((f"pareto_{task}", fig))
    return figures


def quality_curves(rows):
    """For each quality task that reports a curve: every cell's curve (memory capacity's r² against delay)."""
    figures = []
    for task in ar.quality_tasks(rows):
        curves = [(ar.label(r), c) for r in rows
                  if isinstance(c := ar.quality(r).get(task, {}).get("curve"), dict) and c.get("x") and c.get("y")]
        if curves:
            first = curves[0][1]
            figures += line_figure([(label, c["x"], c["y"], "-") for label, c in curves], f"curve_{task}",
                                   first.get("x_name", "x"), first.get("y_name", "y"),
                                   f"{task}: {first.get('y_name', 'y')} against {first.get('x_name', 'x')}", marker=".")
    return figures


def axis_order(value):
    """Numbers in numeric order (256 before 1024), then other values by name."""
    try:
        return 0, float(value), ""
    except ValueError:
        return 1, 0.0, value


def axes(rows):
    figures = []
    names = sorted({k for r in rows for k in r.get("axes", {}) if k != "attention"})
    for axis in names:
        values = sorted({str(r["axes"][axis]) for r in rows if axis in r.get("axes", {})}, key=axis_order)
        if len(values) < 2:
            continue
        series = []
        for attention in sorted({r["attention"]["name"] for r in rows}):
            for path in ar.timings():
                points = [(str(r["axes"][axis]), ar.metric(r, path, "median")) for r in rows
                          if r["attention"]["name"] == attention and axis in r.get("axes", {})
                          and ar.metric(r, path) is not None]
                if points:
                    points.sort(key=lambda p: values.index(p[0]))
                    series.append((f"{attention} {path.split('.')[0]}", [p[0] for p in points], [p[1] for p in points], "-"))
        figures += line_figure(series, "axis_" + axis.replace(".", "_"), axis, "median time (ms)", f"Against {axis}",
                               yscale="log", marker="o")
    return figures


# In the order the HTML page shows them (scripts/report_html.py).
FIGURES = (latency_by_position, bandwidth, state_bytes, pareto, quality_curves, timings, consistency, axes)


def figures(rows):
    """Every figure the rows support, as (name, matplotlib figure), in FIGURES' order."""
    for make in FIGURES:
        yield from make(rows)


def summary(rows, out, written):
    header, table = ar.summary_table(rows)
    path = os.path.join(out, "summary.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n")
        for line in table:
            f.write("| " + " | ".join(line) + " |\n")
        f.write("\n" + "\n".join(f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in written if p.endswith(".png")) + "\n")
    written.append(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rows = [r for r in ar.latest_per_cell(ar.read(args.results)) if r.get("status") == "ok"]
    if not rows:
        sys.exit("plot: no ok cells in " + ", ".join(args.results))
    os.makedirs(args.out, exist_ok=True)
    written = []
    for name, fig in figures(rows):
        save(fig, args.out, name, written)
    summary(rows, args.out, written)
    print("plot: wrote " + ", ".join(os.path.basename(p) for p in written))


if __name__ == "__main__":
    main()
