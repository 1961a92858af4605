"""Result lines for the report tests, shaped as docs/results.md describes, with the quality metrics of
issue 15 (metrics.quality.<task>), built from seeded samples so every test sees the same numbers."""

import json
import random
import statistics

SCRIPTS_QUALITY = {
    "memory_capacity": {"score_name": "MC", "better": "higher", "baseline_name": "input alone"},
    "mackey_glass": {"score_name": "one-step NRMSE", "better": "lower", "baseline_name": "input alone"},
    "next_embedding": {"score_name": "R²", "better": "higher", "baseline_name": "input alone"},
}


def seeded_samples(seed, n, median=10.0, noise=0.03):
    """n timing samples around median, log-normal noise of relative size noise."""
    rng = random.Random(seed)
    return [median * rng.lognormvariate(0, noise) for _ in range(n)]


def quantile(values, q):
    values = sorted(values)
    position = q * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def stats(samples, keep_samples=True):
    """A stats object of docs/results.md from raw samples."""
    mean = statistics.fmean(samples)
    stdev = statistics.stdev(samples) if len(samples) > 1 else 0.0
    out = {
        "median": statistics.median(samples),
        "mean": mean,
        "stdev": stdev,
        "min": min(samples),
        "max": max(samples),
        "p10": quantile(samples, 0.1),
        "p90": quantile(samples, 0.9),
        "p99": quantile(samples, 0.99),
        "n": len(samples),
        "cv": stdev / mean,
        "unstable": stdev / mean > 0.1,
    }
    if keep_samples:
        out["samples"] = samples
    return out


def quality(task, score, curve_points=0):
    """One task's quality object of issue 15."""
    info = SCRIPTS_QUALITY[task]
    q = {
        "score": score,
        "score_name": info["score_name"],
        "better": info["better"],
        "baseline": 0.5 * score,
        "baseline_name": info["baseline_name"],
        "scores": {"extra": score * 1.1},
        "baseline_scores": {"extra": 0.4 * score},
        "readout": {"ridge": 1e-6, "features": 256, "washout": 100, "train": 2000, "validation": 500, "test": 500},
    }
    if curve_points:
        q["curve"] = {
            "x": list(range(1, curve_points + 1)),
            "y": [max(0.0, 1 - k / curve_points) ** 2 for k in range(1, curve_points + 1)],
            "x_name": "delay k",
            "y_name": "r²",
        }
    return q


def cell(
    hash_,
    name="MHA",
    axes=None,
    study="s",
    index=0,
    commit="aaaaaaaaaaaa",
    time="2026-01-01T00:00:00Z",
    host="vm",
    seed=0,
    scale=1.0,
    tokens=256,
    runs=(67, 27, 10),
    rel_rms=3e-7,
    state=4096,
    scores=None,
    curve_points=0,
):
    """One ok result line: full, step and prefix timings from seeded samples (multiplied by scale), the
    per-token and per-position latencies, consistency and closed-loop errors, state growth and, when
    scores ({task: score}) are given, quality."""
    axes = dict(axes or {}, attention=name)
    full, step, prefix = (
        seeded_samples(f"{seed}:{mode}", n, median)
        for mode, n, median in (("full", runs[0], 10.0), ("step", runs[1], 30.0), ("prefix", runs[2], 900.0))
    )
    full, step, prefix = ([v * scale for v in s] for s in (full, step, prefix))
    per_position = [scale * (40 + 0.1 * t) for t in range(tokens)]
    metrics = {
        "full": {"time_ms": stats(full), "tokens_per_s": tokens / statistics.median(full) * 1e3},
        "step": {
            "time_ms": stats(step),
            "per_token_us": stats([v * 1e3 / tokens for v in step], keep_samples=False),
            "per_position_us": per_position,
            "tokens_per_s": tokens / statistics.median(step) * 1e3,
        },
        "prefix": {
            "time_ms": stats(prefix),
            "per_token_us": stats([v * 1e3 / tokens for v in prefix], keep_samples=False),
            "per_position_us": [p * 10 for p in per_position],
            "tokens_per_s": tokens / statistics.median(prefix) * 1e3,
        },
        "consistency": {
            "step_vs_full": {"rel_rms": rel_rms, "max_abs": rel_rms},
            "prefix_vs_step": {"rel_rms": rel_rms, "max_abs": rel_rms},
        },
        "rollout": {"step_vs_prefix": {"rel_rms": rel_rms, "max_abs": rel_rms, "seed_len": 16, "horizon": 32}},
        "state_bytes": state,
        "state_bytes_initial": 0,
        "state_growth": {
            "tokens": [0] + [2**i for i in range(9)],
            "bytes": [0] + [state * 2**i // 256 for i in range(9)],
        },
        "tokens": tokens,
        "batch": 1,
        "peak_rss_bytes": 300_000_000,
    }
    if scores:
        metrics["quality"] = {
            task: quality(task, score, curve_points if task == "memory_capacity" else 0)
            for task, score in scores.items()
        }
    return {
        "schema_version": 1,
        "study": study,
        "cell": index,
        "hash": hash_,
        "time": time,
        "status": "ok",
        "params": {},
        "axes": axes,
        "dtype": "float",
        "attention": {"name": name, "plugin": "mha"},
        "context": {"host": host, "cpu": "test cpu", "git_commit": commit, "gpus": [], "torch": "1.13.0"},
        "metrics": metrics,
    }


def bench_cpu_cells(commit="aaaaaaaaaaaa", time="2026-01-01T00:00:00Z", scale=1.0, scores=True):
    """Cells shaped like configs/bench_cpu.yaml's five (L=256, its sample counts), with quality."""

    def q(i):
        return (
            {"memory_capacity": 20.0 + 10 * i, "mackey_glass": 0.1 / (i + 1), "next_embedding": 0.5 + 0.1 * i}
            if scores
            else None
        )

    return [
        cell(
            "a3be0c52c4a6fe4a",
            "MHA",
            {},
            "bench_cpu",
            0,
            commit,
            time,
            seed=1,
            scale=scale,
            state=786432,
            scores=q(0),
            curve_points=60,
        ),
        cell(
            "522352e6dbec80bd",
            "MHA-unmasked",
            {"run.modes": "[full]"},
            "bench_cpu",
            1,
            commit,
            time,
            seed=2,
            scale=scale,
            state=786432,
            scores=q(1),
            curve_points=60,
        ),
        cell(
            "ddefe4c672ac787f",
            "RA",
            {"attention.params.res_size": 256},
            "bench_cpu",
            2,
            commit,
            time,
            seed=3,
            scale=scale,
            state=4096,
            scores=q(2),
            curve_points=60,
        ),
        cell(
            "2642e999b40ac2ff",
            "RA",
            {"attention.params.res_size": 1024},
            "bench_cpu",
            3,
            commit,
            time,
            seed=4,
            scale=scale,
            state=16384,
            scores=q(3),
            curve_points=60,
        ),
        cell(
            "768fb6cb0b703f8d",
            "RA",
            {"attention.params.res_size": 4096, "measure.min_runs": 3},
            "bench_cpu",
            4,
            commit,
            time,
            seed=5,
            scale=scale,
            runs=(9, 3, 3),
            state=65536,
            scores=q(4),
            curve_points=60,
        ),
    ]


def write(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
