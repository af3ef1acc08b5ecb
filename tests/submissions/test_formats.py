"""ABAW files: annotation reader/writer, single-file submissions, per-video layout, and the validator's messages."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import HarnessError
from submissions import FormatError
from submissions.formats import (
    format_annotation,
    image_location,
    parse_annotation,
    parse_location,
    read_annotation,
    read_predictions,
    read_sample_locations,
    read_submission,
    validate_submission,
    validate_submission_text,
    write_annotation,
    write_per_video,
    write_submission,
)

SAMPLE = [image_location("vid1", i) for i in range(1, 5)] + [image_location("vid2_left", i) for i in range(1, 4)]


def good_text() -> str:
    rows = [f"{loc},0.1,-0.2" for loc in SAMPLE]
    return "image_location,valence,arousal\n" + "\n".join(rows) + "\n"


def codes(problems) -> list[str]:
    return [p.code for p in problems]


def test_image_location_roundtrip():
    assert image_location("12-24-1920x1080_left", 7) == "12-24-1920x1080_left/00007.jpg"
    assert parse_location("abc/00123.jpg") == ("abc", 123)
    with pytest.raises(ValueError):
        parse_location("abc/123.jpg")
    with pytest.raises(ValueError):
        image_location("a", 0)


def test_annotation_roundtrip(tmp_path):
    labels = np.array([[0.25, -0.5], [-5, -5], [1.0, -1.0]])
    p = write_annotation(tmp_path / "v.txt", labels)
    assert p.read_text().splitlines() == ["valence,arousal", "0.250000,-0.500000", "-5,-5", "1.000000,-1.000000"]
    np.testing.assert_allclose(read_annotation(p), labels)


@pytest.mark.parametrize(
    ("text", "code", "line"),
    [
        ("", "empty", 0),
        ("v,a\n0.1,0.2\n", "bad_header", 1),
        ("0.1,0.2\n0.3,0.4\n", "bad_header", 1),
        ("valence,arousal\n0.1,0.2,0.3\n", "columns", 2),
        ("valence,arousal\n0.1,abc\n", "non_numeric", 2),
        ("valence,arousal\n0.1,0.2\nnan,0.1\n", "non_finite", 3),
        ("valence,arousal\n1.5,0.2\n", "range", 2),
        ("valence,arousal\n-4,0.2\n", "range", 2),
        ("valence,arousal\n", "no_frames", 0),
    ],
)
def test_annotation_errors_name_line_and_reason(text, code, line):
    with pytest.raises(FormatError) as err:
        parse_annotation(text, "ann/video.txt")
    p = err.value.problems[0]
    assert (p.code, p.line, p.path) == (code, line, "ann/video.txt")
    assert "ann/video.txt" in str(err.value)


def test_annotation_all_minus_five_is_parsed():
    arr = parse_annotation("valence,arousal\n-5,-5\n-5,-5\n")
    assert arr.shape == (2, 2) and (arr == -5).all()


@settings(max_examples=200)
@given(st.text(max_size=200))
def test_annotation_fuzz_parses_or_format_error(text):
    try:
        arr = parse_annotation(text)
    except FormatError:
        return
    assert arr.ndim == 2 and arr.shape[1] == 2
    assert ((np.abs(arr) <= 1) | (arr == -5)).all()


def test_submission_write_read_validate(tmp_path):
    preds = {"vid1": np.linspace(-1, 1, 8).reshape(4, 2), "vid2_left": np.zeros((3, 2))}
    path = write_submission(tmp_path / "sub.csv", preds, SAMPLE)
    lines = path.read_text().splitlines()
    assert lines[0] == "image_location,valence,arousal"
    assert lines[1] == "vid1/00001.jpg,-1.000000,-0.714286"
    assert len(lines) == 1 + len(SAMPLE)
    assert validate_submission(path, SAMPLE) == []
    back = read_submission(path)
    np.testing.assert_allclose(back["vid1"], preds["vid1"], atol=1e-6)
    assert set(back) == {"vid1", "vid2_left"}


def test_writer_never_fixes_silently(tmp_path):
    short = {"vid1": np.zeros((2, 2)), "vid2_left": np.zeros((3, 2))}
    with pytest.raises(HarnessError, match="pad"):
        write_submission(tmp_path / "a.csv", short, SAMPLE)
    log: list[str] = []
    write_submission(tmp_path / "a.csv", short, SAMPLE, pad=True, log=log)
    assert any("padded 'vid1' from 2 to 4" in m for m in log)
    big = {"vid1": np.full((4, 2), 1.5), "vid2_left": np.zeros((3, 2))}
    with pytest.raises(HarnessError, match="outside"):
        write_submission(tmp_path / "b.csv", big, SAMPLE)
    log = []
    write_submission(tmp_path / "b.csv", big, SAMPLE, clip=True, log=log)
    assert read_submission(tmp_path / "b.csv")["vid1"].max() == 1.0 and "clipped 8" in log[0]
    with pytest.raises(HarnessError, match="no predictions for video 'vid2_left'"):
        write_submission(tmp_path / "c.csv", {"vid1": np.zeros((4, 2))}, SAMPLE)
    with pytest.raises(HarnessError, match="NaN"):
        write_submission(tmp_path / "d.csv", {"vid1": np.full((4, 2), np.nan)}, SAMPLE)


def _mutate(text: str, line: int, new: str | None) -> str:
    lines = text.splitlines()
    if new is None:
        del lines[line - 1]
    else:
        lines[line - 1] = new
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("mutation", "code", "line"),
    [
        ((1, "location,valence,arousal"), "bad_header", 1),
        ((3, "vid1/00002.jpg,0.1"), "columns", 3),
        ((3, "vid1/00002.jpg,0.1,0.2,0.3"), "columns", 3),
        ((3, "vid1/00002.jpg,high,0.2"), "non_numeric", 3),
        ((3, "vid1/00002.jpg,nan,0.2"), "non_finite", 3),
        ((3, "vid1/00002.jpg,inf,0.2"), "non_finite", 3),
        ((3, "vid1/00002.jpg,0.2,1.01"), "range", 3),
        ((3, "vid1/00001.jpg,0.2,0.1"), "duplicate", 3),
        ((3, "vid1/2.jpg,0.2,0.1"), "location", 3),
        ((3, "vid9/00002.jpg,0.2,0.1"), "unknown_video", 3),
        ((3, None), "missing", 0),
        ((3, "vid1/00009.jpg,0.2,0.1"), "extra", 3),
    ],
)
def test_validator_rejects_each_malformed_case(mutation, code, line):
    text = _mutate(good_text(), *mutation)
    problems = validate_submission_text(text, SAMPLE, "sub.csv")
    assert code in codes(problems), problems
    hit = next(p for p in problems if p.code == code)
    assert hit.line == line and hit.path == "sub.csv"


def test_validator_detects_wrong_order():
    lines = good_text().splitlines()
    lines[2], lines[3] = lines[3], lines[2]
    problems = validate_submission_text("\n".join(lines) + "\n", SAMPLE, "sub.csv")
    assert codes(problems) == ["order"]
    assert "out of order" in problems[0].reason


def test_validator_accepts_good_file_and_crlf():
    assert validate_submission_text(good_text(), SAMPLE) == []
    assert validate_submission_text(good_text().replace("\n", "\r\n"), SAMPLE) == []


def test_validator_empty_file():
    assert codes(validate_submission_text("", SAMPLE))[0] == "empty"


@settings(max_examples=150)
@given(st.lists(st.sampled_from(["image_location,valence,arousal", "vid1/00001.jpg,0.1,0.2", "vid1/00002.jpg,x,1",
                                 ",,", "a/b/c", "vid2_left/00003.jpg,-1,1", "", "\ufeff", "nan,nan,nan",
                                 "vid1/00004.jpg,0.5,-0.5,"]), max_size=12))
def test_validator_fuzz_never_crashes(lines):
    problems = validate_submission_text("\n".join(lines), SAMPLE)
    assert all(p.reason for p in problems)


def test_sample_reader(tmp_path):
    (tmp_path / "s.txt").write_text("image_location,valence,arousal\n" + "\n".join(f"{s},0,0" for s in SAMPLE))
    assert read_sample_locations(tmp_path / "s.txt") == SAMPLE
    (tmp_path / "bad.txt").write_text("frames\nvid1/00001.jpg\n")
    with pytest.raises(FormatError, match="header"):
        read_sample_locations(tmp_path / "bad.txt")


def test_per_video_layout_roundtrip(tmp_path):
    preds = {"a": np.array([[0.1, 0.2], [0.3, 0.4]]), "b_right": np.array([[0.0, -0.1]])}
    write_per_video(tmp_path / "preds", preds)
    assert (tmp_path / "preds" / "a.txt").read_text().startswith("valence,arousal\n")
    back = read_predictions(tmp_path / "preds")
    assert set(back) == {"a", "b_right"}
    np.testing.assert_allclose(back["a"], preds["a"])
    assert format_annotation(preds["a"]).count("\n") == 3


def test_read_submission_rejects_gaps(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("image_location,valence,arousal\nv/00001.jpg,0,0\nv/00003.jpg,0,0\n")
    with pytest.raises(FormatError, match="not contiguous"):
        read_submission(p)
