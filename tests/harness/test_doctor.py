"""`harness doctor` finds each problem of a dataset root, a run folder and a submission, and names where."""

from __future__ import annotations

import numpy as np

from harness.cli import main
from harness.doctor import check_path
from submissions.formats import EXPR_HEADER, image_location, write_annotation, write_expr_annotation


def _layout(root):
    tr = root / "annotations" / "VA_Estimation_Challenge" / "Train_Set"
    va = root / "annotations" / "VA_Estimation_Challenge" / "Validation_Set"
    write_annotation(tr / "good.txt", np.full((5, 2), 0.2))
    write_annotation(tr / "silent_labels.txt", np.full((4, 2), -5.0))
    (tr / "broken.txt").write_text("valence,arousal\n0.1,abc\n0.2,3\n")
    write_annotation(va / "val_left.txt", np.zeros((3, 2)))
    crops = root / "cropped_aligned" / "good"
    crops.mkdir(parents=True)
    for i in (1, 2, 7):
        (crops / f"{i:05d}.jpg").write_bytes(b"jpg")
    (root / "VA_test_set_release.txt").write_text("t1\n")
    (root / "VA_test_set_sample.txt").write_text(f"image_location,valence,arousal\n{image_location('t2', 1)},0,0\n")
    return root


def test_dataset_findings(tmp_path):
    found = check_path(_layout(tmp_path))
    text = "\n".join(f"{f.severity} {f.where} {f.what}" for f in found)
    assert "broken.txt:2" in text and "non-numeric" in text
    assert "broken.txt:3" in text and "outside [-1, 1]" in text
    assert "every frame is -5" in text
    assert "crops up to frame 7" in text
    assert "sample file videos differ from the test list" in text
    assert "no raw video" in text


def test_expression_files_are_checked_and_located(tmp_path):
    root = _layout(tmp_path)
    expr = root / "annotations" / "EXPR_Classification_Challenge"
    write_expr_annotation(expr / "Train_Set" / "good.txt", np.array([4, 4, 4]))  # 3 lines for 5 V/A lines
    (expr / "Validation_Set" / "val_left.txt").parent.mkdir(parents=True)
    (expr / "Validation_Set" / "val_left.txt").write_text(f"{EXPR_HEADER}\n1\n9\n0\n")
    found = check_path(root)
    text = "\n".join(f"{f.severity} {f.where} {f.what}" for f in found)
    assert "val_left.txt:3" in text and "class 9 is outside 0..7" in text
    assert "3 expression lines for 5 V/A lines" in text


def test_duplicate_names_across_splits(tmp_path):
    root = _layout(tmp_path)
    write_annotation(root / "annotations" / "VA_Estimation_Challenge" / "Validation_Set" / "good.txt",
                     np.zeros((2, 2)))
    found = check_path(root)
    assert found[0].severity == "error" and "more than one split" in found[0].what


def test_run_and_submission_findings(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 0, "p_va": 0.5}\n{"epoch": 1, "p_va"\n')
    (run / ".ckpt.pt.123.tmp").write_bytes(b"")
    found = check_path(run)
    whats = [f.what for f in found]
    assert any("not a JSON line" in w for w in whats)
    assert any("temporary file" in w for w in whats)
    assert any("config.yaml" in f.where for f in found)
    bad = tmp_path / "p.csv"
    bad.write_text("image_location,valence,arousal\nv/00001.jpg,2,0\n")
    assert main(["doctor", str(bad)]) == 1
    assert "outside [-1, 1]" in capsys.readouterr().out
