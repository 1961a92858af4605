"""Asserts scripts/report.py without a browser: the A/B verdicts for results made from the same seeded
samples with a known shift (5%, 20%: slower; 20% less: faster) and from identical samples (not
separated), and an exit status that follows them and --fail-above; several runs of a cell resampled
run by run, so runs that disagree are not separated; too few and no samples give no verdict and never
fail; cells matched by label when their hashes differ, and said so; consistency and quality compared
in their direction, a speed-up beside a worse one flagged; the history ordered by commit time from git
(by run time, said so, without it), runs of one commit taken together, steps found where the
intervals part; bad input gets one message and exit status 2. Also report_stats' exact bootstrap
against the probabilities of a resample's median (one run and two), its quantiles and its rules.
Run: python3 -m unittest discover -s tests/scripts"""

import os
import random
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "..", "..", "scripts")
sys.path.insert(0, SCRIPTS)
import report_stats as st  # noqa: E402
import results_fixtures as fx  # noqa: E402


def report(*args, cwd=None):
    """(exit status, stdout, stderr) of report.py."""
    done = subprocess.run(
        [sys.executable, os.path.join(SCRIPTS, "report.py"), *args], capture_output=True, text=True, cwd=cwd
    )
    return done.returncode, done.stdout, done.stderr


