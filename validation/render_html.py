"""Check that report HTML files render in headless Chromium: every embedded figure decodes and the
page logs nothing to the console (no errors, no warnings).

Run as ``python -m relaxsim.validation.render_html REPORT.html [...] [--screenshot DIR]``. Not part
of the test suite (it needs a browser: ``apt-get install chromium``). For each file, a copy with a
small script appended is opened with ``chromium --headless --no-sandbox --disable-gpu --dump-dom``;
the script counts the images whose PNG decoded (``naturalWidth > 0``) after the load event and
writes the counts into the DOM, which is then read back. Exit status 1 when any image does not
decode or the page does not load.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """<script>window.addEventListener("load", function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
  var p = document.createElement("p"); p.id = "render-probe";
  p.textContent = "images " + imgs.length + " decoded " + ok; document.body.appendChild(p);
});</script>"""


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise SystemExit("render_html: no chromium found (apt-get install -y chromium)")


def render(path: Path, screenshot: Path | None = None) -> tuple[int, int]:
    exe = browser()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--enable-logging=stderr", "--v=0"]
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(path.read_text().replace("</body>", PROBE + "</body>"))
        done = subprocess.run([exe, *flags, "--dump-dom", probe.as_uri()], capture_output=True,
                              text=True, timeout=120)
        dom = done.stdout
        # the page's console messages (errors included) are logged as INFO:CONSOLE lines
        console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
        if screenshot is not None:
            subprocess.run([exe, *flags, f"--screenshot={screenshot}", "--window-size=1200,2400",
                            path.resolve().as_uri()], capture_output=True, timeout=120)
    m = re.search(r"images (\d+) decoded (\d+)", dom)
    if not m:
        raise SystemExit(f"render_html: {path}: the page did not load in chromium")
    return int(m[1]), int(m[2]), console


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m relaxsim.validation.render_html")
    p.add_argument("html", nargs="+")
    p.add_argument("--screenshot", metavar="DIR", help="also save a PNG screenshot of each page")
    args = p.parse_args(argv)
    bad = 0
    for name in args.html:
        path = Path(name)
        shot = None
        if args.screenshot:
            Path(args.screenshot).mkdir(parents=True, exist_ok=True)
            shot = Path(args.screenshot).resolve() / f"{path.parent.name}-{path.stem}.png"
        total, ok, console = render(path, shot)
        good = ok == total and not console
        print(f"{'OK  ' if good else 'FAIL'}  {path}: {ok} of {total} images decoded, "
              f"{len(console)} console messages" + (f"; screenshot {shot}" if shot else ""))
        for line in console:
            print(f"      {line}")
        bad += not good
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
