"""scripts/slurm_sweep.sh under a real Slurm (cluster.py starts a one-node cluster for this module). Asserts:
- a 12-cell study in 4 array tasks gives, after the merge job, exactly the cells of a single-process run
  (same hashes and settings, each once, every status ok);
- an array task killed mid-cell by `scontrol requeue` resumes from its shard file: the cell it had
  finished is not rerun, and the merge holds every cell once;
- when a cell's plugin throws and another task is cancelled mid-run, the other cells are all there, and
  the merge job fails (exit 1) with a log naming the failed cell (with the plugin's message) and each
  missing one;
- two array tasks running side by side on the node, each over two GPUs (--devices, from
  CUDA_VISIBLE_DEVICES), never write the same file (strace records every file their processes write).

Each test also feeds its check the fault it guards against (a shard left out of the merge, shards
concatenated instead of merged, a finished cell rerun, a merge without the expected cells, a file
written by both tasks) and asserts that the check then fails, so none of them passes vacuously.
Cells are held mid-run by the fixture plugin's `gate` (forward waits for a file), never by sleeping.

Without Slurm's and munge's programs (scripts/setup.sh --tests installs them) the module exits 77, which
ctest reports as skipped. Run: ATTNBENCH_RUNNER=build/runner ATTNBENCH_FIXTURE_DIR=build/tests/fixtures \\
                              python3 tests/slurm/test_slurm.py"""
import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as slurm  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SWEEP = os.path.join(ROOT, "scripts", "slurm_sweep.sh")
TRACED_RUNNER = os.path.join(ROOT, "tests", "slurm", "traced_runner.sh")
RUNNER = os.path.abspath(os.environ.get("ATTNBENCH_RUNNER", os.path.join(ROOT, "build", "runner")))
FIXTURE = os.path.join(os.path.abspath(os.environ.get("ATTNBENCH_FIXTURE_DIR", os.path.join(ROOT, "build", "tests", "fixtures"))),
                       "attnbench_fixture.so")
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}
CLUSTER = None


def setUpModule():
    global CLUSTER
    CLUSTER = slurm.Cluster()
    try:
        CLUSTER.start()
    except BaseException:
        CLUSTER.stop()
        raise


def tearDownModule():
    if CLUSTER is not None:
        CLUSTER.stop()


def study(name, seeds, attention="[{name: fx, plugin: %s}]" % FIXTURE, params="", include=""):
    """A study of fixture cells, one per seed (and attention entry), each a few milliseconds long."""
    params = f", params: {{{params}}}" if params else ""
    attention = attention.replace("}]", params + "}]") if params else attention
    return (f"name: {name}\n"
            "data: {embedder: synthetic, params: {embed_dim: 8}, seq_len: 6}\n"
            f"attention: {attention}\n"
            "run: {seed_len: 2, horizon: 2}\n"
            "measure: {warmup: 0, min_runs: 1, min_time_ms: 0}\n"
            f"matrix:\n  run.seed: {seeds}\n" + (f"  include: {include}\n" if include else ""))


