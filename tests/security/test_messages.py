"""The CLI's error lines: `path[:line]: error: message`, one per problem, whatever the message looks like."""

from __future__ import annotations

from core.errors import HarnessError
from harness.cli import MAX_ERROR_LINES, error_lines, main
from submissions import FormatError, Problem


def test_error_lines_are_located_single_lines():
    assert error_lines(HarnessError("runs/a/config.yaml:3: not valid YAML (found\n  a tab)")) == [
        "runs/a/config.yaml:3: error: not valid YAML (found a tab)"]
    assert error_lines(HarnessError("runs/a: error: already said")) == ["runs/a: error: already said"]
    assert error_lines(HarnessError("give --data ROOT or a VIDEO file")) == [
        "harness: error: give --data ROOT or a VIDEO file"]
    many = FormatError([Problem("p.csv", i + 2, "bad row", "columns") for i in range(26)])
    lines = error_lines(many)
    assert lines[0] == "p.csv:2: error: bad row [columns]"
    assert len(lines) == MAX_ERROR_LINES + 1 and lines[-1] == "harness: error: ... and 6 more problem(s)"


def test_a_folder_in_place_of_a_file_is_one_located_line(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    assert main(["validate", str(tmp_path / "sub"), "--sample", str(tmp_path / "sub")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{tmp_path / 'sub'}: error: the sample file is a folder, not a regular file; refusing to read it "
                   "[not_regular]"]
