"""The catalogue of bad inputs: each runs the real runner and asserts its exit status, its one clear
message, and that results written before are still intact. Then crash safety: a run killed with SIGKILL
mid-matrix and rerun ends with every cell exactly once.

To add a case: a study (or file) that is wrong in one way, the exit status, and a fragment of the
message. Run: ATTNBENCH_RUNNER=build/runner ATTNBENCH_FIXTURE_DIR=build/tests/fixtures \\
              python3 -m unittest discover -s tests/catalogue"""
import json
import os
import signal
import struct
import subprocess
import tempfile
import time
import unittest

RUNNER = os.environ.get("ATTNBENCH_RUNNER", "build/runner")
FIXTURES = os.environ.get("ATTNBENCH_FIXTURE_DIR", "build/tests/fixtures")

GOOD = """name: good
data: {embedder: synthetic, params: {embed_dim: 8}, seq_len: 6}
attention: [{name: fx, plugin: %s}]
run: {seed_len: 2, horizon: 2}
measure: {warmup: 0, min_runs: 1, min_time_ms: 0}
""" % os.path.join(FIXTURES, "attnbench_fixture.so")


def study(data="{embedder: synthetic, params: {embed_dim: 8}, seq_len: 7}", attention=None, extra=""):
    """A study one change away from GOOD (seq_len 7, so its cells are not the ones already done)."""
    attention = attention or "[{name: fx, plugin: %s}]" % os.path.join(FIXTURES, "attnbench_fixture.so")
    return (f"name: bad\ndata: {data}\nattention: {attention}\nrun: {{seed_len: 2, horizon: 2}}\n"
            f"measure: {{warmup: 0, min_runs: 1, min_time_ms: 0}}\n{extra}")


def safetensors(entries, data=b"", header_len=None):
    header = json.dumps(entries).encode()
    return struct.pack("<Q", header_len if header_len is not None else len(header)) + header + data