def read(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def cell_hashes(listing):
    """The hashes of the cells a saved `runner --dry-run` listing names."""
    with open(listing) as f:
        return [line.split()[1] for line in f if line.rstrip().endswith("]")]


def seed(row):
    return row["params"]["run"]["seed"]


def written_files(trace_dir, cwd):
    """Every file the traced processes of one task opened for writing, created, renamed to or truncated
    (successful calls only), as absolute paths; per-process /proc, /dev and /sys files are left out."""
    call = re.compile(r'^(\w+)\((.*)\)\s+=\s+(-?\d+)')
    written = set()
    for trace in glob.glob(os.path.join(trace_dir, "trace.*")):
        with open(trace, errors="replace") as f:
            lines = f.readlines()
        for line in lines:
            match = call.match(line)
            if not match or int(match.group(3)) < 0:
                continue
            name, args = match.group(1), match.group(2)
            paths = re.findall(r'"((?:[^"\\]|\\.)*)"', args)
            if not paths:
                continue
            if name in ("open", "openat", "openat2"):
                if not re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC", args):
                    continue
                path = paths[0]
            elif name in ("creat", "truncate", "mknod", "mknodat"):
                path = paths[0]
            else:  # rename*, link*, symlink*: the new name
                path = paths[-1]
            path = os.path.normpath(os.path.join(cwd, path))
            if not path.startswith(("/proc/", "/dev/", "/sys/")):
                written.add(path)
    return written


class SlurmSweep(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="attnbench-sweep-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def sweep(self, yaml, shards, *args, env=None):
        """Submits a sweep from this test's directory; returns the array job's and the merge job's ids."""
        done = subprocess.run(["bash", SWEEP, yaml, str(shards), "--runner", RUNNER, *args], cwd=self.dir,
                              env=dict(CLUSTER.env, OPENBLAS_NUM_THREADS="1", **(env or {})),
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        array = re.search(r"array job (\d+)", done.stdout).group(1)
        merge = re.search(r"merge job (\d+)", done.stdout).group(1)
        self.assertIn(f"watch:          squeue --jobs={array},{merge}", done.stdout)
        self.assertIn(f"merge by hand:  {SWEEP} --merge ", done.stdout)
        return array, merge

    def finished(self, job):
        """Waits for a job to end; returns its fields."""
        return CLUSTER.wait_for_job(job, ENDED)

    def log(self, pattern):
        (path,) = glob.glob(self.path("results", "slurm", pattern))
        with open(path) as f:
            return f.read()

    def logs(self):
        """Every log of this test's jobs, for a failure message."""
        return "\n".join(f"--- {os.path.basename(p)}\n{self.log(os.path.basename(p))}"
                         for p in sorted(glob.glob(self.path("results", "slurm", "*.log"))))

    def merge_by_hand(self, results):
        return subprocess.run(["bash", SWEEP, "--merge", results], cwd=self.dir, capture_output=True, text=True, timeout=60)

    def copy_sweep(self, name, new_name, shards):
        """The cells listing and the given shard files of sweep `name`, copied under `new_name` (to merge
        them again, with a fault, without touching the real results)."""
        shutil.copy(self.path("results", "slurm", f"{name}.cells"), self.path("results", "slurm", f"{new_name}.cells"))
        for shard in shards:
            shutil.copy(shard, shard.replace(f"/{name}.shard", f"/{new_name}.shard"))
        return self.path("results", f"{new_name}.jsonl")

    def gate_waiters(self, gate):
        return glob.glob(gate + ".waiting.*")

    # --- the checks, each also shown to fail on the fault it guards against --------------------------
    def assert_same_cells(self, rows, reference):
        counts = collections.Counter(r["hash"] for r in rows)
        self.assertEqual([h for h, n in counts.items() if n > 1], [], "cells merged more than once")
        self.assertEqual(sorted(counts), sorted(r["hash"] for r in reference), "not the cells of the single-process run")
        self.assertEqual([r["hash"] for r in rows if r["status"] != "ok"], [], "cells that are not ok")
        by_hash = {r["hash"]: r for r in reference}
        for row in rows:
            expected = by_hash[row["hash"]]
            self.assertEqual((row["cell"], row["params"], row["axes"]), (expected["cell"], expected["params"], expected["axes"]))

    def assert_each_once(self, rows, hashes):
        counts = collections.Counter(r["hash"] for r in rows)
        self.assertEqual([h for h, n in counts.items() if n > 1], [], "a cell written more than once")
        self.assertEqual(sorted(counts), sorted(hashes))

    def assert_names(self, merge_output, returncode, failed, missing):
        """The merge fails and names each failed cell (with its message) and each missing one."""
        self.assertEqual(returncode, 1, merge_output)
        for cell_hash, message in failed:
            self.assertRegex(merge_output, rf"error\s+cell \d+ {cell_hash} .*: {re.escape(message)}")
        for cell_hash in missing:
            self.assertRegex(merge_output, rf"missing\s+cell \d+ {cell_hash} ")

    def assert_disjoint(self, first, second):
        self.assertEqual(sorted(first & second), [], "files written by both array tasks")

    # --- the tests -----------------------------------------------------------------------------------
    def test_twelve_cells_in_four_tasks_are_the_cells_of_one_process(self):
        yaml = self.write("twelve.yaml", study("twelve", "[1, 2, 3, 4, 5, 6]",
                                               attention="[{name: fx, plugin: %s}, {name: fy, plugin: %s}]" % (FIXTURE, FIXTURE)))
        single = subprocess.run([RUNNER, yaml, "--results", self.path("single.jsonl")], capture_output=True, text=True,
                                timeout=300, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
        self.assertEqual(single.returncode, 0, single.stdout + single.stderr)
        reference = read(self.path("single.jsonl"))
        self.assertEqual(len({r["hash"] for r in reference}), 12)

        array, merge = self.sweep(yaml, 4)
        merged_job = self.finished(merge)
        self.assertEqual((merged_job["JobState"], merged_job["ExitCode"]), ("COMPLETED", "0:0"), self.logs())
        for task in range(1, 5):
            self.assertEqual(CLUSTER.job(f"{array}_{task}")["JobState"], "COMPLETED")
        shards = [self.path("results", f"twelve.shard{i}of4.jsonl") for i in range(1, 5)]
        self.assertEqual([len(read(s)) for s in shards], [3, 3, 3, 3])
        self.assert_same_cells(read(self.path("results", "twelve.jsonl")), reference)
        self.assertIn("merge_results: all 12 expected cells are done", self.log(f"twelve.merge.{merge}.log"))

        # Fault: a shard left out of the merge. The merge names its three cells, the check fails.
        dropped = self.copy_sweep("twelve", "dropped", [shards[0], shards[2], shards[3]])
        by_hand = self.merge_by_hand(dropped)
        self.assert_names(by_hand.stdout, by_hand.returncode, [], [r["hash"] for r in read(shards[1])])
        with self.assertRaises(AssertionError):
            self.assert_same_cells(read(dropped), reference)
        # Fault: shards concatenated instead of merged, one of them twice.
        with self.assertRaises(AssertionError):
            self.assert_same_cells([r for s in shards + shards[:1] for r in read(s)], reference)

    def test_a_task_requeued_mid_cell_resumes_and_the_merge_has_no_duplicate(self):
        gate = self.path("gate")
        yaml = self.write("requeue.yaml", study("requeue", "[1, 2, 3, 4, 5, 6]", include="[{run.seed: 3, attention.params.gate: %s}]" % gate))
        array, merge = self.sweep(yaml, 2)  # task 1: seeds 1, 3, 5; the cell of seed 3 waits at the gate
        CLUSTER.wait_for(lambda: self.gate_waiters(gate), "task 1 to reach the gate", 180)
        shard = self.path("results", "requeue.shard1of2.jsonl")
        self.assertEqual([seed(r) for r in read(shard)], [1], "task 1 should be in its second cell")

        task = f"{array}_1"
        requeued = CLUSTER.run("scontrol", "requeue", task)
        self.assertEqual(requeued.returncode, 0, requeued.stderr)
        CLUSTER.wait_for(lambda: CLUSTER.job(task).get("JobState") == "PENDING" and CLUSTER.job(task).get("Restarts") == "1",
                         "the requeued task to be pending again", 60)
        # Slurm holds a requeued job back for a while; the test need not wait for that.
        CLUSTER.run("scontrol", "update", f"JobId={task}", "StartTime=now")
        open(gate, "w").close()
        merged_job = self.finished(merge)
        self.assertEqual((merged_job["JobState"], merged_job["ExitCode"]), ("COMPLETED", "0:0"), self.logs())

        hashes = cell_hashes(self.path("results", "slurm", "requeue.cells"))
        self.assertEqual(len(hashes), 6)
        rows = read(shard)
        self.assert_each_once(rows, [r["hash"] for r in rows])
        self.assertEqual(sorted(seed(r) for r in rows), [1, 3, 5])
        merged = read(self.path("results", "requeue.jsonl"))
        self.assert_each_once(merged, hashes)
        self.assertEqual({r["status"] for r in merged}, {"ok"})
        log = self.log(f"requeue.{array}_1.log")
        self.assertIn("DUE TO JOB REQUEUE", log)
        self.assertIn("restart 0,", log)
        self.assertIn("restart 1,", log)
        self.assertRegex(log, r"\[1/3\] fx seed=1: already in .*requeue\.shard1of2\.jsonl \(ok\), skipped")

        # Fault: the requeued task reruns the cell it had finished.
        with self.assertRaises(AssertionError):
            self.assert_each_once(rows + rows[:1], [r["hash"] for r in rows])
        # Fault: the cell that was killed is never rerun, so the merge lacks it.
        killed = next(r["hash"] for r in rows if seed(r) == 3)
        with self.assertRaises(AssertionError):
            self.assert_each_once([r for r in merged if r["hash"] != killed], hashes)

    def test_failed_and_missing_cells_are_named_by_the_merge_job(self):
        gate = self.path("gate")
        include = "[{run.seed: 2, attention.params.fault: throw_forward}, {run.seed: 6, attention.params.gate: %s}]" % gate
        yaml = self.write("faults.yaml", study("faults", "[1, 2, 3, 4, 5, 6]", include=include))
        array, merge = self.sweep(yaml, 3)  # task 2: seeds 2 (throws), 5; task 3: seeds 3, 6 (held, then cancelled)
        CLUSTER.wait_for(lambda: self.gate_waiters(gate), "task 3 to reach the gate", 180)
        cancelled = CLUSTER.run("scancel", f"{array}_3")
        self.assertEqual(cancelled.returncode, 0, cancelled.stderr)
        merged_job = self.finished(merge)
        log = self.log(f"faults.merge.{merge}.log")
        self.assertEqual((merged_job["JobState"], merged_job["ExitCode"]), ("FAILED", "1:0"), self.logs())
        states = {t: CLUSTER.job(f"{array}_{t}") for t in (1, 2, 3)}
        self.assertEqual([states[t]["JobState"] for t in (1, 2, 3)], ["COMPLETED", "FAILED", "CANCELLED"])
        self.assertEqual(states[2]["ExitCode"], "1:0")  # the runner's status when a cell failed

        merged = read(self.path("results", "faults.jsonl"))
        by_seed = {seed(r): r for r in merged}
        self.assertEqual(sorted(by_seed), [1, 2, 3, 4, 5])
        self.assertEqual({s: r["status"] for s, r in by_seed.items()}, {1: "ok", 2: "error", 3: "ok", 4: "ok", 5: "ok"})
        missing = [h for h in cell_hashes(self.path("results", "slurm", "faults.cells")) if h not in {r["hash"] for r in merged}]
        self.assertEqual(len(missing), 1)
        failed = [(by_seed[2]["hash"], "fixture: asked to fail in forward")]
        self.assert_names(log, 1, failed, missing)
        self.assertIn("2 of 6 expected cells are not done: 1 missing, 1 failed", log)

        # Fault: the merge as it was before it knew which cells to expect: exit 0, nothing named.
        silent = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "merge_results.py"), self.path("silent.jsonl"),
                                 *glob.glob(self.path("results", "faults.shard*of3.jsonl"))], capture_output=True, text=True)
        with self.assertRaises(AssertionError):
            self.assert_names(silent.stdout, silent.returncode, failed, missing)

    def test_two_tasks_on_one_node_never_write_the_same_file(self):
        gate = self.path("gate")
        traces = self.path("traces")
        yaml = self.write("apart.yaml", study("apart", "[1, 2, 3, 4, 5, 6, 7, 8]", params=f"gate: {gate}"))
        # Two "GPUs" per task: each task runs one runner per device (--devices); on this CPU-only build the
        # ordinals only set CUDA_VISIBLE_DEVICES, so the sharing and the files are what is exercised.
        env = {"ATTNBENCH_TRACED_RUNNER": RUNNER, "ATTNBENCH_TRACE_DIR": traces, "CUDA_VISIBLE_DEVICES": "0,1"}
        done = subprocess.run(["bash", SWEEP, yaml, "2", "--runner", TRACED_RUNNER], cwd=self.dir, capture_output=True,
                              text=True, timeout=120, env=dict(CLUSTER.env, OPENBLAS_NUM_THREADS="1", **env))
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        array, merge = re.search(r"array job (\d+)", done.stdout).group(1), re.search(r"merge job (\d+)", done.stdout).group(1)
        # Both tasks' runners, two per task, are in their first cell at the same time.
        CLUSTER.wait_for(lambda: len(self.gate_waiters(gate)) == 4, "four runners to wait at the gate", 180)
        tasks = [CLUSTER.job(f"{array}_{t}") for t in (1, 2)]
        self.assertEqual([(t["JobState"], t["NodeList"]) for t in tasks], [("RUNNING", CLUSTER.node)] * 2)
        open(gate, "w").close()
        merged_job = self.finished(merge)
        self.assertEqual((merged_job["JobState"], merged_job["ExitCode"]), ("COMPLETED", "0:0"), self.logs())

        for t, parts in ((1, ("1/4", "3/4")), (2, ("2/4", "4/4"))):
            log = self.log(f"apart.{array}_{t}.log")
            self.assertIn("GPUs '0,1'", log)
            for part in parts:
                self.assertIn(f"shard {part} started", log)
        merged = read(self.path("results", "apart.jsonl"))
        self.assert_each_once(merged, cell_hashes(self.path("results", "slurm", "apart.cells")))
        self.assertEqual({r["status"] for r in merged}, {"ok"})

        first, second = (written_files(os.path.join(traces, f"task{t}"), self.dir) for t in (1, 2))
        self.assertIn(self.path("results", "apart.shard1of2.jsonl"), first)  # the trace sees the writes
        self.assertIn(self.path("results", "apart.shard2of2.jsonl.device1.jsonl"), second)
        self.assert_disjoint(first, second)
        self.assertNotEqual(tasks[0]["StdOut"], tasks[1]["StdOut"])
        # Fault: a file both tasks write (here the first task's shard, as if the second wrote it too).
        with self.assertRaises(AssertionError):
            self.assert_disjoint(first, second | {self.path("results", "apart.shard1of2.jsonl")})


if __name__ == "__main__":
    missing = slurm.missing_programs()
    if missing:
        print(f"SKIPPED: the Slurm tests need slurm-wlm and munge (missing: {', '.join(missing)}); "
              "scripts/setup.sh --tests installs them")
        sys.exit(77)
    unittest.main(verbosity=2)
