#!/usr/bin/env python3
"""Figures from attnbench results files, as PNG and SVG, with a markdown summary beside them:
  latency_by_position  per-token latency against token position, every streaming mode and cell
                       (a KV cache grows, a reservoir stays flat)
  full_sequence        full-sequence time and tokens/s by cell
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


def latency_by_position(rows, out, written):
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in rows:
        for mode, style in (("step", "-"), ("prefix", ":")):
            series = ar.metric(r, mode, "per_position_us")
            if series:
                ax.plot(range(1, len(series) + 1), series, style, label=f"{ar.label(r)} ({mode})")
    ax.set_xlabel("token position")
    ax.set_ylabel("latency per token (µs, median over runs)")
    ax.set_yscale("log")
    ax.set_title("Streaming latency against position")
    ax.legend(fontsize="small")
    save(fig, out, "latency_by_position", written)


def full_sequence(rows, out, written):
    rows = [r for r in rows if ar.metric(r, "full", "time_ms")]
    if not rows:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5))
    names = [ar.label(r) for r in rows]
    left.barh(names, [ar.metric(r, "full", "time_ms", "median") for r in rows],
              xerr=[[ar.metric(r, "full", "time_ms", "median") - ar.metric(r, "full", "time_ms", "p10") for r in rows],
                    [ar.metric(r, "full", "time_ms", "p90") - ar.metric(r, "full", "time_ms", "median") for r in rows]])
    left.set_xlabel("full-sequence time (ms, median, p10-p90)")
    right.barh(names, [ar.metric(r, "full", "tokens_per_s") for r in rows])
    right.set_xlabel("throughput (tokens/s)")
    right.set_yticklabels([])
    save(fig, out, "full_sequence", written)


def consistency(rows, out, written):
    checks = (("consistency", "step_vs_full"), ("consistency", "prefix_vs_step"), ("rollout", "step_vs_prefix"))
    rows = [r for r in rows if any(ar.metric(r, a, b, "rel_rms") is not None for a, b in checks)]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / len(checks)
    for i, (a, b) in enumerate(checks):
        values = [max(ar.metric(r, a, b, "rel_rms") or 0, 1e-17) for r in rows]
        ax.bar([x + i * width for x in range(len(rows))], values, width, label=b.replace("_", " "))
    ax.set_xticks([x + width for x in range(len(rows))])
    ax.set_xticklabels([ar.label(r) for r in rows], rotation=20, ha="right", fontsize="small")
    ax.set_yscale("log")
    ax.set_ylabel("relative RMS error (‖a−b‖/‖b‖)")
    ax.set_title("Consistency (exact zeros drawn at 1e-17)")
    ax.legend(fontsize="small")
    save(fig, out, "consistency", written)


def state_bytes(rows, out, written):
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in rows:
        growth = ar.metric(r, "state_growth")
        if growth:
            ax.plot(growth["tokens"], growth["bytes"], marker="o", label=ar.label(r))
    ax.set_xlabel("tokens")
    ax.set_ylabel("state size (bytes)")
    ax.set_xscale("symlog")
    ax.set_yscale("symlog")
    ax.set_title("State against tokens")
    ax.legend(fontsize="small")
    save(fig, out, "state_bytes", written)


def axes(rows, out, written):
    names = sorted({k for r in rows for k in r.get("axes", {}) if k != "attention"})
    for axis in names:
        values = sorted({str(r["axes"][axis]) for r in rows if axis in r.get("axes", {})})
        if len(values) < 2:
            continue
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for attention in sorted({r["attention"]["name"] for r in rows}):
            for mode in ("full", "step"):
                points = [(str(r["axes"][axis]), ar.metric(r, mode, "time_ms", "median")) for r in rows
                          if r["attention"]["name"] == attention and axis in r.get("axes", {})
                          and ar.metric(r, mode, "time_ms") is not None]
                if points:
                    points.sort(key=lambda p: values.index(p[0]))
                    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"{attention} {mode}")
        ax.set_xlabel(axis)
        ax.set_ylabel("median time (ms)")
        ax.set_yscale("log")
        ax.legend(fontsize="small")
        save(fig, out, "axis_" + axis.replace(".", "_"), written)


def summary(rows, out, written):
    path = os.path.join(out, "summary.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("| cell | status | full ms | step ms | prefix ms | tokens/s | step vs full | state bytes |\n")
        f.write("|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            def ms(mode):
                v = ar.metric(r, mode, "time_ms", "median")
                return f"{v:.3f}" if v is not None else "-"
            tps = ar.metric(r, "full", "tokens_per_s")
            err = ar.metric(r, "consistency", "step_vs_full", "rel_rms")
            f.write(f"| {ar.label(r)} | {r.get('status')} | {ms('full')} | {ms('step')} | {ms('prefix')} | "
                    f"{f'{tps:.0f}' if tps else '-'} | {f'{err:.1e}' if err is not None else '-'} | "
                    f"{ar.metric(r, 'state_bytes') if ar.metric(r, 'state_bytes') is not None else '-'} |\n")
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
    for figure in (latency_by_position, full_sequence, consistency, state_bytes, axes):
        figure(rows, args.out, written)
    summary(rows, args.out, written)
    print("plot: wrote " + ", ".join(os.path.basename(p) for p in written))


if __name__ == "__main__":
    main()
