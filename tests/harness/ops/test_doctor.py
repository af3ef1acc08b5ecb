"""`harness doctor` finds each problem of a dataset root, a run folder and a submission, and names where."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.cli import main
from harness.ops.doctor import check_path, label_rows_finding
from harness.runtime.findings import finding_line
from submissions.formats import EXPR_HEADER, image_location, write_annotation, write_expr_annotation
from tests._video import write_video


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


# -- raw videos: decodable, and as long as their labels ---------------------------------------------------------
def _frames(n: int) -> list[np.ndarray]:
    return [np.full((32, 48, 3), 8 * i, np.uint8) for i in range(n)]


def _video_root(tmp_path, n: int = 10):
    """A root whose Train split labels N-frame videos with N+3 rows (`over`), N-2 rows (`under`), N rows (`exact`),
    a two-person video (`duo_left` N rows, `duo_right` N-2 rows, one raw `duo.mp4`), and a raw video of random
    bytes (`noise`)."""
    root = tmp_path / "root"
    tr = root / "annotations" / "VA_Estimation_Challenge" / "Train_Set"
    rows = {"over": n + 3, "under": n - 2, "exact": n, "duo_left": n, "duo_right": n - 2, "noise": n}
    for name, k in rows.items():
        write_annotation(tr / f"{name}.txt", np.full((k, 2), 0.1))
    videos = root / "videos" / "batch1"
    videos.mkdir(parents=True)
    for name in ("over", "under", "exact", "duo"):
        write_video(videos / f"{name}.mp4", _frames(n))
    (videos / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return root, tr, videos


def test_an_undecodable_raw_video_is_an_error_naming_the_file(tmp_path):
    root, _, videos = _video_root(tmp_path)
    found = [f for f in check_path(root) if f.path == str(videos / "noise.mp4")]
    assert len(found) == 1 and found[0].severity == "error" and found[0].line is None
    assert found[0].message.startswith("cannot decode: ")
    assert finding_line(found[0]).startswith(f"{videos / 'noise.mp4'}: error: cannot decode: ")


def test_label_rows_are_compared_with_the_video_frames(tmp_path):
    root, tr, _ = _video_root(tmp_path, n=10)
    found = {Path(f.path).name: f for f in check_path(root) if "label rows" in f.message}
    assert sorted(found) == ["duo_right.txt", "over.txt", "under.txt"]  # exact and duo_left agree with their video
    over, under, right = found["over.txt"], found["under.txt"], found["duo_right.txt"]
    assert over.severity == "error" and over.path == str(tr / "over.txt")
    assert "13 label rows for the 10 frames of over.mp4" in over.message and "3 row(s) more" in over.message
    assert under.severity == "warning" and "8 label rows for the 10 frames of under.mp4" in under.message
    assert "the last 2 frame(s) have no row" in under.message
    assert right.severity == "warning" and "of duo.mp4" in right.message  # `_right` labels the shared `duo.mp4`


def test_label_rows_finding_is_pure():
    ann, video = Path("a/x.txt"), Path("v/x.mp4")
    assert label_rows_finding(ann, 10, video, 10) is None
    assert label_rows_finding(ann, 12, video, 0) is None  # no frame count in the file: nothing to compare
    assert label_rows_finding(ann, 13, video, 10).severity == "error"
    assert label_rows_finding(ann, 8, video, 10).severity == "warning"
