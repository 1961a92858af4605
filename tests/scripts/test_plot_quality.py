"""Asserts scripts/plot.py's quality figures (issue 15): the Pareto front is exactly the cells no other
beats on both latency and score, in the task's direction; marker areas grow with the state's bytes on a
log scale; plot.py writes a pareto_<task> figure for every task and a curve_<task> only for tasks with a
curve, with each task's score in summary.md; an axis of matrix values keeps the values as its labels,
numbers in numeric order.
Run: python3 -m unittest discover -s tests/scripts"""

import importlib.util
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "..", "..", "scripts")
sys.path.insert(0, SCRIPTS)
import results_fixtures as fx  # noqa: E402


@unittest.skipIf(importlib.util.find_spec("matplotlib") is None, "matplotlib is not installed")
class QualityFigureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import plot

        cls.plot = plot

    def test_pareto_front(self):
        points = [(1.0, 5.0, "a"), (2.0, 7.0, "b"), (2.0, 6.0, "c"), (3.0, 6.5, "d"), (4.0, 9.0, "e"), (0.5, 1.0, "f")]
        self.assertEqual([p[2] for p in self.plot.pareto_front(points, "higher")], ["f", "a", "b", "e"])
        self.assertEqual([p[2] for p in self.plot.pareto_front(points, "lower")], ["f"])
        self.assertEqual(
            [p[2] for p in self.plot.pareto_front([(1.0, 3.0, "a"), (2.0, 2.0, "b"), (3.0, 2.0, "c")], "lower")],
            ["a", "b"],
        )

    def test_marker_areas_grow_with_state_bytes_on_a_log_scale(self):
        for area, expected in zip(self.plot.marker_areas([None, 1000, 10000, 100000]), [30.0, 30.0, 215.0, 400.0]):
            self.assertAlmostEqual(area, expected, places=9)
        self.assertEqual(self.plot.marker_areas([None, None]), [30.0, 30.0])
        self.assertEqual(self.plot.marker_areas([64, 64]), [215.0, 215.0])

    def test_writes_a_pareto_figure_per_task_and_curves_where_there_are_some(self):
        with tempfile.TemporaryDirectory() as d:
            results = os.path.join(d, "r.jsonl")
            fx.write(results, fx.bench_cpu_cells())
            subprocess.run(
                [sys.executable, os.path.join(SCRIPTS, "plot.py"), results, "--out", os.path.join(d, "fig")],
                check=True,
                capture_output=True,
            )
            files = set(os.listdir(os.path.join(d, "fig")))
            for name in (
                "pareto_memory_capacity",
                "pareto_mackey_glass",
                "pareto_next_embedding",
                "curve_memory_capacity",
            ):
                self.assertIn(name + ".png", files)
                self.assertIn(name + ".svg", files)
            self.assertNotIn("curve_mackey_glass.png", files)
            with open(os.path.join(d, "fig", "summary.md")) as f:
                summary = f.read()
            self.assertIn(
                "| state bytes | one-step NRMSE (mackey_glass) | MC (memory_capacity) | R² (next_embedding) |", summary
            )
            self.assertIn(" | 786432 | 0.1 | 20 | 0.5 |", summary)

    def test_an_axis_of_matrix_values_keeps_them_as_labels(self):
        rows = [
            fx.cell(f"h{i}", "RA", {"attention.params.res_size": size}, index=i) for i, size in enumerate((256, 1024))
        ]
        ((name, fig),) = self.plot.axes(rows)
        fig.canvas.draw()
        self.assertEqual(name, "axis_attention_params_res_size")
        self.assertEqual([t.get_text() for t in fig.axes[0].get_xticklabels()], ["256", "1024"])


if __name__ == "__main__":
    unittest.main()
