"""The one-page HTML report of scripts/report.py. The page stands alone: figures inline as base64 SVG,
its style in the page, no script, nothing fetched, so it opens offline and can be attached to a message.
In order: where the results come from, the summary table, the figures of scripts/plot.py (per-position
latency, state bytes against tokens, quality against latency and the quality curves once quality
metrics exist, then timings and consistency), each A/B comparison (its ratios with their intervals, the
table with verdicts), and the history (a chart per measure with its steps marked, the steps, every run)."""

import base64
import datetime
import html
import io
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import attnbench_results as ar  # noqa: E402
import plot  # noqa: E402
import report_stats as st  # noqa: E402

# Text stays text in the SVG (a fraction of the size of glyphs drawn as paths), and ids are the same on
# every run, so the same results give the same page.
matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "attnbench"})

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1280px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: .85em; margin: .8em 0; } div.wide { overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: right; } td { white-space: nowrap; }
th { background: #f2f2f2; } td:first-child, th:first-child, td.text { text-align: left; }
tr.faster td.verdict { background: #d9f2d9; } tr.slower td.verdict { background: #f8d7d7; }
tr.fails td { font-weight: bold; } tr.worse td.verdict { background: #fde4c4; } tr.flag td { background: #fff3cd; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, .note { color: #555; font-size: .9em; }
dl.facts dt { font-weight: bold; float: left; clear: left; width: 9em; } dl.facts dd { margin-left: 10em; }
"""


def esc(value):
    return html.escape(str(value), quote=True)


def figure(name, fig, caption):
    """The figure as an inline SVG image with its caption; the figure is closed."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f'<figure id="{esc(name)}"><img alt="{esc(caption)}" src="data:image/svg+xml;base64,{data}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def table(header, rows, classes=None):
    """An HTML table of texts; classes gives each row's class (verdicts colour their rows)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{esc(classes[i])}"' if classes and classes[i] else ""
        cells = "".join(f"<td>{esc(c)}</td>" for c in row[:-1]) + f'<td class="verdict">{esc(row[-1])}</td>'

        body.append(f"<tr{cls}>{cells}</tr>")
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


CAPTIONS = {
    "latency_by_position": "Per-token latency against position, every streaming mode and cell: a KV cache grows, "
    "a reservoir stays flat, prefix recompute grows with the prefix.",
    "state_bytes": "The state's size against tokens.",
    "timings": "Each timed mode's whole-sequence time by cell (median, p10 to p90).",
    "consistency": "Consistency: relative RMS error of step against forward, prefix against step and the closed loop.",
}


def caption(name):
    if name.startswith("pareto_"):
        return (
            f"{name[7:]}: quality score against the latency of a streamed token, one point per cell, marker area "
            "from the state's bytes; the dashed line joins the cells no other beats on both."
        )
    if name.startswith("curve_"):
        return f"{name[6:]}: every cell's curve."
    if name.startswith("axis_"):
        return f"Median times against the matrix axis {name[5:]}."
    return CAPTIONS.get(name, name)


def facts(rows, files):
    """Where the results come from: files, studies, commits, machines, from every line read."""

    def distinct(get):
        return ", ".join(sorted({str(v) for r in rows if (v := get(r)) not in (None, "", [])})) or "-"

    items = [
        ("files", ", ".join(os.path.basename(f) for f in files)),
        ("studies", distinct(lambda r: r.get("study"))),
        ("commits", distinct(ar.commit)),
        (
            "machines",
            distinct(lambda r: f"{r.get('context', {}).get('host', '?')} ({r.get('context', {}).get('cpu', '?')})"),
        ),
        ("GPUs", distinct(lambda r: ", ".join(g.get("name", "?") for g in r.get("context", {}).get("gpus", [])))),
        ("torch", distinct(lambda r: r.get("context", {}).get("torch"))),
        ("results", f"{len(rows)} ok lines, {len({r.get('hash') for r in rows})} cells"),
    ]
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items) + "</dl>"


def bar(value, low, high):
    """Error-bar lengths below and above value for an interval; a percentile interval need not hold the
    estimate itself (few or lumpy samples), and a bar cannot be negative."""
    if low is None:
        return 0.0, 0.0
    return max(0.0, value - low), max(0.0, high - value)


def ratio_figure(comparison):
    """The timings' ratios of medians with their intervals, one row per cell and mode, 1 and the CI gate drawn."""
    items = [
        (cell["label"], i)
        for cell in comparison["cells"]
        for i in cell["items"]
        if i["kind"] == "timing" and i["ratio"] is not None
    ]
    if not items:
        return None
    colours = {st.FASTER: "tab:green", st.SLOWER: "tab:red"}
    fig, ax = plt.subplots(figsize=(8, 1 + 0.28 * len(items)))
    for y, (label, item) in enumerate(reversed(items)):
        colour = colours.get(item["verdict"], "tab:grey")
        if item["low"] is not None:
            ax.errorbar(
                [item["ratio"]],
                [y],
                xerr=[[length] for length in bar(item["ratio"], item["low"], item["high"])],
                fmt="o",
                color=colour,
                capsize=3,
            )
        else:
            ax.plot([item["ratio"]], [y], "o", mfc="none", color=colour)
    ax.axvline(1, color="black", linewidth=0.8)
    ax.axvline(
        comparison["fail_above"],
        color="tab:red",
        linestyle="--",
        linewidth=0.8,
        label=f"--fail-above {comparison['fail_above']:g}",
    )
    ax.set_yticks(range(len(items)))
    ax.set_yticklabels([f"{label} · {item['measure']}" for label, item in reversed(items)], fontsize="small")
    plot.log_if_wide(
        ax.set_xscale, [i["ratio"] for _, i in items] + [i["low"] for _, i in items] + [i["high"] for _, i in items]
    )
    ax.set_xlabel(f"ratio of medians, {comparison['other']} / {comparison['base']}")
    ax.legend(fontsize="small")
    return fig


def comparison_section(comparison):
    base, other = comparison["base"], comparison["other"]
    parts = [
        f"<h2>A/B: {esc(other)} against {esc(base)}</h2>",
        "<p>A timing is faster or slower when the 95% bootstrap interval of its ratio of medians (from the raw "
        f"samples) excludes 1; report.py exits 1 when one is slower with its ratio above {comparison['fail_above']:g}. "
        "Consistency errors and quality scores are compared in their better direction; a speed-up beside a worse "
        "one is flagged.</p>",
    ]
    fig = ratio_figure(comparison)
    if fig is not None:
        parts.append(
            figure(
                f"ab_{other}",
                fig,
                f"Each timing's ratio of medians, {other} over {base}, with its 95% interval: "
                "green faster, red slower, grey not separated (or too few samples); hollow: no samples, no interval.",
            )
        )
    header, rows, classes = comparison["table"]
    parts.append(table(header, rows, classes))
    parts += [f'<p class="note">{esc(n)}</p>' for n in comparison["notes"]]
    return "\n".join(parts)


def history_figure(hist, path):
    """One line per cell across the commits, 95% intervals as bars, steps marked."""
    commits = [c["commit"] for c in hist["commits"]]
    fig, ax = plt.subplots(figsize=(9, 4.8))
    drawn = False
    for s in hist["series"]:
        points = s["metrics"].get(path)
        if not points:
            continue
        xs = [commits.index(p["commit"]) for p in points]
        ys = [p["median"] for p in points]
        below, above = zip(*(bar(p["median"], p["low"], p["high"]) for p in points))
        ax.errorbar(xs, ys, yerr=[below, above], marker="o", markersize=3, capsize=2, label=s["label"])
        for x, p in zip(xs, points):
            if p["step"]:
                ax.plot(
                    [x],
                    [p["median"]],
                    "^" if p["step"] == st.SLOWER else "v",
                    markersize=12,
                    mfc="none",
                    color="tab:red" if p["step"] == st.SLOWER else "tab:green",
                )
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xticks(range(len(commits)))
    ax.set_xticklabels(commits, rotation=30, ha="right", fontsize="small")
    quality = path.startswith("quality.")
    if not quality:
        plot.log_if_wide(ax.set_yscale, [p["median"] for s in hist["series"] for p in s["metrics"].get(path, [])])
    ax.set_ylabel(f"{path} (mean score)" if quality else f"{path} (ms, median, 95% interval)")
    ax.set_title(f"{path} across commits (▲ slower step, ▼ faster step)")
    ax.legend(fontsize="x-small")
    return fig


def history_section(hist):
    parts = [
        f"<h2>History: {len(hist['series'])} cells over {len(hist['commits'])} commits</h2>",
        f"<p>Ordered {esc(hist['ordered_by'])}. A step is a change of median whose 95% interval does not overlap "
        f"the previous commit's.</p>",
    ]
    if len(hist["commits"]) < 2:
        parts.append(
            f'<p class="note">A history needs results from two or more commits; these all come from '
            f'{esc(hist["commits"][0]["commit"])}.</p>'
        )
    paths = []
    for s in hist["series"]:
        paths += [p for p in s["metrics"] if p not in paths]
    for path in paths:
        fig = history_figure(hist, path)
        if fig is not None:
            parts.append(figure(f"history_{path}", fig, f"{path} for every cell across commits."))
    found = hist["steps"]
    parts.append(f"<h3>Steps ({len(found['rows'])})</h3>")
    if found["rows"]:
        parts.append(table(found["header"], found["rows"], found["classes"]))
    runs = hist["runs"]
    parts.append(
        "<details><summary>Every run</summary>" + table(runs["header"], runs["rows"], runs["classes"]) + "</details>"
    )
    return "\n".join(parts)


def build(rows, summary_name, read, files, comparisons, hist):
    """The page: rows are the cells of the summary and its figures (the newest set); read, every line
    read from files, tells where the results come from."""
    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header, cells = ar.summary_table(rows)
    parts = [
        f'<header><h1>attnbench report</h1><p class="note">Generated {esc(generated)} by scripts/report.py.</p>',
        facts(read, files) + "</header>",
        f'<section id="summary"><h2>Summary: {esc(summary_name)}</h2>{table(header, cells)}</section>',
        '<section id="figures">'
        + "\n".join(figure(n, fig, caption(n)) for n, fig in plot.figures(rows))
        + "</section>",
    ]
    for i, comparison in enumerate(comparisons, 1):
        parts.append(f'<section id="ab-{i}">{comparison_section(comparison)}</section>')
    if hist:
        parts.append(f'<section id="history">{history_section(hist)}</section>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>attnbench report</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )


def write(path, text):
    """Writes the page atomically (a reader never sees half of it); returns its size in bytes."""
    data = text.encode("utf-8")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return len(data)