class Catalogue(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.results = self.path("results.jsonl")
        self.assertEqual(self.runner(self.file("good.yaml", GOOD)).returncode, 0)
        self.before = open(self.results).read()
        self.assertEqual(len(self.before.splitlines()), 1)

    def tearDown(self):
        self.dir.cleanup()

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def file(self, name, content):
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(self.path(name), mode) as f:
            f.write(content)
        return self.path(name)

    def runner(self, *args):
        return subprocess.run([RUNNER, *args, "--results", self.results], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))

    def expect(self, yaml, status, message, *args):
        done = self.runner(self.file("bad.yaml", yaml), *args)
        output = done.stdout + done.stderr
        lines = open(self.results).read().splitlines()
        self.assertEqual(done.returncode, status, output)
        self.assertTrue(open(self.results).read().startswith(self.before), "earlier results were changed")
        messages = output + "".join(json.loads(l).get("message", "") for l in lines[1:])
        self.assertIn(message, messages)
        self.assertNotIn("Segmentation", output)
        return lines[1:]

    # --- the study itself: exit 2 before anything runs -------------------------------------------
    def test_malformed_yaml(self):
        self.expect("name: [unclosed\n", 2, "bad.yaml:2:1: malformed YAML")

    def test_unknown_key(self):
        self.expect(study(extra="mesure: {}\n"), 2, "unknown key 'mesure'; valid keys: name, description, data")

    def test_wrong_type(self):
        self.expect(study(data="{embedder: synthetic, seq_len: many}"), 2, "data.seq_len: 'many' is not an integer")

    def test_empty_matrix_axis(self):
        self.expect(study(extra="matrix: {run.seed: []}\n"), 2, "axis 'run.seed' has no values")

    def test_conflicting_include_exclude(self):
        self.expect(study(extra="matrix:\n  run.seed: [1, 2]\n  exclude: [{run.seed: 1}]\n  include: [{run.seed: 1}]\n"),
                    2, "include entry 1 adds back what exclude entry 1 removes")

    def test_unknown_plugin(self):
        self.expect(study(attention="[{plugin: no_such_layer}]"), 2, "unknown plugin 'no_such_layer'")

    def test_incompatible_plugin(self):
        self.expect(study(attention="[{plugin: %s}]" % os.path.join(FIXTURES, "attnbench_fixture_bad_torch.so")), 2,
                    "torch: plugin built against torch 99.7, runner uses torch")

    def test_unknown_plugin_parameter(self):
        self.expect(study(attention="[{plugin: mha, params: {hedas: 2}}]"), 2, "plugin 'mha' has no parameter 'hedas'")

    # --- a plugin's own checks (its validate()) run when the study loads: --dry-run finds them ---------
    def test_heads_that_do_not_divide_the_width(self):
        yaml = study(data="{embedder: synthetic, params: {embed_dim: 768}, seq_len: 7}",
                     attention="[{name: M, plugin: mha, params: {heads: 7}}]")
        self.expect(yaml, 2, "bad.yaml:3:52: attention[M].params.heads: mha: heads 7 must be >= 1 and divide embed_dim 768; "
                             "valid: 1, 2, 3, 4, 6, 8, 12", "--dry-run")

    def test_unknown_topology(self):
        self.expect(study(attention="[{name: R, plugin: reservoir, params: {heads: 4, topology: foo}}]"), 2,
                    "bad.yaml:3:71: attention[R].params.topology: reservoir: unknown topology 'foo'; valid: uniform, "
                    "geometric, smallworld", "--dry-run")

    def test_bad_value_from_a_matrix_axis_or_set(self):
        yaml = study(attention="[{name: R, plugin: reservoir, params: {heads: 4}}]",
                     extra="matrix: {attention.params.leak: [0.3, 1.5]}\n")
        self.expect(yaml, 2, "bad.yaml:6:39: attention[R].params.leak: reservoir: leak must be in (0, 1], got 1.5", "--dry-run")
        self.expect(study(), 2, "--set data.params.embed_dim: data.params.embed_dim: synthetic: embed_dim must be in "
                                "[1, 1048576], got -8", "--dry-run", "--set", "data.params.embed_dim=-8")

    # --- a cell fails, the matrix goes on: exit 1, the error in the results -------------------------
    def corpus_study(self, corpus, extra=""):
        return study(data="{embedder: bert, params: {model: %s, corpus: %s, cache_dir: ''%s}, seq_len: 4}"
                     % (self.model(), corpus, extra), attention="[{plugin: mha, params: {heads: 2}}]")

    def model(self):
        d = self.path("model")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump({"model_type": "bert", "vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 0,
                       "num_attention_heads": 2, "intermediate_size": 4, "max_position_embeddings": 8}, f)
        with open(os.path.join(d, "vocab.txt"), "w") as f:
            f.write("[PAD]\n[UNK]\n[CLS]\n[SEP]\na\nb\n")
        floats = lambda n: struct.pack(f"<{n}f", *[0.1 * (i % 7) for i in range(n)])
        names = [("embeddings.word_embeddings.weight", [8, 4]), ("embeddings.position_embeddings.weight", [8, 4]),
                 ("embeddings.token_type_embeddings.weight", [2, 4]), ("embeddings.LayerNorm.weight", [4]),
                 ("embeddings.LayerNorm.bias", [4])]
        entries, data = {}, b""
        for name, shape in names:
            n = 1
            for s in shape:
                n *= s
            entries[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + 4 * n]}
            data += floats(n)
        with open(os.path.join(d, "model.safetensors"), "wb") as f:
            f.write(safetensors(entries, data))
        return d

    def test_missing_corpus(self):
        self.expect(self.corpus_study(self.path("nowhere.txt")), 1, "nowhere.txt: cannot open the corpus")

    def test_unreadable_corpus(self):
        os.makedirs(self.path("a_folder"))
        self.expect(self.corpus_study(self.path("a_folder")), 1, "the corpus is not a regular file")

    def test_empty_corpus(self):
        self.expect(self.corpus_study(self.file("empty.txt", "")), 1, "has 0 documents of at least 4 tokens (of 0 read)")

    def test_corpus_with_invalid_utf8(self):
        self.expect(self.corpus_study(self.file("latin1.txt", b"a b a b \xe9\n")), 1, "latin1.txt:1: invalid UTF-8")

    def test_missing_checkpoint(self):
        yaml = study(data="{embedder: bert, params: {model: %s, corpus: x.txt}, seq_len: 4}" % self.path("no_model"))
        self.expect(yaml, 1, "model directory '%s' does not exist" % self.path("no_model"))

    def mha_weights(self, content):
        return study(attention="[{plugin: mha, params: {heads: 2, weights: %s}}]" % self.file("w.safetensors", content))

    def test_truncated_checkpoint(self):
        self.expect(self.mha_weights(b"\x10\x00\x00"), 1, "truncated: shorter than the 8-byte header length")

    def test_header_offsets_past_the_end(self):
        self.expect(self.mha_weights(safetensors({"in_proj_weight": {"dtype": "F32", "shape": [24, 8],
                                                                     "data_offsets": [0, 768]}})),
                    1, "tensor 'in_proj_weight' has data_offsets outside the 0-byte data section")

    def test_header_length_past_the_end(self):
        self.expect(self.mha_weights(safetensors({}, header_len=1 << 40)), 1, "bad header: its length 1099511627776 runs past")

    def test_wrong_dtype(self):
        self.expect(self.mha_weights(safetensors({"in_proj_weight": {"dtype": "I32", "shape": [24, 8], "data_offsets": [0, 768]}},
                                                 bytes(768))),
                    1, "tensor 'in_proj_weight' has dtype Int, expected a floating-point dtype")

    def test_wrong_shape(self):
        self.expect(self.mha_weights(safetensors({"in_proj_weight": {"dtype": "F32", "shape": [8, 8], "data_offsets": [0, 256]}},
                                                 bytes(256))),
                    1, "tensor 'in_proj_weight' has shape [8, 8], expected [24, 8]")

    def test_plugin_that_throws_returns_nan_or_the_wrong_shape(self):
        lines = self.expect(study(extra="matrix: {attention.params.fault: [throw_forward, nan, wrong_shape, none]}\n"), 1,
                            "fixture: asked to fail in forward")
        self.assertEqual([json.loads(l)["status"] for l in lines], ["error", "error", "error", "ok"])
        self.assertIn("returned NaN or Inf", json.loads(lines[1])["message"])
        self.assertIn("returned shape [7, 1, 7] for input [7, 1, 8]", json.loads(lines[2])["message"])

    def test_cuda_where_there_is_none(self):
        if os.environ.get("ATTNBENCH_HAS_CUDA") == "1":
            self.skipTest("this machine has CUDA")
        lines = self.expect(study(extra="matrix: {run.device: [cuda, cpu]}\n"), 0, "CUDA")
        self.assertEqual([json.loads(l)["status"] for l in lines], ["skipped", "ok"])


