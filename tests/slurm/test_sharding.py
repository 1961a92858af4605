"""What scripts/slurm_sweep.sh builds on, without Slurm. Asserts:
- `runner --shard I/N` shares the cells --filter kept round robin by position (exact cells per shard;
  the shards partition them; none is empty while another has two more), and without a filter keeps the
  cells it always kept;
- `--shard I/N --devices A,B` splits shard I over the devices as shard I + N*k of N*n (exact cells per
  device), writes exactly the shard's cells once, and resumes; `--dry-run` lists the shard's cells;
- merge_results.py keeps OUT's own cells, refuses a missing input without writing, and with --expect
  names each missing and failed cell (number, hash, label, message) with exit status 1, skipped cells
  with exit status 0;
- an array task (slurm_sweep.sh --task, as Slurm starts it) runs its shard over every GPU it was given,
  from CUDA_VISIBLE_DEVICES or else SLURM_GPUS_ON_NODE, and one runner when the ids are not ordinals.

Run: ATTNBENCH_RUNNER=build/runner ATTNBENCH_FIXTURE_DIR=build/tests/fixtures python3 tests/slurm/test_sharding.py"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
RUNNER = os.path.abspath(os.environ.get("ATTNBENCH_RUNNER", os.path.join(ROOT, "build", "runner")))
FIXTURE = os.path.join(os.path.abspath(os.environ.get("ATTNBENCH_FIXTURE_DIR", os.path.join(ROOT, "build", "tests", "fixtures"))),
                       "attnbench_fixture.so")
MERGE = os.path.join(ROOT, "scripts", "merge_results.py")
SWEEP = os.path.join(ROOT, "scripts", "slurm_sweep.sh")
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")
for _var in [v for v in ENV if v.startswith("SLURM_") or v == "CUDA_VISIBLE_DEVICES"]:
    del ENV[_var]

STUDY = f"""name: shards
data: {{embedder: synthetic, params: {{embed_dim: 8}}, seq_len: 6}}
attention: [{{name: fx, plugin: {FIXTURE}}}]
run: {{seed_len: 2, horizon: 2}}
measure: {{warmup: 0, min_runs: 1, min_time_ms: 0}}
matrix: {{run.seed: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]}}
"""


def seeds_listed(text):
    """The seeds of the cells a --dry-run lists, in order."""
    return [int(m) for m in re.findall(r"^\s*\d+\s+[0-9a-f]{16}\s+fx\s+seed=(\d+)", text, re.M)]


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class Sharding(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="attnbench-shards-")
        self.yaml = os.path.join(self.dir, "shards.yaml")
        with open(self.yaml, "w") as f:
            f.write(STUDY)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def runner(self, *args, env=ENV):
        return subprocess.run([RUNNER, self.yaml, *args], capture_output=True, text=True, timeout=300, env=env)

    def dry_run(self, *args):
        done = self.runner(*args, "--dry-run")
        self.assertEqual(done.returncode, 0, done.stderr)
        return seeds_listed(done.stdout)

    def test_shards_share_the_filtered_cells_by_position(self):
        self.assertEqual([self.dry_run("--shard", f"{i}/3") for i in (1, 2, 3)], [[1, 4, 7, 10], [2, 5, 8, 11], [3, 6, 9, 12]])
        primes = ["--filter", r"seed=(2|3|5|7|11)\b"]
        shards = [self.dry_run(*primes, "--shard", f"{i}/3") for i in (1, 2, 3)]
        self.assertEqual(shards, [[2, 7], [3, 11], [5]])
        # By index in the full study, as --shard was applied before --filter, shard 1 of 3 would be [7].

    def test_devices_split_the_shard_and_write_its_cells_once(self):
        results = os.path.join(self.dir, "r.jsonl")
        self.assertEqual(self.dry_run("--shard", "2/3", "--devices", "0,1"), [2, 5, 8, 11])
        # --set and its value reach the children (they once got the option without its value).
        first = self.runner("--set", "measure.min_runs=2", "--shard", "2/3", "--devices", "0,1", "--results", results)
        self.assertEqual(first.returncode, 0, first.stdout + first.stderr)
        self.assertIn("device 0: shard 2/6 started", first.stdout)
        self.assertIn("device 1: shard 5/6 started", first.stdout)
        self.assertIn("merged 4 new cells from 2 devices", first.stdout)
        self.assertEqual(sorted(r["params"]["run"]["seed"] for r in read(results)), [2, 5, 8, 11])
        self.assertEqual({r["params"]["measure"]["min_runs"] for r in read(results)}, {2})
        for device, seeds in (("0", [2, 8]), ("1", [5, 11])):
            with open(f"{results}.device{device}.log") as f:
                self.assertEqual([int(s) for s in re.findall(r"^\[\d/2\] fx seed=(\d+)", f.read(), re.M)], seeds)
        again = self.runner("--set", "measure.min_runs=2", "--shard", "2/3", "--devices", "0,1", "--results", results)
        self.assertIn("merged 0 new cells", again.stdout)
        self.assertEqual(len(read(results)), 4)

    def test_an_array_task_runs_over_the_gpus_it_was_given(self):
        shard = os.path.join(self.dir, "t.shard2of3.jsonl")

        def task(env):
            """Task 2 of 3 over the cells of seeds 2, 5, 8, 11 (its own: seed 5), from an empty shard file."""
            if os.path.exists(shard):
                os.remove(shard)
            done = subprocess.run(["bash", SWEEP, "--task", self.dir, "3", RUNNER, self.yaml, os.path.join(self.dir, "t.shard"),
                                   "--filter", "seed=(2|5|8|11)$"], capture_output=True, text=True, timeout=300,
                                  env=dict(ENV, SLURM_ARRAY_TASK_ID="2", SLURM_JOB_ID="7", **env))
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
            self.assertEqual([r["params"]["run"]["seed"] for r in read(shard)], [5])
            return done.stdout

        out = task({"SLURM_GPUS_ON_NODE": "2"})
        self.assertIn("slurm_sweep: task 2 of 3 on", out)
        self.assertIn(f"GPUs '0,1') -> {shard}", out)
        self.assertIn("device 0: shard 2/6 started", out)
        self.assertIn("device 1: shard 5/6 started", out)
        out = task({"CUDA_VISIBLE_DEVICES": "2,3", "SLURM_GPUS_ON_NODE": "4"})
        self.assertIn("device 2: shard 2/6 started", out)
        self.assertIn("device 3: shard 5/6 started", out)
        out = task({})  # no GPU: one runner, no --devices
        self.assertIn("GPUs 'none') -> ", out)
        self.assertNotIn("device", out.split("->", 1)[1])
        out = task({"CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b"})
        self.assertIn("warning: CUDA_VISIBLE_DEVICES='GPU-a,GPU-b' is not a list of ordinals; one runner uses them all", out)
        self.assertNotIn("device", out.split("->", 1)[1])


FAKE_SBATCH = """#!/usr/bin/env bash
# Records its arguments, one per line, in calls.<n>; answers with job id 100 + n.
n=$(ls "$FAKE_DIR" | grep -c '^calls\\.' || true)
printf '%s\\n' "$@" > "$FAKE_DIR/calls.$n"
echo $((100 + n))
"""


class Submission(unittest.TestCase):
    """slurm_sweep.sh as it submits, against a stand-in sbatch (and squeue) that records each call."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="attnbench-submit-")
        self.yaml = os.path.join(self.dir, "s.yaml")
        with open(self.yaml, "w") as f:
            f.write(STUDY)
        self.bin = os.path.join(self.dir, "bin")
        os.mkdir(self.bin)
        self.fake("sbatch", FAKE_SBATCH)
        self.fake("squeue", "#!/bin/sh\necho \"$FAKE_QUEUE\"\n")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def fake(self, name, text):
        with open(os.path.join(self.bin, name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(self.bin, name), 0o755)

    def sweep(self, *args, queue=""):
        env = dict(ENV, PATH=self.bin + os.pathsep + ENV["PATH"], FAKE_DIR=self.bin, FAKE_QUEUE=queue)
        return subprocess.run(["bash", SWEEP, *args], cwd=self.dir, capture_output=True, text=True, timeout=120, env=env)

    def calls(self):
        names = sorted(n for n in os.listdir(self.bin) if n.startswith("calls."))
        result = []
        for name in names:
            with open(os.path.join(self.bin, name)) as f:
                result.append(f.read().splitlines())
        return result

    def test_submits_the_array_and_a_merge_job_without_the_gpu_requests(self):
        results = os.path.join(self.dir, "out", "r.jsonl")
        done = self.sweep("s.yaml", "4", "--set", "measure.min_runs=2", "--filter", "seed=[1-9]$", "--runner", RUNNER,
                          "--results", "out/r.jsonl", "--partition=gpu", "--gres=gpu:2", "-G", "2", "--gpus-per-node", "2",
                          "--time=01:00:00")
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        array, merge = self.calls()
        logs = os.path.join(self.dir, "out", "slurm")
        self.assertEqual(array, ["--parsable", "--requeue", "--partition=gpu", "--gres=gpu:2", "-G", "2", "--gpus-per-node", "2",
                                 "--time=01:00:00", "--job-name=attnbench-r", "--array=1-4", "--open-mode=append",
                                 f"--output={logs}/r.%A_%a.log", SWEEP, "--task", self.dir, "4", RUNNER, self.yaml,
                                 os.path.join(self.dir, "out", "r.shard"), "--set", "measure.min_runs=2", "--filter", "seed=[1-9]$"])
        self.assertEqual(merge, ["--parsable", "--partition=gpu", "--time=01:00:00", "--job-name=attnbench-r-merge",
                                 "--dependency=afterany:100", "--open-mode=append", f"--output={logs}/r.merge.%j.log",
                                 SWEEP, "--merge-job", ROOT, results])
        self.assertEqual(done.stdout.splitlines(), [
            f"slurm_sweep: 9 cells of {self.yaml} in 4 array tasks (2 or 3 cells each)",
            f"  array job 100: {self.dir}/out/r.shard<I>of4.jsonl, logs {logs}/r.100_<I>.log",
            f"  merge job 101 (after every task, however it ends): {results}, log {logs}/r.merge.101.log",
            "watch:          squeue --jobs=100,101",
            f"merge by hand:  {SWEEP} --merge {results}"])
        with open(os.path.join(logs, "r.cells")) as f:
            self.assertEqual(seeds_listed(f.read()), list(range(1, 10)))

    def test_refuses_before_submitting(self):
        with open(os.path.join(self.dir, "typo.yaml"), "w") as f:
            f.write(STUDY.replace("run: {", "run: {sede: 1, "))
        cases = [
            (("typo.yaml", "2"), "run.sede: unknown key 'sede'"),
            (("typo.yaml", "2"), "slurm_sweep: the study does not load (the runner's message is above); nothing was submitted"),
            (("s.yaml", "2", "--filter", "seed=99"), "--filter 'seed=99' matches none of the 12 cells"),
            (("s.yaml", "13"), "slurm_sweep: 13 array tasks for 12 cells: some would have nothing to do; use at most 12"),
            (("s.yaml", "0"), "slurm_sweep: SHARDS must be a positive number of array tasks, got '0'"),
            (("nope.yaml", "2"), "slurm_sweep: nope.yaml: no such study file"),
            (("s.yaml", "2", "--runner", "nope"), f"slurm_sweep: {self.dir}/nope: no runner there; build attnbench first"),
        ]
        for args, message in cases:
            done = self.sweep(*args, *(() if "--runner" in args else ("--runner", RUNNER)))
            self.assertEqual(done.returncode, 2, args)
            self.assertIn(message, done.stderr, args)
        queued = self.sweep("s.yaml", "2", "--runner", RUNNER, queue="55")
        self.assertEqual(queued.returncode, 2)
        self.assertIn("a sweep into s is still queued or running (jobs 55 ): wait for it or scancel it", queued.stderr)
        self.assertEqual(self.calls(), [], "nothing may be submitted")


class MergeExpect(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="attnbench-merge-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, rows):
        with open(self.path(name), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        return self.path(name)

    def merge(self, *args):
        return subprocess.run([sys.executable, MERGE, *args], capture_output=True, text=True, timeout=60)

    def cells(self, count):
        lines = [f"{i + 1:>4}  {i:016x}  fx                   seed={i + 1}  [full, step]" for i in range(count)]
        with open(self.path("cells"), "w") as f:
            f.write("\n".join(lines + [f"{count} cells"]) + "\n")
        return self.path("cells")

    @staticmethod
    def row(i, status="ok", message=None):
        r = {"hash": f"{i:016x}", "cell": i, "study": "s", "status": status}
        if message:
            r["message"] = message
        return r

    def test_keeps_the_cells_already_in_out(self):
        out = self.write("out.jsonl", [self.row(0), self.row(1, "error", "boom")])
        shard = self.write("a.jsonl", [self.row(1), self.row(2)])
        done = self.merge(out, shard)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual([(r["hash"], r["status"]) for r in read(out)], [(f"{i:016x}", "ok") for i in range(3)])
        self.assertIn("3 cells from 2 files", done.stdout)

    def test_a_missing_input_writes_nothing(self):
        out = self.write("out.jsonl", [self.row(0)])
        done = self.merge(out, self.path("nope.jsonl"))
        self.assertEqual(done.returncode, 1)
        self.assertIn(f"merge_results: {self.path('nope.jsonl')}: no such file; nothing was written", done.stderr)
        self.assertEqual(len(read(out)), 1)

    def test_expect_names_missing_and_failed_cells(self):
        shard = self.write("a.jsonl", [self.row(0), self.row(1, "error", "fixture: asked to fail in forward"),
                                       self.row(3, "skipped", "CUDA is not available")])
        done = self.merge("--expect", self.cells(4), self.path("out.jsonl"), shard)
        self.assertEqual(done.returncode, 1, done.stdout + done.stderr)
        self.assertEqual(done.stdout.splitlines()[1:], [
            "merge_results: 2 of 4 expected cells are not done: 1 missing, 1 failed",
            f"  error    cell 2 {1:016x} fx seed=2: fixture: asked to fail in forward",
            f"  missing  cell 3 {2:016x} fx seed=3: no input holds it (its task was killed, cancelled or has not run)",
            f"  skipped  cell 4 {3:016x} fx seed=4: CUDA is not available"])
        ok = self.write("b.jsonl", [self.row(1), self.row(2)])
        done = self.merge("--expect", self.cells(4), self.path("out.jsonl"), ok)
        self.assertEqual(done.returncode, 0, done.stdout)
        self.assertIn("merge_results: all 4 expected cells are done (1 skipped)", done.stdout)
        # OUT alone is checked when no input is given.
        self.assertEqual(self.merge("--expect", self.cells(4), self.path("out.jsonl")).returncode, 0)
        self.assertEqual(self.merge("--expect", self.cells(5), self.path("out.jsonl")).returncode, 1)

    def test_expect_refuses_a_file_that_is_not_a_dry_run(self):
        with open(self.path("cells"), "w") as f:
            f.write("hello\n")
        done = self.merge("--expect", self.path("cells"), self.path("out.jsonl"), self.write("a.jsonl", []))
        self.assertEqual(done.returncode, 1)
        self.assertIn(f"merge_results: {self.path('cells')}:1: not a line of `runner STUDY --dry-run`: 'hello'", done.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
