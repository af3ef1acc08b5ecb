"""The CLI wires the same functions the tests call: score, validate, submit, leaderboard, and --help for all."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.cli import _command_modules, build_parser, main
from submissions.formats import image_location, write_annotation, write_submission
from submissions.leaderboard import scoring_fixture


@pytest.fixture
def files(tmp_path):
    labels, preds = scoring_fixture(videos=2, frames=60)
    ann = tmp_path / "labels"
    for v, lab in labels.items():
        write_annotation(ann / f"{v}.txt", lab)
    sample = tmp_path / "sample.txt"
    sample.write_text("image_location,valence,arousal\n" + "".join(
        f"{image_location(v, i + 1)},0,0\n" for v in sorted(labels) for i in range(60)))
    pred = write_submission(tmp_path / "pred.csv", preds, sample)
    return tmp_path, ann, sample, pred


def test_help_lists_every_command_with_examples(capsys):
    names = {m.NAME for m in _command_modules()}
    assert {"score", "submit", "validate", "leaderboard"} <= names
    help_text = build_parser().format_help()
    for n in names:
        assert n in help_text
    assert list(_command_modules()), "the loop below checks nothing"
    for m in _command_modules():
        assert m.HELP and m.EXAMPLES, m.NAME
        with pytest.raises(SystemExit) as e:
            main([m.NAME, "--help"])
        assert e.value.code == 0
        assert "examples:" in capsys.readouterr().out


def test_score_json(files, capsys):
    _, ann, _, pred = files
    assert main(["score", str(pred), "--labels", str(ann), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["videos"] == 2 and 0 < out["total"]["p_va"] < 1 and out["total"]["dropped"] == 60


def test_validate_exit_codes(files, capsys):
    root, _, sample, pred = files
    assert main(["validate", str(pred), "--sample", str(sample)]) == 0
    bad = root / "bad.csv"
    bad.write_text(pred.read_text().replace(",", ";", 3))
    assert main(["validate", str(bad), "--sample", str(sample)]) == 1
    assert "problem" in capsys.readouterr().out


def test_submit_packages_and_refuses(files, capsys):
    root, _, sample, pred = files
    assert main(["submit", str(pred), "--sample", str(sample), "--out", str(root / "s.zip")]) == 0
    assert (root / "s.zip").is_file()
    lines = pred.read_text().splitlines()
    (root / "short.csv").write_text("\n".join(lines[:-1]) + "\n")
    assert main(["submit", str(root / "short.csv"), "--sample", str(sample), "--out", str(root / "n.zip")]) == 2
    assert "missing 1 row" in capsys.readouterr().err
    assert not (root / "n.zip").exists()


def test_leaderboard_check_and_show(tmp_path, capsys):
    assert main(["leaderboard", "--check"]) == 0
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"demo/fold0": {"ccc_v": 0.5, "ccc_a": 0.6, "p_va": 0.55}}))
    assert main(["leaderboard", "--scores", str(scores), "--out", str(tmp_path / "lb")]) == 0
    assert "demo/fold0" in (tmp_path / "lb.md").read_text()
    rec = tmp_path / "rec.json"
    rec.write_text(json.dumps({"fixture": {"scores": {}}, "quick": {"platform": {}, "scores": {"demo/fold0/p_va": 0.6},
                                                                     "levels": {}}}))
    assert main(["leaderboard", "--check", "--scores", str(scores), "--recorded", str(rec)]) == 1


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "harness.cli", "--help"], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and "score" in r.stdout
