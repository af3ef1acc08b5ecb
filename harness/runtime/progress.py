"""One progress helper for every long stage: a rich bar in a terminal, one plain line per step elsewhere.

In a terminal (`console.is_terminal`) `StepProgress` draws a rich bar with the label, counts, elapsed time and an
ETA. Off a terminal (CI logs, pipes, a StringIO console) it writes one plain line per step with the counts, the
percentage, the elapsed time and the ETA; lines are never wrapped or cut, since scripts and CI logs read them.
Preprocessing code reports through plain callbacks (`on_progress(done, total, label)`), so it needs no import of
this module: `StepProgress.on_progress` is such a callback.

`eta_seconds` and `overall_eta` are the pure estimates behind the ETAs (the demo's overall one comes from the
finished stages' share of the expected time).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.errors import LiveError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def eta_seconds(done: float, total: float | None, elapsed: float) -> float | None:
    """Seconds left if the remaining steps go at the rate of the done ones.

    Args:
        done: steps (or any additive work unit) finished.
        total: steps in all; None when unknown.
        elapsed: seconds spent on the done steps.

    Returns:
        The estimate, 0 when everything is done, None when it cannot be estimated (nothing done or no total).
    """
    if total is None or done <= 0 or elapsed < 0:
        return None
    if done >= total:
        return 0.0
    return elapsed * (total - done) / done


def format_duration(seconds: float | None) -> str:
    """`m:ss` (or `h:mm:ss`) for a duration; `?` when unknown."""
    if seconds is None:
        return "?"
    s = round(max(0.0, seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def overall_eta(shares: Mapping[str, float], finished: Sequence[str], elapsed: float,
                current: str | None = None, current_fraction: float = 0.0) -> float | None:  # fmt: skip
    """Seconds left for a pipeline of stages with expected shares of the total time.

    The expected total is estimated from the work done: elapsed / (shares of the finished stages + the current
    stage's share times its done fraction).

    Args:
        shares: stage -> expected share of the total time (any positive scale; normalised here).
        finished: stages done.
        elapsed: seconds spent so far.
        current: the stage running now, if any.
        current_fraction: its done fraction in [0, 1] (from its counts).

    Returns:
        The estimate, or None before any measurable work is done.
    """
    norm = sum(shares.values())
    if norm <= 0:
        return None
    done = sum(shares.get(s, 0.0) for s in finished) / norm
    if current is not None:
        done += shares.get(current, 0.0) / norm * min(max(current_fraction, 0.0), 1.0)
    if done <= 0:
        return None
    return max(0.0, elapsed * (1.0 - done) / done)


def plain_line(label: str, done: int, total: int | None, elapsed: float, unit: str = "", info: str = "") -> str:
    """The line written off a terminal for one step: counts, percentage, elapsed time, ETA, extra info."""
    counts = f"{done}/{total}" if total is not None else f"{done}"
    pct = f" ({100.0 * done / total:.0f}%)" if total else ""
    u = f" {unit}" if unit else ""
    tail = f", {info}" if info else ""
    return (f"{label}: {counts}{u}{pct}, {format_duration(elapsed)} elapsed, "
            f"ETA {format_duration(eta_seconds(done, total, elapsed))}{tail}")


class StepProgress:
    """Progress of one stage: a rich bar in a terminal, one plain line per step off a terminal.

    Use as a context manager (or call `close`). `advance` counts steps; `update` and `on_progress` set absolute
    counts (the latter is the `on_progress(done, total, label)` callback preprocessing functions take); `note`
    prints a line above the bar (or as a plain line).
    """

    def __init__(self, label: str, total: int | None = None, *, console: Console | None = None,
                 enabled: bool = True, unit: str = "", plain_interval_s: float = 0.0,
                 transient: bool = True) -> None:  # fmt: skip
        """Start the bar (or nothing, when disabled).

        Args:
            label: what is counted ("videos", "MAE epoch 1/4").
            total: steps in all, None when not known yet (`update` can set it).
            console: where to write (default: a new stdout console).
            enabled: False makes every method a no-op.
            unit: unit of the counts, shown after them ("frames").
            plain_interval_s: off a terminal, the least seconds between two lines (0: one line per step; per-frame
                callers set a few seconds so a log gets tens of lines, not thousands). The last step always prints.
            transient: remove the bar when done (the notes stay).
        """
        self.label, self.total, self.unit, self.enabled = label, total, unit, enabled
        self.console = console or Console()
        self.plain_interval_s = plain_interval_s
        self.done = 0
        self.info = ""
        self._t0 = time.perf_counter()
        self._last_line: float | None = None
        self._last_done = -1
        self._bar: Progress | None = None
        self._task: Any = None
        if enabled and self.console.is_terminal:
            bar = Progress(*self.columns(unit), console=self.console, transient=transient)
            try:
                bar.start()
            except LiveError:  # another live display (an outer bar) owns the terminal: write plain lines instead
                bar = None
            if bar is not None:
                self._bar = bar
                self._task = bar.add_task(label, total=total, info="")

    @staticmethod
    def columns(unit: str = "") -> tuple[ProgressColumn, ...]:
        """The bar's columns: label, bar, done/total, unit, elapsed, ETA, extra info."""
        return (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))

    @property
    def is_bar(self) -> bool:
        """True when drawing a rich bar (a terminal), False when writing plain lines or disabled."""
        return self._bar is not None

    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self._t0

    def update(self, done: int, total: int | None = None, label: str | None = None, info: str | None = None) -> None:
        """Set the absolute count (and the total, label or info when given); one plain line off a terminal.

        Args:
            done: steps done.
            total: steps in all.
            label: new label.
            info: extra text after the counts (loss, the item just done).
        """
        if not self.enabled:
            return
        self.done = int(done)
        self.total = self.total if total is None else int(total)
        self.label = self.label if label is None else label
        self.info = self.info if info is None else info
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, total=self.total, description=self.label, info=self.info)
            return
        if self.done == self._last_done:
            return
        now = time.perf_counter()
        last = self.total is not None and self.done >= self.total
        if not last and self._last_line is not None and now - self._last_line < self.plain_interval_s:
            return
        self._last_line, self._last_done = now, self.done
        self._write(plain_line(self.label, self.done, self.total, now - self._t0, self.unit, self.info))

    def advance(self, n: int = 1, info: str | None = None) -> None:
        """Count `n` more steps."""
        self.update(self.done + n, info=info)

    def on_progress(self, done: int, total: int | None, label: str | None = None) -> None:
        """The `on_progress(done, total, label)` callback that preprocessing functions take."""
        self.update(done, total, label)

    def note(self, text: str) -> None:
        """A line of its own, above the bar in a terminal; never wrapped or cut off one."""
        if self.enabled:
            self._write(text)

    def _write(self, text: str) -> None:
        # soft_wrap: no wrapping or cropping at the console width; markup off: labels may hold brackets.
        self.console.print(text, soft_wrap=True, markup=False, highlight=False)

    def close(self) -> None:
        """Stop the bar (idempotent)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()