class CrashSafety(unittest.TestCase):
    def test_killed_mid_matrix_then_rerun_gives_every_cell_once(self):
        with tempfile.TemporaryDirectory() as d:
            yaml = os.path.join(d, "s.yaml")
            with open(yaml, "w") as f:
                f.write(GOOD.replace("min_time_ms: 0", "min_time_ms: 150") + "matrix: {run.seed: [1, 2, 3, 4, 5, 6, 7, 8]}\n")
            results = os.path.join(d, "r.jsonl")
            proc = subprocess.Popen([RUNNER, yaml, "--results", results], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + 60
            while time.time() < deadline and (not os.path.exists(results) or len(open(results).read().splitlines()) < 2):
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            written = open(results).read().splitlines()
            self.assertLess(len(written), 8, "the run finished before it was killed; the test proves nothing")
            with open(results, "a") as f:
                f.write('{"hash": "torn", "status')  # as if killed in the middle of a write
            subprocess.run([RUNNER, yaml, "--results", results], check=True, capture_output=True, timeout=120)
            hashes = [json.loads(l)["hash"] for l in open(results).read().splitlines()]
            self.assertEqual(len(hashes), 8)
            self.assertEqual(len(set(hashes)), 8)


if __name__ == "__main__":
    unittest.main()


class Devices(unittest.TestCase):
    def test_one_process_per_device_every_cell_once_and_resumable(self):
        # On a CPU machine the device ordinals only set CUDA_VISIBLE_DEVICES; the sharding and merge are
        # what is tested. Timing on real GPUs is in BENCHMARKS.md when a multi-GPU machine was lent.
        with tempfile.TemporaryDirectory() as d:
            yaml = os.path.join(d, "s.yaml")
            with open(yaml, "w") as f:
                f.write(GOOD + "matrix: {run.seed: [1, 2, 3, 4, 5]}\n")
            results = os.path.join(d, "r.jsonl")
            first = subprocess.run([RUNNER, yaml, "--devices", "0,1", "--results", results], capture_output=True, text=True, timeout=120)
            self.assertEqual(first.returncode, 0, first.stdout + first.stderr)
            self.assertIn("merged 5 new cells from 2 devices", first.stdout)
            hashes = [json.loads(l)["hash"] for l in open(results)]
            self.assertEqual(len(hashes), 5)
            self.assertEqual(len(set(hashes)), 5)
            again = subprocess.run([RUNNER, yaml, "--devices", "0,1", "--results", results], capture_output=True, text=True, timeout=120)
            self.assertIn("merged 0 new cells", again.stdout)
            self.assertEqual(len(open(results).read().splitlines()), 5)
            bad = subprocess.run([RUNNER, yaml, "--devices", "0,x"], capture_output=True, text=True, timeout=60)
            self.assertEqual(bad.returncode, 2)
            self.assertIn("expected CUDA device ordinals", bad.stderr)


LAYERS = '''import torch


class Good:
    def __init__(self, embed_dim, device, dtype, seed, scale=1.0):
        self.scale = scale

    def init_state(self, batch):
        return None

    def forward(self, x, state):
        return x * self.scale, state

    def step(self, x_t, state):
        return x_t * self.scale, state

    def state_bytes(self, state):
        return 0


class Raises(Good):
    def step(self, x_t, state):
        return helper(x_t), state


def helper(x_t):
    raise ValueError("no step for you")


class WrongReturn(Good):
    def step(self, x_t, state):
        return x_t


class NoStep:
    def __init__(self, embed_dim, device, dtype, seed):
        pass

    def init_state(self, batch):
        return None

    def forward(self, x, state):
        return x, state

    def state_bytes(self, state):
        return 0
'''


class PythonLayers(unittest.TestCase):
    """Python layers (the `python` plugin) that are broken in one way each: the cell ends with a message
    naming the module, the class, the method and the line, the runner does not crash, and the next cell
    (a good layer) runs."""
    setUp, tearDown, path, file, runner, expect = (Catalogue.setUp, Catalogue.tearDown, Catalogue.path, Catalogue.file,
                                                   Catalogue.runner, Catalogue.expect)

    def layers(self):
        if os.environ.get("ATTNBENCH_HAS_PYTHON") != "1":
            self.skipTest("this build has no python plugin")
        return self.file("layers.py", LAYERS)

    def line(self, text):
        return LAYERS.splitlines().index(text) + 1

    def bad_then_good(self, module, cls, message):
        good = self.path("layers.py")
        attention = (f"[{{name: bad, plugin: python, params: {{module: {module}, class: {cls}}}}}, "
                     f"{{name: good, plugin: python, params: {{module: {good}, class: Good, args: '{{scale: 2}}'}}}}]")
        lines = self.expect(study(attention=attention), 1, message)
        self.assertEqual([json.loads(l)["status"] for l in lines], ["error", "ok"])
        return json.loads(lines[0])["message"]

    def test_python_exception(self):
        module = self.layers()
        message = self.bad_then_good(module, "Raises", f"python: Raises.step ({module}:{self.line('class Raises(Good):') + 1}) "
                                                       "raised ValueError: no step for you")
        call, raise_ = "        return helper(x_t), state", '    raise ValueError("no step for you")'
        self.assertIn(f'File "{module}", line {self.line(call)}, in step: {call.strip()}\n'
                      f'  File "{module}", line {self.line(raise_)}, in helper: {raise_.strip()}', message)

    def test_python_wrong_return_type(self):
        module = self.layers()
        self.bad_then_good(module, "WrongReturn", f"python: WrongReturn.step ({module}:{self.line('class WrongReturn(Good):') + 1}) "
                                                  "returned Tensor; it must return a tuple (y, state) with y a torch.Tensor")

    def test_python_missing_method(self):
        module = self.layers()
        self.bad_then_good(module, "NoStep", f"python: {module}:{self.line('class NoStep:')}: class NoStep has no method 'step'; "
                                             "a layer defines init_state, forward, step, state_bytes")

    def test_python_module_that_does_not_exist(self):
        self.layers()
        missing = self.path("nowhere.py")
        self.bad_then_good(missing, "Layer", f"python: module '{missing}' does not exist (class Layer); module is a path "
                                             "to a .py file, relative to the directory the runner was started in")


def fixture_plugin(name):
    return os.path.join(FIXTURES, "attnbench_%s.so" % name)


class CheckerAndGates(unittest.TestCase):
    """What a plugin author gets wrong, through the real runner with stdout a pipe (not a terminal):
    check-plugin reports a crash as that check's FAIL, keeps every line already printed and ends with
    its summary; its bad options exit 2 naming the option; a bad --set value fails `parameters` once. A
    study marks a cell whose step differs from its forward `inconsistent` and exits 1 (0 with
    --allow-inconsistent), and with run.isolate a crashing cell is an error naming the signal while the
    next cell runs; earlier results stay as they were."""
    setUp, tearDown, path, file, runner, expect = (Catalogue.setUp, Catalogue.tearDown, Catalogue.path, Catalogue.file,
                                                   Catalogue.runner, Catalogue.expect)

    def check(self, *args):
        return subprocess.run([RUNNER, "check-plugin", *args], capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))

    def test_a_crash_in_step_is_a_fail_naming_the_signal_and_the_report_goes_on(self):
        done = self.check(fixture_plugin("fixture_window_no_check"), "--set", "window=0", "--seq-len", "9")
        self.assertEqual(done.returncode, 1, done.stdout + done.stderr)
        lines = done.stdout.splitlines()
        self.assertEqual(lines[3:8], ["PASS handshake: fixture_window_no_check 0.0.1, " + fixture_plugin("fixture_window_no_check"),
                                      "PASS parameters", "PASS create", "PASS info", "PASS init_state"])
        self.assertIn("FAIL step: shape, dtype, device, finite: crashed with SIGFPE (arithmetic exception, e.g. an integer "
                      "division by zero) in step() on the first token", lines)
        self.assertEqual(lines[-1], fixture_plugin("fixture_window_no_check") + ": 6 passed, 2 failed, 7 skipped")

    def test_bad_checker_options(self):
        for args, message in [(["--seq-len", "64x"], "--seq-len needs a number from 1 to 16777216, got '64x'"),
                              (["--seq-len", "0"], "--seq-len needs a number from 1 to 16777216, got '0'"),
                              (["--batch", "2.5"], "--batch needs a whole number, got '2.5'"),
                              (["--device", "tpu"], "--device tpu: expected cpu or cuda"),
                              (["--frobnicate", "1"], "unknown option '--frobnicate'")]:
            done = self.check("mha", *args)
            self.assertEqual(done.returncode, 2, args)
            self.assertIn("runner check-plugin: " + message, done.stderr)

    def test_a_bad_set_value_fails_parameters_once(self):
        done = self.check(fixture_plugin("fixture_window"), "--set", "window=wide")
        self.assertEqual(done.returncode, 1, done.stdout + done.stderr)
        self.assertIn("FAIL parameters: --set window=wide: ", done.stdout)
        self.assertIn("SKIP create: not run: reading the parameters failed above", done.stdout)
        self.assertNotIn("was not provided", done.stdout)

    def window_study(self, plugin, extra=""):
        return study(data="{embedder: synthetic, params: {embed_dim: 8}, seq_len: 70}",
                     attention="[{name: w, plugin: %s, params: {heads: 2}}]" % fixture_plugin(plugin), extra=extra)

    def test_a_step_that_differs_from_forward_is_inconsistent(self):
        lines = self.expect(self.window_study("fixture_window_wrap"), 1, "step vs full: relative RMS ")
        cell = json.loads(lines[0])
        self.assertEqual(cell["status"], "inconsistent")
        self.assertIn("is beyond measure.tolerance_fp32 = 1.0e-04", cell["message"])
        self.assertIn("median", cell["metrics"]["step"]["time_ms"])
        done = self.runner(self.file("bad.yaml", self.window_study("fixture_window_wrap")), "--force", "--allow-inconsistent")
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("INCONSISTENT: step vs full", done.stdout)
        self.assertNotIn("\033[", done.stdout, "no colour when stdout is not a terminal")

    def test_a_negative_tolerance(self):
        yaml = study().replace("min_time_ms: 0}", "min_time_ms: 0, tolerance_fp16: -1}")
        self.expect(yaml, 2, "bad.yaml:5:67: measure.tolerance_fp16: -1 is out of range; must be >= 0", "--dry-run")

    def test_an_isolated_cell_that_crashes_is_an_error_and_the_next_runs(self):
        lines = self.expect(study(extra="matrix: {attention.params.fault: [crash, none]}\n").replace(
            "run: {seed_len: 2, horizon: 2}", "run: {seed_len: 2, horizon: 2, isolate: true}"), 1,
            "the cell's process crashed with SIGSEGV (segmentation fault: a bad memory access)")
        self.assertEqual([json.loads(l)["status"] for l in lines], ["error", "ok"])


