"""Asserts the page of scripts/report.py --html: self-contained (no script, no stylesheet or image
fetched, every figure an inline SVG that parses), its sections in the issue's order (summary table,
per-position latency, state bytes, the quality/latency Pareto figures and the memory curve once quality
metrics exist and not before, the A/B table with its verdicts, the history charts), under 5 MB for
results shaped like configs/bench_cpu.yaml's; and, in headless Chromium, that the page loads with no
console error, fetches nothing, renders every image and is not blank, while a page with a console
error, a fetch and nothing to see is caught on all three. Also that report_browser's PNG decoder reads
what matplotlib writes, pixel for pixel, and the average filter matplotlib does not use. Needs
matplotlib; the browser tests need Chromium (scripts/setup.sh installs both).
Run: python3 -m unittest discover -s tests/scripts"""

import base64
import importlib.util
import io
import os
import re
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "..", "..", "scripts")
sys.path.insert(0, SCRIPTS)
import report_browser  # noqa: E402
import results_fixtures as fx  # noqa: E402

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
BROWSER = report_browser.find_browser()


def report(*args):
    done = subprocess.run([sys.executable, os.path.join(SCRIPTS, "report.py"), *args], capture_output=True, text=True)
    return done.returncode, done.stdout, done.stderr


def bench_cpu_results(folder, scores=True):
    """Results shaped like configs/bench_cpu.yaml's: a base run, a new one 20% slower, and a history of
    four commits. Returns (base, new, history folder)."""
    base, new, history = (os.path.join(folder, n) for n in ("base.jsonl", "new.jsonl", "history"))
    fx.write(base, fx.bench_cpu_cells("c0", "2026-01-01T00:00:00Z", scores=scores))
    fx.write(new, fx.bench_cpu_cells("c1", "2026-01-02T00:00:00Z", scale=1.2, scores=scores))
    os.makedirs(history)
    for i, scale in enumerate((1.0, 1.0, 1.2, 0.9)):
        fx.write(
            os.path.join(history, f"run{i}.jsonl"),
            fx.bench_cpu_cells(f"c{i}", f"2026-01-0{i + 1}T00:00:00Z", scale=scale, scores=scores),
        )
    return base, new, history


@unittest.skipUnless(HAS_MATPLOTLIB, "matplotlib is not installed")
class PageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        base, new, history = bench_cpu_results(cls.dir.name)
        cls.page = os.path.join(cls.dir.name, "report.html")
        cls.status, cls.out, cls.err = report(
            base, new, "--history", history, "--html", cls.page, "--repo", cls.dir.name
        )
        with open(cls.page, encoding="utf-8") as f:
            cls.html = f.read()

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_exit_status_and_size(self):
        self.assertEqual(self.status, 1, self.err)  # the new run is 20% slower
        size = os.path.getsize(self.page)
        self.assertIn(f"report: wrote {self.page} ({size / 1e6:.2f} MB)", self.out)
        self.assertLess(size, 5_000_000)
        self.assertFalse(os.path.exists(self.page + ".tmp"))

    def test_self_contained(self):
        self.assertNotRegex(self.html, r"(?i)<script|<link|<iframe|@import|url\(")
        sources = re.findall(r'src="([^"]*)"', self.html)
        self.assertGreater(len(sources), 8)
        for src in sources:
            self.assertTrue(src.startswith("data:image/svg+xml;base64,"), src[:60])
            svg = base64.b64decode(src.split(",", 1)[1])
            self.assertEqual(ET.fromstring(svg).tag, "{http://www.w3.org/2000/svg}svg")
            self.assertNotRegex(svg.decode("utf-8"), r'(?:href|src)="(?:https?|file):')

    def test_sections_in_order(self):
        markers = [
            "<h2>Summary: new.jsonl</h2>",
            'id="latency_by_position"',
            'id="state_bytes"',
            'id="pareto_mackey_glass"',
            'id="pareto_memory_capacity"',
            'id="pareto_next_embedding"',
            'id="curve_memory_capacity"',
            "<h2>A/B: new.jsonl against base.jsonl</h2>",
            'id="ab_new.jsonl"',
            "<h2>History: 5 cells over 4 commits</h2>",
            'id="history_full.time_ms"',
            "<h3>Steps (",
        ]
        positions = [self.html.find(m) for m in markers]
        self.assertNotIn(-1, positions, [m for m, p in zip(markers, positions) if p < 0])
        self.assertEqual(positions, sorted(positions))
        self.assertNotIn('id="curve_mackey_glass"', self.html)  # a task without a curve draws none
        self.assertIn('<tr class="slower fails"><td>MHA</td><td>full</td>', self.html)
        self.assertIn("<th>MC (memory_capacity)</th>", self.html)

    def test_no_quality_figures_without_quality_metrics(self):
        with tempfile.TemporaryDirectory() as d:
            base, _, _ = bench_cpu_results(d, scores=False)
            page = os.path.join(d, "page.html")
            status, _, err = report(base, "--html", page)
            self.assertEqual(status, 0, err)
            with open(page, encoding="utf-8") as f:
                html = f.read()
            self.assertIn('id="latency_by_position"', html)
            self.assertNotRegex(html, r'id="(pareto|curve)_')
            self.assertNotIn("<h2>A/B", html)
            self.assertNotIn("<h2>History", html)

    @unittest.skipUnless(BROWSER, "no Chromium (scripts/setup.sh installs it)")
    def test_in_a_headless_browser_nothing_goes_wrong(self):
        problems, png = report_browser.check_page(self.page)
        self.assertEqual(problems, [])
        self.assertEqual(report_browser.png_size(png), (1280, 900))
        # A screenshot of one section: as wide as the page's column, taller than a screen (its figures).
        problems, png = report_browser.check_page(self.page, element="section#history")
        self.assertEqual(problems, [])
        width, height = report_browser.png_size(png)
        self.assertTrue(1000 < width < 1280 and height > 900, (width, height))
        with self.assertRaisesRegex(report_browser.BrowserError, "no element matches '#nope'"):
            report_browser.check_page(self.page, element="#nope")


