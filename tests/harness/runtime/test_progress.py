"""The progress helper: one plain line per step off a terminal, a rich bar with an ETA column in one."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.progress import TimeRemainingColumn

from harness.runtime.progress import StepProgress, eta_seconds, format_duration, overall_eta, plain_line


def _plain_console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=40), buf  # a StringIO is no terminal; 40 columns would cut long lines


def test_off_a_terminal_one_line_per_step_with_counts() -> None:
    console, buf = _plain_console()
    with StepProgress("videos", total=3, console=console, unit="videos") as p:
        assert not p.is_bar
        for i in range(3):
            p.advance(info=f"video_{i}_with_a_rather_long_name_that_exceeds_the_console_width")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines, 1):
        assert line.startswith(f"videos: {i}/3 videos ({100 * i / 3:.0f}%)")
        assert "ETA" in line and line.endswith("exceeds_the_console_width")  # never wrapped or cut
    assert "ETA 0:00" in lines[-1]


def test_callback_form_sets_absolute_counts_and_labels() -> None:
    console, buf = _plain_console()
    with StepProgress("corpus", console=console) as p:
        for done in (10, 10, 25, 40):  # a repeated count writes no second line
            p.on_progress(done, 40, f"corpus: {done}")
    lines = buf.getvalue().splitlines()
    assert [x.split(",")[0] for x in lines] == ["corpus: 10: 10/40 (25%)", "corpus: 25: 25/40 (62%)",
                                               "corpus: 40: 40/40 (100%)"]


def test_plain_interval_throttles_but_keeps_the_last_step() -> None:
    console, buf = _plain_console()
    with StepProgress("frames", total=500, console=console, plain_interval_s=3600) as p:
        for _ in range(500):
            p.advance()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("frames: 1/500") and lines[1].startswith("frames: 500/500")


def test_disabled_writes_nothing() -> None:
    console, buf = _plain_console()
    with StepProgress("x", total=2, console=console, enabled=False) as p:
        p.advance()
        p.note("hello")
    assert buf.getvalue() == ""


def test_in_a_terminal_a_bar_with_an_eta_column() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    with StepProgress("epochs", total=4, console=console) as p:
        assert p.is_bar
        assert any(isinstance(c, TimeRemainingColumn) for c in p._bar.columns)
        p.advance(2)
        assert p._bar.tasks[0].completed == 2 and p._bar.tasks[0].total == 4
    # A helper inside a live bar (stage 1's feature bar inside nothing, an epoch bar inside a stage's) never
    # raises: rich either nests it or it falls back to plain lines.
    with StepProgress("outer", total=1, console=console), StepProgress("inner", total=1, console=console) as q:
        q.advance()
        assert q.done == 1


def test_eta_and_durations() -> None:
    assert eta_seconds(0, 10, 5.0) is None and eta_seconds(3, None, 5.0) is None
    assert eta_seconds(10, 10, 7.0) == 0.0
    assert eta_seconds(2, 10, 4.0) == pytest.approx(16.0)
    assert format_duration(None) == "?" and format_duration(75.4) == "1:15" and format_duration(3725) == "1:02:05"
    assert plain_line("a", 1, 4, 2.0) == "a: 1/4 (25%), 0:02 elapsed, ETA 0:06"


@given(share=st.floats(0.05, 0.95), elapsed=st.floats(1.0, 1e4))
def test_overall_eta_is_the_remaining_share_at_the_measured_rate(share: float, elapsed: float) -> None:
    shares = {"a": share, "b": 1.0 - share}
    assert overall_eta(shares, ["a"], elapsed) == pytest.approx(elapsed * (1 - share) / share)
    # Half-way through b: the finished share is share + (1 - share) / 2.
    f = share + (1 - share) / 2
    assert overall_eta(shares, ["a"], elapsed, "b", 0.5) == pytest.approx(elapsed * (1 - f) / f)
    assert overall_eta(shares, ["a", "b"], elapsed) == pytest.approx(0.0)
    assert overall_eta(shares, [], elapsed) is None


def test_engine_epochs_write_one_line_per_epoch_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.train.loop import _Progress

    bar = _Progress(True, "bdca fold 0")
    for epoch in range(3):
        bar.start_epoch(epoch, 3, total=50)
        for _ in range(50):
            bar.advance(0.5, 1e-3)
        bar.end_epoch({"epoch": epoch, "train_loss": 0.5, "lr": 1e-3, "time_s": 0.1, "val_ccc_v": 0.1,
                       "val_ccc_a": 0.2, "val_p_va": 0.15})
    bar.close()
    lines = capsys.readouterr().out.splitlines()
    assert [x.split(":")[0] for x in lines] == [f"bdca fold 0 epoch {e}/3" for e in (1, 2, 3)]
    assert all("P_VA 0.150" in x and "ETA" in x for x in lines) and lines[-1].endswith("ETA 0:00)")