def table(text):
    """The markdown rows of report.py's output, keyed by (cell, measure) for A/B tables."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| cell"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows.setdefault((cells[0], cells[1]), []).append(cells)
    return rows


class AbTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def pair(self, base_cells, other_cells):
        a, b = os.path.join(self.dir.name, "a.jsonl"), os.path.join(self.dir.name, "b.jsonl")
        fx.write(a, base_cells)
        fx.write(b, other_cells)
        return a, b

    def test_known_shifts_are_slower_identical_samples_are_not_separated_and_the_exit_status_follows(self):
        for shift in (1.05, 1.20):
            with self.subTest(shift=shift):
                a, b = self.pair([fx.cell("h0", seed=1)], [fx.cell("h0", seed=1, scale=shift)])
                status, out, _ = report(a, b, "--fail-above", "1.5")
                rows = table(out)
                for mode in ("full", "step", "prefix"):
                    row = rows[("MHA", mode)][0]
                    self.assertEqual(row[4], f"{shift:.2f}")
                    low, high = (float(v) for v in row[5].strip("[]").split(","))
                    self.assertTrue(1 < low < shift < high, row)
                    self.assertEqual(row[6], "slower")
                self.assertIn("timings: 3 slower", out)
                self.assertEqual(status, 0)  # slower, but not above the gate
                status, out, _ = report(a, b, "--fail-above", "1.02")
                self.assertEqual(status, 1)
                self.assertIn("slower (fails: above 1.02)", out)
                self.assertIn(f"FAIL: slower than x1.02 with an interval excluding 1: MHA full x{shift:.3f}", out)
        a, b = self.pair([fx.cell("h0", seed=1)], [fx.cell("h0", seed=1, scale=1.2)])
        self.assertEqual(report(a, b)[0], 1)  # the default gate, 1.05
        a, b = self.pair([fx.cell("h0", seed=1)], [fx.cell("h0", seed=1)])
        status, out, _ = report(a, b, "--fail-above", "1")
        self.assertEqual(status, 0)
        for mode in ("full", "step", "prefix"):
            row = table(out)[("MHA", mode)][0]
            low, high = (float(v) for v in row[5].strip("[]").split(","))
            self.assertTrue(low < 1 < high, row)
            self.assertEqual((row[4], row[6]), ("1.00", "not separated"))
        a, b = self.pair([fx.cell("h0", seed=1)], [fx.cell("h0", seed=1, scale=0.8)])
        status, out, _ = report(a, b)
        self.assertEqual(status, 0)
        self.assertEqual([r[0][6] for k, r in table(out).items() if k[1] in ("full", "step", "prefix")], ["faster"] * 3)

    def test_runs_of_one_cell_are_resampled_run_by_run(self):
        # The new side ran twice, once as fast as the base and once 20% slower: the runs disagree, so
        # the two are not separated (pooling every sample as one run would call them slower).
        a, b = self.pair([fx.cell("h0", seed=1)], [fx.cell("h0", seed=2), fx.cell("h0", seed=3, scale=1.2)])
        status, out, _ = report(a, b)
        self.assertEqual(status, 0)
        self.assertEqual(table(out)[("MHA", "full")][0][6], "not separated")
        self.assertIn("timings from several runs, resampled run by run: MHA (1 in a.jsonl, 2 in b.jsonl)", out)

    def test_too_few_or_no_samples_give_no_verdict_and_never_fail(self):
        a, b = self.pair([fx.cell("h0", seed=1, runs=(4, 4, 4))], [fx.cell("h0", seed=1, runs=(4, 4, 4), scale=2.0)])
        status, out, _ = report(a, b, "--fail-above", "1.01")
        self.assertEqual(status, 0)
        self.assertEqual(table(out)[("MHA", "full")][0][6], "too few samples")
        bare = [fx.cell("h0", seed=1), fx.cell("h0", seed=1, scale=2.0)]
        for c in bare:
            for mode in ("full", "step", "prefix"):
                del c["metrics"][mode]["time_ms"]["samples"]
        a, b = self.pair(bare[:1], bare[1:])
        status, out, _ = report(a, b, "--fail-above", "1.01")
        self.assertEqual(status, 0)
        self.assertEqual(table(out)[("MHA", "full")][0][4:], ["2.00", "-", "no samples"])

    def test_cells_are_matched_by_label_when_hashes_differ_and_said_so(self):
        a, b = self.pair(
            [fx.cell("h0", "MHA", {"run.seed": 0}), fx.cell("h1", "RA", {"run.seed": 0}, index=1)],
            [fx.cell("other", "MHA", {"run.seed": 0}), fx.cell("h2", "RA", {"run.seed": 1}, index=1)],
        )
        status, out, _ = report(a, b)
        self.assertEqual(status, 0)
        self.assertIn(("MHA seed=0 (matched by label)", "full"), table(out))
        self.assertIn(
            "matched by study, attention and axes, their hashes differ (their settings differ): MHA seed=0", out
        )
        self.assertIn("only in a.jsonl: RA seed=0", out)
        self.assertIn("only in b.jsonl: RA seed=1", out)

    def test_no_cell_in_common_is_an_error(self):
        a, b = self.pair([fx.cell("h0", "MHA", {"run.seed": 0})], [fx.cell("h1", "MHA", {"run.seed": 1})])
        status, out, err = report(a, b)
        self.assertEqual(status, 2)
        self.assertEqual(
            err.strip(),
            f"report: {b} and {a} have no cell in common (matched by hash, then by study, "
            "attention and axes): compare results of the same study",
        )

    def test_a_speedup_beside_worse_consistency_or_quality_is_flagged(self):
        base = fx.cell("h0", scores={"memory_capacity": 20.0, "mackey_glass": 0.1, "next_embedding": 0.5})
        worse = fx.cell(
            "h0",
            scale=0.8,
            rel_rms=1e-3,
            scores={"memory_capacity": 30.0, "mackey_glass": 0.2, "next_embedding": 0.502},
        )
        a, b = self.pair([base], [worse])
        status, out, _ = report(a, b)
        self.assertEqual(status, 0)
        rows = table(out)
        self.assertEqual(
            rows[("MHA", "step_vs_full")][0][2:], ["3.0e-07", "1.0e-03", "3333.33", "-", "worse (beside a speed-up)"]
        )
        self.assertEqual(rows[("MHA", "memory_capacity MC")][0][6], "better")  # higher is better
        self.assertEqual(
            rows[("MHA", "mackey_glass one-step NRMSE")][0][6], "worse (beside a speed-up)"
        )  # lower is better
        self.assertEqual(rows[("MHA", "next_embedding R²")][0][6], "same")  # within 1%
        self.assertIn(
            "flagged: MHA: faster (full, step, prefix) but worse step_vs_full (3.0e-07 -> 1.0e-03), "
            "prefix_vs_step (3.0e-07 -> 1.0e-03), step_vs_prefix (3.0e-07 -> 1.0e-03), "
            "mackey_glass one-step NRMSE (0.1 -> 0.2)",
            out,
        )
        # Rounding-level changes of an error are not worse; nothing is flagged.
        a, b = self.pair([fx.cell("h0")], [fx.cell("h0", scale=0.8, rel_rms=5e-7)])
        status, out, _ = report(a, b)
        self.assertEqual(table(out)[("MHA", "step_vs_full")][0][6], "same")
        self.assertNotIn("flagged", out)

    def test_one_results_file_prints_its_summary(self):
        line = fx.cell("h0", scores={"memory_capacity": 20.0})
        a, _ = self.pair([line], [])
        status, out, _ = report(a)
        self.assertEqual(status, 0)
        m = line["metrics"]
        self.assertIn(
            "| cell | status | full | tok/s full | step (all) | prefix | step~full | prefix~step | rollout | "
            "state bytes | MC (memory_capacity) |",
            out,
        )
        self.assertIn(
            f"| MHA | ok | {m['full']['time_ms']['median']:.3f} | {m['full']['tokens_per_s']:.0f} | "
            f"{m['step']['time_ms']['median']:.3f} | {m['prefix']['time_ms']['median']:.3f} | "
            "3.0e-07 | 3.0e-07 | 3.0e-07 | 4096 | 20 |",
            out,
        )


def git(repo, *args, date=None):
    env = dict(
        os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t"
    )
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    return subprocess.run(
        ["git", "-C", repo, *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


class HistoryTest(unittest.TestCase):
    def test_ordered_by_commit_time_runs_pooled_and_steps_where_intervals_part(self):
        with tempfile.TemporaryDirectory() as d:
            repo = os.path.join(d, "repo")
            os.makedirs(repo)
            git(repo, "init", "-q")
            commits = []
            for day in (1, 2, 3):
                git(repo, "commit", "-q", "--allow-empty", "-m", f"day {day}", date=f"2026-01-0{day}T12:00:00Z")
                commits.append(git(repo, "rev-parse", "--short=12", "HEAD"))
            # The runs happened in another order than the commits: the last commit ran first.
            lines = [
                fx.cell("h0", commit=commits[2], time="2026-02-01T00:00:00Z", seed=1, scale=1.2),
                fx.cell("h0", commit=commits[0], time="2026-02-02T00:00:00Z", seed=1),
                fx.cell("h0", commit=commits[1], time="2026-02-03T00:00:00Z", seed=1),
                fx.cell("h0", commit=commits[1], time="2026-02-04T00:00:00Z", seed=1),
            ]
            folder = os.path.join(d, "history")
            os.makedirs(folder)
            for i, line in enumerate(lines):
                fx.write(os.path.join(folder, f"run{i}.jsonl"), [line])
            status, out, _ = report("--history", folder, "--repo", repo)
            self.assertEqual(status, 0)
            self.assertIn("## History: 1 cells over 3 commits, ordered by commit time", out)
            full = [r for r in table(out)[("MHA", "full")]]
            self.assertEqual([r[2] for r in full], commits)
            self.assertEqual(
                [r[3] for r in full], ["2026-01-01T12:00:00Z", "2026-01-02T12:00:00Z", "2026-01-03T12:00:00Z"]
            )
            self.assertEqual([(r[4], r[5]) for r in full], [("1", "67"), ("2", "134"), ("1", "67")])
            self.assertEqual([r[8] for r in full], ["", "", "slower step x1.200"])
            self.assertIn(f"steps: 3\n  MHA full: slower step x1.200 at {commits[2]} (after {commits[1]})", out)
            # Without the repository the commits are ordered by when they ran, and the report says so.
            status, out, _ = report("--history", folder, "--repo", d)
            self.assertIn(
                f"ordered by when each commit's cells ran ({', '.join(sorted(commits))} not in the git repository {d})",
                out,
            )
            self.assertEqual([r[2] for r in table(out)[("MHA", "full")]], [commits[2], commits[0], commits[1]])
            self.assertIn(f"MHA full: faster step x0.833 at {commits[0]} (after {commits[2]})", out)

    def test_one_commit_is_said_to_be_too_few(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "r.jsonl")
            fx.write(path, [fx.cell("h0", commit="abc")])
            status, out, _ = report("--history", path, "--repo", d)
            self.assertEqual(status, 0)
            self.assertIn("a history needs results from two or more commits; these all come from abc", out)


class BadInputTest(unittest.TestCase):
    def test_each_gets_one_message_and_exit_status_2(self):
        with tempfile.TemporaryDirectory() as d:
            empty = os.path.join(d, "empty")
            os.makedirs(empty)
            failed = os.path.join(d, "failed.jsonl")
            fx.write(failed, [{"hash": "h0", "status": "error", "message": "boom"}])
            good = os.path.join(d, "good.jsonl")
            fx.write(good, [fx.cell("h0")])
            cases = [
                (
                    (os.path.join(d, "nope.jsonl"), good),
                    f"report: {d}/nope.jsonl: no such results file or folder "
                    "(give .jsonl results files, or folders of them)",
                ),
                (
                    (empty, good),
                    f"report: {empty}: a folder with no .jsonl results file in it (give .jsonl results files, "
                    "or folders of them)",
                ),
                ((good, failed), f"report: {failed}: no ok cells in {failed}"),
            ]
            for args, message in cases:
                with self.subTest(args=args):
                    status, out, err = report(*args)
                    self.assertEqual((status, out, err.strip()), (2, "", message))
            status, _, err = report(good, good, "--fail-above", "0.9")
            self.assertEqual(status, 2)
            self.assertIn(
                "--fail-above 0.9: a ratio of NEW's median to BASE's, at least 1 (1.05 fails on 5% slower)", err
            )
            status, _, err = report()
            self.assertEqual(status, 2)
            self.assertIn("give results to summarise (one), to compare (BASE NEW ...), or --history RESULTS ...", err)


class StatsTest(unittest.TestCase):
    def test_the_exact_bootstrap_draws_a_resample_median_with_its_probabilities(self):
        # Of three sorted values a resample's median is the smallest with probability 7/27 (two or
        # three draws of it), the middle one with 13/27; of two, the mean of both with 1/2.
        for values, expected in (
            ([3.0, 1.0, 2.0], {1.0: 7 / 27, 2.0: 13 / 27, 3.0: 7 / 27}),
            ([1.0, 2.0], {1.0: 0.25, 1.5: 0.5, 2.0: 0.25}),
        ):
            draws = st._bootstrap_medians([values], random.Random(7), 40000)
            self.assertEqual(set(draws), set(expected))
            for value, p in expected.items():
                self.assertAlmostEqual(draws.count(value) / len(draws), p, delta=0.01)

    def test_several_runs_are_resampled_run_by_run(self):
        # Two runs, five samples of 1.0 and five of 2.0: a resample picks run A twice (1/4: median 1.0),
        # B twice (1/4: 2.0), or both (1/2), when the median of 10 draws from the pool is 1.0 if six or
        # more are 1.0 (386/1024), 1.5 if exactly five are (252/1024).
        draws = st._bootstrap_medians([[1.0] * 5, [2.0] * 5], random.Random(7), 40000)
        mixed = {1.0: 386 / 1024, 1.5: 252 / 1024, 2.0: 386 / 1024}
        expected = {v: 0.5 * p + (0.25 if v != 1.5 else 0.0) for v, p in mixed.items()}
        self.assertEqual(set(draws), set(expected))
        for value, p in expected.items():
            self.assertAlmostEqual(draws.count(value) / len(draws), p, delta=0.01)

    def test_intervals_are_seeded_by_what_they_describe(self):
        values = fx.seeded_samples(1, 30)
        self.assertEqual(st.median_interval([values], "x"), st.median_interval([values], "x"))
        self.assertNotEqual(st.median_interval([values], "x"), st.median_interval([values], "y"))
        self.assertIsNone(st.ratio_interval([[0.0, 1.0]], [[1.0, 2.0]], "z"))

    def test_quantile_interpolates_linearly(self):
        self.assertEqual(st.quantile([1.0, 2.0, 3.0, 4.0], 0.5), 2.5)
        self.assertEqual(st.quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.1), 1.4)
        self.assertEqual(st.quantile([7.0], 0.975), 7.0)

    def test_rules(self):
        self.assertEqual(
            [st.verdict(0.9, 0.99), st.verdict(1.01, 1.2), st.verdict(0.99, 1.01), st.verdict(1.0, 1.1)],
            ["faster", "slower", "not separated", "not separated"],
        )
        self.assertEqual(
            [
                st.compare_error(3e-7, 9e-7),
                st.compare_error(1e-6, 2.5e-6),
                st.compare_error(1e-5, 4e-6),
                st.compare_error(0.0, 0.0),
            ],
            ["same", "worse", "better", "same"],
        )
        self.assertEqual(
            [
                st.compare_quality(1.0, 1.5, "higher"),
                st.compare_quality(1.0, 1.5, "lower"),
                st.compare_quality(1.0, 1.005, "lower"),
                st.compare_quality(1.0, 1.5, ""),
            ],
            ["better", "worse", "same", "changed"],
        )
        point = {"n": 10, "median": 1.0, "low": 0.9, "high": 1.1}
        self.assertEqual(st.step(point, dict(point, low=1.11, high=1.3)), "slower")
        self.assertEqual(st.step(point, dict(point, low=0.5, high=0.89)), "faster")
        self.assertIsNone(st.step(point, dict(point, low=1.1, high=1.3)))  # touching intervals overlap
        self.assertIsNone(st.step(point, dict(point, n=4, low=2.0, high=3.0)))  # too few samples


if __name__ == "__main__":
    unittest.main()
