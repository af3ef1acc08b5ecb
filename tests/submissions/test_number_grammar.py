"""One number grammar for every ABAW file: the label parser and the prediction parser accept exactly the same
cells (`submissions.formats.NUMBER_PATTERN`), and the scalar `parse_number` agrees with the vectorised reader."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from submissions import FormatError
from submissions.formats import number_cells, parse_annotation, parse_number, validate_submission_text

REFUSED = ["٠.٥", "1_0e-1", "0.1\u2028", "\u20280.1", "0x1", "1e", ".", "+", "1.0.0", "１", "0,1", "1 0", ""]
ACCEPTED = {"0.5": 0.5, "-0.25": -0.25, "+1": 1.0, ".5": 0.5, "5.": 5.0, "1e-1": 0.1, "-5": -5.0, " 0.1\t": 0.1,
            "1E+0": 1.0}  # fmt: skip

cells = st.one_of(st.sampled_from(REFUSED + list(ACCEPTED) + ["nan", "-inf", "Infinity"]),
                  st.text(st.sampled_from("0123456789.-+eE_ \t٠١١\u2028xn"), max_size=8),
                  st.floats(allow_nan=False).map(repr))  # fmt: skip


def _vectorised(text: str) -> float | None:
    return pl.DataFrame({"c": [text]}).select(number_cells(pl.col("c"))).item()


@settings(max_examples=400, deadline=None)
@given(cells)
def test_scalar_and_vectorised_readers_agree(text):
    try:
        want = parse_number(text)
    except ValueError:
        want = None
    got = _vectorised(text)
    assert (got is None) == (want is None), text
    if want is not None and want == want:  # NaN compares unequal
        assert got == want


@pytest.mark.parametrize("cell", REFUSED)
def test_the_label_and_the_prediction_parser_refuse_the_same_cells(cell):
    with pytest.raises(FormatError) as info:
        parse_annotation(f"valence,arousal\n{cell},0.1\n", "v.txt")
    assert {p.code for p in info.value.problems} <= {"non_numeric", "columns"}
    problems = validate_submission_text(f"image_location,valence,arousal\nv/00001.jpg,{cell},0.1\n", None, "p.csv")
    assert {p.code for p in problems} & {"non_numeric", "columns"}, problems


@pytest.mark.parametrize(("cell", "value"), ACCEPTED.items())
def test_the_label_and_the_prediction_parser_read_the_same_numbers(cell, value):
    if abs(value) <= 1 or value == -5:
        assert parse_annotation(f"valence,arousal\n{cell},0.1\n", "v.txt")[0, 0] == value
    problems = validate_submission_text(f"image_location,valence,arousal\nv/00001.jpg,{cell},0.1\n", None, "p.csv")
    assert all(p.code == "range" for p in problems)
