"""`harness report`: the pure HTML builder (tables, escaping, inline images, nothing fetched) and the reader of
demo, experiment and run folders, built here in seconds from the real writers (tables, plots, fingerprint)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from harness.cli import build_parser, main
from harness.reporting.page import data_uri
from harness.reporting.report import (
    Plot,
    Report,
    collect_report,
    leaderboard_tables,
    locate,
    render_html,
    score_tables,
    timings_table,
    write_report,
)
from submissions.leaderboard import Entry
from tests.harness._report import PAIRED_IV, TABLE_I, TABLE_IV, make_demo_folder


def _png(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), colour).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return make_demo_folder(tmp_path_factory.mktemp("report") / "demo")


def _fake_report() -> Report:
    rep = Report("report of <x>", "/tmp/<x>", "demo")
    rep.tables = score_tables("IV", TABLE_IV, PAIRED_IV, "Table IV: fusion <ablation>", resamples=1000)
    rep.tables += score_tables("I", TABLE_I, None, "Table I: CCC per fold")
    rep.leaderboard = leaderboard_tables([Entry("fake/fold0/bdca", 0.62, 0.65, 0.634, "this run", "validation",
                                                {"p_va": (0.5, 0.72)})])  # fmt: skip
    rep.plots = [Plot("a <plot>", _png(), "caption & more"), Plot("another", _png((0, 0, 255)))]
    rep.timings = timings_table({"stage <1>": 2.0, "peak_rss_mib": {"stage <1>": {"self": 100.0, "children": 5.0}}})
    rep.config = "name: <fake>\n"
    rep.git = "abc123"
    return rep


def test_html_builder_tables_escaping_and_inline_images():
    page = render_html(_fake_report())
    # Every table, with its cells and intervals, and the paired verdicts.
    for text in ("Table IV: fusion &lt;ablation&gt;", "Table IV: paired differences", "Table I: CCC per fold",
                 "0.634 [0.50, 0.72]", "0.688 [0.58, 0.73]", "-0.286 [-0.388, -0.171]", ">resolved<",
                 ">not resolved<", "Leaderboard", "HSEmotion", "Time and memory per stage"):  # fmt: skip
        assert text in page, text
    # A row name with markup characters arrives as text; no stray tag from the data.
    assert "BDCA &lt;w/o DW&gt; &amp; &quot;co&quot;" in page
    assert "<w/o DW>" not in page and "<ablation>" not in page and "<fake>" not in page and "<plot>" not in page
    # The images are inline PNGs, byte for byte; nothing refers to the network.
    uris = re.findall(r'<img src="([^"]+)"', page)
    assert uris == [data_uri(_png()), data_uri(_png((0, 0, 255)))]
    assert base64.b64decode(uris[0].split(",", 1)[1]) == _png()
    assert "http://" not in page and "https://" not in page
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', page))  # in-page links only
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert 'data-broken-images="pending"' in page  # the browser's self-check replaces it once loaded


def test_empty_parts_are_left_out():
    page = render_html(Report("only a title", "x", "run"))
    assert "<table" not in page and "<img" not in page and "<section" not in page


def test_demo_folder_report_shows_everything(demo, tmp_path):
    out = write_report(demo, tmp_path / "r.html")
    page = out.read_text(encoding="utf-8")
    for text in ("Table I: CCC per fold (fake config)", "Table III: visual features without vs with fine-tuning",
                 "Table IV: fusion ablation (fold 3, fake config)", "Table IV: paired differences",
                 "Table III: paired differences", "0.634 [0.50, 0.72]", "-0.122 [-0.341, 0.162]",
                 "BDCA &lt;w/o DW&gt;", "HSEmotion", "fake/test/bdca", "BDCA gates on the test frames",
                 "0123456789abcdef", "name: fake", "torch", "aten_capability", "1/5 corpus", ">921<",
                 "submission.zip", "Training curves: fold1"):  # fmt: skip
        assert text in page, text
    # Four demo plots plus fold 1's curves drawn from its metrics.jsonl (fold 0 has its PNG already).
    uris = re.findall(r'<img src="(data:image/png;base64,[A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 5
    assert "http://" not in page and "https://" not in page
    assert not list(tmp_path.glob(".r.html.*"))  # written atomically: no temporary file left
    # The default output is the folder's report.html; a scores.json stands for its folder.
    assert write_report(demo / "scores.json") == demo / "report.html"


def test_experiment_and_run_folders(demo, tmp_path):
    src = locate(demo / "experiments")
    assert src.kind == "experiment" and src.run == demo / "experiments" / "folds" / "fold0"
    rep = collect_report(demo / "experiments")
    assert [t.title for t in rep.tables][:1] == ["Table I: CCC per fold (fake config)"]
    assert any("no leaderboard" in n for n in rep.notes)  # no finished run (summary.json) in the fake folds
    assert rep.config is not None and rep.git is not None and len(rep.plots) == 2  # both folds' curves drawn
    run = demo / "experiments" / "folds" / "fold0"
    rec = {"fold": 0, "model": "bdca", "val": {"ccc_v": 0.6, "ccc_a": 0.7, "p_va": 0.65}, "platform": {"torch": "9"}}
    (run / "summary.json").write_text(json.dumps(rec))
    try:
        rep = collect_report(run)
        assert rep.kind == "run" and not rep.tables and len(rep.plots) == 1
        assert rep.environment is not None and ("torch", "9") in rep.environment.rows
        assert "fold0/bdca (validation)" in render_html(rep)
    finally:
        (run / "summary.json").unlink()


def _cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(["report", *argv])
    return code, capsys.readouterr().err


def test_missing_and_unreadable_inputs_are_one_located_line(demo, tmp_path, capsys):
    code, err = _cli(capsys, str(tmp_path / "nothing"))
    assert code == 2 and err.startswith(f"{tmp_path / 'nothing'}: error: no such file or folder")
    assert err.count("\n") == 1 and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    code, err = _cli(capsys, str(tmp_path / "empty"))
    assert code == 2 and err.startswith(f"{tmp_path / 'empty'}: error: not a report source")
    bad = tmp_path / "bad"
    (bad / "experiments").mkdir(parents=True)
    (bad / "experiments" / "table_I.json").write_text('{"rows": [\n  {"row": "x",}\n]}')
    code, err = _cli(capsys, str(bad))
    assert code == 2 and err.startswith(f"{bad / 'experiments' / 'table_I.json'}:2: error: ")
    assert "not valid JSON" in err and err.count("\n") == 1
    (bad / "experiments" / "table_I.json").unlink()
    (bad / "plots").mkdir()
    (bad / "plots" / "traces_test.png").write_text("not a png")
    code, err = _cli(capsys, str(bad))
    assert code == 2 and err.startswith(f"{bad / 'plots' / 'traces_test.png'}: error: the plot is not a PNG image")
    (bad / "plots" / "traces_test.png").unlink()
    os.mkfifo(bad / "plots" / "gates_test.png")  # reading a FIFO would block forever: refused unopened
    code, err = _cli(capsys, str(bad))
    assert code == 2 and err.startswith(f"{bad / 'plots' / 'gates_test.png'}: error: the plot is a FIFO")
    (bad / "plots" / "gates_test.png").unlink()
    (bad / "scores.json").write_text(json.dumps({"x/fold0/bdca": {"p_va": "high"}}))
    code, err = _cli(capsys, str(bad))
    assert code == 2 and err.startswith(f"{bad / 'scores.json'}: error: x/fold0/bdca/p_va is 'high', not a number")
    assert err.count("\n") == 1 and "Traceback" not in err
    code, err = _cli(capsys, str(demo), "--out", str(tmp_path))
    assert code == 2 and err.startswith(f"{tmp_path}: error: is a folder")


def test_cli_writes_the_report_and_help_shows_examples(demo, tmp_path, capsys):
    assert main(["report", str(demo), "--out", str(tmp_path / "x.html")]) == 0
    assert f"report: {tmp_path / 'x.html'}" in capsys.readouterr().out
    assert (tmp_path / "x.html").read_text(encoding="utf-8").count("<img ") == 5
    text = build_parser("report").format_help()
    assert "report" in text
    sub = build_parser("report")._subparsers._group_actions[0].choices["report"].format_help()
    assert "examples:" in sub and "harness report demo_runs/quick" in sub and "RUN_OR_EXPERIMENT" in sub
