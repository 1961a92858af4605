"""Asserts the results scripts: merging shards keeps every cell exactly once and is idempotent (an ok
line wins over an error for the same cell, a torn last line is ignored), report.py pairs cells by hash
with ratios, and plot.py writes its figures and summary (when matplotlib is installed).
Run: python3 -m unittest discover -s tests/scripts"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts")


def row(cell, hash_, status="ok", time_ms=1.0, axes=None):
    r = {"schema_version": 1, "study": "s", "cell": cell, "hash": hash_, "status": status,
         "attention": {"name": "mha" if cell % 2 == 0 else "ra", "plugin": "mha"},
         "axes": axes or {"attention": "mha", "run.seed": str(cell)}, "params": {}}
    if status == "ok":
        r["metrics"] = {
            "full": {"time_ms": {"median": time_ms, "p10": time_ms * 0.9, "p90": time_ms * 1.1}, "tokens_per_s": 100.0 / time_ms},
            "step": {"time_ms": {"median": 2 * time_ms}, "per_position_us": [10.0, 11.0, 12.0],
                     "bandwidth_gbps": [50.0, 45.0, 41.0], "peak_gbps": 60.0},
            "consistency": {"step_vs_full": {"rel_rms": 1e-7, "max_abs": 1e-7},
                            "prefix_vs_step": {"rel_rms": 0.0, "max_abs": 0.0}},
            "rollout": {"step_vs_prefix": {"rel_rms": 2e-7, "max_abs": 1e-7, "seed_len": 2, "horizon": 3}},
            "state_bytes": 64, "state_growth": {"tokens": [0, 1, 2, 3], "bytes": [0, 16, 32, 48]}}
    else:
        r["message"] = "boom"
    return r


def write(path, rows, torn=""):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        f.write(torn)


def run(*args):
    return subprocess.run([sys.executable, *args], check=True, capture_output=True, text=True).stdout


class MergeTest(unittest.TestCase):
    def test_shards_merge_into_every_cell_once_and_merging_again_changes_nothing(self):
        with tempfile.TemporaryDirectory() as d:
            a, b, out = (os.path.join(d, n) for n in ("a.jsonl", "b.jsonl", "out.jsonl"))
            write(a, [row(0, "h0"), row(2, "h2", status="error")], torn='{"hash": "h9", "sta')
            write(b, [row(1, "h1"), row(2, "h2"), row(3, "h3")])
            run(os.path.join(SCRIPTS, "merge_results.py"), out, a, b)
            merged = [json.loads(l) for l in open(out)]
            self.assertEqual([r["hash"] for r in merged], ["h0", "h1", "h2", "h3"])
            self.assertEqual(merged[2]["status"], "ok")  # the rerun that succeeded wins
            first = open(out).read()
            run(os.path.join(SCRIPTS, "merge_results.py"), out, out, a, b)
            self.assertEqual(open(out).read(), first)


class ReportTest(unittest.TestCase):
    def test_pairs_cells_by_hash_with_ratios(self):
        with tempfile.TemporaryDirectory() as d:
            a, b = os.path.join(d, "a.jsonl"), os.path.join(d, "b.jsonl")
            write(a, [row(0, "h0", time_ms=4.0)])
            write(b, [row(0, "h0", time_ms=2.0)])
            text = run(os.path.join(SCRIPTS, "report.py"), a, b)
            self.assertIn("| mha seed=0 | full | 4.000 | 2.000 | 0.50 |", text)


@unittest.skipIf(importlib.util.find_spec("matplotlib") is None, "matplotlib is not installed")
class PlotTest(unittest.TestCase):
    def test_writes_every_figure_and_the_summary(self):
        with tempfile.TemporaryDirectory() as d:
            results = os.path.join(d, "r.jsonl")
            write(results, [row(0, "h0"), row(1, "h1", time_ms=3.0), row(2, "h2")])
            run(os.path.join(SCRIPTS, "plot.py"), results, "--out", os.path.join(d, "fig"))
            files = set(os.listdir(os.path.join(d, "fig")))
            for name in ("latency_by_position", "bandwidth", "timings", "consistency", "state_bytes", "axis_run_seed"):
                self.assertIn(name + ".png", files)
                self.assertIn(name + ".svg", files)
            summary = open(os.path.join(d, "fig", "summary.md")).read()
            self.assertIn("| mha seed=0 | ok | 1.000 | 100 | 2.000 | - | 1.0e-07 | 0.0e+00 | 2.0e-07 | 64 |", summary)


if __name__ == "__main__":
    unittest.main()