# --- issue 22: results are sacred ------------------------------------------------------------------
# Every case the issue lists, through the real runner: no signal, no hang past the timeout, the message
# named, and the bytes of every results and cache file compared before and after.

CRASH_SIGNS = ("Segmentation", "terminate called", "std::bad_alloc", "filesystem_error", "Exception raised from",
               "frame #")
# The two-writer test's trials per run (ATTNBENCH_TWO_WRITER_TRIALS=20 repeats it in one go).
TWO_WRITER_TRIALS = int(os.environ.get("ATTNBENCH_TWO_WRITER_TRIALS", "1"))


def article(wikitext):
    """A MediaWiki dump holding one article."""
    return ("<mediawiki><page><title>T</title><ns>0</ns><revision><text xml:space=\"preserve\">" + wikitext +
            "</text></revision></page></mediawiki>\n")


class SacredBase(unittest.TestCase):
    """A scratch folder holding a results file with GOOD's one cell, and runners that must not crash."""
    path, file, model = Catalogue.path, Catalogue.file, Catalogue.model

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.results = self.path("results.jsonl")
        self.good = self.file("good.yaml", GOOD)
        self.assertEqual(self.run_runner(self.good).returncode, 0)
        self.before = self.bytes(self.results)

    def tearDown(self):
        self.dir.cleanup()

    def bytes(self, path):
        with open(path, "rb") as f:
            return f.read()

    def run_runner(self, *args, results=None, timeout=60, env=None):
        """The runner on `args` (with --results unless `results` is False); fails on a signal or a crash's
        trace in its output, and on a hang (TimeoutExpired)."""
        command = [RUNNER, *args] + ([] if results is False else ["--results", results or self.results])
        done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout,
                              env=dict(os.environ, OPENBLAS_NUM_THREADS="1", **(env or {})))
        output = done.stdout + done.stderr
        self.assertGreaterEqual(done.returncode, 0, f"killed by signal {-done.returncode}: {output[-2000:]}")
        for sign in CRASH_SIGNS:
            self.assertNotIn(sign, output)
        done.output = output
        return done

    def refused(self, args, message, results=None, timeout=60):
        """`args` exit 2 with `message`, and the results file keeps every byte."""
        path = results or self.results
        before = self.bytes(path) if os.path.isfile(path) else None
        done = self.run_runner(*args, results=path, timeout=timeout)
        self.assertEqual(done.returncode, 2, done.output)
        self.assertIn(message, done.output)
        self.assertEqual(self.bytes(path) if os.path.isfile(path) else None, before, "the results file changed")
        return done

    def new_lines(self):
        """The results file still starts with what it held; the lines added, parsed."""
        after = self.bytes(self.results)
        self.assertTrue(after.startswith(self.before), "earlier results were changed")
        return [json.loads(line) for line in after[len(self.before):].decode().splitlines()]

    def corpus_study(self, corpus, cache_dir="''", seq_len=4):
        return study(data="{embedder: bert, params: {model: %s, corpus: %s, cache_dir: %s}, seq_len: %d}"
                     % (self.model(), corpus, cache_dir, seq_len), attention="[{plugin: mha, params: {heads: 2}}]")


