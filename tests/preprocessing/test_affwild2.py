"""Aff-Wild2 layout readers, built in tmp_path exactly as the organisers lay the data out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preprocessing.affwild2 import (
    AffWild2Layout,
    LayoutError,
    VideoEntry,
    person_of,
    reconcile_lengths,
    strip_person,
)
from submissions import FormatError


def _annotation(path: Path, rows: list[tuple[float, float]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("valence,arousal\n" + "".join(f"{v},{a}\n" for v, a in rows))
    return path


def _crops(root: Path, name: str, frames: list[int]) -> None:
    folder = root / "cropped_aligned" / name
    folder.mkdir(parents=True, exist_ok=True)
    for f in frames:
        (folder / f"{f:05d}.jpg").write_bytes(b"\xff\xd8")


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """train: 1-30-1280x720, 7-60-1920x1080_left/_right; validation: 9-15-1920x1080; test: 12-24-1920x1080,
    3-25-1920x1080_right."""
    r = tmp_path / "affwild2"
    _touch(r / "videos" / "batch1" / "1-30-1280x720.mp4")
    _touch(r / "videos" / "batch1" / "7-60-1920x1080.mp4")
    _touch(r / "videos" / "batch2" / "9-15-1920x1080.avi")
    _touch(r / "videos" / "12-24-1920x1080.mp4")  # flat videos/ is accepted
    _touch(r / "videos" / "batch2" / "3-25-1920x1080.mp4")
    ann = r / "annotations" / "VA_Estimation_Challenge"
    _annotation(ann / "Train_Set" / "1-30-1280x720.txt", [(0.1, 0.2), (-5, -5), (0.3, 0.4)])
    _annotation(ann / "Train_Set" / "7-60-1920x1080_left.txt", [(0.5, 0.5)] * 4)
    _annotation(ann / "Train_Set" / "7-60-1920x1080_right.txt", [(-0.5, 0.1)] * 4)
    _annotation(ann / "Validation_Set" / "9-15-1920x1080.txt", [(0.0, 0.0)] * 2)
    (r / "VA_test_set_release.txt").write_text("12-24-1920x1080\r\n3-25-1920x1080_right\n\n")
    (r / "VA_test_set_sample.txt").write_text(
        "image_location,valence,arousal\n12-24-1920x1080/00001.jpg,0,0\n3-25-1920x1080_right/00001.jpg,0,0\n"
    )
    _annotation(r / "organiser" / "VA_Estimation_Challenge" / "Test_Set" / "12-24-1920x1080.txt", [(0.2, 0.2)] * 3)
    _crops(r, "1-30-1280x720", [1, 3])
    _crops(r, "7-60-1920x1080_left", [1, 2, 3, 4])
    _crops(r, "12-24-1920x1080", [2])
    return r


def test_discover_splits(root: Path) -> None:
    layout = AffWild2Layout.discover(root)
    assert [e.name for e in layout.train] == ["1-30-1280x720", "7-60-1920x1080_left", "7-60-1920x1080_right"]
    assert [e.name for e in layout.validation] == ["9-15-1920x1080"]
    assert [e.name for e in layout.test] == ["12-24-1920x1080", "3-25-1920x1080_right"]  # release-list order
    assert layout.sample_file == root / "VA_test_set_sample.txt"
    assert layout.test_labels_dir == root / "organiser" / "VA_Estimation_Challenge" / "Test_Set"

    left = layout.entry("7-60-1920x1080_left")
    assert left == VideoEntry(
        name="7-60-1920x1080_left",
        raw_video=root / "videos" / "batch1" / "7-60-1920x1080.mp4",
        crops_dir=root / "cropped_aligned" / "7-60-1920x1080_left",
        annotation=root / "annotations" / "VA_Estimation_Challenge" / "Train_Set" / "7-60-1920x1080_left.txt",
        person="left",
    )
    right = layout.entry("7-60-1920x1080_right")
    assert right.raw_video == left.raw_video and right.crops_dir is None and right.person == "right"
    assert layout.entry("9-15-1920x1080").raw_video == root / "videos" / "batch2" / "9-15-1920x1080.avi"
    test0, test1 = layout.test
    assert test0.raw_video == root / "videos" / "12-24-1920x1080.mp4"
    assert test0.annotation == layout.test_labels_dir / "12-24-1920x1080.txt"
    assert test1.annotation is None and test1.person == "right"
    assert test1.raw_video == root / "videos" / "batch2" / "3-25-1920x1080.mp4"
    with pytest.raises(LayoutError, match="no video named"):
        layout.entry("nope")


def test_raw_video_and_crop_paths(root: Path) -> None:
    layout = AffWild2Layout.discover(root)
    assert layout.raw_video_for("7-60-1920x1080_right") == root / "videos" / "batch1" / "7-60-1920x1080.mp4"
    assert layout.raw_video_for("1-30-1280x720") == root / "videos" / "batch1" / "1-30-1280x720.mp4"
    with pytest.raises(LayoutError, match="no raw video for 'ghost_left'"):
        layout.raw_video_for("ghost_left")
    assert layout.crop_path("1-30-1280x720", 3) == root / "cropped_aligned" / "1-30-1280x720" / "00003.jpg"
    with pytest.raises(LayoutError, match="1-based"):
        layout.crop_path("1-30-1280x720", 0)
    assert layout.crop_frames("1-30-1280x720").tolist() == [1, 3]
    assert layout.crop_frames("9-15-1920x1080").tolist() == []


def test_labels_and_reconcile(root: Path) -> None:
    layout = AffWild2Layout.discover(root)
    entry = layout.entry("1-30-1280x720")
    labels, report = layout.labels(entry)
    assert report is None
    np.testing.assert_array_equal(labels, [[0.1, 0.2], [-5, -5], [0.3, 0.4]])
    longer, report = layout.labels(entry, n_frames=5)
    assert longer.shape == (5, 2) and (longer[3:] == -5).all()
    assert report is not None and report.padded == 2 and report.truncated == 0 and report.changed
    assert "padded 2 frame(s) with -5" in str(report)
    shorter, report = layout.labels(entry, n_frames=2)
    assert shorter.tolist() == [[0.1, 0.2], [-5, -5]] and report is not None and report.truncated == 1
    with pytest.raises(LayoutError, match="no annotation file"):
        layout.labels(layout.test[1])


def test_bad_annotation_is_a_format_error(root: Path) -> None:
    bad = root / "annotations" / "VA_Estimation_Challenge" / "Train_Set" / "1-30-1280x720.txt"
    bad.write_text("valence,arousal\n0.1,7\n")
    layout = AffWild2Layout.discover(root)
    with pytest.raises(FormatError, match="outside"):
        layout.labels(layout.train[0])


def test_duplicate_names_across_splits(root: Path) -> None:
    _annotation(root / "annotations" / "VA_Estimation_Challenge" / "Validation_Set" / "1-30-1280x720.txt", [(0, 0)])
    with pytest.raises(LayoutError, match=r"1-30-1280x720 \(train and validation\)"):
        AffWild2Layout.discover(root)


def test_test_video_in_train_is_a_duplicate(root: Path) -> None:
    (root / "VA_test_set_release.txt").write_text("12-24-1920x1080\n7-60-1920x1080_left\n")
    with pytest.raises(LayoutError, match=r"7-60-1920x1080_left \(train and test\)"):
        AffWild2Layout.discover(root)


def test_duplicate_raw_videos_and_test_names(root: Path) -> None:
    _touch(root / "videos" / "batch2" / "1-30-1280x720.avi")
    with pytest.raises(LayoutError, match="unique across batches"):
        AffWild2Layout.discover(root)
    (root / "videos" / "batch2" / "1-30-1280x720.avi").unlink()
    (root / "VA_test_set_release.txt").write_text("a\nb\na\n")
    with pytest.raises(LayoutError, match="listed twice: a"):
        AffWild2Layout.discover(root)


def test_test_list_falls_back_to_the_sample_file(root: Path) -> None:
    (root / "VA_test_set_release.txt").unlink()
    layout = AffWild2Layout.discover(root)
    assert [e.name for e in layout.test] == ["12-24-1920x1080", "3-25-1920x1080_right"]


def test_missing_or_empty_root(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="root folder not found"):
        AffWild2Layout.discover(tmp_path / "nope")
    with pytest.raises(LayoutError, match="no Aff-Wild2 layout"):
        AffWild2Layout.discover(tmp_path)


def test_person_names() -> None:
    assert person_of("video5_left") == "left" and person_of("video5_right") == "right"
    assert person_of("video5") is None
    assert strip_person("10-60-1280x720_right") == "10-60-1280x720"
    assert strip_person("leftover") == "leftover"


@settings(max_examples=50, deadline=None)
@given(n_labels=st.integers(0, 50), n_frames=st.integers(0, 50))
def test_reconcile_lengths_properties(n_labels: int, n_frames: int) -> None:
    labels = np.linspace(-1, 1, 2 * n_labels).reshape(n_labels, 2)
    out, report = reconcile_lengths(labels, n_frames)
    keep = min(n_labels, n_frames)
    assert out.shape == (n_frames, 2)
    np.testing.assert_array_equal(out[:keep], labels[:keep])
    assert (out[keep:] == -5).all()
    assert report.padded == max(0, n_frames - n_labels) and report.truncated == max(0, n_labels - n_frames)
    assert report.changed == (n_labels != n_frames)


def test_reconcile_lengths_rejects_bad_shapes() -> None:
    with pytest.raises(LayoutError, match=r"\(N, 2\)"):
        reconcile_lengths(np.zeros((3, 3)), 3)


def _expr(path: Path, classes: list[int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n"
    path.write_text(header + "".join(f"{c}\n" for c in classes))
    return path


def test_expression_files_are_found_in_either_expr_split(root: Path) -> None:
    expr = root / "annotations" / "EXPR_Classification_Challenge"
    # The EXPR challenge splits differently: a VA-validation video may have its classes under EXPR's Train_Set.
    a = _expr(expr / "Train_Set" / "9-15-1920x1080.txt", [4, 4])
    b = _expr(expr / "Validation_Set" / "1-30-1280x720.txt", [0, -1, 3, 5])
    layout = AffWild2Layout.discover(root)
    assert layout.entry("9-15-1920x1080").expr_annotation == a
    assert layout.entry("1-30-1280x720").expr_annotation == b
    assert layout.entry("7-60-1920x1080_left").expr_annotation is None
    # Reconciled to the decoded frame count like V/A: cut at the end, or padded with -1; no file: all -1.
    np.testing.assert_array_equal(layout.expressions(layout.entry("1-30-1280x720"), 3), [0, -1, 3])
    np.testing.assert_array_equal(layout.expressions(layout.entry("9-15-1920x1080"), 4), [4, 4, -1, -1])
    np.testing.assert_array_equal(layout.expressions(layout.entry("12-24-1920x1080"), 2), [-1, -1])


def test_expression_files_in_both_expr_splits_or_malformed_are_named(root: Path) -> None:
    expr = root / "annotations" / "EXPR_Classification_Challenge"
    _expr(expr / "Train_Set" / "9-15-1920x1080.txt", [4])
    _expr(expr / "Validation_Set" / "9-15-1920x1080.txt", [4])
    with pytest.raises(LayoutError, match="both EXPR splits"):
        AffWild2Layout.discover(root)
    (expr / "Validation_Set" / "9-15-1920x1080.txt").unlink()
    _expr(expr / "Train_Set" / "9-15-1920x1080.txt", [4, 9])
    layout = AffWild2Layout.discover(root)
    with pytest.raises(FormatError) as info:
        layout.expressions(layout.entry("9-15-1920x1080"), 2)
    assert info.value.problems[0].line == 3 and "9-15-1920x1080.txt" in info.value.problems[0].path
