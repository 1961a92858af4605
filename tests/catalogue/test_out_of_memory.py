"""The catalogue's out-of-memory case, through the real runner: a cell whose tensors would pass
run.max_memory ends as one failed cell with a one-line message (what was asked, what the bound is, the
axis to lower), every result written before stays, and the next cell runs.
Run: ATTNBENCH_RUNNER=build/runner ATTNBENCH_FIXTURE_DIR=build/tests/fixtures \\
     python3 -m unittest discover -s tests/catalogue -p test_out_of_memory.py"""
import json
import os
import subprocess
import tempfile
import unittest

RUNNER = os.environ.get("ATTNBENCH_RUNNER", "build/runner")
FIXTURES = os.environ.get("ATTNBENCH_FIXTURE_DIR", "build/tests/fixtures")


class CpuOutOfMemory(unittest.TestCase):
    def test_a_cell_past_max_memory_fails_alone_and_the_next_runs(self):
        with tempfile.TemporaryDirectory() as d:
            study = os.path.join(d, "oom.yaml")
            with open(study, "w") as f:
                f.write(f"name: oom\ndata: {{embedder: synthetic, params: {{embed_dim: 64}}, seq_len: 8}}\n"
                        f"attention: [{{name: fx, plugin: {os.path.join(FIXTURES, 'attnbench_fixture.so')}}}]\n"
                        "run: {seed_len: 2, horizon: 2, max_memory: 4MB}\n"
                        "measure: {warmup: 0, min_runs: 1, min_time_ms: 0}\n"
                        "matrix: {data.seq_len: [8, 400000, 9]}\n")
            results = os.path.join(d, "r.jsonl")
            with open(results, "w") as f:  # a result from before, which must survive untouched
                f.write('{"hash": "0000000000000000", "status": "ok"}\n')
            before = open(results).read()
            done = subprocess.run([RUNNER, study, "--results", results], capture_output=True, text=True, timeout=120)
            self.assertEqual(done.returncode, 1, done.stdout + done.stderr)
            self.assertNotIn("Killed", done.stdout + done.stderr)
            text = open(results).read()
            self.assertTrue(text.startswith(before), "the earlier result was changed")
            lines = [json.loads(l) for l in text.splitlines()[1:]]
            self.assertEqual([l["status"] for l in lines], ["ok", "error", "ok"])
            message = lines[1]["message"]
            self.assertIn("CPU out of memory: a tensor of", message)
            self.assertIn("past run.max_memory (4.0 MB", message)
            self.assertIn("lower data.seq_len (now 400000)", message)
            self.assertNotIn("\n", message)


if __name__ == "__main__":
    unittest.main()