class SacredCrashes(SacredBase):
    def test_set_path_ending_in_a_dot(self):
        self.refused([self.good, "--set", "run.=5"], "--set run.=5: 'run.' has an empty part; write a path such as run.threads")

    def test_matrix_key_ending_in_a_dot(self):
        self.refused([self.file("bad.yaml", study(extra='matrix: {"run.": [1, 2]}\n'))],
                     "bad.yaml:6:18: matrix.run.: 'run.' has an empty part")

    def test_mediawiki_article_with_40000_nested_links(self):
        depth = 40000
        corpus = self.file("deep.xml", article("a b a b " + "[[x|" * depth + "a b" + "]]" * depth))
        done = self.run_runner(self.file("bad.yaml", self.corpus_study(corpus)), timeout=120)
        self.assertEqual(done.returncode, 0, done.output)
        self.assertEqual([line["status"] for line in self.new_lines()], ["ok"])

    def filter_finds_the_cell(self, pattern):
        done = self.run_runner(self.good, "--dry-run", "--filter", pattern, timeout=30)
        self.assertEqual(done.returncode, 0, done.output)
        self.assertIn("1 cells", done.stdout)
        self.assertEqual(self.bytes(self.results), self.before)

    def test_filter_with_20000_nested_parentheses(self):
        self.filter_finds_the_cell("(" * 20000 + "fx" + ")" * 20000)

    def test_filter_that_backtracks(self):
        self.filter_finds_the_cell("(.*)*" * 2000 + "fx")

    def test_symlink_loop_in_the_plugin_path(self):
        plugins = self.path("plugins")
        os.makedirs(plugins)
        os.symlink(os.path.join(plugins, "attnbench_loop.so"), os.path.join(plugins, "attnbench_loop.so"))
        done = self.run_runner("--list-plugins", results=False, env={"ATTNBENCH_PLUGIN_PATH": plugins})
        self.assertEqual(done.returncode, 0, done.output)
        self.assertIn(os.path.join(plugins, "attnbench_loop.so") + "\n    unusable: cannot resolve the path: Too many "
                      "levels of symbolic links", done.stdout)
        self.assertEqual(self.bytes(self.results), self.before)


