#!/usr/bin/env python3
"""Opens an HTML page in headless Chromium as a reader would and reports what would go wrong for them:
console errors, uncaught exceptions, requests for anything but the page itself (a self-contained page
fetches nothing), images that did not render, and a blank screenshot. Talks to Chromium over its
DevTools pipe (--remote-debugging-pipe: JSON messages ending in a NUL byte on file descriptors 3 and 4),
so it needs nothing but the standard library and a Chromium (Debian: chromium).

usage: scripts/report_browser.py PAGE.html [--screenshot OUT.png] [--element CSS] [--width 1280] [--height 900]
Exit status: 0 when the page is clean, 1 naming each problem, 2 when no Chromium is found.
"""

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import zlib

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserError(Exception):
    """Chromium could not be started or stopped answering."""


def find_browser():
    """The Chromium to run: $ATTNBENCH_CHROMIUM, else the first of BROWSERS on PATH; None when there is none."""
    named = os.environ.get("ATTNBENCH_CHROMIUM")
    if named:
        return shutil.which(named)
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


class DevTools:
    """One headless Chromium and its DevTools pipe; a context manager that always ends the browser."""

    def __init__(self, browser, width, height, timeout):
        self.timeout = timeout
        self.events = []
        self._id = 0
        self._buffer = b""
        self._profile = tempfile.mkdtemp(prefix="attnbench-chromium-")
        self._log = tempfile.TemporaryFile()
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()

        def plumb():
            # In the child: the pipe ends on descriptors 3 and 4, where Chromium expects them. Copies
            # above 9 first, since either end may itself be 3 or 4, and dup2 onto itself would keep
            # its close-on-exec flag.
            r, w = fcntl.fcntl(to_browser, fcntl.F_DUPFD, 10), fcntl.fcntl(from_browser, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        flags = [
            "--headless",
            "--remote-debugging-pipe",
            f"--user-data-dir={self._profile}",
            f"--window-size={width},{height}",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-sync",
            "--disable-background-networking",
            "--disable-component-update",
            "--mute-audio",
            # The pages are our own reports; CI containers often cannot start Chromium's sandbox (as
            # root it refuses, without user namespaces it fails), and a test must not depend on that.
            "--no-sandbox",
        ]
        try:
            self._process = subprocess.Popen(
                [browser, *flags, "about:blank"],
                preexec_fn=plumb,
                close_fds=False,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
            )
        except OSError as e:
            for fd in (to_browser, from_browser, self._write, self._read):
                os.close(fd)
            self._log.close()
            shutil.rmtree(self._profile, ignore_errors=True)
            raise BrowserError(f"cannot run {browser}: {e}") from None
        os.close(to_browser)
        os.close(from_browser)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            if self._process.poll() is None:
                self._send("Browser.close")
                self._process.wait(timeout=10)
        except (OSError, BrowserError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()
        for fd in (self._write, self._read):
            os.close(fd)
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def log_tail(self):
        try:
            self._process.wait(timeout=5)  # a browser that is exiting finishes its last words first
        except subprocess.TimeoutExpired:
            pass
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-2000:]

    def _send(self, method, params=None, session=None):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._write, json.dumps(message).encode("utf-8") + b"\0")
        except BrokenPipeError:
            raise BrowserError(f"Chromium exited: {self.log_tail()}") from None
        return self._id

    def _receive(self, deadline):
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise BrowserError(f"Chromium did not answer within {self.timeout:g} s")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium exited: {self.log_tail()}")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method, params=None, session=None):
        """Sends a command and returns its result; events that arrive meanwhile are kept in events."""
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error'].get('message')}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, method):
        """Waits for an event (keeping every event seen)."""
        deadline = time.monotonic() + self.timeout
        if any(e.get("method") == method for e in self.events):
            return
        while True:
            message = self._receive(deadline)
            self.events.append(message)
            if message.get("method") == method:
                return


# Where an element lies on the page, in CSS pixels, for a screenshot of it.
ELEMENT_BOX = """(() => { const e = document.querySelector(%s); if (!e) return null;
  const r = e.getBoundingClientRect();
  return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; })()"""

# Waits until every image has decoded, then counts those that did not render.
BROKEN_IMAGES = """Promise.all([...document.images].map(i => i.decode().catch(() => null)))
  .then(() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
                                   .map(i => i.alt || i.src.slice(0, 80)))"""


