"""The report in a real browser: headless Chromium opens it from disk, with the network off, and it renders every
table, every image decodes, no script error fires, and the screenshot is a picture, not a blank page.

Chromium is Debian's `chromium` package (`.ci/run` installs it where apt can); without it the test skips and says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from harness.reporting.report import write_report
from harness.runtime.childenv import child_env
from tests.harness._report import make_demo_folder

BROWSERS = ("chromium", "chromium-browser")
"""Names Debian and Ubuntu give the headless-capable Chromium binary."""

TIMEOUT_S = 120
"""A cold Chromium start on a loaded 2-core machine takes a few seconds; far more means it hangs."""

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync")  # fmt: skip


def _browser() -> str:
    found = next((p for p in map(shutil.which, BROWSERS) if p), None)
    if found is None:
        pytest.skip("headless Chromium not installed (no `chromium` on PATH): `apt-get install -y chromium`, which "
                    ".ci/run does where apt is available")  # fmt: skip
    return found


def _chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=child_env(), check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish within {TIMEOUT_S} s: {' '.join(cmd)}")


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[str, Path]:
    """(browser, report.html) of a fake demo folder made by the real writers (`make_demo_folder`)."""
    browser = _browser()
    root = make_demo_folder(tmp_path_factory.mktemp("browser") / "demo")
    return browser, write_report(root)


def test_report_renders_in_headless_chromium(page, tmp_path):
    browser, report = page
    url = report.resolve().as_uri()
    res = _chromium(browser, tmp_path / "profile-dom", "--dump-dom", url)
    dom = res.stdout
    assert res.returncode == 0 and "</html>" in dom, res.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:2000]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    # The page's own check ran on load: every image decoded (data URIs), no error event fired.
    assert attrs.get("data-broken-images") == "0", attrs
    assert attrs.get("data-errors") == "0", attrs
    assert attrs.get("data-images") == "5", attrs  # four demo plots and fold 1's curves
    text = re.sub(r"<[^>]+>", " ", dom)
    for title in ("Table I: CCC per fold (fake config)", "Table III: visual features without vs with fine-tuning",
                  "Table IV: fusion ablation (fold 3, fake config)", "Table IV: paired differences",
                  "Table III: paired differences", "Leaderboard: ours by group"):  # fmt: skip
        assert title in text, title
    for cell in ("0.634 [0.50, 0.72]", "0.688 [0.58, 0.73]", "0.455 [0.25, 0.58]", "-0.286 [-0.388, -0.171]",
                 "not resolved", "HSEmotion", "BDCA &lt;w/o DW&gt;"):  # fmt: skip
        assert cell in text, cell


def test_report_screenshot_is_not_blank(page, tmp_path):
    browser, report = page
    shot = tmp_path / "report.png"
    res = _chromium(browser, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,2000",
                    report.resolve().as_uri())  # fmt: skip
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    with Image.open(shot) as img:
        assert img.size == (1280, 2000)
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
    # Text, tables and plots give thousands of colours; a blank or failed page gives one or two.
    assert colours is not None and len(colours) > 50, len(colours or [])