class SacredResults(SacredBase):
    def test_complete_last_line_without_its_newline_is_kept(self):
        with open(self.results, "wb") as f:
            f.write(self.before[:-1])
        done = self.run_runner(self.good)
        self.assertEqual(done.returncode, 0, done.output)
        self.assertIn(f"note: {self.results}: its last line was complete but had no newline; added one", done.stdout)
        self.assertIn("already in", done.stdout)  # not measured again
        self.assertEqual(self.bytes(self.results), self.before)

    def test_torn_last_line_moves_to_a_sidecar(self):
        torn = b'{"attention": {"name": "fx"}, "axes": {"attention": "f'
        with open(self.results, "ab") as f:
            f.write(torn)
        done = self.run_runner(self.file("bad.yaml", study()))
        self.assertEqual(done.returncode, 0, done.output)
        self.assertIn(f"note: {self.results}: moved a half-written last line ({len(torn)} bytes, from a runner stopped "
                      f"while writing) to {self.results}.torn", done.stdout)
        self.assertEqual(self.bytes(self.results + ".torn"), torn)
        self.assertEqual([line["status"] for line in self.new_lines()], ["ok"])

    def refused_file(self, content, message):
        with open(self.results, "wb") as f:
            f.write(content)
        self.refused([self.file("bad.yaml", study())], f"{self.results}:{message}")
        self.assertFalse(os.path.exists(self.results + ".torn"))

    def test_binary_file_without_a_newline_is_refused(self):
        self.refused_file(bytes(b for b in range(1, 256) if b != 10) * 17,
                          "1: not an attnbench results line (the last 4318 bytes, with no newline)")

    def test_json_array_is_refused(self):
        self.refused_file(b"[\n" + self.before.rstrip(b"\n") + b",\n" + self.before + b"]\n",
                          "1: not an attnbench results line (not JSON)")

    def test_utf16_file_is_refused(self):
        self.refused_file(self.before.decode().encode("utf-16"), "1: not an attnbench results line (not JSON)")

    def test_dev_zero_and_a_fifo_are_refused(self):
        for path, kind in (("/dev/zero", "a character device"), (self.path("fifo"), "a FIFO")):
            if not os.path.exists(path):
                os.mkfifo(path)
            done = self.run_runner(self.good, results=path, timeout=20)
            self.assertEqual(done.returncode, 2, done.output)
            self.assertIn(f"runner: {path}: the results file is {kind}, not a regular file; nothing was read or written",
                          done.output)

    def test_results_path_that_is_a_directory(self):
        folder = self.path("folder")
        os.makedirs(folder)
        done = self.run_runner(self.good, results=folder)
        self.assertEqual(done.returncode, 2, done.output)
        self.assertIn(f"runner: {folder}: the results file is a directory, not a regular file", done.output)

    def test_infinities_and_nan_are_not_one_cell(self):
        yaml = study(attention="[{name: R, plugin: reservoir, params: {heads: 4, res_size: 16}}]",
                     extra="matrix: {attention.params.rho: [.inf, .nan, -.inf]}\n")
        self.refused([self.file("bad.yaml", yaml)], "bad.yaml:6:33: attention.params.rho: '.inf' is not a finite number")

    def test_two_shards_and_the_same_study_twice_share_one_file(self):
        # Lines longer than 4096 bytes (one write() each now; two before, which let lines splice), four
        # runners at once: shard 1/2, shard 2/2 and the whole study twice.
        cells = 30
        yaml = self.file("shared.yaml", GOOD.replace("seq_len: 6", "seq_len: 48") +
                         "matrix: {run.seed: [%s]}\n" % ", ".join(str(s) for s in range(1, cells + 1)))
        for trial in range(TWO_WRITER_TRIALS):
            results = self.path(f"shared{trial}.jsonl")
            runners = [subprocess.Popen([RUNNER, yaml, "--results", results, *extra], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
                       for extra in (["--shard", "1/2"], ["--shard", "2/2"], [], [])]
            outputs = [r.communicate(timeout=300)[0] for r in runners]
            for r, output in zip(runners, outputs):
                self.assertEqual(r.returncode, 0, output)
            content = self.bytes(results).decode()
            self.assertTrue(content.endswith("\n"))
            lines = content[:-1].split("\n")
            parsed = [json.loads(line) for line in lines]  # every line whole
            self.assertGreater(min(len(line) for line in lines), 4096)
            hashes = [p["hash"] for p in parsed]
            self.assertEqual(len(hashes), cells, f"trial {trial}: {len(hashes)} lines for {cells} cells")
            self.assertEqual(len(set(hashes)), cells, f"trial {trial}: a cell written twice")
            self.assertEqual({p["status"] for p in parsed}, {"ok"})

    def cache_file(self, cache):
        names = os.listdir(cache)
        self.assertEqual(len(names), 1, names)
        return os.path.join(cache, names[0])

    def test_embedding_cache_that_does_not_load_is_computed_again(self):
        cache = self.path("cache")
        corpus = self.file("corpus.txt", "a b a b a b\n\na b b a a b\n")
        yaml = self.file("bad.yaml", self.corpus_study(corpus, cache_dir=cache))
        self.assertEqual(self.run_runner(yaml).returncode, 0)
        cached = self.cache_file(cache)
        whole = self.bytes(cached)
        with open(cached, "wb") as f:
            f.write(whole[:len(whole) // 2])  # cut short, as a full disk left caches before they were atomic
        self.before = self.bytes(self.results)
        done = self.run_runner(yaml, "--force")
        self.assertEqual(done.returncode, 0, done.output)
        self.assertIn(f"warning: bert: the embedding cache does not load ({cached}: ", done.output)
        self.assertIn("computing the embeddings again", done.output)
        self.assertEqual(self.bytes(cached), whole)  # made again, whole
        [line] = self.new_lines()
        self.assertEqual(line["status"], "ok")
        self.assertIn("the embedding cache does not load", line["embedder"]["details"]["cache_warning"])

    def test_embedding_cache_that_cannot_be_written_keeps_the_cell(self):
        blocker = self.file("not_a_folder", "x")
        corpus = self.file("corpus.txt", "a b a b a b\n")
        done = self.run_runner(self.file("bad.yaml", self.corpus_study(corpus, cache_dir=blocker + "/cache")))
        self.assertEqual(done.returncode, 0, done.output)
        self.assertIn("warning: bert: the embedding cache was not written (", done.output)
        self.assertIn("the next run computes them again", done.output)
        self.assertEqual([line["status"] for line in self.new_lines()], ["ok"])
        self.assertEqual(self.bytes(blocker), b"x")


class SacredInputs(SacredBase):
    def bad(self, yaml, message, *args):
        self.refused([self.file("bad.yaml", yaml), "--dry-run", *args], message)

    reservoir = "[{name: R, plugin: reservoir, params: {heads: 4, res_size: 16%s}}]"

    def test_set_paths_that_name_nothing(self):
        self.bad(study(), "--set attention.params.hedas: no attention entry's plugin has a parameter 'hedas' (%s: fault, "
                 "gate)" % os.path.join(FIXTURES, "attnbench_fixture.so"),
                 "--set", "attention.params.hedas=2")
        self.bad(study(), "--set attention.plugin: 'attention.plugin' cannot be set here", "--set", "attention.plugin=mha")
        self.bad(study(), "--set run: 'run' is a section, not a value; set one of its keys, e.g. run.device", "--set", "run=5")
        self.bad(study(), "--set runn.threads: 'runn' is not a section of a study", "--set", "runn.threads=2")

    def test_misspelt_matrix_axis(self):
        self.bad(study(attention=self.reservoir % "", extra="matrix: {attention.params.res_sise: [16, 32]}\n"),
                 "bad.yaml:6:37: matrix.attention.params.res_sise: no attention entry's plugin has a parameter 'res_sise'")

    def test_duplicate_yaml_key(self):
        self.bad(study(data="{embedder: synthetic, params: {embed_dim: 8}, seq_len: 7, seq_len: 9}"),
                 "bad.yaml:2:65: data.seq_len: duplicate key 'seq_len' (first at line 2); keep one")

    def test_values_no_plugin_accepts(self):
        self.bad(study(attention=self.reservoir % ", rho: .nan"), "attention.params.rho: '.nan' is not a finite number")
        self.bad(study(attention=self.reservoir % ", in_size: -3"),
                 "attention[R].params.in_size: reservoir: in_size must be in [0, 1048576], got -3")
        self.bad(study(data="{embedder: synthetic, params: {embed_dim: -8}, seq_len: 7}"),
                 "data.params.embed_dim: synthetic: embed_dim must be in [1, 1048576], got -8")
        self.bad(study(data="{embedder: bert, params: {model: %s, corpus: c.txt, skip: -5}, seq_len: 4}" % self.model(),
                       attention="[{plugin: mha, params: {heads: 2}}]"),
                 "data.params.skip: bert: skip must be >= 0, got -5")

    def test_sizes_beyond_memory_or_time(self):
        self.bad(study(attention=self.reservoir % ", topology: smallworld, local_radius: 1000000000"),
                 "attention[R].params.local_radius: reservoir: local_radius must be in [1, 8], got 1000000000")
        self.bad(study(), "--set run.horizon: run.horizon: 100000000 is out of range; must be in [0, 4096]",
                 "--set", "run.horizon=100000000")
        self.bad(study(attention=self.reservoir % "").replace("res_size: 16", "res_size: 4e9"),
                 "attention[R].params.res_size: plugin 'reservoir' parameter 'res_size' must be an int")
        self.bad(study(attention=self.reservoir % "").replace("res_size: 16", "res_size: 4000000000"),
                 "attention[R].params.res_size: reservoir: res_size must be in [2, 1048576], got 4000000000")
        self.bad(study(attention=self.reservoir % ", density: 0.5").replace("res_size: 16", "res_size: 1000000"),
                 "reservoir: the nonzeros of W (density x res_size^2) would be 500000000000; the limit is 2147483648")
        axes = "".join(f"  {axis}: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n" for axis in
                       ("run.seed", "run.seed_len", "measure.warmup", "measure.min_runs", "run.batch", "data.samples",
                        "measure.max_runs"))
        self.bad(study(extra="matrix:\n" + axes), "matrix: expands to 10000000 cells (1 attention x 10 run.seed x")
        self.bad(study(extra="matrix:\n" + axes), "the limit is 100000 cells per study")

    def test_weights_naming_a_directory(self):
        folder = self.path("weights")
        os.makedirs(folder)
        self.bad(study(attention="[{plugin: mha, params: {heads: 2, weights: %s}}]" % folder),
                 f"attention[mha].params.weights: mha: weights '{folder}' is not a regular file")

    def test_set_errors_name_the_flag_not_the_file(self):
        done = self.refused([self.file("bad.yaml", study(attention=self.reservoir % "")), "--dry-run", "--set",
                             "attention.params.res_size=4e9"],
                            "runner: --set attention.params.res_size: attention[R].params.res_size: plugin 'reservoir' "
                            "parameter 'res_size' must be an int")
        self.assertNotIn("bad.yaml:1:1", done.output)

    def test_bad_config_json_value_names_the_file(self):
        yaml = self.file("bad.yaml", self.corpus_study(self.file("corpus.txt", "a b a b a b\n")))
        config = os.path.join(self.path("model"), "config.json")
        with open(config) as f:
            values = json.load(f)
        values["hidden_size"] = -4
        with open(config, "w") as f:
            json.dump(values, f)
        done = self.run_runner(yaml)
        self.assertEqual(done.returncode, 1, done.output)
        [line] = self.new_lines()
        self.assertIn(f"{config}: 'hidden_size' is -4; it must be in [1, 16777216]", line["message"])
