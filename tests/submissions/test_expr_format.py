"""Expression annotation files (the EXPR challenge's format, read for label refinement)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from submissions import FormatError
from submissions.formats import (
    EXPR_CLASSES,
    EXPR_HEADER,
    format_expr_annotation,
    parse_expr_annotation,
    read_expr_annotation,
    write_expr_annotation,
)


@given(arrays(np.int64, st.integers(1, 300), elements=st.integers(-1, len(EXPR_CLASSES) - 1)))
def test_round_trip(classes):
    np.testing.assert_array_equal(parse_expr_annotation(format_expr_annotation(classes)), classes)


def test_header_is_the_eight_classes_in_the_challenges_order():
    assert EXPR_HEADER == "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"


@pytest.mark.parametrize(
    ("text", "line", "code"),
    [
        ("valence,arousal\n1\n", 1, "bad_header"),
        (f"{EXPR_HEADER}\n1\n8\n", 3, "range"),
        (f"{EXPR_HEADER}\n-2\n", 2, "range"),
        (f"{EXPR_HEADER}\n1\nhappy\n", 3, "non_numeric"),
        (f"{EXPR_HEADER}\n1,2\n", 2, "columns"),
        (f"{EXPR_HEADER}\n", 0, "no_frames"),
        ("", 0, "empty"),
    ],
)
def test_bad_files_are_located(text, line, code):
    with pytest.raises(FormatError) as info:
        parse_expr_annotation(text, "v.txt")
    problem = info.value.problems[0]
    assert (problem.path, problem.line, problem.code) == ("v.txt", line, code)


def test_write_then_read_and_refuse_bad_arrays(tmp_path):
    classes = np.array([0, 4, 4, -1, 7])
    path = write_expr_annotation(tmp_path / "v.txt", classes)
    assert path.read_text().splitlines()[0] == EXPR_HEADER
    np.testing.assert_array_equal(read_expr_annotation(path), classes)
    with pytest.raises(ValueError, match=r"-1\.\.7"):
        format_expr_annotation(np.array([8]))
    with pytest.raises(ValueError, match="shape"):
        format_expr_annotation(np.zeros((2, 2), dtype=int))
