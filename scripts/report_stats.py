"""The statistics behind scripts/report.py: percentile-bootstrap confidence intervals of a median and of
a ratio of medians from raw timing samples, the A/B verdict, steps between consecutive runs of a
history, and the rules that call a change of a consistency error or a quality score worse.
Standard library only. Every interval is seeded from what it describes, so the same input gives the
same answer whatever else the report holds."""

import math
import random
import statistics

CONFIDENCE = 0.95
RESAMPLES = 2000
# Below this many samples on either side a bootstrap interval is too narrow to trust (with one sample it
# is a point): the interval is shown, the verdict is "too few samples" and nothing is gated on it.
MIN_SAMPLES = 5
# Consistency errors are rounding noise near the dtype's epsilon: a change counts once the error moved by
# more than this factor and the larger of the two is above the floor (float32 rounding is ~1e-7).
ERROR_FACTOR = 2.0
ERROR_FLOOR = 1e-6
# Quality scores come from seeded runs, so they repeat to rounding; a move larger than this fraction of
# the score counts as a change.
QUALITY_TOLERANCE = 0.01

FASTER, SLOWER, NOT_SEPARATED, FEW, NO_SAMPLES = "faster", "slower", "not separated", "too few samples", "no samples"
WORSE, BETTER, SAME, CHANGED = "worse", "better", "same", "changed"


def quantile(sorted_values, q):
    """The q-quantile of sorted values, interpolated linearly (numpy's default, as the runner's p10/p90)."""
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _median_draw(ordered, rng):
    """The median of one bootstrap resample of the sorted values, drawn exactly without building the
    resample, so that a GPU cell's thousands of samples cost no more than ten: a value drawn uniformly
    from the n sorted values is ordered[ceil(n·U) - 1] for a uniform U, so a resample's k-th smallest
    value is ordered[ceil(n·U_(k)) - 1], where U_(k), the k-th smallest of n uniforms, follows
    Beta(k, n + 1 - k); for even n the next one is U_(k+1) = 1 - (1 - U_(k))·V^(1/(n - k)), V uniform."""
    n = len(ordered)
    k = (n + 1) // 2

    def at(u):
        return ordered[min(n - 1, max(0, math.ceil(n * u) - 1))]

    u = rng.betavariate(k, n + 1 - k)
    if n % 2:
        return at(u)
    return (at(u) + at(1 - (1 - u) * rng.random() ** (1 / (n - k)))) / 2


def _bootstrap_medians(runs, rng, resamples):
    """Medians of bootstrap resamples of a cell's runs (lists of samples). With several runs, each
    resample first picks as many runs, with replacement, then resamples their pooled samples: runs of
    the same code differ by more than the samples within a run do (the machine's state), and an
    interval blind to that would separate two runs of identical code."""
    if len(runs) == 1:
        ordered = sorted(runs[0])
        return [_median_draw(ordered, rng) for _ in range(resamples)]
    pooled, medians = {}, []
    for _ in range(resamples):
        pick = tuple(sorted(rng.randrange(len(runs)) for _ in runs))
        ordered = pooled.get(pick)
        if ordered is None:
            ordered = sorted(v for i in pick for v in runs[i])
            if len(pooled) < 256:  # few runs have few distinct picks; many runs must not hold them all
                pooled[pick] = ordered
        medians.append(_median_draw(ordered, rng))
    return medians


def _interval(estimates, confidence):
    estimates.sort()
    tail = (1 - confidence) / 2
    return quantile(estimates, tail), quantile(estimates, 1 - tail)


def pooled_median(runs):
    """The median of every sample of the runs."""
    return statistics.median([v for run in runs for v in run])


def median_interval(runs, seed, confidence=CONFIDENCE, resamples=RESAMPLES):
    """(median, low, high): the median of the runs' samples (a list of sample lists) and its
    percentile-bootstrap interval; seed names what the samples are (any string), so the interval does
    not depend on what else was computed."""
    rng = random.Random(f"median:{seed}")
    low, high = _interval(_bootstrap_medians(runs, rng, resamples), confidence)
    return pooled_median(runs), low, high


def ratio_interval(base, other, seed, confidence=CONFIDENCE, resamples=RESAMPLES):
    """(ratio, low, high): the median of other's samples over base's and its percentile-bootstrap
    interval, each side a list of runs (sample lists), resampled independently. None when a median of
    base can be zero (no ratio exists)."""
    if min(v for run in base for v in run) <= 0:
        return None
    rng = random.Random(f"ratio:{seed}")
    ratios = [
        b / a for a, b in zip(_bootstrap_medians(base, rng, resamples), _bootstrap_medians(other, rng, resamples))
    ]
    low, high = _interval(ratios, confidence)
    return pooled_median(other) / pooled_median(base), low, high


def verdict(low, high):
    """Faster when the whole interval of the time ratio is below 1, slower when above, else not separated."""
    if high < 1:
        return FASTER
    if low > 1:
        return SLOWER
    return NOT_SEPARATED


def compare_timing(base, other, seed):
    """The A/B comparison of two sides, each a list of runs (sample lists; none when a run kept no
    samples): {"ratio", "low", "high", "verdict"}; low and high are None where there are no samples, and
    the verdict then says why none is given."""
    result = ratio_interval(base, other, seed) if base and other else None
    if result is None:
        return {"ratio": None, "low": None, "high": None, "verdict": NO_SAMPLES}
    ratio, low, high = result
    enough = min(sum(map(len, base)), sum(map(len, other))) >= MIN_SAMPLES
    return {"ratio": ratio, "low": low, "high": high, "verdict": verdict(low, high) if enough else FEW}


def fails(comparison, fail_above):
    """Whether a timing comparison should fail CI: slower, with the ratio of medians above fail_above."""
    return comparison["verdict"] == SLOWER and comparison["ratio"] > fail_above


def step(previous, current):
    """A step between two consecutive runs of a history, each {"median", "low", "high", "n"}: "slower" or
    "faster" when the two intervals do not overlap, else None (also when either has too few samples)."""
    if previous.get("low") is None or current.get("low") is None or min(previous["n"], current["n"]) < MIN_SAMPLES:
        return None
    if current["low"] > previous["high"]:
        return SLOWER
    if current["high"] < previous["low"]:
        return FASTER
    return None


def compare_error(base, other):
    """A consistency error (relative RMS) from base to other: worse, better or same (see ERROR_FACTOR)."""
    if max(base, other) <= ERROR_FLOOR:
        return SAME
    if other > ERROR_FACTOR * base:
        return WORSE
    if base > ERROR_FACTOR * other:
        return BETTER
    return SAME


def compare_quality(base, other, better):
    """A quality score from base to other in the task's direction ("higher" or "lower" is better): worse,
    better or same (a move within QUALITY_TOLERANCE of the larger magnitude); changed when the task gave
    no direction."""
    change = other - base if better == "higher" else base - other
    if abs(change) <= QUALITY_TOLERANCE * max(abs(base), abs(other)):
        return SAME
    if better not in ("higher", "lower"):
        return CHANGED
    return BETTER if change > 0 else WORSE