@unittest.skipUnless(BROWSER, "no Chromium (scripts/setup.sh installs it)")
class BrowserCheckTest(unittest.TestCase):
    def test_a_broken_page_is_caught(self):
        with tempfile.TemporaryDirectory() as d:
            page = os.path.join(d, "broken.html")
            with open(page, "w") as f:
                # Port 9 (discard) on the loopback: refused at once, no network needed.
                f.write(
                    '<!DOCTYPE html><html><body><img alt="remote" src="http://127.0.0.1:9/x.png">'
                    '<script>console.error("boom")</script></body></html>'
                )
            problems, _ = report_browser.check_page(page)
            self.assertIn("console error: boom", problems)
            self.assertIn(
                "the page requested http://127.0.0.1:9/x.png: a self-contained page fetches nothing", problems
            )
            self.assertIn("an image did not render: remote", problems)
            self.assertEqual(problems[-1], "the screenshot is blank")


def png(width, height, colour_type, raw):
    """A PNG of 8-bit pixels from its filtered scanlines (each led by its filter type)."""

    def chunk(kind, body):
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, colour_type, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


class PngFilterTest(unittest.TestCase):
    def test_average_filter_and_bad_formats(self):
        # Row 1 uses the average filter: 3 + (0 + 10) // 2 = 8, then 4 + (8 + 20) // 2 = 18.
        self.assertEqual(
            report_browser.png_pixels(png(2, 2, 0, bytes([0, 10, 20, 3, 3, 4]))),
            (2, 2, [[(10,), (20,)], [(8,), (18,)]]),
        )
        with self.assertRaisesRegex(ValueError, "not a PNG"):
            report_browser.png_pixels(b"GIF89a")
        with self.assertRaisesRegex(ValueError, r"unsupported PNG \(bit depth 8, colour type 3, interlace 0\)"):
            report_browser.png_pixels(png(1, 1, 3, bytes([0, 0])))


@unittest.skipUnless(HAS_MATPLOTLIB, "matplotlib is not installed")
class PngTest(unittest.TestCase):
    def test_decoder_reads_what_matplotlib_writes(self):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(1.2, 0.9), dpi=50)
        ax.plot([0, 1, 2], [2, 0, 1])
        ax.set_title("x")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        width, height, rows = report_browser.png_pixels(buffer.getvalue())
        buffer.seek(0)
        expected = (plt.imread(buffer, format="png") * 255).round().astype(int)
        self.assertEqual((height, width), expected.shape[:2])
        self.assertEqual([list(map(list, row)) for row in rows], expected.tolist())
        self.assertFalse(report_browser.is_blank(buffer.getvalue()))


if __name__ == "__main__":
    unittest.main()
