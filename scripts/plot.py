#!/usr/bin/env python3
"""Figures from attnbench results files, as PNG and SVG, with a markdown summary beside them:
  latency_by_position  per-token latency against token position, every streaming mode and cell
                       (a KV cache grows, a reservoir stays flat)
  timings              each timed mode's whole-sequence time by cell
  consistency          step vs forward, prefix vs step and closed-loop errors (relative RMS)
  state_bytes          state size against tokens
  axis_<name>          for each matrix axis with several values: median times against it

usage: scripts/plot.py RESULTS.jsonl [MORE.jsonl ...] --out DIR
Needs matplotlib (Debian: python3-matplotlib; scripts/setup.sh installs it with ATTNBENCH_WITH_PLOTS=1).
"""
import argparse
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


def line_figure(series, out, name, written, xlabel, ylabel, title, xscale="linear", yscale="linear", marker=None):
    """One line per (label, xs, ys, style); nothing is written when there is no series."""
    if not series:
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, xs, ys, style in series:
        ax.plot(xs, ys, style, marker=marker, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xscale(xscale)
    ax.set_yscale(yscale)
    ax.set_title(title)
    ax.legend(fontsize="small")
    save(fig, out, name, written)


def latency_by_position(rows, out, written):
    styles = ["-", ":", "--", "-."]
    series = []
    for r in rows:
        for i, path in enumerate(ar.position_series()):
            values = ar.metric(r, path)
            if values:
                series.append((f"{ar.label(r)} ({path.split('.')[0]})", range(1, len(values) + 1), values, styles[i % 4]))
    line_figure(series, out, "latency_by_position", written, "token position", "latency per token (µs, median over runs)",
                "Streaming latency against position", yscale="log")


def timings(rows, out, written):
    paths = [p for p in ar.timings() if any(ar.metric(r, p) for r in rows)]
    if not paths:
        return
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
    save(fig, out, "timings", written)


def consistency(rows, out, written):
    checks = ar.errors()
    rows = [r for r in rows if any(ar.metric(r, c, "rel_rms") is not None for c in checks)]
    if not rows:
        return
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
    save(fig, out, "consistency", written)


def state_bytes(rows, out, written):
    series = [(ar.label(r), g["tokens"], g["bytes"], "-") for r in rows if (g := ar.metric(r, "state_growth"))]
    line_figure(series, out, "state_bytes", written, "tokens", "state size (bytes)", "State against tokens",
                xscale="symlog", yscale="symlog", marker="o")


def axes(rows, out, written):
    names = sorted({k for r in rows for k in r.get("axes", {}) if k != "attention"})
    for axis in names:
        values = sorted({str(r["axes"][axis]) for r in rows if axis in r.get("axes", {})})
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
        line_figure(series, out, "axis_" + axis.replace(".", "_"), written, axis, "median time (ms)", f"Against {axis}",
                    yscale="log", marker="o")


def summary(rows, out, written):
    columns = ar.summary_columns()
    path = os.path.join(out, "summary.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("| cell | status | " + " | ".join(c["title"] for c in columns) + " | state bytes |\n")
        f.write("|---|---|" + "---|" * len(columns) + "---|\n")
        for r in rows:
            state = ar.metric(r, "state_bytes")
            f.write(f"| {ar.label(r)} | {r.get('status')} | " + " | ".join(ar.column_text(r, c) for c in columns)
                    + f" | {state if state is not None else '-'} |\n")
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
    for figure in (latency_by_position, timings, consistency, state_bytes, axes):
        figure(rows, args.out, written)
    summary(rows, args.out, written)
    print("plot: wrote " + ", ".join(os.path.basename(p) for p in written))


if __name__ == "__main__":
    main()