def problems_in(events, page_url):
    """What a reader would see go wrong, from the DevTools events: one sentence each."""
    found = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            found.append(f"console error: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            found.append(
                f"uncaught exception: {details.get('exception', {}).get('description') or details.get('text')}"
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            found.append(f"console error: {params['entry'].get('text')}")
        elif method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            if url != page_url and not url.startswith("data:"):
                found.append(f"the page requested {url[:120]}: a self-contained page fetches nothing")
        elif method == "Network.loadingFailed":
            found.append(f"a request failed: {params.get('errorText')}")
    return found


def check_page(path, width=1280, height=900, element=None, timeout=60.0, browser=None):
    """Loads the page and returns (problems, screenshot PNG bytes): of the first screen, or of the first
    element the CSS selector element matches ("html": the whole page). Raises BrowserError when Chromium
    cannot be run or is not found, or nothing matches element."""
    browser = browser or find_browser()
    if not browser:
        raise BrowserError(
            "no Chromium found (Debian: apt-get install chromium; scripts/setup.sh installs it), "
            "or name one in ATTNBENCH_CHROMIUM"
        )
    page_url = "file://" + os.path.abspath(path)
    with DevTools(browser, width, height, timeout) as tools:
        target = tools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = tools.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            tools.call(f"{domain}.enable", session=session)
        tools.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        navigation = tools.call("Page.navigate", {"url": page_url}, session=session)
        if navigation.get("errorText"):
            raise BrowserError(f"{path}: {navigation['errorText']}")
        tools.wait_for("Page.loadEventFired")
        broken = tools.call(
            "Runtime.evaluate",
            {"expression": BROKEN_IMAGES, "awaitPromise": True, "returnByValue": True},
            session=session,
        )["result"].get("value", [])
        shot = {"format": "png"}
        if element:
            box = tools.call(
                "Runtime.evaluate",
                {"expression": ELEMENT_BOX % json.dumps(element), "returnByValue": True},
                session=session,
            )["result"].get("value")
            if not box:
                raise BrowserError(f"{path}: no element matches {element!r}")
            shot.update(captureBeyondViewport=True, clip=dict(box, scale=1))
        png = base64.b64decode(tools.call("Page.captureScreenshot", shot, session=session)["data"])
        # The blank check reads a quarter-scale capture of the first screen: decoding in pure Python
        # stays well under a second, and anything a reader would see still shows.
        thumbnail = base64.b64decode(
            tools.call(
                "Page.captureScreenshot",
                {"format": "png", "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 0.25}},
                session=session,
            )["data"]
        )
        problems = problems_in(tools.events, page_url) + [f"an image did not render: {b}" for b in broken]
    if is_blank(thumbnail):
        problems.append("the screenshot is blank")
    return problems, png


def png_size(data):
    """(width, height) of a PNG, from its header."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def png_pixels(data):
    """(width, height, rows of pixel tuples) of an 8-bit, non-interlaced greyscale, RGB or RGBA PNG, as
    Chromium writes them; ValueError for anything else."""
    png_size(data)  # raises for anything but a PNG
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour, interlace = header[8], header[9], header[12]
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unsupported PNG (bit depth {depth}, colour type {colour}, interlace {interlace})")
    raw, stride = zlib.decompress(idat), width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, up_left = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 0xFF
        rows.append([tuple(line[x : x + channels]) for x in range(0, stride, channels)])
        previous = line
    return width, height, rows


def is_blank(png, min_share=0.005):
    """Whether a screenshot shows (next to) nothing: fewer than min_share of its pixels differ from the
    most common colour, the background."""
    _, _, rows = png_pixels(png)
    counts = {}
    for row in rows:
        for pixel in row:
            counts[pixel] = counts.get(pixel, 0) + 1
    total = sum(counts.values())
    return total - max(counts.values()) < min_share * total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page")
    parser.add_argument("--screenshot", metavar="OUT.png", help="save what the browser showed")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument(
        "--element", metavar="CSS", help="screenshot this element, not the first screen (html: the page)"
    )
    args = parser.parse_args()
    if not os.path.isfile(args.page):
        print(f"report_browser: {args.page}: no such page", file=sys.stderr)
        return 2
    try:
        problems, png = check_page(args.page, args.width, args.height, args.element)
    except BrowserError as e:
        print(f"report_browser: {e}", file=sys.stderr)
        return 2
    if args.screenshot:
        tmp = args.screenshot + ".tmp"
        with open(tmp, "wb") as f:
            f.write(png)
        os.replace(tmp, args.screenshot)
    for problem in problems:
        print(f"report_browser: {args.page}: {problem}")
    if not problems:
        print(f"report_browser: {args.page}: no console error, nothing fetched, every image rendered, not blank")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
