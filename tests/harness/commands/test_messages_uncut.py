"""Located messages are never cut: off a terminal `doctor`, `validate`, `submit` and `preprocess` print each problem
as one plain `path:line: severity: message` line whatever COLUMNS says; in a terminal the findings table folds long
cells instead of ellipsizing them; `--json` is a JSON list and nothing else."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from rich.console import Console

from harness.runtime.childenv import child_env
from harness.runtime.findings import (
    Finding,
    finding_line,
    finding_lines,
    findings_json,
    findings_table,
    from_message,
    from_problems,
    print_findings,
)
from submissions import Problem
from submissions.formats import image_location, write_annotation

REPO = Path(__file__).resolve().parents[3]


def _deep(tmp_path: Path) -> Path:
    """A folder whose path is longer than 120 characters (wider than any default terminal)."""
    deep = tmp_path / ("a_rather_long_folder_name_" * 2) / ("and_another_long_level_" * 2) / "Aff-Wild2_root"
    assert len(str(deep)) > 120
    deep.mkdir(parents=True)
    return deep


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *argv], capture_output=True, text=True, cwd=REPO,
                          env=child_env({"COLUMNS": "80"}), timeout=120)  # fmt: skip


def _dataset(root: Path) -> Path:
    """A dataset root with one annotation file whose line 3 is not a number; returns that file."""
    tr = root / "annotations" / "VA_Estimation_Challenge" / "Train_Set"
    write_annotation(tr / "good.txt", np.full((4, 2), 0.2))
    bad = tr / "a_video_with_a_long_name_that_does_not_fit.txt"
    bad.write_text("valence,arousal\n0.1,0.2\n0.1,abc\n")
    return bad


def _submission(root: Path) -> tuple[Path, Path]:
    """(sample file, prediction file whose line 3 is outside [-1, 1])."""
    sample, pred = root / "VA_test_set_sample.txt", root / "predictions_with_a_long_file_name.csv"
    locs = [image_location("vid", i) for i in (1, 2, 3)]
    sample.write_text("image_location,valence,arousal\n" + "".join(f"{loc},0,0\n" for loc in locs))
    pred.write_text("image_location,valence,arousal\n" + "".join(
        f"{loc},{v},0.1\n" for loc, v in zip(locs, (0.1, 7.0, 0.2), strict=True)))  # fmt: skip
    return sample, pred


def _line_with(text: str, start: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.startswith(start)]
    assert len(lines) == 1, text
    return lines[0]


def test_doctor_prints_whole_located_lines_and_json(tmp_path):
    root = _deep(tmp_path)
    bad = _dataset(root)
    out = _cli("doctor", str(root))
    assert out.returncode == 1, out.stderr
    line = _line_with(out.stdout, f"{bad}:3: error: ")
    assert "non-numeric" in line and "…" not in out.stdout
    *found, count = out.stdout.splitlines()
    assert all(re.match(r"^\S+?(:\d+)?: (error|warning): \S", ln) for ln in found), found
    assert count == f"1 error(s), {len(found) - 1} warning(s)"

    js = _cli("doctor", str(root), "--json")
    assert js.returncode == 1, js.stderr
    found = json.loads(js.stdout)  # nothing but the JSON on stdout
    assert all(set(f) == {"path", "line", "severity", "message", "code"} for f in found)
    hit = [f for f in found if f["path"] == str(bad)]
    assert hit and hit[0]["line"] == 3 and hit[0]["severity"] == "error" and "non-numeric" in hit[0]["message"]


def test_validate_and_submit_print_whole_located_lines(tmp_path):
    root = _deep(tmp_path)
    sample, pred = _submission(root)
    out = _cli("validate", str(pred), "--sample", str(sample))
    assert out.returncode == 1, out.stderr
    assert "outside [-1, 1]" in _line_with(out.stdout, f"{pred}:3: error: ")

    js = _cli("validate", str(pred), "--sample", str(sample), "--json")
    assert js.returncode == 1
    (hit,) = json.loads(js.stdout)
    assert (hit["path"], hit["line"], hit["severity"]) == (str(pred), 3, "error")

    sub = _cli("submit", str(pred), "--sample", str(sample), "--out", str(root / "submission.zip"))
    assert sub.returncode == 2 and not (root / "submission.zip").exists()
    assert "outside [-1, 1]" in _line_with(sub.stderr, f"{pred}:3: error: ")


def test_preprocess_prints_a_failed_video_as_one_located_line(tmp_path):
    root = _deep(tmp_path)
    (root / "clip_with_a_long_name.mp4").write_bytes(np.random.default_rng(0).bytes(2048))
    out = _cli("preprocess", str(root), "--out", str(tmp_path / "out"), "--no-faces", "--no-audio")
    assert out.returncode == 1, out.stderr
    assert _line_with(out.stdout, f"{root / 'clip_with_a_long_name.mp4'}: error: ")


# -- the helpers -------------------------------------------------------------------------------------------------
LONG = "/data/" + "/".join(["a_long_folder_name"] * 8) + "/video_017.txt"


def test_finding_lines_are_single_lines():
    f = Finding("error", LONG, "label rows\n  do not match", 12, "rows")
    assert finding_line(f) == f"{LONG}:12: error: label rows do not match [rows]"
    assert finding_line(Finding("warning", "x.mp4", "short")) == "x.mp4: warning: short"
    many = from_problems([Problem("p.csv", i, "bad", "c") for i in range(5)])
    assert many[0].line is None and many[1].where == "p.csv:1"
    assert finding_lines(many, limit=2, more_at="p.csv") == [
        "p.csv: error: bad [c]", "p.csv:1: error: bad [c]", "p.csv: error: ... and 3 more problem(s)"]
    assert json.loads(findings_json(many[1:2])) == [
        {"path": "p.csv", "line": 1, "severity": "error", "message": "bad", "code": "c"}]


def test_messages_are_split_at_the_location_they_start_with():
    assert from_message(f"{LONG}:7: error: not a video", "v") == Finding("error", LONG, "not a video", 7)
    assert from_message("clips/a b.mp4: bad", "a b") == Finding("error", "a b", "clips/a b.mp4: bad")
    assert from_message("unexpected ValueError: x", "v") == Finding("error", "v", "unexpected ValueError: x")
    assert from_message("audio: 2 damaged packets", "v").path == "v"  # a word, not a file


def test_off_a_terminal_findings_are_plain_lines_at_any_width():
    buf = io.StringIO()
    console = Console(file=buf, width=40, force_terminal=False)
    print_findings([Finding("error", LONG, "a message that is long enough to wrap at forty columns", 3)], console)
    assert buf.getvalue() == f"{LONG}:3: error: a message that is long enough to wrap at forty columns\n"


def test_in_a_terminal_the_table_folds_long_cells():
    buf = io.StringIO()
    console = Console(file=buf, width=60, force_terminal=True, color_system=None)
    print_findings([Finding("error", LONG, "cells [fold], they are never cut", 3)], console, title="t")
    text = buf.getvalue()
    assert "…" not in text
    # Every character of the location is there, folded over several rows of its column.
    cells = "".join(ln.split("│")[2].strip() for ln in text.splitlines() if ln.count("│") == 4)
    assert f"{LONG}:3" in cells
    assert "[fold]" in text  # cells are text, not rich markup
    assert findings_table([]).columns[1].overflow == "fold"
