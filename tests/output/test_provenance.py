"""Asserts that the build's provenance is baked into the runner: `runner --version` run with no git on
PATH, from another folder, names the commit this tree is at (with -dirty when tracked files differ) and
the build's facts, and a copy of the runner moved elsewhere says the same.
Run: ATTNBENCH_RUNNER=build/runner python3 -m unittest discover -s tests/output -p 'test_*.py'"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

RUNNER = os.environ.get("ATTNBENCH_RUNNER", "build/runner")
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def git(*args):
    return subprocess.run(["git", "-C", SOURCE, *args], capture_output=True, text=True).stdout.strip()


class Provenance(unittest.TestCase):
    def version(self, runner):
        done = subprocess.run([runner, "--version"], capture_output=True, text=True, cwd="/", env={"PATH": "/nonexistent"})
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout)

    def test_version_names_the_commit_built_without_asking_git(self):
        facts = self.version(RUNNER)
        for key in ("attnbench_version", "git_commit", "git_dirty", "build_type", "compiler", "cuda_architectures", "torch"):
            self.assertIn(key, facts)
        commit = git("rev-parse", "--short=12", "HEAD")
        if not commit:
            self.skipTest("not a git checkout")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        self.assertEqual(facts["git_commit"], commit + ("-dirty" if dirty else ""))
        self.assertEqual(facts["git_dirty"], dirty)

    def test_a_moved_runner_reports_the_same_build(self):
        with tempfile.TemporaryDirectory() as d:
            moved = os.path.join(d, "runner")
            shutil.copy(RUNNER, moved)
            self.assertEqual(self.version(moved), self.version(RUNNER))


if __name__ == "__main__":
    unittest.main()
